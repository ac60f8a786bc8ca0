"""``lockgate logs`` end to end: the real console script over log folders with known records."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lockgate.logs import SCHEMA
from tests.cli.conftest import Project, assert_ok, assert_user_error, describe, run_cli

LEVELS = ("debug", "info", "warning", "error", "critical", "total")


@dataclass(frozen=True)
class Logged:
    """A project folder whose environments' log folders hold :func:`records`."""

    root: Path
    records: list[dict[str, Any]]
    """The records in the default 24h window in time order, then one older (:data:`OLD`)."""


OLD = "data run failed: an old failure"


def record(
    now: datetime,
    minutes_ago: float,
    level: str,
    env: str,
    pipeline: str | None,
    run_id: str | None,
    event: str,
    message: str,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "time": (now - timedelta(minutes=minutes_ago)).isoformat(timespec="microseconds"),
        "level": level,
        "env": env,
        "pipeline": pipeline,
        "run_id": run_id,
        "event": event,
        "message": message,
        "fields": fields,
        "logger": f"lockgate.{pipeline or 'serving'}",
        "pid": 4242,
    }


def write_records(folder: Path, records: list[dict[str, Any]], cut_short: bool = False) -> None:
    """Append each record to its UTC day's file, as the handler does; ``cut_short`` ends each
    file with half a line, as a process killed mid-write leaves it."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for one in records:
        day = datetime.fromisoformat(one["time"]).date().isoformat()
        paths.append(folder / f"lockgate-{day}.jsonl")
        with paths[-1].open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(one) + "\n")
    for path in set(paths) if cut_short else ():
        with path.open("a", encoding="utf-8") as handle:
            handle.write('{"time": "2026-11-26T12:0')


@pytest.fixture
def logged(tmp_path: Path) -> Logged:
    """Three environments' log folders; one staging record is about prod (a promotion)."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "lockgate.toml").write_text("[logs]\nretention_days = 14\n", encoding="utf-8")
    now = datetime.now(UTC)
    dev = [
        record(now, 30 * 60, "error", "dev", "data", "data-0", "run.failed", OLD),
        record(now, 180, "info", "dev", "data", "data-1", "run.started", "data run started"),
        record(now, 170, "warning", "dev", "data", "data-1", "log", "quarantined bad.csv"),
        record(
            now, 160, "info", "dev", "data", "data-1", "run.succeeded", "data run succeeded",
            rows=400, version="dv-0123456789abcdef",
        ),
        record(
            now, 90, "error", "dev", "training", "training-1", "run.failed", "training failed",
            exception="TimeoutError: study deadline",
        ),
        record(now, 30, "debug", "dev", "runtime", None, "job.started", "polling raw/"),
    ]  # fmt: skip
    staging = [
        record(
            now, 120, "info", "staging", "deployment", "deployment-1", "release.promoted",
            "promoted churn 3 to staging", model="churn",
        ),
        record(
            now, 60, "critical", "staging", "monitoring", "monitoring-1", "drift.detected",
            "Drift in tenure_months", share=0.6,
        ),
        record(
            now, 45, "info", "prod", "deployment", "deployment-2", "release.promoted",
            "promoted churn 3 to prod", model="churn",
        ),
    ]  # fmt: skip
    prod = [record(now, 10, "warning", "prod", None, None, "log", "endpoint slow: p99 2.5s")]
    write_records(root / ".lockgate" / "dev" / "logs", dev)
    write_records(root / ".lockgate" / "staging" / "logs", staging, cut_short=True)
    write_records(root / ".lockgate" / "prod" / "logs", prod)
    everything = sorted([*dev, *staging, *prod], key=lambda one: one["time"])
    return Logged(root, [*everything[1:], everything[0]])


def in_window(logged: Logged) -> list[dict[str, Any]]:
    return logged.records[:-1]


def json_records(root: Path, *args: str) -> list[dict[str, Any]]:
    """What ``lockgate logs --json ARGS`` prints in ``root``, parsed."""
    result = assert_ok(run_cli(["logs", "--json", *args], root))
    return [json.loads(line) for line in result.stdout.splitlines()]


