"""Request bodies to named columns: CSV (with or without a header), JSON and JSON Lines.

Shared by the endpoint server (:mod:`lockgate.serving`), which parses requests as they come,
and the monitoring pipeline, which parses the same bodies again from data capture.

Parsing knows the package's column names (schema order, id columns included) but not their
kinds: checking types is the model's job (:mod:`lockgate.serving.model`), so a request is
parsed once and validated against whichever package answers it.

Row numbers in messages count data rows from 1 (a CSV header is not a row).

A JSON number is kept as its text when it has no float value (``1e400``), like the words
``Infinity`` and ``-Infinity``: the model's strict coercion then judges it exactly as it
judges the same field in a CSV body, and names it as sent.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lockgate.errors import LockgateError

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
MEDIA_TYPES = {
    CSV: CSV,
    JSON: JSON,
    JSONLINES: JSONLINES,
    "application/jsonl": JSONLINES,
    "application/x-jsonlines": JSONLINES,
    "application/x-ndjson": JSONLINES,
}
"""Request content types we read, each mapped to the one we parse it as."""

# JSON objects that wrap a list of rows: SageMaker's and TF Serving's "instances", and
# MLflow's scoring formats, so a client moving from `mlflow models serve` works unchanged.
_ROW_LISTS = ("instances", "dataframe_records")
_SPLIT = "dataframe_split"
_NAMES_SHOWN = 6


class RequestRejected(LockgateError):
    """The request cannot be answered as sent; ``status`` is the HTTP status (4xx) to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Rows:
    """A request's rows as columns, keyed by the package's column names.

    Only columns the package knows are kept; a column the request did not send is absent,
    and a missing value is ``None``.
    """

    columns: dict[str, list[Any]]
    count: int
    text: bool
    """Every value is a ``str`` or ``None`` (CSV), so no type needs to be inferred."""


def media_type(header: str | None) -> str | None:
    """The parser a ``Content-Type`` header asks for (``text/csv; charset=utf-8`` -> CSV),
    or None if it is missing or not one we read."""
    if not header:
        return None
    return MEDIA_TYPES.get(header.partition(";")[0].strip().lower())


def parse_rows(body: bytes, media: str, columns: Sequence[str]) -> Rows:
    """Parse ``body`` (of parser ``media``, see :func:`media_type`) into columns.

    Args:
        columns: the package's columns in schema order, what headerless CSV and lists of
            values list.

    Raises:
        RequestRejected: 400, the body is not well-formed, has no rows, or has rows of the
            wrong length; the message says where.
    """
    # Excel's "CSV UTF-8" (and some JSON writers) start with a byte-order mark, which would
    # otherwise become part of the first column's name.
    body = body.removeprefix(codecs.BOM_UTF8)
    if media == CSV:
        return _from_csv(_text(body), columns)
    if media == JSONLINES:
        return _from_items(_json_lines(body), columns)
    return _from_json(_json(body), columns)


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestRejected(
            400, f"body is not UTF-8 text: byte {exc.start} is {body[exc.start]:#04x}"
        ) from None


def _from_csv(text: str, columns: Sequence[str]) -> Rows:
    try:
        records = [record for record in csv.reader(io.StringIO(text), strict=True) if record]
    except csv.Error as exc:
        raise RequestRejected(400, f"malformed CSV: {exc}") from None
    if not records:
        raise RequestRejected(400, "the CSV body has no rows")
    names = list(columns)
    if _is_header(records[0], columns):
        names = [name.strip() for name in records[0]]
        records = records[1:]
        if not records:
            raise RequestRejected(400, "the CSV body has a header but no rows")
    _check_widths(records, names, "fields")
    known = set(columns)
    transposed = zip(*records, strict=True)
    return Rows(
        {
            name: [value if value else None for value in values]
            for name, values in zip(names, transposed, strict=True)
            if name in known
        },
        len(records),
        text=True,
    )


def _is_header(first: list[str], columns: Sequence[str]) -> bool:
    """A first row at least half of whose fields are column names is a header.

    Half, not all: a header may name an extra column (ignored) or lack one (reported as
    missing, which is clearer than reading the header as data). A data row whose values are
    mostly column names is not a plausible row.
    """
    known = set(columns)
    hits = sum(field.strip() in known for field in first)
    return hits > 0 and 2 * hits >= len(first)


def _check_widths(records: Sequence[Sequence[Any]], names: Sequence[str], unit: str) -> None:
    width = len(names)
    if all(len(record) == width for record in records):
        return
    row, record = next((i, r) for i, r in enumerate(records, 1) if len(r) != width)
    shown = ", ".join(names[:_NAMES_SHOWN]) + (", ..." if width > _NAMES_SHOWN else "")
    raise RequestRejected(400, f"row {row} has {len(record)} {unit}, expected {width} ({shown})")


