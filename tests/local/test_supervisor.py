"""The endpoint supervisor: starts local endpoints, restarts them with backoff, stops them.

The endpoints here are a small fake server (``FAKE_ENDPOINT``) that speaks just enough of
``lockgate serve``'s protocol: a state file with its pid and URL, and ``GET /ping``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lockgate.local import supervisor as supervisor_module
from lockgate.local.endpoint import read_state
from lockgate.local.supervisor import EndpointSpec, Supervisor

DEADLINE = 30.0
"""Seconds a bounded wait may take before it fails with a message (never reached)."""

FAKE_ENDPOINT = r'''
"""A stand-in for `lockgate serve`: argv = state_file [--crash] [--no-state] [--ignore-term]
[--hang-file PATH] (while PATH exists, /ping never answers)."""
import http.server
import json
import os
import signal
import sys
import threading
from pathlib import Path

state_file = Path(sys.argv[1])
options = sys.argv[2:]
if "--crash" in options:
    print("boom: the package would not load", file=sys.stderr, flush=True)
    sys.exit(3)
hang_file = Path(options[options.index("--hang-file") + 1]) if "--hang-file" in options else None
never = threading.Event()


class Ping(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/ping":
            self.send_error(404)
            return
        if hang_file is not None and hang_file.exists():
            never.wait()
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ping)
server.daemon_threads = True
stop = threading.Event()


def on_term(signum, frame):
    if "--ignore-term" in options:
        print("ignoring SIGTERM", flush=True)
    else:
        stop.set()


signal.signal(signal.SIGTERM, on_term)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = "http://127.0.0.1:%d" % server.server_address[1]
if "--no-state" not in options:
    partial = state_file.with_name(state_file.name + ".partial")
    partial.write_text(json.dumps({"pid": os.getpid(), "url": url, "token": "secret"}))
    os.replace(partial, state_file)
print("serving at " + url, flush=True)
while not stop.wait(0.1):
    pass
server.shutdown()
server.server_close()
print("stopped on SIGTERM", flush=True)
sys.exit(0)
'''


@pytest.fixture
def fake_endpoint(tmp_path: Path) -> Path:
    program = tmp_path / "fake_endpoint.py"
    program.write_text(FAKE_ENDPOINT, encoding="utf-8")
    return program


@pytest.fixture
def spec(tmp_path: Path, fake_endpoint: Path) -> Callable[..., EndpointSpec]:
    """``spec(env="staging", *options)``: how to run the fake endpoint for ``env``."""

    def make(env: str = "staging", *options: str) -> EndpointSpec:
        folder = tmp_path / ".lockgate" / env
        folder.mkdir(parents=True, exist_ok=True)
        state_file = folder / "endpoint.json"
        command = [sys.executable, str(fake_endpoint), str(state_file), *options]
        return EndpointSpec(env, command, state_file, tmp_path / "logs" / f"{env}.log")

    return make


class Said:
    """The supervisor's ``say`` messages, with when each was said."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, str]] = []

    def __call__(self, message: str) -> None:
        self.messages.append((time.monotonic(), message))

    def matching(self, pattern: str) -> list[tuple[float, re.Match[str]]]:
        found = []
        for when, message in self.messages:
            match = re.search(pattern, message)
            if match:
                found.append((when, match))
        return found


@pytest.fixture
def said() -> Said:
    return Said()


@pytest.fixture
def make_supervisor(said: Said) -> Iterator[Callable[..., Supervisor]]:
    """``make_supervisor(backoff=0.05, backoff_max=0.2)``; every one is stopped after the test."""
    made: list[Supervisor] = []

    def make(backoff: float = 0.05, backoff_max: float = 0.2) -> Supervisor:
        supervisor = Supervisor(backoff, backoff_max, said)
        made.append(supervisor)
        return supervisor

    try:
        yield make
    finally:
        for supervisor in made:
            supervisor.stop(5.0)


def drive(
    supervisor: Supervisor,
    specs: list[EndpointSpec],
    until: Callable[[dict[str, dict[str, Any]]], bool],
    what: str,
) -> dict[str, dict[str, Any]]:
    """Run ``want`` and ``check`` rounds until ``until(snapshot)``; fail saying ``what``."""
    deadline = time.monotonic() + DEADLINE
    while True:
        supervisor.want(specs)
        supervisor.check()
        snapshot = supervisor.snapshot()
        if until(snapshot):
            return snapshot
        if time.monotonic() > deadline:
            logs = {
                spec.env: spec.log_file.read_text(errors="replace")
                for spec in specs
                if spec.log_file.exists()
            }
            raise AssertionError(f"{what}: not within {DEADLINE:g}s; now {snapshot}; logs {logs}")
        time.sleep(0.1)


def serving(env: str) -> Callable[[dict[str, dict[str, Any]]], bool]:
    return lambda snapshot: snapshot.get(env, {}).get("state") == "serving"


