"""``python -m lockgate.serving`` as a real process: state file, readiness, a clean SIGTERM,
SageMaker's ``serve`` and its defaults, and the one-line errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from lockgate.local.file_store import FileStore
from lockgate.pipelines.deployment.served import SERVING
from lockgate.pipelines.ledger import Ledger
from lockgate.serving.__main__ import PORT_VARIABLE, parse_args
from tests.cli.conftest import wait_until
from tests.serving.conftest import Packages, Running, Sample

pytestmark = pytest.mark.slow

WAIT = 60.0
"""Seconds to start (imports scikit-learn and loads the package) or to stop."""


@contextmanager
def started(
    arguments: list[str], state: Path, log: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    """``python -m lockgate.serving <arguments> --state-file <state>``, once it listens: the
    process and its state file; SIGTERM on leaving must end it with status 0."""
    command = [sys.executable, "-m", "lockgate.serving", *arguments, "--state-file", str(state)]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    try:

        def details() -> str:
            return f"exit code {process.poll()}; log:\n{log.read_text(errors='replace')}"

        wait_until(
            lambda: state.exists() or process.poll() is not None, WAIT, "a state file", details
        )
        yield process, json.loads(state.read_text())
        process.send_signal(signal.SIGTERM)
        assert process.wait(WAIT) == 0, details()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_module_serves_until_sigterm_then_exits_cleanly(
    packages: Packages, sample: Sample, tmp_path: Path
) -> None:
    state = tmp_path / "run" / "endpoint.json"
    store = FileStore((tmp_path / "store").as_uri())
    arguments = ["--model-dir", str(packages.logistic), "--port", "0", "--store", store.uri]
    arguments += ["--env", "dev", "--endpoint-name", "churn-dev"]
    with started(arguments, state, tmp_path / "server.log") as (process, document):
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

    assert not state.exists()
    captured = [info.key for info in store.list("monitoring/capture/churn-dev/AllTraffic/")]
    assert len(captured) == 1  # flushed at shutdown
    [record] = [entry.record for entry in Ledger(store).entries(SERVING, "dev")]
    assert (record["requests"], record["errors"], record["endpoint"]) == (1, 0, "churn-dev")


def test_serve_starts_the_server_as_sagemaker_runs_the_image(
    packages: Packages, tmp_path: Path
) -> None:
    # `docker run <image> serve`: every interface, SageMaker's port variable (0 here).
    state = tmp_path / "endpoint.json"
    arguments = ["serve", "--model-dir", str(packages.logistic)]
    with started(arguments, state, tmp_path / "server.log", {PORT_VARIABLE: "0"}) as (_, doc):
        assert doc["host"] == "0.0.0.0"  # noqa: S104 - what SageMaker needs
        server = Running(doc["url"], "127.0.0.1", doc["port"], app=None)  # type: ignore[arg-type]
        assert server.call("GET", "/ping").status == 200


def test_serve_takes_sagemakers_defaults_and_flags_still_override(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(PORT_VARIABLE, raising=False)
    args = parse_args(["serve"])
    every_interface = "0.0.0.0"  # noqa: S104 - what SageMaker needs
    assert (args.model_dir, args.host, args.port) == ("/opt/ml/model", every_interface, 8080)
    monkeypatch.setenv(PORT_VARIABLE, "8123")
    assert parse_args(["serve"]).port == 8123
    args = parse_args(["serve", "--host", "127.0.0.1", "--port", "9000", "--model-dir", "m"])
    assert (args.model_dir, args.host, args.port) == ("m", "127.0.0.1", 9000)
    # Without `serve`, only this machine can reach it.
    assert (parse_args([]).host, parse_args([]).port) == ("127.0.0.1", 8123)


def test_a_port_variable_that_is_not_a_number_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(PORT_VARIABLE, "eighty")
    with pytest.raises(SystemExit) as raised:
        parse_args(["serve"])
    assert raised.value.code == 2
    assert f"${PORT_VARIABLE} must be a port number, not 'eighty'" in capsys.readouterr().err


def test_a_port_in_use_is_one_line_and_exit_1(packages: Packages) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        command = [sys.executable, "-m", "lockgate.serving", "--model-dir", str(packages.logistic)]
        result = subprocess.run(
            [*command, "--port", str(port)], capture_output=True, text=True, timeout=WAIT
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"lockgate.serving: port {port} on 127.0.0.1 is in use (another endpoint?); "
        "pick another with --port"
    ]


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
