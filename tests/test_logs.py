"""lockgate.logs (the JSON lines every process writes) and lockgate.logquery (reading them back)."""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lockgate import logs
from lockgate.errors import ConfigError
from lockgate.logquery import LogQuery, count_by, parse_since, select, totals

LOGGER = "lockgate.test"


@pytest.fixture(autouse=True)
def lockgate_logger() -> Iterator[logging.Logger]:
    """The ``lockgate`` logger, put back as it was: configure() replaces its handlers."""
    root = logging.getLogger(logs.ROOT)
    handlers, level, propagate = list(root.handlers), root.level, root.propagate
    defaults = dict(logs._process_defaults)
    yield logging.getLogger(LOGGER)
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    root.propagate = propagate
    logs._process_defaults.clear()
    logs._process_defaults.update(defaults)


def written(folder: Path) -> list[dict[str, Any]]:
    """Every line of every daily file in ``folder``, parsed (a bad line fails the test)."""
    lines: list[dict[str, Any]] = []
    for path in sorted(folder.glob("lockgate-*.jsonl")):
        lines.extend(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    return lines


def make_record(logger: logging.Logger, moment: datetime, message: str) -> logging.LogRecord:
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, message, (), None)
    record.created = moment.timestamp()
    return record


# -- writing ------------------------------------------------------------------------------------


def test_a_record_has_the_schema_keys_in_order_with_its_run_context(
    tmp_path: Path, lockgate_logger: logging.Logger
) -> None:
    logs.configure(folder=tmp_path, terminal_level=None, env="dev")

    with logs.log_context(pipeline="data", run_id="data-20261126T124032Z-1a2b3c"):
        # Fields named like event()'s own parameters are fields like any other.
        logs.event(
            lockgate_logger,
            logging.INFO,
            "version.committed",
            "committed churn",
            rows=20000,
            name="churn",
            message="a field",
        )
    lockgate_logger.warning("outside any run")

    inside, outside = written(tmp_path)
    assert list(inside) == [*logs.SCHEMA, "logger", "pid"]
    assert {key: inside[key] for key in list(inside)[1:]} == {
        "level": "info",
        "env": "dev",
        "pipeline": "data",
        "run_id": "data-20261126T124032Z-1a2b3c",
        "event": "version.committed",
        "message": "committed churn",
        "fields": {"rows": 20000, "name": "churn", "message": "a field"},
        "logger": LOGGER,
        "pid": os.getpid(),
    }
    stamp = datetime.fromisoformat(inside["time"])
    assert stamp.utcoffset() == timedelta(0)
    assert f"lockgate-{stamp.date().isoformat()}.jsonl" in os.listdir(tmp_path)
    assert outside["level"] == "warning"
    assert (outside["env"], outside["pipeline"], outside["run_id"]) == ("dev", None, None)
    assert (outside["event"], outside["fields"]) == ("log", {})


def test_a_nested_context_overrides_only_what_it_names(
    tmp_path: Path, lockgate_logger: logging.Logger
) -> None:
    logs.configure(folder=tmp_path, terminal_level=None, env="dev")

    with logs.log_context(pipeline="deployment", run_id="deployment-1"):
        with logs.log_context(env="prod"):
            lockgate_logger.info("promoting")
        lockgate_logger.info("promoted")

    inner, outer = written(tmp_path)
    assert (inner["env"], inner["pipeline"], inner["run_id"]) == (
        "prod",
        "deployment",
        "deployment-1",
    )
    assert (outer["env"], outer["pipeline"], outer["run_id"]) == (
        "dev",
        "deployment",
        "deployment-1",
    )


def test_an_exception_is_a_field_of_its_record(
    tmp_path: Path, lockgate_logger: logging.Logger
) -> None:
    logs.configure(folder=tmp_path, terminal_level=None)

    try:
        raise ValueError("column 'plan' has 40% unparseable values")
    except ValueError:
        lockgate_logger.exception("prep failed")

    (line,) = written(tmp_path)
    assert line["level"] == "error"
    assert line["message"] == "prep failed"
    assert line["fields"] == {"exception": "ValueError: column 'plan' has 40% unparseable values"}