def ping(url: str) -> int:
    with urllib.request.urlopen(url + "/ping", timeout=5) as response:  # noqa: S310
        return int(response.status)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_endpoint_starts_then_serves_at_its_url(
    make_supervisor: Callable[..., Supervisor], spec: Callable[..., EndpointSpec], said: Said
):
    supervisor = make_supervisor()
    staging = spec()

    supervisor.want([staging])
    supervisor.check()
    first = supervisor.snapshot()["staging"]
    assert first["state"] == "starting"
    assert first["url"] is None
    assert isinstance(first["pid"], int)

    now = drive(supervisor, [staging], serving("staging"), "staging serving")["staging"]

    written = json.loads(staging.state_file.read_text())
    assert now["pid"] == first["pid"] == written["pid"]
    assert now["url"] == written["url"]
    assert now["url"].startswith("http://127.0.0.1:")
    assert ping(now["url"]) == 200
    assert (now["restarts"], now["last_error"]) == (0, None)
    assert now["log"] == str(staging.log_file)
    assert said.matching(rf"endpoint staging: serving at {re.escape(now['url'])} ")


def test_killed_endpoint_is_restarted_and_serves_again(
    make_supervisor: Callable[..., Supervisor], spec: Callable[..., EndpointSpec]
):
    supervisor = make_supervisor()
    staging = spec()
    before = drive(supervisor, [staging], serving("staging"), "staging serving")["staging"]

    os.kill(before["pid"], signal.SIGKILL)
    after = drive(
        supervisor,
        [staging],
        lambda snapshot: snapshot["staging"]["restarts"] == 1 and serving("staging")(snapshot),
        "staging restarted and serving",
    )["staging"]

    assert after["pid"] != before["pid"]
    assert gone(before["pid"])
    assert f"exited with code {-signal.SIGKILL}" in after["last_error"]
    assert ping(after["url"]) == 200
    written = read_state(staging.state_file)
    assert written is not None and written.pid == after["pid"]


def test_crashing_endpoint_backs_off_doubling_up_to_the_max(
    make_supervisor: Callable[..., Supervisor], spec: Callable[..., EndpointSpec], said: Said
):
    supervisor = make_supervisor(backoff=0.05, backoff_max=0.2)
    broken = spec("staging", "--crash")
    states: set[str] = set()

    def five_restarts(snapshot: dict[str, dict[str, Any]]) -> bool:
        states.add(snapshot["staging"]["state"])
        return bool(snapshot["staging"]["restarts"] >= 5)

    now = drive(supervisor, [broken], five_restarts, "five restarts")["staging"]

    assert states <= {"starting", "backoff"}
    assert "backoff" in states
    assert "exited with code 3" in now["last_error"]
    assert "boom: the package would not load" in now["last_error"]  # the tail of its log

    crashes = said.matching(r"exited with code 3 .*; restarting in ([0-9.e-]+)s$")
    delays = [float(match.group(1)) for _, match in crashes]
    assert delays[:5] == [0.05, 0.1, 0.2, 0.2, 0.2]
    assert max(delays) == 0.2
    # Every relaunch waited out the delay announced with the crash before it.
    launches = [when for when, _ in said.matching(r"endpoint staging: starting \(pid")]
    assert len(launches) >= len(crashes)
    for (crashed_at, match), relaunched_at in zip(crashes, launches[1:], strict=False):
        assert relaunched_at - crashed_at >= float(match.group(1)) - 0.01


def test_endpoint_that_cannot_start_keeps_being_retried_at_the_max_delay(
    make_supervisor: Callable[..., Supervisor], tmp_path: Path, said: Said
):
    # Over 1024 crashes in a row (17 hours at a 60 s maximum delay) the doubling outgrows a
    # float; the supervisor must go on retrying at the maximum, not raise out of check().
    supervisor = make_supervisor(backoff=0.0001, backoff_max=0.0001)
    missing = EndpointSpec(
        "staging",
        [str(tmp_path / "no-such-interpreter")],
        tmp_path / "endpoint.json",
        tmp_path / "staging.log",
    )

    deadline = time.monotonic() + DEADLINE
    while (now := supervisor.snapshot().get("staging", {})).get("restarts", 0) < 1100:
        assert time.monotonic() < deadline, f"not 1100 restarts within {DEADLINE:g}s: {now}"
        supervisor.want([missing])
        supervisor.check()  # no sleep: each round is one failed launch or a due check

    assert now["state"] == "backoff"
    assert now["last_error"].startswith("could not start: ")
    assert "no-such-interpreter" in now["last_error"]
    delays = {match.group(1) for _, match in said.matching(r"restarting in ([0-9.e-]+)s$")}
    assert delays == {"0.0001"}


