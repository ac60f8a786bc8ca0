"""Run the endpoint: uvicorn in the foreground, one process, until SIGTERM or SIGINT.

On a signal the server stops accepting connections, finishes the requests in flight, flushes
data capture, writes its last serving record and returns (exit status 0). With a state file
it tells local tools where it listens and the token its hot swap needs.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from lockgate.errors import LockgateError
from lockgate.ports.store import Store, write_atomically
from lockgate.serving.service import DEFAULT_MAX_BODY_BYTES

log = logging.getLogger(__name__)

SINGLE_THREADED = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Math libraries' thread pools, pinned to one thread in the server process (see :func:`run`)."""
GRACEFUL_SECONDS = 30
"""How long requests in flight may take to finish after a stop signal."""


def run(
    model_dir: Path | str | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    store: Store | None = None,
    env: str | None = None,
    endpoint_name: str = "lockgate",
    capture_percent: float = 100.0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    release: dict[str, Any] | None = None,
    state_file: Path | str | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the package in ``model_dir`` until a stop signal.

    Args:
        model_dir: the package; None starts without one (/ping 503 until a hot swap).
        host, port: where to listen; port 0 picks a free port (see ``state_file``).
        store, env: where capture files and serving records go (see
            :func:`lockgate.serving.app.create_app`).
        state_file: written once listening, removed on exit: JSON ``pid``, ``host``, ``port``,
            ``url``, ``token`` (what ``POST /lockgate/swap`` needs), ``started_at`` and
            ``model_dir``; readable by this user only.
        ready: called with the URL once the server listens.

    Raises:
        LockgateError: ``port`` on ``host`` is in use (or cannot be listened on); checked
            before the package is loaded, so the answer is immediate.
        lockgate.ports.endpoint.DeploymentFailed: the package cannot be loaded or fails its
            warm-up prediction (nothing was bound).
    """
    _check_port(host, port)
    # One request is a row or a few: fanning a tiny predict out to an OpenMP pool costs more
    # than it saves, and the cores are better left to the event loop and other processes.
    # Must happen before scikit-learn is imported; a caller's own setting wins.
    for name in SINGLE_THREADED:
        os.environ.setdefault(name, "1")
    import uvicorn

    from lockgate.serving.app import create_app

    token = secrets.token_urlsafe(32)
    app = create_app(
        model_dir,
        release=release,
        token=token,
        store=store,
        env=env,
        endpoint_name=endpoint_name,
        capture_percent=capture_percent,
        max_body_bytes=max_body_bytes,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
    )
    state = None if state_file is None else Path(state_file)

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if not self.started:
                return
            bound_host, bound_port = self.servers[0].sockets[0].getsockname()[:2]
            url = _url(bound_host, bound_port)
            if state is not None:
                _write_state(state, url, bound_host, bound_port, token, model_dir)
            if ready is not None:
                ready(url)

    try:
        with _signals_end_quietly():
            Server(config).run()
    finally:
        if state is not None:
            _remove_state(state)


def _check_port(host: str, port: int) -> None:
    """Raise :class:`LockgateError` unless uvicorn will be able to listen on ``host:port``.

    uvicorn's own failure is its raw "[Errno 98] ..." line and exit status 3; this says what
    to do. It binds as asyncio will (every address ``host`` resolves to, ``SO_REUSEADDR``
    on POSIX): so a port still in TIME_WAIT after a server stopped is free, as it is to
    uvicorn, while one another server listens on is not. Port 0 is always free.
    """
    if port == 0:
        return
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise LockgateError(f"cannot listen on {host}: {exc}; pick another with --host") from None
    for family, kind, proto, _, address in addresses:
        try:
            probe = socket.socket(family, kind, proto)
        except OSError:
            continue  # e.g. IPv6 disabled: asyncio skips the address too
        with probe:
            if os.name == "posix" and sys.platform != "cygwin":  # what asyncio does
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise LockgateError(
                        f"port {port} on {host} is in use (another endpoint?); "
                        "pick another with --port"
                    ) from None
                raise LockgateError(
                    f"cannot listen on port {port} on {host}: {exc.strerror or exc}"
                ) from None


def _url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::"):  # noqa: S104 - the address we listen on, not one we bind
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _write_state(
    path: Path, url: str, host: str, port: int, token: str, model_dir: Path | str | None
) -> None:
    document = {
        "pid": os.getpid(),
        "host": host,
        "port": port,
        "url": url,
        "token": token,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_dir": None if model_dir is None else str(Path(model_dir).resolve()),
    }
    # A temp file renamed into place: mkstemp makes it 0600, and a reader never sees half.
    write_atomically(path, [json.dumps(document, indent=2).encode()])


def _remove_state(path: Path) -> None:
    """Remove the state file if it is still this process's (not a newer server's)."""
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


@contextmanager
def _signals_end_quietly() -> Iterator[None]:
    """Make SIGTERM and SIGINT end :func:`run` normally once uvicorn has shut down.

    uvicorn re-raises the signal it caught after its graceful shutdown, to the handler that
    was installed before it; with Python's defaults that kills the process (SIGTERM, status
    143) or raises KeyboardInterrupt, where a stopped server should exit 0.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signals go to the main thread only; whoever runs us there handles them
        return

    def stopped(signum: int, frame: FrameType | None) -> None:
        log.info("stopped by signal %d", signum)

    previous = {sig: signal.signal(sig, stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
