"""The watcher of ``lockgate up`` (whose loop is :mod:`lockgate.local.up`): the stand-in for
S3 notifications + Lambda.

It polls the store's ``raw/`` prefix, turns every new or changed object into the S3 event AWS
would deliver, and calls the data pipeline's handler with it. An object is dispatched once it
is seen with the same ETag on two consecutive polls, so a file still being copied into a
folder store by hand is not read half-written. Objects already present at start are
dispatched too: the handler is idempotent, so this is how ``up`` catches up on what arrived
while it was down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lockgate.config import DatasetConfig
from lockgate.events.s3 import ObjectEvent, build_s3_event
from lockgate.pipelines.data import HandleResult, handle
from lockgate.ports.store import Store

log = logging.getLogger("lockgate.runtime")

WATCHED = "raw/"


@dataclass
class Dispatch:
    """One event the runtime built and what the handler did with it."""

    event: dict[str, Any]
    keys: list[str]
    result: HandleResult | None
    error: str | None = None


class Runtime:
    """Watches one store and dispatches S3-shaped events to the data pipeline."""

    def __init__(
        self,
        store: Store,
        datasets: Mapping[str, DatasetConfig],
        report: Callable[[str], None] | None = None,
        train_version: Callable[[str, str], Any] | None = None,
    ) -> None:
        """``train_version(dataset, version)``, when given, is the training trigger: it runs for
        every dataset version committed while the runtime watches (``train.on_new_data``)."""
        self.store = store
        self.datasets = datasets
        self.report = report
        self.train_version = train_version
        self._dispatched: dict[str, str] = {}
        self._pending: dict[str, str] = {}
        self._manifests: set[str] | None = None

    def poll_versions(self) -> list[tuple[str, str, Any]]:
        """Dispatch the S3 event of each new ``processed/.../manifest.json`` to the training
        trigger. Versions present at the first poll are known, not new."""
        if self.train_version is None:
            return []
        from lockgate.pipelines.training.trigger import handle as trigger

        manifests = {
            info.key: info
            for info in self.store.list("processed/")
            if info.key.endswith("/manifest.json") and info.key.count("/") == 3
        }
        if self._manifests is None:
            self._manifests = set(manifests)
            return []
        fresh = [info for key, info in manifests.items() if key not in self._manifests]
        self._manifests.update(manifests)
        if not fresh:
            return []
        event = build_s3_event(
            self.store.bucket,
            [
                ObjectEvent(
                    "ObjectCreated:Put",
                    self.store.bucket,
                    self.store.prefix + i.key,
                    i.size,
                    i.etag,
                )
                for i in fresh
            ],
        )
        return trigger(event, self.store, self.train_version, self.datasets)

    def warm_up(self) -> None:
        """Import what preparation needs now, so the first upload is not slowed by it."""
        import lockgate.pipelines.data.prepare  # noqa: F401 - imported for its side effect

        if any("text" in config.columns.values() for config in self.datasets.values()):
            import sklearn.feature_extraction.text  # noqa: F401 - the TF-IDF vectorizer

    def changes(self) -> list[ObjectEvent]:
        """List ``raw/`` once: the objects that are new (or changed) and were seen unchanged on
        the previous listing too. They count as dispatched from here on."""
        current = {info.key: info for info in self.store.list(WATCHED)}
        ready: list[ObjectEvent] = []
        for key, info in current.items():
            if self._dispatched.get(key) == info.etag:
                continue
            if self._pending.get(key) != info.etag:
                self._pending[key] = info.etag  # first sighting: dispatch if unchanged next poll
                continue
            del self._pending[key]
            self._dispatched[key] = info.etag or ""
            ready.append(
                ObjectEvent(
                    event_name="ObjectCreated:Put",
                    bucket=self.store.bucket,
                    key=self.store.prefix + key,
                    size=info.size,
                    etag=info.etag,
                )
            )
        for key in list(self._dispatched):
            if key not in current:
                del self._dispatched[key]
        for key in list(self._pending):
            if key not in current:
                del self._pending[key]
        return ready

    def dispatch(self, ready: list[ObjectEvent]) -> Dispatch:
        """Build the S3 event for ``ready`` and hand it to the data pipeline's handler (whose
        runs record an upload of those keys as their trigger)."""
        event = build_s3_event(self.store.bucket, ready)
        keys = [obj.key[len(self.store.prefix) :] for obj in ready]
        try:
            result = handle(event, self.store, self.datasets, self.report)
        except Exception as exc:  # the runtime must outlive one bad run; the error is reported
            # Not retried in a loop: the next upload or `lockgate data prep` runs it again.
            log.exception("dispatch of %d object(s) failed", len(keys))
            return Dispatch(event, keys, None, f"{type(exc).__name__}: {exc}")
        return Dispatch(event, keys, result)

    def poll(self) -> Dispatch | None:
        """List ``raw/`` once; dispatch the objects that are new and stable. None if none."""
        ready = self.changes()
        return self.dispatch(ready) if ready else None