def counts_table(stdout: str) -> dict[str, list[int]]:
    """The rows of the counts table: pipeline -> [debug, info, warning, error, critical, total]."""
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["pipeline"])
    assert lines[header].split() == ["pipeline", *LEVELS]
    rows: dict[str, list[int]] = {}
    for line in lines[header + 1 :]:
        cells = line.split()
        if len(cells) != 7 or not all(cell.isdigit() for cell in cells[1:]):
            break
        rows[cells[0]] = [int(cell) for cell in cells[1:]]
    return rows


def stamp(one: dict[str, Any]) -> str:
    return datetime.fromisoformat(one["time"]).strftime("%Y-%m-%d %H:%M:%S UTC")


def test_logs_merges_every_environment_by_time_and_counts_them(logged: Logged) -> None:
    result = assert_ok(run_cli(["logs"], logged.root))
    window = in_window(logged)

    lines = result.stdout.splitlines()
    shown = [line for line in lines if line[:4].isdigit()]
    assert len(shown) == len(window) == 9, describe(result)
    for line, one in zip(shown, window, strict=True):
        assert one["message"] in line
        assert f" {one['env']} " in line
        assert line.startswith(one["time"][:19].replace("T", " "))
    assert OLD not in result.stdout
    assert "rows=400 version=dv-0123456789abcdef" in result.stdout
    assert "[training-1] training failed exception=TimeoutError: study deadline" in result.stdout

    assert counts_table(result.stdout) == {
        #               debug info warning error critical total
        "data":        [0,    2,   1,      0,    0,       3],
        "training":    [0,    0,   0,      1,    0,       1],
        "deployment":  [0,    2,   0,      0,    0,       2],
        "monitoring":  [0,    0,   0,      0,    1,       1],
        "runtime":     [1,    0,   0,      0,    0,       1],
        "-":           [0,    0,   1,      0,    0,       1],
        "total":       [1,    4,   2,      1,    1,       9],
    }  # fmt: skip
    folders = ".lockgate/dev/logs, .lockgate/staging/logs, .lockgate/prod/logs"
    assert lines[-1] == (
        f"9 record(s) from {stamp(window[0])} to {stamp(window[-1])} in {folders}"
    ), describe(result)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ["--pipeline", "data"],
            ["data run started", "quarantined bad.csv", "data run succeeded"],
            id="pipeline",
        ),
        pytest.param(
            ["--level", "warning"],
            [
                "quarantined bad.csv",
                "training failed",
                "Drift in tenure_months",
                "endpoint slow: p99 2.5s",
            ],
            id="level-is-a-minimum",
        ),
        pytest.param(
            ["--level", "ERROR"], ["training failed", "Drift in tenure_months"], id="level-any-case"
        ),
        pytest.param(["--grep", "DV-0123"], ["data run succeeded"], id="grep-fields"),
        pytest.param(["--grep", "drift in"], ["Drift in tenure_months"], id="grep-message"),
        pytest.param(
            ["--grep", "release.PROMOTED"],
            ["promoted churn 3 to staging", "promoted churn 3 to prod"],
            id="grep-event",
        ),
        pytest.param(
            ["--run", "data-1"],
            ["data run started", "quarantined bad.csv", "data run succeeded"],
            id="run",
        ),
        pytest.param(
            ["--env", "prod"],
            ["promoted churn 3 to prod", "endpoint slow: p99 2.5s"],
            id="env-across-folders",
        ),
        pytest.param(
            ["--pipeline", "data", "--level", "warning"], ["quarantined bad.csv"], id="combined"
        ),
    ],
)
def test_each_filter_selects_its_records(
    logged: Logged, args: list[str], expected: list[str]
) -> None:
    assert [one["message"] for one in json_records(logged.root, *args)] == expected