def test_endpoint_that_never_gets_ready_is_stopped_and_retried(
    make_supervisor: Callable[..., Supervisor],
    spec: Callable[..., EndpointSpec],
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(supervisor_module, "READY_TIMEOUT", 0.3)
    supervisor = make_supervisor()
    silent = spec("staging", "--no-state")
    supervisor.want([silent])
    supervisor.check()
    first_pid = supervisor.snapshot()["staging"]["pid"]

    now = drive(
        supervisor,
        [silent],
        lambda snapshot: snapshot["staging"]["restarts"] >= 1,
        "a restart after the ready timeout",
    )["staging"]

    assert now["last_error"].startswith("not ready after 0.3s")
    assert gone(first_pid)
    assert "stopped on SIGTERM" in silent.log_file.read_text()


def test_starting_endpoint_is_not_serving_on_another_process_state_file(
    make_supervisor: Callable[..., Supervisor], spec: Callable[..., EndpointSpec]
):
    supervisor = make_supervisor()
    silent = spec("staging", "--no-state")  # ours: alive, but never ready
    supervisor.want([silent])
    supervisor.check()
    ours = supervisor.snapshot()["staging"]["pid"]
    # Another server writes the same state file while ours is still starting.
    other = subprocess.Popen(spec("staging").command, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + DEADLINE
        while read_state(silent.state_file) is None:
            assert other.poll() is None, f"the other server exited with {other.returncode}"
            assert time.monotonic() < deadline, "the other server wrote no state file"
            time.sleep(0.05)

        for _ in range(5):
            supervisor.check()
            now = supervisor.snapshot()["staging"]
            assert (now["state"], now["pid"], now["url"]) == ("starting", ours, None)
            time.sleep(0.05)
    finally:
        other.kill()
        other.wait(10)


def test_endpoint_that_stops_answering_ping_is_restarted(
    make_supervisor: Callable[..., Supervisor],
    spec: Callable[..., EndpointSpec],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(supervisor_module, "PING_EVERY", 0.0)
    monkeypatch.setattr(supervisor_module, "PING_FAILURES", 2)
    supervisor = make_supervisor()
    hang = tmp_path / "hang"
    staging = spec("staging", "--hang-file", str(hang))
    before = drive(supervisor, [staging], serving("staging"), "staging serving")["staging"]

    hang.touch()
    supervisor.check()  # one /ping timed out: not yet a crash
    assert supervisor.snapshot()["staging"]["state"] == "serving"
    after_hang = drive(
        supervisor,
        [staging],
        lambda snapshot: snapshot["staging"]["restarts"] == 1,
        "a restart after /ping hangs",
    )["staging"]
    hang.unlink()

    assert after_hang["last_error"] == "stopped answering /ping (2 in a row)"
    assert gone(before["pid"])
    now = drive(supervisor, [staging], serving("staging"), "staging serving again")["staging"]
    assert now["pid"] != before["pid"]
    assert ping(now["url"]) == 200


def test_server_started_by_the_user_is_external_and_left_running(
    make_supervisor: Callable[..., Supervisor], spec: Callable[..., EndpointSpec], said: Said
):
    staging = spec()
    theirs = subprocess.Popen(staging.command, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + DEADLINE
        while (running := read_state(staging.state_file)) is None:
            assert theirs.poll() is None, f"the user's server exited with {theirs.returncode}"
            assert time.monotonic() < deadline, "the user's server wrote no state file"
            time.sleep(0.05)
        assert running.pid == theirs.pid

        supervisor = make_supervisor()
        for _ in range(3):
            supervisor.want([staging])
            supervisor.check()
            now = supervisor.snapshot()["staging"]
            assert (now["state"], now["pid"], now["url"]) == ("external", theirs.pid, running.url)
        assert not staging.log_file.exists()  # nothing was launched
        assert len(said.matching(r"already served at .*not started by up")) == 1

        supervisor.stop(5.0)

        assert theirs.poll() is None
        assert ping(running.url) == 200
        assert supervisor.snapshot()["staging"]["state"] == "external"
    finally:
        theirs.kill()
        theirs.wait(10)


def test_stop_terminates_every_endpoint_gracefully(
    make_supervisor: Callable[..., Supervisor], spec: Callable[..., EndpointSpec]
):
    supervisor = make_supervisor()
    specs = [spec("staging"), spec("production")]
    both = drive(
        supervisor,
        specs,
        lambda snapshot: all(serving(env)(snapshot) for env in ("staging", "production")),
        "both serving",
    )
    pids = [both[env]["pid"] for env in ("staging", "production")]

    supervisor.stop(5.0)

    for env, pid in zip(("staging", "production"), pids, strict=True):
        process = supervisor.endpoints[env].process
        assert process is not None and process.pid == pid
        assert process.returncode == 0, f"{env} did not exit cleanly on SIGTERM"
        assert gone(pid)
        assert "stopped on SIGTERM" in (specs[0].log_file.parent / f"{env}.log").read_text()
    assert {item["state"] for item in supervisor.snapshot().values()} == {"stopped"}


def test_stop_kills_an_endpoint_that_ignores_sigterm(
    make_supervisor: Callable[..., Supervisor], spec: Callable[..., EndpointSpec]
):
    supervisor = make_supervisor()
    stubborn = spec("staging", "--ignore-term")
    pid = drive(supervisor, [stubborn], serving("staging"), "staging serving")["staging"]["pid"]

    supervisor.stop(0.5)

    process = supervisor.endpoints["staging"].process
    assert process is not None and process.returncode == -signal.SIGKILL
    assert gone(pid)
    assert "ignoring SIGTERM" in stubborn.log_file.read_text()  # it was asked first
    assert supervisor.snapshot()["staging"]["state"] == "stopped"
