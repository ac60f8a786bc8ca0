"""``lockgate up`` as the whole local runtime, end to end: uploads become versions (one at a
time and in a burst), an endpoint is kept serving through a crash, a killed ``up`` catches up
when started again, SIGTERM leaves no process behind, and ``status`` and ``logs`` show it all.

Every wait is a bounded deadline loop; every process started here is killed in a ``finally``.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sklearn.linear_model import LogisticRegression

from lockgate.local.file_store import FileStore
from lockgate.pipelines.data.versions import latest_version, list_versions
from lockgate.processes import alive
from lockgate.sample.churn import write_churn_csv
from tests.cli.conftest import Project, assert_ok, run_cli, wait_until
from tests.cli.test_serving_cli import publish
from tests.cli.test_up import STOP_WAIT, Up, lockgate_up

pytestmark = pytest.mark.slow

WAIT = 120.0
"""Seconds for a version or an endpoint to appear: generous for a loaded 2-core machine."""
BURST = 50

RUNTIME_TOML = """
[envs.dev.endpoint]
port = 0                 # any free port: the test reads it from up's state file

[runtime]
stop_grace = 10
restart_backoff = 0.2
"""


def up_state(project: Project) -> dict[str, Any]:
    path = project.root / ".lockgate" / "up.json"
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def serving(project: Project, up: Up, other_than: int | None = None) -> dict[str, Any]:
    """Wait until up's state file shows dev's endpoint serving (by another pid than
    ``other_than``) and answering /ping; its entry."""

    def ready() -> dict[str, Any] | None:
        if up.process.poll() is not None:
            pytest.fail(f"lockgate up ended\n{up.details()}")
        entry = up_state(project).get("endpoints", {}).get("dev")
        if not entry or entry.get("state") != "serving" or entry.get("pid") == other_than:
            return None
        return entry if ping(entry["url"]) else None

    return wait_until(ready, WAIT, "dev's endpoint serving", up.details)


def ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/ping", timeout=5) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


def ours(project: Project) -> list[int]:
    """Live processes of this project: its lockgate.toml on their command line, or started in
    its folder."""
    marker = str(project.root / "lockgate.toml").encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            here = Path(os.readlink(entry / "cwd")) == project.root.resolve()
            if (here or marker in (entry / "cmdline").read_bytes()) and alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def version_with(store: FileStore, keys: set[str]) -> str | None:
    """The latest version if it was built from every key in ``keys``."""
    versions = list_versions(store, "churn")
    if not versions:
        return None
    sources = {source.key for source in versions[-1].sources}
    return versions[-1].version if keys <= sources else None


@pytest.fixture
def released(project: Project) -> Iterator[Project]:
    """The project with a dataset version and a model released to dev (its only environment),
    its endpoint on any free port. Processes left behind by a failed test are killed."""
    config = project.root / "lockgate.toml"
    config.write_text(config.read_text() + RUNTIME_TOML)
    assert_ok(run_cli(["put", "data/churn.csv"], project.root))
    assert_ok(run_cli(["data", "prep"], project.root))
    publish(project, 1, LogisticRegression(max_iter=500))
    assert_ok(run_cli(["promote", "churn", "1", "--to", "dev"], project.root))
    yield project
    for pid in ours(project):
        os.kill(pid, signal.SIGKILL)


def test_up_runs_the_pipelines_keeps_the_endpoint_serving_and_stops_clean(
    released: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project = released
    store = FileStore(project.store().as_uri())
    first = latest_version(store, "churn").version
    with lockgate_up(project) as up:
        up.wait_for("lockgate up: watching", "up to start watching")
        endpoint = serving(project, up)

        # One upload: a new version, and how long it took.
        upload = write_churn_csv(project.root / "data" / "churn-02.csv", 400, seed=8)
        put_at = time.monotonic()
        store.put_file("raw/churn/churn-02.csv", upload)
        second = wait_until(
            lambda: version_with(store, {"raw/churn/churn-02.csv"}),
            WAIT,
            "the upload's version",
            up.details,
        )
        latency = time.monotonic() - put_at
        assert second != first

        # A burst of small uploads: none is lost.
        burst = {f"raw/churn/burst-{n:02d}.csv" for n in range(BURST)}
        for n, key in enumerate(sorted(burst)):
            small = write_churn_csv(project.root / "data" / f"burst-{n:02d}.csv", 40, seed=100 + n)
            store.put_file(key, small)
        burst_done = time.monotonic()
        third = wait_until(
            lambda: version_with(store, burst), WAIT, "the burst's version", up.details
        )
        burst_latency = time.monotonic() - burst_done
        assert {source.key for source in latest_version(store, "churn").sources} >= burst

        # The endpoint crashes: up starts it again, and it serves.
        os.kill(endpoint["pid"], signal.SIGKILL)
        restarted = serving(project, up, other_than=endpoint["pid"])
        assert restarted["restarts"] >= 1
        assert "exited" in (restarted["last_error"] or "")

        status = assert_ok(run_cli(["status"], project.root)).stdout
        assert "runtime: running" in status, status
        assert f"pid {up.process.pid}" in status, status
        assert "churn" in status and "serving" in status, status

        # SIGTERM: up exits 0, and nothing it started is left running.
        endpoint_pid = restarted["pid"]
        assert up.stop() == 0, up.details()
        assert "lockgate up: stopped" in up.output()
        assert not alive(endpoint_pid), f"endpoint pid {endpoint_pid} outlived up"
        assert ours(project) == [], "processes left running after up stopped"

    runs = json.loads(assert_ok(run_cli(["status", "--json"], project.root)).stdout)
    data_runs = runs["pipelines"]["data"]
    assert all(run["state"] == "succeeded" for run in data_runs), data_runs
    triggers = [run["trigger"]["kind"] for run in data_runs]
    assert "upload" in triggers, data_runs
    outputs = {run["outputs"].get("version") for run in data_runs}
    assert {second, third} <= outputs, data_runs

    logs = assert_ok(run_cli(["logs", "--pipeline", "data", "--json"], project.root)).stdout
    records = [json.loads(line) for line in logs.splitlines() if line.strip()]
    run_ids = {record["run_id"] for record in records}
    assert {run["run_id"] for run in data_runs} <= run_ids
    crashes = assert_ok(run_cli(["logs", "--grep", "crashed", "--json"], project.root)).stdout
    assert any(
        json.loads(line)["event"] == "endpoint.crashed" for line in crashes.splitlines() if line
    ), crashes
    with capsys.disabled():
        print(
            f"\n[lockgate up] upload -> dataset version: {latency:.2f}s; "
            f"{BURST} uploads -> one version with all of them: {burst_latency:.2f}s after the last"
        )


def test_a_killed_up_catches_up_when_started_again_and_keeps_its_endpoint(
    released: Project,
) -> None:
    project = released
    store = FileStore(project.store().as_uri())
    with lockgate_up(project, "up-1") as up:
        endpoint = serving(project, up)
        up.process.send_signal(signal.SIGKILL)
        up.process.wait(timeout=STOP_WAIT)

    # While up is down: an upload, and the endpoint it started keeps serving.
    store.put_file("raw/churn/while-down.csv", write_churn_csv(project.root / "d.csv", 300, seed=9))
    assert ping(endpoint["url"])

    with lockgate_up(project, "up-2") as up:
        wait_until(
            lambda: version_with(store, {"raw/churn/while-down.csv"}),
            WAIT,
            "the version of what arrived while up was down",
            up.details,
        )
        adopted = serving(project, up)
        assert adopted["pid"] == endpoint["pid"], "the running endpoint was not taken over"
        assert up.stop() == 0, up.details()
        assert not alive(endpoint["pid"]), "the taken-over endpoint outlived up"
        assert ours(project) == []
