"""The data pipeline's event handler: S3-shaped events in, prepared versions out.

The same function serves the AWS Lambda (through ``lockgate.aws.lambda_data``) and the local
runtime (``lockgate up``). Delivery is at least once and unordered, so the handler does not
trust what a record says about an object: it only learns which datasets changed, and prepares
each from the raw objects present now. A duplicate or late event finds the version committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lockgate.config import DatasetConfig
from lockgate.events.s3 import ObjectEvent, is_test_event, parse_s3_event
from lockgate.pipelines.data.prepare import PrepResult, Report, describe, prepare
from lockgate.pipelines.runs import Trigger
from lockgate.ports.store import Store

log = logging.getLogger("lockgate.data")


@dataclass
class HandleResult:
    """What one event led to."""

    prepared: list[PrepResult] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    """(key, reason) for records that did not concern the data pipeline."""
    test_event: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "test_event": self.test_event,
            "prepared": [describe(result) for result in self.prepared],
            "ignored": [{"key": key, "reason": reason} for key, reason in self.ignored],
        }


def handle(
    event: Mapping[str, Any],
    store: Store,
    datasets: Mapping[str, DatasetConfig],
    report: Report | None = None,
    *,
    trigger: Trigger | None = None,
    prepare_one: Callable[[str, DatasetConfig, Trigger], PrepResult] | None = None,
) -> HandleResult:
    """Prepare every configured dataset that an object-created record under ``raw/`` names.

    Each dataset prepared is one run recorded in ``store``'s ledger.

    Args:
        trigger: what started the runs (default: an upload of the event's keys).
        prepare_one: prepares one dataset instead of :func:`prepare` (the AWS Lambda hands
            what is too big for it to a Processing job).

    Raises:
        EventError: the event is not shaped like an S3 event.
    """
    result = HandleResult(test_event=is_test_event(event))
    records = parse_s3_event(event)
    if trigger is None:
        trigger = Trigger("upload", shorten_keys(_keys(records, store)))
    touched: list[str] = []
    for record in records:
        key = store.event_key(record.bucket, record.key)
        if key is None:
            result.ignored.append((record.key, f"outside this store ({store.uri})"))
            continue
        parts = key.split("/")
        if len(parts) < 3 or parts[0] != "raw" or not parts[-1]:
            result.ignored.append((key, "not a raw upload (raw/<dataset>/<file>)"))
            continue
        if record.removed:
            result.ignored.append(
                (key, "a removal prepares nothing; the next upload's version leaves it out")
            )
            continue
        dataset = parts[1]
        if dataset not in datasets:
            known = ", ".join(sorted(datasets)) or "none"
            result.ignored.append((key, f"dataset '{dataset}' is not configured (known: {known})"))
            continue
        if dataset not in touched:
            touched.append(dataset)
    for key, reason in result.ignored:
        log.info("ignored %s: %s", key, reason)
    for dataset in touched:
        if prepare_one is not None:
            result.prepared.append(prepare_one(dataset, datasets[dataset], trigger))
        else:
            result.prepared.append(
                prepare(store, dataset, datasets[dataset], report, trigger=trigger)
            )
    return result


def uploaded_keys(event: Mapping[str, Any], store: Store) -> list[str]:
    """The keys an event names, relative to ``store`` where they are in it.

    Raises:
        EventError: the event is not shaped like an S3 event.
    """
    return _keys(parse_s3_event(event), store)


def _keys(records: list[ObjectEvent], store: Store) -> list[str]:
    return [store.event_key(record.bucket, record.key) or record.key for record in records]


def shorten_keys(keys: Sequence[str], shown: int = 3) -> str:
    """``a, b, c and 4 more``: keys for one line of a run record."""
    if len(keys) <= shown:
        return ", ".join(keys)
    return ", ".join(keys[:shown]) + f" and {len(keys) - shown} more"
