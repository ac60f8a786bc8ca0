"""`lockgate status` as a user reads it: the real console script, a project whose ledgers,
releases and ``up.json`` are written directly with the library (no pipeline runs here)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lockgate.config import load_settings
from lockgate.errors import LockgateError
from lockgate.pipelines.ledger import Ledger
from lockgate.pipelines.runs import Trigger, recent_runs, recorded_run
from lockgate.ports.store import Store
from lockgate.wiring import open_store
from tests.cli.conftest import assert_ok, describe, run_cli

pytestmark = pytest.mark.slow

TOML = '[monitor]\nschedule = "rate(1 day)"\n'
BAD_UPLOAD = "raw/churn/jan.csv has no column 'churned'; export it with the target column"
DATA_HINT = "add the churned column to the export and upload it again"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "lockgate.toml").write_text(TOML)
    return root


def store_of(project: Path, env: str = "dev") -> Store:
    settings = load_settings(project / "lockgate.toml", environ={})
    return open_store(settings.for_env(env).store_uri)


def status(project: Path, *args: str) -> str:
    result = assert_ok(run_cli(["status", *args], project))
    return result.stdout


def status_json(project: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(status(project, "--json"))
    return document


def record_runs(project: Path) -> None:
    """dev: a data run that succeeded, one that failed, a training run whose process died."""
    dev = store_of(project)
    upload = Trigger("upload", "raw/churn/dec.csv")
    with recorded_run(dev, "data", upload, {"dataset": "churn"}, env="dev") as run:
        run.outputs.update(status="committed", version="dv-0123456789abcdef", rows=400)
    with (
        pytest.raises(LockgateError),
        recorded_run(dev, "data", Trigger("upload", "raw/churn/jan.csv"), env="dev") as run,
    ):
        run.hint = DATA_HINT
        raise LockgateError(BAD_UPLOAD)
    # A study killed mid-run: its process wrote the start record and never the end one.
    died = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys\n"
            "from lockgate.pipelines.runs import Trigger, recorded_run\n"
            "from lockgate.wiring import open_store\n"
            "with recorded_run(open_store(sys.argv[1]), 'training', Trigger('request', 'drift'),"
            " env='dev'):\n"
            "    os._exit(9)\n",
            dev.uri,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert died.returncode == 9, died.stderr


def release(project: Path, env: str, version: int, by: str = "alice") -> None:
    Ledger(store_of(project, env)).append(
        "releases",
        env,
        {
            "action": "promote",
            "model": "churn",
            "version": version,
            "package_sha256": "ab" * 32,
            "package_prefix": f"models/churn/{version}/",
            "by": by,
        },
    )


def write_up(project: Path, pid: int, heartbeat: datetime, **extra: Any) -> None:
    """What `lockgate up` writes about itself every couple of seconds."""
    document = {
        "pid": pid,
        "host": socket.gethostname(),
        "started": (heartbeat - timedelta(hours=1)).isoformat(),
        "heartbeat": heartbeat.isoformat(),
        "store": store_of(project).uri,
        "interval": 0.1,
        "workers": 2,
        "queue": {"queued": 1, "waiting": ["study churn"], "running": ["data churn"]},
        **extra,
    }
    (project / ".lockgate").mkdir(exist_ok=True)
    (project / ".lockgate" / "up.json").write_text(json.dumps(document))


def dead_pid() -> int:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(finished.stdout)


def test_a_new_project_has_nothing_yet_and_says_how_to_start(project: Path) -> None:
    out = status(project)
    assert "runtime: not running — start it with `lockgate up`" in out
    for pipeline in ("data", "training", "deployment", "monitoring"):
        assert f"{pipeline}: no runs yet" in out, out
    for env in ("dev", "staging", "prod"):
        assert re.search(rf"^  {env}\s+nothing released; endpoint: not serving$", out, re.M), out
        assert re.search(rf"^  {env}\s+nothing released: not monitored$", out, re.M), out
    assert "next monitoring (rate(1 day): every day)" in out
    assert "retrain requests: none pending" in out


def test_failed_and_interrupted_runs_say_what_went_wrong_and_what_to_do(project: Path) -> None:
    record_runs(project)
    out = status(project)
    data = out[out.index("\ndata\n") : out.index("\ntraining\n")]
    # Newest first: the failed upload above the one that worked.
    assert data.index("raw/churn/jan.csv") < data.index("raw/churn/dec.csv"), out
    assert re.search(
        r"dec\.csv\s+│\s+succeeded\s+│.*│ churn dv-0123456789abcdef \(committed, 400 rows\)", data
    ), out
    assert re.search(r"upload raw/churn/jan\.csv\s+│\s+failed\s+│", data), out
    assert re.search(rf"^  failed data-\S+ \(.* UTC\): {re.escape(BAD_UPLOAD)}$", data, re.M), out
    assert f"    what to do: {DATA_HINT}" in data

    training = out[out.index("\ntraining\n") : out.index("deployment: no runs yet")]
    assert re.search(r"request drift\s+│\s+interrupted\s+│", training), out
    assert re.search(
        r"^  interrupted training-\S+ .*ended without recording an outcome", training, re.M
    ), out
    assert "    what to do: " in training

    assert "monitoring: no runs yet" in out


def test_runs_are_limited_per_pipeline(project: Path) -> None:
    record_runs(project)
    out = status(project, "--runs", "1")
    assert "pipelines (last run, newest first)" in out
    assert "raw/churn/jan.csv" in out and "raw/churn/dec.csv" not in out, out


def test_what_serves_and_when_monitoring_runs_next(project: Path) -> None:
    release(project, "dev", 1)
    release(project, "staging", 3)
    staging = store_of(project, "staging")
    with recorded_run(
        staging, "monitoring", Trigger("schedule", "rate(1 day)"), env="staging"
    ) as run:
        run.extra.update({"verdict": "drift", "drifted": ["tenure"], "rows": 1200})
    (monitored,) = recent_runs(staging, "monitoring")
    ended = datetime.fromisoformat(monitored.record["ended"])
    home = Ledger(store_of(project))
    for reason in ("drift", "schedule"):
        home.append("requests", "training", {"reason": reason, "env": "staging"})
    home.append("requests", "training-handled", {"request": 1, "state": "succeeded"})

    out = status(project)
    assert re.search(
        r"^  staging\s+churn v3 \(release #0, promoted by alice, since \S+ \S+ UTC\); "
        r"endpoint: not serving$",
        out,
        re.M,
    ), out
    assert re.search(r"^  prod\s+nothing released; endpoint: not serving$", out, re.M), out
    assert re.search(r"staging\s+│\s+schedule rate\(1 day\)\s+│\s+succeeded .*drift: tenure", out)
    due = ended + timedelta(days=1)
    assert re.search(
        rf"^  staging\s+last run {ended:%Y-%m-%d %H:%M:%S} UTC; "
        rf"next: at {due:%Y-%m-%d %H:%M:%S} UTC$",
        out,
        re.M,
    ), out
    assert re.search(
        r"^  dev\s+never run; next: due now \(start `lockgate up` to run it\)$", out, re.M
    ), out
    assert re.search(r"^  prod\s+nothing released: not monitored$", out, re.M), out
    assert "retrain requests: 1 pending (start `lockgate up`, or run `lockgate train`)" in out
    assert re.search(r"^  #0 drift in staging at ", out, re.M), out


def test_up_that_died_is_not_running_and_says_when_it_was_last_seen(project: Path) -> None:
    seen = datetime.now(UTC) - timedelta(minutes=5)
    write_up(project, dead_pid(), seen)
    out = status(project)
    assert re.search(
        rf"^runtime: not running \(last seen {seen:%Y-%m-%d %H:%M:%S} UTC, 5 m \d\d s ago\) — "
        r"start it with `lockgate up`$",
        out,
        re.M,
    ), out


def test_up_running_shows_its_queue_and_the_endpoints_it_supervises(project: Path) -> None:
    release(project, "staging", 3)
    write_up(
        project,
        os.getpid(),
        datetime.now(UTC),
        endpoints={
            "staging": {
                "pid": 4242,
                "url": "http://127.0.0.1:8081",
                "state": "backoff",
                "restarts": 2,
                "last_error": "port 8081 is in use",
            }
        },
    )
    out = status(project)
    assert re.search(rf"runtime: running \(`lockgate up`, pid {os.getpid()} on ", out), out
    assert "queue: 1 waiting (study churn); running: data churn" in out
    assert re.search(
        r"^  staging\s+churn v3 .*; endpoint: backoff at http://127\.0\.0\.1:8081 "
        r"\(by `lockgate up`, pid 4242, 2 restart\(s\)\): port 8081 is in use$",
        out,
        re.M,
    ), out
    assert "start `lockgate up`" not in out

    document = status_json(project)
    assert document["runtime"]["running"] is True
    assert document["deployed"]["staging"]["endpoint"]["state"] == "backoff"


def test_json_has_every_section_for_scripts(project: Path) -> None:
    record_runs(project)
    release(project, "staging", 3)
    write_up(project, dead_pid(), datetime.now(UTC))

    document = status_json(project)
    assert document["runtime"]["running"] is False
    assert document["runtime"]["up"]["workers"] == 2
    failed, succeeded = document["pipelines"]["data"]
    assert (failed["state"], failed["error"]) == ("failed", BAD_UPLOAD)
    assert failed["hint"] == DATA_HINT
    assert failed["trigger"] == {"kind": "upload", "detail": "raw/churn/jan.csv"}
    assert succeeded["state"] == "succeeded"
    assert succeeded["outcome"] == "churn dv-0123456789abcdef (committed, 400 rows)"
    (interrupted,) = document["pipelines"]["training"]
    assert (interrupted["state"], interrupted["recorded_state"]) == ("interrupted", "running")
    assert document["pipelines"]["monitoring"] == []
    served = document["deployed"]["staging"]["release"]
    assert (served["model"], served["version"], served["seq"], served["by"]) == (
        "churn",
        3,
        0,
        "alice",
    )
    assert document["deployed"]["prod"]["release"] is None
    environments = {item["env"]: item for item in document["schedule"]["environments"]}
    assert environments["staging"]["due_now"] is True
    assert environments["staging"]["last_run"] is None
    assert environments["prod"]["due"] is None
    assert document["schedule"]["retrain_requests"] == []
    assert document["warnings"] == []


def test_an_unreadable_store_is_a_warning_not_a_failure(project: Path) -> None:
    (project / "lockgate.toml").write_text(
        TOML + '[envs.dev]\n[envs.prod]\nstore = "gs://bucket/lockgate"\n'
    )
    record_runs(project)
    broken = project / ".lockgate" / "dev" / "store" / "ledger" / "runs" / "deployment"
    broken.mkdir(parents=True)
    (broken / f"{0:012d}.json").write_text("{not json")

    result = run_cli(["status"], project)
    assert result.returncode == 0, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    assert "warning: cannot open the store gs://bucket/lockgate" in result.stderr
    assert "warning: cannot read the deployment runs in file://" in result.stderr
    assert re.search(
        r"^  prod\s+unknown: cannot open the store gs://bucket/lockgate", result.stdout, re.M
    )
    assert re.search(r"^  prod\s+unknown: its releases cannot be read$", result.stdout, re.M)
    assert f"what to do: {DATA_HINT}" in result.stdout


def test_up_that_stopped_cleanly_is_not_running(project: Path) -> None:
    now = datetime.now(UTC)
    write_up(project, os.getpid(), now, stopped=now.isoformat())
    out = status(project)
    assert re.search(rf"^runtime: not running \(last seen {now:%Y-%m-%d %H:%M:%S} UTC, ", out, re.M)
    assert status_json(project)["runtime"]["running"] is False
