"""Writes this server's serving records (format and reader:
:mod:`lockgate.pipelines.deployment.served`; this writer also records ``rejected``, the
requests refused as the client's error).

Every ``interval`` seconds a background thread appends a record for each package this
process served whose counts changed since its last record; a swap wakes it at once for the
package swapped out. The package serving now also gets a record at least every ``heartbeat``
seconds (so "last seen" stays fresh without a record a minute from every idle server) and at
shutdown. Ledger appends read the stream's tail, so they happen off the request path; a
failing store is logged and retried next round, never raised into a request.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lockgate.pipelines.deployment.served import SERVING
from lockgate.pipelines.ledger import Ledger
from lockgate.ports.store import Store
from lockgate.serving.background import Periodic
from lockgate.serving.model import ServedModel

log = logging.getLogger(__name__)


def new_server_id() -> str:
    """An id for this server process: readable (host and pid) and unique (random part)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def serving_record(
    model: ServedModel, server_id: str, endpoint: str, until: datetime
) -> dict[str, Any]:
    """The serving record of ``model``'s counts now."""
    release = model.release
    tally = model.tally
    return {
        "server_id": server_id,
        "endpoint": endpoint,
        "package_sha256": model.sha256,
        "model": model.name,
        "version": model.version,
        "release_seq": release.get("release_seq", release.get("seq")),
        "requests": tally.requests,
        "errors": tally.errors,
        "rejected": tally.rejected,
        "since": tally.since.isoformat(timespec="milliseconds"),
        "until": until.isoformat(timespec="milliseconds"),
    }


class Recorder:
    """Appends serving records for one server process from a background thread.

    Args:
        current: returns the package serving now (None before one is loaded).
        interval: seconds between checks for changed counts.
        heartbeat: the longest the package serving goes without a record.
    """

    def __init__(
        self,
        store: Store,
        env: str,
        endpoint: str,
        server_id: str,
        current: Callable[[], ServedModel | None],
        *,
        interval: float = 60.0,
        heartbeat: float = 3600.0,
    ) -> None:
        self.ledger = Ledger(store)
        self.env = env
        self.endpoint = endpoint
        self.server_id = server_id
        self.current = current
        self.heartbeat = heartbeat
        # Every package this process served, by sha256: one swapped out can still count a
        # request that was in flight at the swap, so its counts are watched to the end.
        self._served: dict[str, ServedModel] = {}
        self._written: dict[str, tuple[tuple[int, int, int], datetime]] = {}
        self._lock = threading.Lock()
        self._writer = Periodic("lockgate-records", interval, self._write_due)

    def start(self) -> None:
        self._writer.start()

    def retire(self, model: ServedModel) -> None:
        """``model`` was swapped out: write its record soon (not on the caller's time)."""
        with self._lock:
            self._served[model.sha256] = model
        self._writer.wake()

    def close(self) -> None:
        """Stop the thread; write the last records (the package serving now in any case)."""
        self._writer.stop()
        self._write_due(closing=True)

    def _write_due(self, closing: bool = False) -> None:
        current = self.current()
        with self._lock:
            if current is not None:
                self._served[current.sha256] = current
            served = list(self._served.values())
        now = datetime.now(UTC)
        for model in served:
            written = self._written.get(model.sha256)
            if written is None or written[0] != _counts(model):
                self._write(model, now)
            elif model is current and (
                closing or (now - written[1]).total_seconds() >= self.heartbeat
            ):
                self._write(model, now)

    def _write(self, model: ServedModel, now: datetime) -> None:
        record = serving_record(model, self.server_id, self.endpoint, now)
        try:
            self.ledger.append(SERVING, self.env, record)
        except Exception as exc:  # the store is down: the next round tries again
            log.warning("serving record: cannot append to ledger/%s/%s: %s", SERVING, self.env, exc)
            return
        self._written[model.sha256] = (_counts(model), now)


def _counts(model: ServedModel) -> tuple[int, int, int]:
    tally = model.tally
    return (tally.requests, tally.errors, tally.rejected)
