"""Run records: what a user reads in ``ledger/runs/<pipeline>/`` about every run, whatever
happened to it -- finished, failed, stopped, or its process killed."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from lockgate import logs
from lockgate.errors import LockgateError, StoreError
from lockgate.local.file_store import FileStore
from lockgate.pipelines.ledger import Ledger
from lockgate.pipelines.runs import (
    RUN_ID_ENV,
    RUNS,
    TRIGGER_ENV,
    Trigger,
    close_abandoned,
    interrupted,
    recent_runs,
    recorded_run,
)

UPLOAD = Trigger("upload", "raw/churn/a.csv")


def records(store: FileStore, pipeline: str) -> list[dict[str, Any]]:
    return [entry.record for entry in Ledger(store).entries(RUNS, pipeline)]


class Lines(logging.Handler):
    """Keeps each log record as the JSON document lockgate writes for it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.documents: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.documents.append(logs.to_record(record))


@pytest.fixture
def log_lines() -> Iterator[Lines]:
    """What the run's loggers (and a pipeline's) write, whatever else configured logging."""
    lines = Lines()
    loggers = [logging.getLogger(name) for name in ("lockgate.runs", "lockgate.data")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
        logger.addHandler(lines)
    yield lines
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(lines)
        logger.setLevel(level)


def test_a_run_records_its_start_then_its_outcome(file_store: FileStore) -> None:
    with recorded_run(file_store, "data", UPLOAD, {"dataset": "churn"}) as run:
        (started,) = records(file_store, "data")
        assert started["state"] == "running"
        assert started["pid"] == os.getpid()
        run.outputs = {"status": "committed", "rows": {"total": 800}}

    first, last = records(file_store, "data")
    assert first == started
    assert last["run_id"] == first["run_id"] == run.run_id
    assert run.run_id.startswith("data-")
    assert last["state"] == "succeeded"
    assert last["trigger"] == {"kind": "upload", "detail": "raw/churn/a.csv"}
    assert last["inputs"] == {"dataset": "churn"}
    assert last["outputs"] == {"status": "committed", "rows": {"total": 800}}
    assert last["error"] is None and last["hint"] is None
    assert last["seconds"] >= 0 and last["ended"] >= last["started"]
    (view,) = recent_runs(file_store, "data")
    assert view.state == "succeeded" and view.run_id == run.run_id


def test_an_exception_is_recorded_failed_and_raised_again(
    file_store: FileStore, log_lines: Lines
) -> None:
    with pytest.raises(ValueError, match="boom"):
        with recorded_run(file_store, "training", UPLOAD, env="dev"):
            raise ValueError("boom")
    with pytest.raises(LockgateError):
        with recorded_run(file_store, "monitoring", UPLOAD, env="prod"):
            raise LockgateError("nothing is released to prod")

    (training,) = [view.record for view in recent_runs(file_store, "training")]
    assert training["state"] == "failed"
    assert training["error"] == "ValueError: boom"  # not a user error: its type is news
    assert "lockgate train" in training["hint"]
    (monitoring,) = [view.record for view in recent_runs(file_store, "monitoring")]
    assert monitoring["error"] == "nothing is released to prod"
    assert monitoring["hint"] == "`lockgate monitor run --env prod` runs it again"
    # A bug is an error in the logs; a user's mistake a warning (their command says it).
    failures = {
        line["message"]: line["level"]
        for line in log_lines.documents
        if line["event"] == "run.failed"
    }
    assert failures == {
        f"training run failed in {training['seconds']:.2f}s: ValueError: boom": "error",
        f"monitoring run failed in {monitoring['seconds']:.2f}s: nothing is released to prod": (
            "warning"
        ),
    }


def test_a_stopped_run_is_recorded_interrupted_and_the_stop_goes_on(
    file_store: FileStore,
) -> None:
    with pytest.raises(KeyboardInterrupt):
        with recorded_run(file_store, "training", Trigger("new-version", "churn dv-1")):
            raise KeyboardInterrupt
    (view,) = recent_runs(file_store, "training")
    assert view.state == "interrupted"
    assert view.record["error"] == "stopped before it finished"


def test_a_run_can_fail_without_an_exception(file_store: FileStore) -> None:
    with recorded_run(file_store, "data", UPLOAD) as run:
        run.outputs = {"status": "all_quarantined"}
        run.fail("all 1 raw file(s) were rejected", "fix the file and upload it again")
    (view,) = recent_runs(file_store, "data")
    assert view.state == "failed"
    assert view.record["error"] == "all 1 raw file(s) were rejected"
    assert view.record["hint"] == "fix the file and upload it again"
    assert view.record["outputs"] == {"status": "all_quarantined"}


def test_log_records_inside_a_run_carry_its_pipeline_and_id(
    file_store: FileStore, log_lines: Lines
) -> None:
    with recorded_run(file_store, "data", UPLOAD, env="dev") as run:
        logging.getLogger("lockgate.data").info("preparing churn")
        run.outputs = {"name": "churn", "message": "800 rows", "level": 1}
    logging.getLogger("lockgate.data").info("after the run")

    by_message = {line["message"]: line for line in log_lines.documents}
    inside = by_message["preparing churn"]
    assert (inside["pipeline"], inside["run_id"], inside["env"]) == ("data", run.run_id, "dev")
    assert by_message["after the run"]["run_id"] is None
    events = {line["event"]: line for line in log_lines.documents}
    assert events["run.started"]["message"] == "data run started by upload raw/churn/a.csv"
    # Outputs named like the logging call's own parameters are fields like any other.
    assert events["run.succeeded"]["fields"]["name"] == "churn"
    assert events["run.succeeded"]["fields"]["message"] == "800 rows"


def test_the_run_id_and_trigger_can_come_from_the_process_that_started_it(
    file_store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RUN_ID_ENV, "training-from-up")
    monkeypatch.setenv(TRIGGER_ENV, "new-version:churn dv-123")
    trigger = Trigger.from_environment()
    with recorded_run(file_store, "training", trigger) as run:
        pass
    assert run.run_id == "training-from-up"
    assert recent_runs(file_store, "training")[0].record["trigger"] == {
        "kind": "new-version",
        "detail": "churn dv-123",
    }
    # The id belongs to that one run: a second run in the same process gets its own.
    with recorded_run(file_store, "training", trigger) as second:
        pass
    assert second.run_id != "training-from-up"


def test_without_a_trigger_in_the_environment_it_is_the_users_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TRIGGER_ENV, raising=False)
    monkeypatch.setenv("LOCKGATE_USER", "alice")
    assert Trigger.from_environment() == Trigger("command", "alice")
    assert Trigger.from_environment(UPLOAD) == UPLOAD
    monkeypatch.setenv(TRIGGER_ENV, "cron:daily")
    with pytest.raises(LockgateError, match="unknown run trigger 'cron:daily'"):
        Trigger.from_environment()


