"""``server.run``: a port it cannot listen on is one error line, found before anything loads."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from lockgate.errors import LockgateError
from lockgate.serving.server import SINGLE_THREADED, run
from tests.serving.conftest import Packages


@pytest.fixture(autouse=True)
def _restore_thread_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """``run`` pins the math libraries' threads in os.environ; undo it after each test."""
    for name in SINGLE_THREADED:
        monkeypatch.setenv(name, "1")


@pytest.mark.parametrize("taken_on", ["127.0.0.1", "0.0.0.0"])  # noqa: S104 - a test's socket
def test_a_port_in_use_is_one_error_line_before_the_package_loads(
    tmp_path: Path, taken_on: str
) -> None:
    with socket.socket() as other:
        other.bind((taken_on, 0))
        other.listen()
        port = other.getsockname()[1]
        # No package there: the port is checked first, so this is the error the user reads.
        with pytest.raises(LockgateError) as raised:
            run(tmp_path / "no-package", host="127.0.0.1", port=port)
    assert str(raised.value) == (
        f"port {port} on 127.0.0.1 is in use (another endpoint?); pick another with --port"
    )


def test_an_address_that_is_not_this_machines_is_one_error_line(tmp_path: Path) -> None:
    with pytest.raises(LockgateError) as raised:
        run(tmp_path / "no-package", host="192.0.2.1", port=8080)  # TEST-NET-1: never local
    assert str(raised.value).startswith("cannot listen on port 8080 on 192.0.2.1: ")


def port_in_time_wait() -> int:
    """A port whose server closed a connection first and stopped: its side waits in TIME_WAIT
    (as after stopping a server that had clients), which a plain bind refuses."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's server
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = listener.accept()
            accepted.close()
            assert client.recv(1) == b""  # the server's close arrived; ours ends it
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))
    return port


def test_a_port_a_stopped_server_just_used_can_be_served_on_again(packages: Packages) -> None:
    port = port_in_time_wait()
    listening = []

    def ready(url: str) -> None:
        listening.append(url)
        signal.raise_signal(signal.SIGTERM)  # stops the server, as `kill` would

    run(packages.logistic, host="127.0.0.1", port=port, ready=ready)
    assert listening == [f"http://127.0.0.1:{port}"]
