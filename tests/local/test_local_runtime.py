"""``lockgate up``'s loop without the command line: what it queues on its clock (monitoring when
due, retrain requests once each, the study a version committed while it was down never got),
how it stops a study, and how it refuses to run twice. Monitoring and the study are replaced
by recorders or tiny child processes; their own tests are elsewhere."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lockgate.config import Settings, load_settings
from lockgate.errors import ConfigError, LockgateError
from lockgate.local.file_store import FileStore
from lockgate.local.supervisor import EndpointSpec
from lockgate.local.up import Hooks, LocalRuntime
from lockgate.local.up_state import live_up, state_path
from lockgate.pipelines import runs
from lockgate.pipelines.ledger import Ledger
from lockgate.pipelines.monitoring.job import REQUESTS, TRAINING
from lockgate.pipelines.runs import Trigger, recorded_run
from lockgate.ports.store import Store
from lockgate.processes import alive

WAIT = 30.0


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "lockgate.toml"
    path.write_text(
        '[datasets.churn]\ntarget = "churned"\n[datasets.churn.columns]\nx = "numeric"\n'
        '[monitor]\nschedule = "rate(1 hour)"\n[runtime]\nserve = false\nstop_grace = 0.5\n'
    )
    return path


class Recorder:
    """Hooks that record what `up` asked for; the study is ``study`` (a command)."""

    def __init__(self, settings: Settings, study: list[str] | None = None) -> None:
        self.settings = settings
        self.said: list[str] = []
        self.monitored: list[tuple[str, Trigger]] = []
        self.monitor_error: Exception | None = None
        self.study = study or [sys.executable, "-c", "pass"]
        self.studies: list[tuple[str, str | None]] = []
        self.stores: dict[str, Store] = {}

    def store(self, env: str) -> Store:
        uri = self.settings.for_env(env).store_uri
        return self.stores.setdefault(uri, FileStore(uri))

    def monitor(self, env: str, trigger: Trigger) -> None:
        self.monitored.append((env, trigger))
        if self.monitor_error is not None:
            raise self.monitor_error
        with recorded_run(self.store(env), "monitoring", trigger, env=env):
            pass

    def study_command(self, dataset: str, version: str | None) -> list[str]:
        self.studies.append((dataset, version))
        return self.study

    def hooks(self) -> Hooks:
        return Hooks(
            say=self.said.append,
            show_dispatch=lambda dispatch: None,
            monitor=self.monitor,
            study_command=self.study_command,
            endpoint_spec=lambda env: EndpointSpec(env, [], Path(), Path()),
            env_store=self.store,
        )


def release(store: Store, env: str) -> None:
    Ledger(store).append(
        "releases",
        env,
        {
            "action": "promote",
            "model": "churn",
            "version": 1,
            "package_sha256": "a" * 64,
            "package_prefix": "m/",
        },
    )


def settled(runtime: LocalRuntime) -> None:
    assert runtime.queue.wait_idle(WAIT), runtime.queue.snapshot()


def started(config: Path, study: list[str] | None = None) -> tuple[LocalRuntime, Recorder]:
    settings = load_settings(config, environ={})
    recorder = Recorder(settings, study)
    runtime = LocalRuntime(settings, recorder.store("dev"), recorder.hooks())
    runtime.queue.start()
    return runtime, recorder


def test_monitoring_runs_when_due_for_released_environments_only(config: Path) -> None:
    runtime, recorder = started(config)
    release(recorder.store("dev"), "dev")

    runtime._check_schedule()
    settled(runtime)
    runtime._check_schedule()  # the next run is an hour away
    settled(runtime)

    assert recorder.monitored == [("dev", Trigger("schedule", "rate(1 hour)"))]
    (record,) = [view.record for view in runs.recent_runs(recorder.store("dev"), "monitoring")]
    assert record["trigger"] == {"kind": "schedule", "detail": "rate(1 hour)"}


def test_a_failed_scheduled_run_is_reported_and_not_retried_at_once(config: Path) -> None:
    runtime, recorder = started(config)
    release(recorder.store("dev"), "dev")
    recorder.monitor_error = LockgateError("no traffic captured")

    runtime._check_schedule()
    settled(runtime)
    runtime._check_schedule()
    settled(runtime)

    assert len(recorder.monitored) == 1
    assert any("monitoring dev: no traffic captured" in line for line in recorder.said)
    assert runtime.queue.snapshot()["failed"] == 1


def test_each_retrain_request_starts_one_study_and_is_marked_handled(config: Path) -> None:
    runtime, recorder = started(config)
    dev = recorder.store("dev")
    Ledger(dev).append(REQUESTS, TRAINING, {"reason": "drift", "env": "staging"})

    runtime._check_schedule()
    settled(runtime)
    runtime._check_schedule()
    settled(runtime)

    assert recorder.studies == [("churn", None)]
    (handled,) = Ledger(dev).entries(REQUESTS, TRAINING + "-handled")
    assert handled.record == {"request": 0, "state": "succeeded", "exit": 0}


def test_a_failed_study_marks_its_request_failed(config: Path) -> None:
    runtime, recorder = started(config, [sys.executable, "-c", "raise SystemExit(3)"])
    dev = recorder.store("dev")
    Ledger(dev).append(REQUESTS, TRAINING, {"reason": "drift", "env": "dev", "dataset": "churn"})

    runtime._check_schedule()
    settled(runtime)

    (handled,) = Ledger(dev).entries(REQUESTS, TRAINING + "-handled")
    assert handled.record["state"] == "failed"
    assert any("exited with code 3" in line for line in recorder.said)


STUDY = """
import subprocess, sys, time
from lockgate.local.file_store import FileStore
from lockgate.pipelines.runs import Trigger, recorded_run