def test_since_takes_a_longer_duration_or_a_date_time(logged: Logged) -> None:
    assert json_records(logged.root, "--since", "2d") == [logged.records[-1], *in_window(logged)]

    start = datetime.fromisoformat(in_window(logged)[4]["time"])  # 90 minutes ago
    later = json_records(logged.root, "--since", start.strftime("%Y-%m-%dT%H:%M:%S.%f"))
    assert later == in_window(logged)[4:]


def test_json_prints_the_records_themselves_one_per_line(logged: Logged) -> None:
    result = assert_ok(run_cli(["logs", "--json"], logged.root))

    parsed = [json.loads(line) for line in result.stdout.splitlines()]
    assert parsed == in_window(logged)
    assert all(list(one)[: len(SCHEMA)] == list(SCHEMA) for one in parsed)
    assert "record(s) from" not in result.stdout


def test_limit_shows_the_last_lines_and_still_counts_them_all(logged: Logged) -> None:
    result = assert_ok(run_cli(["logs", "--limit", "2"], logged.root))

    assert "polling raw/" in result.stdout
    assert "endpoint slow: p99 2.5s" in result.stdout
    assert "promoted churn 3 to prod" not in result.stdout
    assert "(the last 2 of 9 matching records; --limit 0 shows all)" in result.stdout
    assert counts_table(result.stdout)["total"][-1] == 9
    assert result.stdout.splitlines()[-1].startswith("9 record(s) from ")

    assert json_records(logged.root, "--limit", "2") == in_window(logged)[-2:]
    assert len(json_records(logged.root, "--limit", "0", "--since", "7d")) == 10


def test_nothing_matching_is_said_plainly(logged: Logged) -> None:
    result = assert_ok(run_cli(["logs", "--grep", "no such text"], logged.root))

    assert result.stdout.startswith("no log records match since ")
    assert "pipeline" not in result.stdout
    assert json_records(logged.root, "--grep", "no such text") == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param(
            ["--since", "5x"],
            "--since '5x' is not a duration like 90s, 30m, 2h, 7d (or 1h30m), or an ISO "
            "date/time like 2026-11-26",
            id="since",
        ),
        pytest.param(["--since", "0m"], "--since '0m' must be longer than zero", id="since-zero"),
        pytest.param(
            ["--level", "loud"],
            "--level 'loud' is not one of debug, info, warning, error, critical",
            id="level",
        ),
        pytest.param(
            ["--pipeline", "serving"],
            "--pipeline 'serving' is not one of data, training, deployment, monitoring, runtime",
            id="pipeline",
        ),
        pytest.param(
            ["--env", "qa"], "no environment 'qa' (environments: dev, staging, prod)", id="env"
        ),
        pytest.param(["--limit", "-1"], "--limit -1 must be 0 (show all) or more", id="limit"),
    ],
)
def test_a_bad_option_is_one_line_saying_what_is_accepted(
    logged: Logged, args: list[str], says: str
) -> None:
    line = assert_user_error(run_cli(["logs", *args], logged.root))
    assert says in line


def test_a_real_command_leaves_json_lines_that_logs_reads(project: Project) -> None:
    assert_ok(run_cli(["put", "data/churn.csv"], project.root))
    assert_ok(run_cli(["data", "prep"], project.root))

    files = sorted((project.root / ".lockgate" / "dev" / "logs").glob("lockgate-*.jsonl"))
    assert files, "data prep wrote no log file"
    lines = [json.loads(line) for path in files for line in path.read_text().splitlines()]
    assert lines and all(list(one)[: len(SCHEMA)] == list(SCHEMA) for one in lines)
    assert {one["env"] for one in lines} == {"dev"}

    found = json_records(project.root, "--grep", "preparing churn")
    assert len(found) == 1
    assert found[0]["logger"] == "lockgate.data"
    assert found[0] in lines
    result = assert_ok(run_cli(["logs", "--env", "dev"], project.root))
    assert "preparing churn dv-" in result.stdout
    assert "in .lockgate/dev/logs" in result.stdout.splitlines()[-1]