KILLED = textwrap.dedent(
    """
    import os, sys
    from lockgate.local.file_store import FileStore
    from lockgate.pipelines.runs import Trigger, recorded_run
    with recorded_run(FileStore(sys.argv[1]), "training", Trigger("command", "test")):
        os._exit(0)  # killed: no end record
    """
)


def killed_run(store: FileStore, **environ: str) -> None:
    """A run whose process dies in the middle, leaving only its ``running`` record."""
    subprocess.run(
        [sys.executable, "-c", KILLED, store.uri], env={**os.environ, **environ}, check=True
    )


def test_a_run_whose_process_died_is_interrupted_and_closing_it_is_recorded_once(
    file_store: FileStore,
) -> None:
    killed_run(file_store)
    with recorded_run(file_store, "training", UPLOAD) as alive:
        views = {view.run_id: view for view in recent_runs(file_store, "training")}
        assert views[alive.run_id].state == "running"  # its process (this one) goes on
        (dead,) = [view for run_id, view in views.items() if run_id != alive.run_id]
        assert dead.state == "interrupted" and dead.record["state"] == "running"

        assert close_abandoned(file_store, "training") == [dead.run_id]
        assert close_abandoned(file_store, "training") == []  # already closed
    written = records(file_store, "training")
    assert [(r["run_id"] == dead.run_id, r["state"]) for r in written] == [
        (True, "running"),
        (False, "running"),
        (True, "interrupted"),
        (False, "succeeded"),
    ]
    closed = written[2]
    assert "ended without recording an outcome" in closed["error"]
    assert closed["hint"]
    assert [view.state for view in recent_runs(file_store, "training")] == [
        "interrupted",
        "succeeded",
    ]


def test_a_running_record_from_another_host_stays_running(file_store: FileStore) -> None:
    Ledger(file_store).append(
        RUNS,
        "training",
        {
            "run_id": "training-elsewhere",
            "state": "running",
            "started": "2026-11-26T12:00:00.000+00:00",
            "host": "some-other-host",
            "pid": 1 << 30,
        },
    )
    (view,) = recent_runs(file_store, "training")
    assert view.state == "running"
    assert close_abandoned(file_store, "training") == []


def test_a_run_stopped_from_outside_is_recorded_interrupted_with_the_reason(
    file_store: FileStore,
) -> None:
    killed_run(file_store, **{RUN_ID_ENV: "training-study-1"})
    interrupted(file_store, "training", "training-study-1", "lockgate up stopped the study")
    interrupted(file_store, "training", "training-study-1", "a second stop adds nothing")
    started, ended = records(file_store, "training")
    assert started["run_id"] == ended["run_id"] == "training-study-1"
    assert ended["state"] == "interrupted"
    assert ended["error"] == "lockgate up stopped the study"
    assert ended["seconds"] >= 0 and ended["outputs"] == {}


class BrokenLedgerStore(FileStore):
    """A store whose conditional writes (every ledger append) fail."""

    def put_if_absent(self, key: str, data: bytes) -> bool:
        raise StoreError(f"access denied writing {key}")


def test_a_ledger_that_cannot_be_written_does_not_break_the_run(
    tmp_path: Any, log_lines: Lines
) -> None:
    store = BrokenLedgerStore((tmp_path / "store").as_uri())
    with recorded_run(store, "data", UPLOAD) as run:
        run.outputs = {"status": "committed"}
    assert records(store, "data") == []
    warnings = [line["message"] for line in log_lines.documents if line["level"] == "warning"]
    assert len(warnings) == 2  # the start and the end record
    assert "could not record the data run" in warnings[0]
    assert "access denied writing ledger/runs/data/" in warnings[0]
    # The block's own exception is what the caller sees, not the ledger's.
    with pytest.raises(ValueError, match="the pipeline's own error"):
        with recorded_run(store, "data", UPLOAD):
            raise ValueError("the pipeline's own error")


def test_an_unknown_pipeline_is_refused(file_store: FileStore) -> None:
    with pytest.raises(ValueError, match="unknown pipeline 'serving'"):
        with recorded_run(file_store, "serving", UPLOAD):
            pass