def test_the_file_level_drops_lower_records(
    tmp_path: Path, lockgate_logger: logging.Logger
) -> None:
    logs.configure(folder=tmp_path, file_level="warning", terminal_level=None)

    lockgate_logger.info("routine")
    lockgate_logger.warning("unusual")

    assert [line["message"] for line in written(tmp_path)] == ["unusual"]


def test_the_terminal_shows_readable_lines_at_its_level(
    tmp_path: Path, lockgate_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(folder=tmp_path, terminal_level=logging.WARNING)

    with logs.log_context(pipeline="training", run_id="training-7"):
        lockgate_logger.info("trial 3 finished")
        logs.event(lockgate_logger, logging.ERROR, "run.failed", "study failed", trials=3)

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("error   training [training-7] study failed trials=3")
    assert len(written(tmp_path)) == 2


@pytest.fixture
def far_east_local_time() -> Iterator[None]:
    """Local time UTC+14 (POSIX TZ, no tz database needed): a local date differs from UTC's."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "LGT-14"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.mark.usefixtures("far_east_local_time")
def test_daily_files_are_named_by_the_utc_date(
    tmp_path: Path, lockgate_logger: logging.Logger
) -> None:
    handler = logs.DailyJsonFiles(tmp_path)
    late = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)  # already March 2nd in local time

    handler.handle(make_record(lockgate_logger, late, "late on the 1st"))
    handler.handle(make_record(lockgate_logger, late + timedelta(hours=1), "early on the 2nd"))

    assert sorted(os.listdir(tmp_path)) == [
        "lockgate-2026-03-01.jsonl",
        "lockgate-2026-03-02.jsonl",
    ]
    first = json.loads((tmp_path / "lockgate-2026-03-01.jsonl").read_text(encoding="utf-8"))
    assert first["message"] == "late on the 1st"
    assert first["time"] == "2026-03-01T23:30:00.000000+00:00"


def test_prune_deletes_only_daily_files_older_than_the_retention(tmp_path: Path) -> None:
    today = date(2026, 11, 26)
    for days in (40, 15, 14, 13, 0):
        (tmp_path / f"lockgate-{today - timedelta(days=days)}.jsonl").write_text("{}\n")
    for other in ("notes.txt", "lockgate-latest.jsonl", "other-2020-01-01.jsonl"):
        (tmp_path / other).write_text("keep\n")

    removed = logs.prune(tmp_path, retention_days=14, today=today)

    assert sorted(path.name for path in removed) == [
        "lockgate-2026-10-17.jsonl",
        "lockgate-2026-11-11.jsonl",
    ]
    assert sorted(os.listdir(tmp_path)) == [
        "lockgate-2026-11-12.jsonl",
        "lockgate-2026-11-13.jsonl",
        "lockgate-2026-11-26.jsonl",
        "lockgate-latest.jsonl",
        "notes.txt",
        "other-2020-01-01.jsonl",
    ]


def test_configure_prunes_the_folder_it_writes_to(tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    (tmp_path / "lockgate-2001-01-01.jsonl").write_text("{}\n")
    (tmp_path / f"lockgate-{today}.jsonl").write_text("{}\n")

    logs.configure(folder=tmp_path, retention_days=14, terminal_level=None)

    assert os.listdir(tmp_path) == [f"lockgate-{today}.jsonl"]


WRITER = textwrap.dedent(
    """
    import logging, sys
    from pathlib import Path
    from lockgate import logs

    logs.configure(folder=Path(sys.argv[1]), terminal_level=None)
    log = logging.getLogger("lockgate.writer")
    padding = sys.argv[2] * 3000
    print("ready", flush=True)
    sys.stdin.readline()  # both start writing together, so their appends overlap
    for seq in range(2000):
        logs.event(log, logging.INFO, "test.line", padding, writer=sys.argv[2], seq=seq)
    """
)


def test_two_processes_append_to_one_file_without_interleaving(tmp_path: Path) -> None:
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    for writer in writers:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "ready\n", writer.communicate(timeout=60)[1]
    for writer in writers:
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.close()
    for writer in writers:
        assert writer.wait(timeout=300) == 0, writer.stderr.read() if writer.stderr else ""

    lines = written(tmp_path)  # every line parses, or this fails

    assert len(lines) == 4000
    for name in ("a", "b"):
        mine = [line for line in lines if line["fields"]["writer"] == name]
        assert [line["fields"]["seq"] for line in mine] == list(range(2000))
        assert all(line["message"] == name * 3000 for line in mine)
    writers_in_order = [line["fields"]["writer"] for line in lines]
    switches = sum(1 for one, two in itertools.pairwise(writers_in_order) if one != two)
    # One switch is one writer after the other: then the test proved nothing.
    assert switches > 1, "the two writers did not write at the same time"


# -- reading ------------------------------------------------------------------------------------


def doc(moment: datetime, message: str, **overrides: Any) -> dict[str, Any]:
    """A SCHEMA document at ``moment``."""
    return {
        "time": moment.isoformat(timespec="microseconds"),
        "level": "info",
        "env": "dev",
        "pipeline": "data",
        "run_id": "data-1",
        "event": "log",
        "message": message,
        "fields": {},
        "logger": "lockgate.data",
        "pid": 1,
        **overrides,
    }


def write_day(folder: Path, day: date, lines: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"lockgate-{day.isoformat()}.jsonl").open("a", encoding="utf-8") as handle:
        handle.write("".join(lines))


def test_read_lines_skips_what_is_not_a_record(tmp_path: Path) -> None:
    moment = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    first = doc(moment, "first")
    second = doc(moment + timedelta(minutes=1), "second")
    write_day(
        tmp_path,
        moment.date(),
        [
            json.dumps(first) + "\n",
            "not json at all\n",
            "[1, 2, 3]\n",
            "\n",
            json.dumps(second) + "\n",
            json.dumps(doc(moment, "cut short"))[:40],  # the writer died mid-line
        ],
    )

    assert list(logs.read_lines(tmp_path)) == [first, second]


def test_read_lines_honours_since_across_days(tmp_path: Path) -> None:
    day = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    write_day(tmp_path, day.date(), [json.dumps(doc(day, "yesterday")) + "\n"])
    later = [day + timedelta(hours=hours) for hours in (2, 3, 4)]
    write_day(tmp_path, later[0].date(), [json.dumps(doc(m, m.isoformat())) + "\n" for m in later])

    since = later[1]
    assert [line["message"] for line in logs.read_lines(tmp_path, since)] == [
        later[1].isoformat(),
        later[2].isoformat(),
    ]
    assert len(list(logs.read_lines(tmp_path))) == 4


def test_human_line_reads_any_object(tmp_path: Path) -> None:
    moment = datetime(2026, 11, 26, 12, 40, 32, tzinfo=UTC)
    line = doc(moment, "committed", fields={"rows": 400}, env="staging")
    assert logs.human_line(line) == "2026-11-26 12:40:32 info    data [data-1] committed rows=400"
    assert logs.human_line(line, show_env=True) == (
        "2026-11-26 12:40:32 info    staging data [data-1] committed rows=400"
    )
    odd = {"time": "2026-11-26T12:40:32", "level": None, "fields": ["not", "a", "map"]}
    assert logs.human_line(odd) == "2026-11-26 12:40:32 ?       - "


# -- querying ---------------------------------------------------------------------------------

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("90s", NOW - timedelta(seconds=90)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2h", NOW - timedelta(hours=2)),
        ("7d", NOW - timedelta(days=7)),
        ("1h30m", NOW - timedelta(minutes=90)),
        (" 2H ", NOW - timedelta(hours=2)),
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20T08:15", datetime(2026, 11, 20, 8, 15, tzinfo=UTC)),
        ("2026-11-20 08:15:00+02:00", datetime(2026, 11, 20, 6, 15, tzinfo=UTC)),
    ],
)
def test_since_accepts_durations_and_dates(text: str, start: datetime) -> None:
    assert parse_since(text, NOW) == start


@pytest.mark.parametrize("text", ["", "2", "2x", "h2", "yesterday", "0h", "2h-", "-2h"])
def test_since_refuses_anything_else_saying_what_it_accepts(text: str) -> None:
    with pytest.raises(ConfigError, match=r"like 90s, 30m, 2h, 7d .* ISO date/time"):
        parse_since(text, NOW)


@pytest.mark.parametrize(
    ("option", "values"),
    [("pipeline", "data, training, deployment, monitoring, runtime"), ("level", "debug, info")],
)
def test_an_unknown_choice_lists_the_known_ones(option: str, values: str) -> None:
    with pytest.raises(ConfigError, match=f"--{option} 'nope' is not one of {values}"):
        LogQuery.parse(now=NOW, **{option: "nope"})


def test_matches_applies_every_filter() -> None:
    base = doc(NOW - timedelta(minutes=5), "Drift in tenure_months", level="warning")
    query = LogQuery.parse(now=NOW, since="1h")
    assert query.matches(base)
    assert not query.matches({**base, "time": (NOW - timedelta(hours=2)).isoformat()})
    assert not query.matches({**base, "time": "garbage"})

    def passes(record: dict[str, Any] = base, **options: Any) -> bool:
        return LogQuery.parse(now=NOW, since="1h", **options).matches(record)

    assert passes(pipeline="data") and not passes(pipeline="training")
    assert passes(level="info") and passes(level="WARNING") and not passes(level="error")
    assert passes(run_id="data-1") and not passes(run_id="data-2")
    assert passes(env="dev") and not passes(env="prod")
    assert passes(grep="TENURE") and not passes(grep="churn")
    with_fields = {**base, "fields": {"model": "ChurnModel"}, "event": "release.promoted"}
    assert passes(with_fields, grep="churnmodel") and passes(with_fields, grep="PROMOTED")
    assert not passes({**base, "level": "verbose"}, level="debug")


def test_select_merges_folders_by_time(tmp_path: Path) -> None:
    times = [NOW - timedelta(minutes=minutes) for minutes in (50, 40, 30, 20, 10)]
    write_day(
        tmp_path / "dev", NOW.date(), [json.dumps(doc(times[i], f"m{i}")) + "\n" for i in (0, 3, 2)]
    )
    write_day(
        tmp_path / "prod",
        NOW.date(),
        [json.dumps(doc(times[i], f"m{i}", env="prod")) + "\n" for i in (1, 4)],
    )
    query = LogQuery.parse(now=NOW, since="45m")

    found = select([tmp_path / "dev", tmp_path / "prod", tmp_path / "missing"], query)

    assert [record["message"] for record in found] == ["m1", "m2", "m3", "m4"]


def test_count_by_pipeline_and_level() -> None:
    records = [
        doc(NOW, "a", pipeline="training", level="error"),
        doc(NOW, "b", pipeline="data", level="info"),
        doc(NOW, "c", pipeline="data", level="warning"),
        doc(NOW, "d", pipeline=None, level="info"),
        doc(NOW, "e", pipeline="data", level="info"),
        doc(NOW, "f", pipeline="data", level="trace"),
    ]

    counts = count_by(records)

    assert list(counts) == ["data", "training", "-"]
    assert counts["data"] == {
        "debug": 0, "info": 2, "warning": 1, "error": 0, "critical": 0, "total": 4
    }  # fmt: skip
    assert counts["training"]["error"] == 1
    assert counts["-"]["info"] == 1
    assert totals(counts) == {
        "debug": 0, "info": 3, "warning": 1, "error": 1, "critical": 0, "total": 6
    }  # fmt: skip