def _json(body: bytes, where: str = "body") -> Any:
    try:
        return json.loads(body, parse_float=_float, parse_constant=_constant)
    except UnicodeDecodeError:
        raise RequestRejected(400, f"{where} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise RequestRejected(
            400, f"{where} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise RequestRejected(
            400,
            f"{where} nests JSON arrays or objects too deeply to read; send rows of plain values",
        ) from None
    except ValueError:  # the only other one: an integer longer than Python converts
        raise RequestRejected(
            400, f"{where} has an integer of more than {sys.get_int_max_str_digits()} digits"
        ) from None


def _float(text: str) -> float | str:
    """A JSON number with a fraction or exponent; its text if it overflows (``1e400``)."""
    value = float(text)
    return value if math.isfinite(value) else text


def _constant(text: str) -> float | str:
    """``NaN`` (Python's json writes it for a missing float) is missing; ``Infinity`` and
    ``-Infinity`` stay words, refused as the string ``"inf"`` is."""
    return math.nan if text == "NaN" else text


def _json_lines(body: bytes) -> list[Any]:
    return [
        _json(line, f"line {number}")
        for number, line in enumerate(body.splitlines(), 1)
        if line.strip()
    ]


def _from_json(document: Any, columns: Sequence[str]) -> Rows:
    if isinstance(document, list):
        return _from_items(document, columns)
    if not isinstance(document, dict):
        raise RequestRejected(
            400, f"the JSON body is a {_kind(document)}; send an object or a list of rows"
        )
    for key in _ROW_LISTS:
        if key in document:
            return _from_items(document[key], columns, f"'{key}'")
    split = document.get(_SPLIT, document)
    if isinstance(split, dict) and "columns" in split and "data" in split:
        return _from_split(split["columns"], split["data"], columns)
    return _from_items([document], columns)


def _from_split(names: Any, data: Any, columns: Sequence[str]) -> Rows:
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise RequestRejected(400, "'columns' must be a list of column names")
    rows = _as_list(data, "'data'")
    if not all(isinstance(row, list) for row in rows):
        raise RequestRejected(400, "'data' must be a list of rows, each a list of values")
    return _from_lists(rows, names, columns)


def _from_items(items: Any, columns: Sequence[str], where: str = "the JSON body") -> Rows:
    items = _as_list(items, where)
    if all(isinstance(item, dict) for item in items):
        return _from_records(items, columns)
    if all(isinstance(item, list) for item in items):
        return _from_lists(items, list(columns), columns)
    expected = dict if isinstance(items[0], dict) else list
    row, odd = next((i, item) for i, item in enumerate(items, 1) if not isinstance(item, expected))
    raise RequestRejected(
        400,
        f"row {row} is a {_kind(odd)}; rows must all be objects (column -> value) "
        "or all be lists of values in schema order",
    )


def _as_list(items: Any, where: str) -> list[Any]:
    if not isinstance(items, list):
        raise RequestRejected(400, f"{where} must be a list of rows, not a {_kind(items)}")
    if not items:
        raise RequestRejected(400, f"{where} has no rows")
    return items


def _from_records(records: list[dict[str, Any]], columns: Sequence[str]) -> Rows:
    found: dict[str, list[Any]] = {}
    for name in columns:
        if not any(name in record for record in records):
            continue  # absent from every record: the model says whether it is needed
        row = next((i for i, record in enumerate(records, 1) if name not in record), None)
        if row is not None:
            raise RequestRejected(400, f"row {row} has no column '{name}'")
        found[name] = _scalars(name, [record[name] for record in records])
    return Rows(found, len(records), text=False)


def _from_lists(rows: list[list[Any]], names: list[str], columns: Sequence[str]) -> Rows:
    _check_widths(rows, names, "values")
    known = set(columns)
    return Rows(
        {
            name: _scalars(name, list(values))
            for name, values in zip(names, zip(*rows, strict=True), strict=True)
            if name in known
        },
        len(rows),
        text=False,
    )


def _scalars(name: str, values: list[Any]) -> list[Any]:
    for row, value in enumerate(values, 1):
        if isinstance(value, dict | list):
            raise RequestRejected(
                400, f"column '{name}' row {row}: a {_kind(value)} is not a value"
            )
    return values


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "JSON object"
    if isinstance(value, list):
        return "JSON list"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "boolean" if isinstance(value, bool) else "number"