store = FileStore(sys.argv[1])
with recorded_run(store, "training", Trigger.from_environment()):
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    print(worker.pid, flush=True)
    time.sleep(120)
"""


def start_a_study(config: Path, tmp_path: Path) -> tuple[LocalRuntime, Store, int]:
    """``up`` running the STUDY script for a retrain request: its runtime, the store, and the
    pid of the study's worker once the study recorded its start."""
    script = tmp_path / "study.py"
    script.write_text(STUDY)
    settings = load_settings(config, environ={})
    out = tmp_path / "study.out"
    command = [sys.executable, str(script), settings.store_uri]
    runtime, recorder = started(config, ["sh", "-c", f'exec "$@" > {out}', "sh", *command])
    dev = recorder.store("dev")
    Ledger(dev).append(REQUESTS, TRAINING, {"reason": "drift", "env": "dev"})
    runtime._check_schedule()

    def running() -> list[runs.RunView]:
        return [v for v in runs.recent_runs(dev, "training") if v.state == "running"]

    deadline = time.monotonic() + WAIT
    while not (running() and out.exists() and out.read_text().strip()):
        assert time.monotonic() < deadline, "the study did not start"
        time.sleep(0.1)
    return runtime, dev, int(out.read_text().split()[0])


def assert_interrupted(dev: Store, worker: int) -> None:
    (view,) = runs.recent_runs(dev, "training")
    assert view.state == "interrupted"
    assert "lockgate up stopped before the study finished" in view.record["error"]
    assert view.record["trigger"]["kind"] == "request"
    # Killed with its process group; the signal lands a moment after `up` sent it.
    deadline = time.monotonic() + 10
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(worker), "the study's worker outlived it"
    # Stopped, not finished: the request stays open for the next start.
    assert Ledger(dev).entries(REQUESTS, TRAINING + "-handled") == []


def test_stopping_up_stops_a_running_study_with_its_workers_and_records_it(
    config: Path, tmp_path: Path
) -> None:
    runtime, dev, worker = start_a_study(config, tmp_path)

    dropped, left = runtime.queue.stop(runtime.grace + 15)

    assert left == [] and dropped == []
    assert_interrupted(dev, worker)


