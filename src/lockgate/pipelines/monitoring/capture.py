"""Reading an endpoint's data capture back: the requests of a window, as rows and predictions.

Capture files are SageMaker's format (one JSON line per request, ``captureData.endpointInput``
and ``endpointOutput`` with the bodies as text, ``eventMetadata.inferenceId`` and
``inferenceTime``) under ``monitoring/capture/<endpoint>/<variant>/YYYY/MM/DD/HH/``, whether
lockgate's server or SageMaker wrote them. Bodies are parsed with the same code the server used
to answer them, so a row is read back exactly as it was predicted.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lockgate.pipelines.deployment.payload import (
    CSV,
    RequestRejected,
    media_type,
    parse_rows,
)
from lockgate.ports.store import Store

DEFAULT_VARIANT = "AllTraffic"


@dataclass(frozen=True)
class Captured:
    """One captured request and its answer."""

    inference_id: str
    time: datetime
    input_type: str
    input: bytes
    output_type: str
    output: bytes


@dataclass(frozen=True)
class Prediction:
    """One predicted row, for joining labels: its request, its place there, its id values."""

    inference_id: str
    row: int
    ids: dict[str, str]
    prediction: Any
    probabilities: dict[str, float] | None = None


@dataclass
class Window:
    """The rows of a window's requests, as sent, and what was predicted for each."""

    columns: dict[str, list[Any]]
    """Every package column (schema order) over all rows; None where a request lacked it."""
    sent: set[str] = field(default_factory=set)
    """Columns some request sent (names as the client wrote them, known or not)."""
    predictions: list[Prediction] = field(default_factory=list)
    requests: int = 0
    unreadable: int = 0
    """Captured requests whose body could not be parsed again (counted, never fatal)."""

    @property
    def rows(self) -> int:
        return len(self.predictions)


def capture_prefix(endpoint: str, variant: str = DEFAULT_VARIANT) -> str:
    return f"monitoring/capture/{endpoint}/{variant}/"


def read_capture(
    store: Store,
    endpoint: str,
    start: datetime,
    end: datetime,
    variant: str = DEFAULT_VARIANT,
) -> list[Captured]:
    """Every request captured for ``endpoint`` with ``start <= inferenceTime < end``, oldest
    first. Only the hour folders that can hold such requests are listed and read."""
    prefix = capture_prefix(endpoint, variant)
    found: list[Captured] = []
    for key in _keys_in_hours(store, prefix, start, end):
        for line in store.get(key).splitlines():
            record = _record(line)
            if record is not None and start <= record.time < end:
                found.append(record)
    return sorted(found, key=lambda record: record.time)


def _keys_in_hours(store: Store, prefix: str, start: datetime, end: datetime) -> Iterator[str]:
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while hour < end:
        folder = prefix + hour.strftime("%Y/%m/%d/%H/")
        for info in store.list(folder):
            if info.key.endswith(".jsonl"):
                yield info.key
        hour += timedelta(hours=1)


def _record(line: bytes) -> Captured | None:
    try:
        document = json.loads(line)
        data = document["captureData"]
        meta = document["eventMetadata"]
        when = datetime.fromisoformat(str(meta["inferenceTime"]).replace("Z", "+00:00"))
        return Captured(
            inference_id=str(meta.get("inferenceId") or meta.get("eventId")),
            time=when if when.tzinfo else when.replace(tzinfo=UTC),
            input_type=str(data["endpointInput"].get("observedContentType") or ""),
            input=_body(data["endpointInput"]),
            output_type=str(data["endpointOutput"].get("observedContentType") or ""),
            output=_body(data["endpointOutput"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _body(side: dict[str, Any]) -> bytes:
    text = str(side.get("data") or "")
    if str(side.get("encoding", "")).upper() == "BASE64":
        return base64.b64decode(text)
    return text.encode()


def window_rows(
    captured: Sequence[Captured],
    columns: Sequence[str],
    id_columns: Sequence[str],
    classes: Sequence[str] | None,
) -> Window:
    """Parse every captured request again into one :class:`Window`.

    Args:
        columns: the package's columns in schema order (what headerless CSV lists).
        id_columns: those of them that are ids (echoed back beside predictions).
        classes: the class labels (classification), for reading CSV answers.
    """
    window = Window(columns={name: [] for name in columns})
    for record in captured:
        window.requests += 1
        media = media_type(record.input_type)
        try:
            if media is None:
                raise RequestRejected(415, record.input_type)
            rows = parse_rows(record.input, media, columns)
            answers = _answers(record, rows.count, classes)
        except (RequestRejected, ValueError, KeyError, TypeError, IndexError):
            window.unreadable += 1
            continue
        window.sent.update(_sent_names(record.input, media, columns))
        for name in columns:
            values = rows.columns.get(name)
            window.columns[name].extend(values if values is not None else [None] * rows.count)
        for index, (prediction, probabilities) in enumerate(answers):
            ids = {
                name: str(rows.columns[name][index])
                for name in id_columns
                if name in rows.columns and rows.columns[name][index] is not None
            }
            window.predictions.append(
                Prediction(record.inference_id, index, ids, prediction, probabilities)
            )
    return window


def _answers(
    record: Captured, count: int, classes: Sequence[str] | None
) -> list[tuple[Any, dict[str, float] | None]]:
    """(prediction, probabilities) per row from the captured answer body."""
    if "csv" in record.output_type:
        # Headerless lines: the echoed ids, the prediction, then one probability per class.
        # Read from the end, so a request that left its ids out reads the same.
        width = 1 + (len(classes) if classes else 0)
        answers: list[tuple[Any, dict[str, float] | None]] = []
        for line in list(csv.reader(io.StringIO(record.output.decode("utf-8"))))[:count]:
            values = line[-width:]
            probabilities = (
                {label: float(p) for label, p in zip(classes, values[1:], strict=True)}
                if classes
                else None
            )
            answers.append((values[0], probabilities))
        return answers
    document = json.loads(record.output)
    predictions = document["predictions"] if isinstance(document, dict) else document
    answers = []
    for item in predictions[:count]:
        if isinstance(item, dict):
            answers.append((item.get("prediction"), item.get("probabilities")))
        else:
            answers.append((item, None))
    return answers


def _sent_names(body: bytes, media: str, columns: Sequence[str]) -> set[str]:
    """The column names a request sent, known or not (for the extra-column check)."""
    known = set(columns)
    try:
        if media == CSV:
            first = next(csv.reader(io.StringIO(body.decode("utf-8-sig"))), [])
            header = {name.strip() for name in first}
            # A header names at least half of the known columns; data rows do not.
            return header if len(header & known) * 2 >= len(first) else set(known)
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return set()
    if isinstance(document, dict):
        for wrapper in ("instances", "dataframe_records"):
            if isinstance(document.get(wrapper), list):
                document = document[wrapper]
                break
        else:
            if isinstance(document.get("columns"), list):
                return {str(name) for name in document["columns"]}
            if isinstance(document.get("dataframe_split"), dict):
                return {str(n) for n in document["dataframe_split"].get("columns", [])}
            return {str(name) for name in document}
    if isinstance(document, list):
        names: set[str] = set()
        for item in document[:100]:
            if isinstance(item, dict):
                names.update(str(name) for name in item)
            elif isinstance(item, list):
                names.update(columns[: len(item)])
        return names
    return set()
