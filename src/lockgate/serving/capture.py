"""Data capture: sampled requests and responses, written to the store as SageMaker writes them.

Each captured request is one JSON line, the shape SageMaker Model Monitor reads::

    {"captureData": {
        "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                          "data": "<request body>", "encoding": "CSV"},
        "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                           "data": "<response body>", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceId": "<inference id>",
                       "inferenceTime": "2026-11-26T09:40:01Z"},
     "eventVersion": "0"}

in ``monitoring/capture/<endpoint>/<variant>/YYYY/MM/DD/HH/<MM-SS-mmm>-<uuid>.jsonl``
(the hour of the inference). A request only appends a reference to its bytes to a bounded
buffer; a background thread builds the lines and writes one object per flush, so a slow or
unreachable store never slows a prediction. When the buffer is full (the store has been down
for a while) new records are dropped and counted rather than blocking or growing memory.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, datetime

from lockgate.pipelines.deployment.payload import CSV
from lockgate.pipelines.monitoring.capture import DEFAULT_VARIANT, capture_prefix
from lockgate.ports.store import Store
from lockgate.serving.background import Periodic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Event:
    when: datetime
    inference_id: str
    input_type: str
    input_body: bytes
    output_type: str
    output_body: bytes


class Capture:
    """Samples answered requests and writes them to ``store`` from a background thread.

    Args:
        percent: the share of requests captured, 0 to 100.
        flush_seconds: the longest a record waits in the buffer.
        flush_records: a flush starts early once this many records wait.
        max_records: the buffer's bound; beyond it records are dropped (see :attr:`dropped`).
    """

    def __init__(
        self,
        store: Store,
        endpoint_name: str,
        *,
        variant: str = DEFAULT_VARIANT,
        percent: float = 100.0,
        flush_seconds: float = 5.0,
        flush_records: int = 1000,
        max_records: int = 20_000,
    ) -> None:
        if not 0.0 <= percent <= 100.0:
            raise ValueError(f"capture percent must be between 0 and 100, not {percent}")
        self.store = store
        self.prefix = capture_prefix(endpoint_name, variant)
        self.percent = percent
        self.flush_records = flush_records
        self.max_records = max_records
        self.dropped = 0
        """Records lost because the buffer was full (the store was failing)."""
        self.written = 0
        self._buffer: deque[_Event] = deque()
        self._writer = Periodic("lockgate-capture", flush_seconds, self.flush)

    def start(self) -> None:
        """Start the background writer."""
        self._writer.start()

    def offer(
        self,
        inference_id: str,
        input_type: str,
        input_body: bytes,
        output_type: str,
        output_body: bytes,
    ) -> None:
        """Capture one answered request, if it is sampled. Never blocks, never raises."""
        if self.percent < 100.0 and random.uniform(0.0, 100.0) >= self.percent:  # noqa: S311 - sampling, not security
            return
        if len(self._buffer) >= self.max_records:
            self.dropped += 1
            return
        event = _Event(
            datetime.now(UTC), inference_id, input_type, input_body, output_type, output_body
        )
        self._buffer.append(event)
        if len(self._buffer) >= self.flush_records:
            self._writer.wake()

    def close(self) -> None:
        """Write whatever is buffered and stop the background writer."""
        self._writer.stop()
        self.flush()
        if self._buffer:
            self.dropped += len(self._buffer)
            log.warning("data capture: %d records were never written", len(self._buffer))
            self._buffer.clear()

    def flush(self) -> None:
        """Write the buffered records now; on failure they stay buffered for the next try."""
        events: list[_Event] = []
        while self._buffer:  # popleft is atomic; requests keep appending meanwhile
            events.append(self._buffer.popleft())
        by_hour: dict[str, list[_Event]] = defaultdict(list)
        for event in events:
            by_hour[event.when.strftime("%Y/%m/%d/%H")].append(event)
        unwritten: list[_Event] = []
        for hour, group in by_hour.items():
            if unwritten:  # the store just failed: do not hammer it with the other hours
                unwritten += group
                continue
            first = group[0].when
            name = f"{first:%M-%S}-{first.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
            try:
                self.store.put(f"{self.prefix}{hour}/{name}", "".join(map(_line, group)).encode())
            except Exception as exc:  # the store is down: keep the records, try again later
                log.warning("data capture: cannot write to %s: %s", self.store.uri, exc)
                unwritten += group
            else:
                self.written += len(group)
        self._buffer.extendleft(reversed(unwritten))


def _line(event: _Event) -> str:
    document = {
        "captureData": {
            "endpointInput": _side(event.input_type, event.input_body, "INPUT"),
            "endpointOutput": _side(event.output_type, event.output_body, "OUTPUT"),
        },
        "eventMetadata": {
            "eventId": str(uuid.uuid4()),
            "inferenceId": event.inference_id,
            "inferenceTime": event.when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "eventVersion": "0",
    }
    return json.dumps(document, separators=(",", ":")) + "\n"


def _side(content_type: str, body: bytes, mode: str) -> dict[str, str]:
    return {
        "observedContentType": content_type,
        "mode": mode,
        # Bodies were parsed as UTF-8 before they were answered, so they decode.
        "data": body.decode("utf-8", errors="replace"),
        "encoding": "CSV" if content_type.partition(";")[0].strip() == CSV else "JSON",
    }