def test_a_second_ctrl_c_does_not_wait_out_the_grace_period(config: Path, tmp_path: Path) -> None:
    config.write_text(config.read_text().replace("stop_grace = 0.5", "stop_grace = 600"))
    runtime, dev, worker = start_a_study(config, tmp_path)

    runtime.hurry()
    _, left = runtime.queue.stop(runtime.grace, runtime._hurry)

    assert left == ["study churn latest"]  # returned at once, not after 600 s of grace
    assert runtime.queue.wait_idle(WAIT)  # the study job sees the hurry and stops its study
    assert_interrupted(dev, worker)


def test_a_version_committed_while_up_was_down_gets_its_study(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config.write_text(config.read_text() + "[train]\non_new_data = true\n")
    # The catch-up reads only each dataset's version list; a real version takes a prep run.
    monkeypatch.setattr(
        "lockgate.pipelines.data.versions.list_versions",
        lambda store, dataset: [type("Manifest", (), {"version": "dv-1"})()],
    )
    runtime, recorder = started(config)

    runtime._catch_up_studies()
    settled(runtime)
    assert recorder.studies == [("churn", "dv-1")]

    # Once a study of it is recorded, a restart queues none.
    dev = recorder.store("dev")
    with recorded_run(dev, "training", Trigger("new-version", "x"), {"data_version": "dv-1"}):
        pass
    again, recorder_again = started(config)
    again._catch_up_studies()
    settled(again)
    assert recorder_again.studies == []


def test_a_second_up_is_refused_while_the_first_runs(config: Path) -> None:
    settings = load_settings(config, environ={})
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = state_path(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "pid": other.pid,
                    "host": socket.gethostname(),
                    "started": "2026-11-26T10:00:00+00:00",
                    "heartbeat": datetime.now(UTC).isoformat(),
                }
            )
        )
        runtime, _ = started(config)
        with pytest.raises(
            LockgateError, match=f"already runs for this project \\(pid {other.pid}"
        ):
            runtime.claim()
    finally:
        other.kill()
        other.wait()
    # Its process gone, the state file no longer blocks anyone.
    assert live_up(path) is None
    runtime.claim()
    assert json.loads(path.read_text())["pid"] == os.getpid()


def test_runs_a_crash_left_open_are_closed_at_start(config: Path) -> None:
    settings = load_settings(config, environ={})
    dev = FileStore(settings.store_uri)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    Ledger(dev).append(
        runs.RUNS,
        "data",
        {
            "run_id": "data-1",
            "pipeline": "data",
            "state": "running",
            "started": datetime.now(UTC).isoformat(),
            "host": socket.gethostname(),
            "pid": gone.pid,
        },
    )
    runtime, recorder = started(config)

    runtime._close_abandoned()

    (view,) = runs.recent_runs(dev, "data")
    assert view.record["state"] == "interrupted"
    assert any("a crash left open" in line for line in recorder.said)


def test_a_bad_schedule_expression_stops_up_with_the_reason(config: Path) -> None:
    config.write_text(config.read_text().replace("rate(1 hour)", "rate(2 fortnights)"))
    settings = load_settings(config, environ={})
    recorder = Recorder(settings)
    with pytest.raises(ConfigError, match="rate"):
        LocalRuntime(settings, recorder.store("dev"), recorder.hooks())


def test_a_store_hiccup_while_polling_is_logged_and_up_goes_on(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, recorder = started(config)
    dev = recorder.store("dev")
    dev.put("raw/churn/a.csv", b"x,churned\n1,0\n")
    real_list = dev.list
    calls = {"list": 0}

    def flaky_list(prefix: str = "") -> Any:
        calls["list"] += 1
        if calls["list"] == 1:
            raise OSError("store unreachable")
        return real_list(prefix)

    monkeypatch.setattr(dev, "list", flaky_list)

    for _ in range(3):  # the failed listing, then two that see the object unchanged
        runtime._poll()
    settled(runtime)

    assert calls["list"] >= 3
    assert "event: 1 object(s) under raw/: raw/churn/a.csv" in recorder.said
