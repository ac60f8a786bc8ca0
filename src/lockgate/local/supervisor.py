"""Keeps the environments' local endpoint processes serving: the stand-in for SageMaker's
managed endpoints under ``lockgate up``.

An endpoint is started when its environment has a release, watched (its process, and ``/ping``
every few seconds), and restarted when it dies or stops answering -- after a delay that doubles
with each crash in a row (``restart_backoff`` up to ``restart_backoff_max``), so a package that
crashes at load does not spin a core. A server the user started themselves (``lockgate serve``)
is left alone and reported as external. On stop, every endpoint gets SIGTERM, which drains
requests and flushes data capture, and SIGKILL only if it does not exit in time.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lockgate.local.endpoint import ping, read_state
from lockgate.logs import event
from lockgate.processes import alive

log = logging.getLogger("lockgate.runtime")

State = Literal["starting", "serving", "backoff", "failed", "stopped", "external"]

PING_EVERY = 3.0
PING_FAILURES = 3
"""/ping failures in a row (while the process lives) that count as a crash."""
READY_TIMEOUT = 60.0
HEALTHY_AFTER = 60.0
"""Seconds of serving after which the crash count starts again from zero."""


@dataclass
class EndpointSpec:
    """How to run one environment's endpoint."""

    env: str
    command: list[str]
    state_file: Path
    log_file: Path


class Adopted:
    """A server a previous ``up`` started (it was killed and its endpoints lived on): watched
    and stopped like a child of ours, though its exit code cannot be known."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and not alive(self.pid):
            self.returncode = -1
        return self.returncode

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.05)
        return -1

    def _signal(self, number: int) -> None:
        try:
            os.kill(self.pid, number)
        except ProcessLookupError:
            pass


@dataclass
class Supervised:
    """One environment's endpoint as the supervisor sees it."""

    spec: EndpointSpec
    state: State = "stopped"
    process: subprocess.Popen[bytes] | Adopted | None = None
    url: str | None = None
    restarts: int = 0
    crashes: int = 0
    last_error: str | None = None
    since: float = field(default_factory=time.monotonic)
    retry_at: float = 0.0
    launched_at: float = 0.0
    next_ping: float = 0.0
    ping_failures: int = 0

    def to_json(self) -> dict[str, Any]:
        pid = self.process.pid if self.process is not None else None
        if self.state == "external":
            running = read_state(self.spec.state_file)
            pid = running.pid if running else None
        return {
            "pid": pid,
            "url": self.url,
            "state": self.state,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "log": str(self.spec.log_file),
        }


