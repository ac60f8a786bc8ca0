"""``python -m lockgate.serving`` as a real process: state file, readiness, a clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lockgate.local.file_store import FileStore
from lockgate.pipelines.deployment.ledger import Ledger
from lockgate.pipelines.deployment.served import SERVING
from tests.cli.conftest import wait_until
from tests.serving.conftest import Packages, Running, Sample

pytestmark = pytest.mark.slow

WAIT = 60.0
"""Seconds to start (imports scikit-learn and loads the package) or to stop."""


def test_the_module_serves_until_sigterm_then_exits_cleanly(
    packages: Packages, sample: Sample, tmp_path: Path
) -> None:
    state = tmp_path / "run" / "endpoint.json"
    store = FileStore((tmp_path / "store").as_uri())
    log = tmp_path / "server.log"
    command = [
        sys.executable,
        "-m",
        "lockgate.serving",
        "--model-dir",
        str(packages.logistic),
        "--port",
        "0",
        "--state-file",
        str(state),
        "--store",
        store.uri,
        "--env",
        "dev",
        "--endpoint-name",
        "churn-dev",
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:

        def details() -> str:
            return f"exit code {process.poll()}; log:\n{log.read_text(errors='replace')}"

        wait_until(
            lambda: state.exists() or process.poll() is not None, WAIT, "a state file", details
        )
        document = json.loads(state.read_text())
        assert document["pid"] == process.pid
        assert document["host"] == "127.0.0.1" and document["port"] > 0
        assert document["url"] == f"http://127.0.0.1:{document['port']}"
        assert len(document["token"]) >= 32
        assert document["model_dir"] == str(packages.logistic.resolve())
        assert stat.S_IMODE(state.stat().st_mode) == 0o600

        server = Running(document["url"], "127.0.0.1", document["port"], app=None)  # type: ignore[arg-type]
        assert server.call("GET", "/ping").status == 200
        reply = server.predict(sample.csv(2), "text/csv")
        assert reply.status == 200
        assert [line[0] for line in reply.csv()] == sample.ids(2)

        process.send_signal(signal.SIGTERM)
        assert process.wait(WAIT) == 0, details()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert not state.exists()
    captured = [info.key for info in store.list("monitoring/capture/churn-dev/AllTraffic/")]
    assert len(captured) == 1  # flushed at shutdown
    [record] = [entry.record for entry in Ledger(store).entries(SERVING, "dev")]
    assert (record["requests"], record["errors"], record["endpoint"]) == (1, 0, "churn-dev")


def test_a_package_that_cannot_load_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lockgate.serving", "--model-dir", str(tmp_path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={**os.environ, "SAGEMAKER_BIND_TO_PORT": "0"},
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"lockgate.serving: cannot load the model package in {tmp_path}: {tmp_path} is not a "
        "model package: it has no package.json"
    ]
