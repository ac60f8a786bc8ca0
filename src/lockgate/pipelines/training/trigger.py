"""The training trigger: a newly committed dataset version (a ``manifest.json`` appearing under
``processed/``) starts a study, when ``train.on_new_data`` is set.

Like the data handler, it takes the S3 event AWS would send for the new object, so the same
trigger serves an S3 notification on AWS and ``lockgate up`` locally.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lockgate.events.s3 import parse_s3_event
from lockgate.pipelines.data.versions import MANIFEST
from lockgate.ports.store import Store


def new_versions(event: Mapping[str, Any], store: Store) -> list[tuple[str, str]]:
    """``(dataset, version)`` of every committed manifest an event reports, in order, once."""
    found: list[tuple[str, str]] = []
    for record in parse_s3_event(event):
        key = store.event_key(record.bucket, record.key)
        if key is None or not record.created:
            continue
        parts = key.split("/")
        if len(parts) == 4 and parts[0] == "processed" and parts[3] == MANIFEST:
            pair = (parts[1], parts[2])
            if pair not in found:
                found.append(pair)
    return found


def handle(
    event: Mapping[str, Any],
    store: Store,
    train_version: Callable[[str, str], Any],
    datasets: Mapping[str, Any],
) -> list[tuple[str, str, Any]]:
    """Train each configured dataset's new version with ``train_version(dataset, version)``."""
    return [
        (dataset, version, train_version(dataset, version))
        for dataset, version in new_versions(event, store)
        if dataset in datasets
    ]