class Supervisor:
    """Starts, watches and restarts endpoint processes; one call to :meth:`check` a second."""

    def __init__(
        self,
        backoff: float = 1.0,
        backoff_max: float = 60.0,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.say = say or (lambda message: None)
        self.endpoints: dict[str, Supervised] = {}
        self._lock = threading.Lock()

    def want(self, specs: Iterable[EndpointSpec]) -> None:
        """Supervise these endpoints (the environments that have a release now)."""
        with self._lock:
            for spec in specs:
                if spec.env not in self.endpoints:
                    self.endpoints[spec.env] = Supervised(spec)

    def adopt(self, spec: EndpointSpec, pid: int, restarts: int = 0) -> bool:
        """Take over the server ``pid`` that a previous ``up`` started for ``spec``, if it is
        still the one serving there; False if it is not."""
        running = read_state(spec.state_file)
        if running is None or running.pid != pid or not ping(running.url):
            return False
        with self._lock:
            item = Supervised(spec, "serving", Adopted(pid), running.url, restarts)
            item.next_ping = time.monotonic() + PING_EVERY
            self.endpoints[spec.env] = item
        self.say(f"endpoint {spec.env}: still serving at {running.url} (pid {pid}); taken over")
        return True

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {env: item.to_json() for env, item in self.endpoints.items()}

    def check(self) -> None:
        """One round: start what should run, notice crashes and hangs, restart when due."""
        with self._lock:
            items = list(self.endpoints.values())
        for item in items:
            try:
                self._check(item)
            except OSError as exc:  # e.g. the interpreter could not be started
                self._crashed(item, f"could not start: {exc}")

    def _check(self, item: Supervised) -> None:
        now = time.monotonic()
        if item.state in ("stopped", "external"):
            running = read_state(item.spec.state_file)
            if running is not None and (item.process is None or running.pid != item.process.pid):
                if item.state != "external":
                    self.say(
                        f"endpoint {item.spec.env}: already served at {running.url} "
                        f"(pid {running.pid}, not started by up); leaving it alone"
                    )
                item.state, item.url = "external", running.url
                return
            self._launch(item)
            return
        if item.state == "backoff":
            if now >= item.retry_at:
                self._launch(item)
            return
        assert item.process is not None  # noqa: S101 - starting/serving always have one
        code = item.process.poll()
        if code is not None:
            # While starting, its last words say why; once it served, they are old news.
            tail = self._log_tail(item) if item.state == "starting" else ""
            ended = "ended" if isinstance(item.process, Adopted) else f"exited with code {code}"
            self._crashed(item, ended + tail)
            return
        if item.state == "starting":
            running = read_state(item.spec.state_file)
            if running is not None and running.pid == item.process.pid and ping(running.url):
                item.state, item.url, item.since = "serving", running.url, now
                item.ping_failures, item.next_ping = 0, now + PING_EVERY
                self.say(f"endpoint {item.spec.env}: serving at {running.url} (pid {running.pid})")
                event(
                    log,
                    logging.INFO,
                    "endpoint.serving",
                    f"endpoint {item.spec.env} serving at {running.url}",
                    env=item.spec.env,
                    pid=running.pid,
                    restarts=item.restarts,
                )
            elif now - item.launched_at > READY_TIMEOUT:
                self._stop_process(item, 5.0)
                self._crashed(item, f"not ready after {READY_TIMEOUT:g}s{self._log_tail(item)}")
            return
        if item.crashes and now - item.since > HEALTHY_AFTER:
            item.crashes = 0
        if now >= item.next_ping and item.url is not None:
            item.next_ping = now + PING_EVERY
            if ping(item.url):
                item.ping_failures = 0
            else:
                item.ping_failures += 1
                if item.ping_failures >= PING_FAILURES:
                    self._stop_process(item, 5.0)
                    self._crashed(item, f"stopped answering /ping ({PING_FAILURES} in a row)")

    def _launch(self, item: Supervised) -> None:
        spec = item.spec
        spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        with spec.log_file.open("ab") as output:
            item.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                spec.command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        item.state, item.url = "starting", None
        item.launched_at = time.monotonic()
        self.say(f"endpoint {spec.env}: starting (pid {item.process.pid}; log {spec.log_file})")

    def _crashed(self, item: Supervised, why: str) -> None:
        item.crashes += 1
        item.restarts += 1
        item.last_error = why
        # The exponent is capped: 2**1024 overflows a float, and after 1025 crashes in a row
        # (17 hours at a 60 s maximum) that OverflowError would end the supervisor thread.
        delay = min(self.backoff * 2 ** min(item.crashes - 1, 64), self.backoff_max)
        item.state, item.url = "backoff", None
        item.retry_at = time.monotonic() + delay
        item.process = None
        self.say(f"endpoint {item.spec.env}: {why}; restarting in {delay:g}s")
        event(
            log,
            logging.ERROR,
            "endpoint.crashed",
            f"endpoint {item.spec.env} {why}; restart in {delay:g}s",
            env=item.spec.env,
            crashes=item.crashes,
            delay=delay,
        )

    def _log_tail(self, item: Supervised) -> str:
        try:
            lines = item.spec.log_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        tail = [line.strip() for line in lines[-3:] if line.strip()]
        return f" ({' | '.join(tail)})" if tail else ""

    def stop(self, timeout: float) -> None:
        """SIGTERM every endpoint started here; SIGKILL what has not exited after ``timeout``."""
        with self._lock:
            items = list(self.endpoints.values())
        for item in items:
            if item.process is not None and item.process.poll() is None:
                item.process.terminate()
        deadline = time.monotonic() + timeout
        for item in items:
            if item.process is not None:
                # Signalled once above: a second SIGTERM makes uvicorn quit without draining.
                self._stop_process(item, max(deadline - time.monotonic(), 0.1), signalled=True)
            if item.state != "external":
                item.state = "stopped"

    @staticmethod
    def _stop_process(item: Supervised, timeout: float, signalled: bool = False) -> None:
        process = item.process
        if process is None:
            return
        if process.poll() is None:
            if not signalled:
                process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
