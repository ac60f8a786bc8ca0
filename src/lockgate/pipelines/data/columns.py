"""Coerce raw columns to the canonical type of their kind.

numeric -> float64, categorical -> dictionary<int32, string> (compact, fast to one-hot),
text/id -> string, datetime -> timestamp[us] (UTC, naive), classification target -> string,
regression target -> float64.

In *strict* mode (preparation) values that cannot be parsed are counted, and more than the
tolerance rejects the file with an example; in *lenient* mode (serving) they become nulls.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lockgate.pipelines.data.rejection import FileRejected, Rejection

Kind = Literal["numeric", "categorical", "text", "datetime", "id", "label"]

NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
DATETIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%d.%m.%Y",
)
TIMESTAMP = pa.timestamp("us")
CATEGORY = pa.dictionary(pa.int32(), pa.string())


def read_type(kind: Kind) -> pa.DataType | None:
    """The type to ask the reader for, or None to let it infer (then coerce)."""
    if kind == "categorical":
        return CATEGORY
    return pa.string() if kind in ("text", "id", "label") else None


def coerce(
    column: pa.ChunkedArray | pa.Array,
    kind: Kind,
    name: str,
    tolerance: float | None,
) -> pa.ChunkedArray:
    """``column`` as the canonical type of ``kind``.

    Args:
        tolerance: the share of unparseable values allowed (strict mode), or None (lenient:
            they become null).

    Raises:
        FileRejected: strict mode and too many unparseable values.
    """
    if isinstance(column, pa.Array):
        column = pa.chunked_array([column])
    if kind == "numeric":
        return _numeric(column, name, tolerance)
    if kind == "datetime":
        return _datetime(column, name, tolerance)
    if kind == "categorical":
        if column.type == CATEGORY:
            return column
        return pc.dictionary_encode(_as_string(column)).cast(CATEGORY)
    return _as_string(column)


def _as_string(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_string(column.type):
        return column
    if pa.types.is_null(column.type):
        return pa.chunked_array([pa.nulls(len(column), pa.string())])
    if pa.types.is_floating(column.type):
        # 1.0 -> "1": a label or category written as float in one file and int in another.
        as_numpy = column.to_numpy(zero_copy_only=False)
        # Only values int64 can hold: 1e39 stays "1e+39" instead of overflowing the cast.
        whole = np.isfinite(as_numpy) & (np.mod(as_numpy, 1) == 0) & (np.abs(as_numpy) < 2.0**63)
        if whole.all():
            column = column.cast(pa.int64())
    return column.cast(pa.string())


def _numeric(column: pa.ChunkedArray, name: str, tolerance: float | None) -> pa.ChunkedArray:
    if pa.types.is_null(column.type):
        return pa.chunked_array([pa.nulls(len(column), pa.float64())])
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_integer(column.type):
        return column.cast(pa.float64())
    if pa.types.is_floating(column.type):
        # inf/-inf/nan are as good as missing: kept, they would poison mean and scale.
        column = column.cast(pa.float64())
        finite = pc.is_finite(column)
        if pc.all(finite).as_py() is not False:  # the common case: nothing to copy
            return column
        return pc.if_else(finite, column, pa.scalar(None, pa.float64()))
    if pa.types.is_boolean(column.type) or pa.types.is_decimal(column.type):
        return column.cast(pa.float64())
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = pc.utf8_trim_whitespace(column)
        valid = pc.match_substring_regex(column, NUMBER)
        return _keep_valid(column, valid, name, tolerance, "is not a number").cast(pa.float64())

    raise FileRejected(
        Rejection(
            "unparseable_values",
            f"column '{name}' has type {column.type}, which is not numeric",
            column=name,
        )
    )


def _datetime(column: pa.ChunkedArray, name: str, tolerance: float | None) -> pa.ChunkedArray:
    kind = column.type
    if pa.types.is_null(kind):
        return pa.chunked_array([pa.nulls(len(column), TIMESTAMP)])
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:
            column = pc.local_timestamp(column.cast(pa.timestamp(kind.unit, "UTC")))
            column = column.cast(pa.timestamp(column.type.unit))
        return column.cast(TIMESTAMP)
    if pa.types.is_date(kind):
        return column.cast(pa.timestamp("s")).cast(TIMESTAMP)
    if pa.types.is_integer(kind):
        return pc.multiply(column.cast(pa.int64()), 1_000_000).cast(TIMESTAMP)
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
    if not pa.types.is_string(column.type):
        column = column.cast(pa.string())
    trimmed = pc.utf8_trim_whitespace(column)
    for fast in (pa.timestamp("us"), pa.timestamp("us", "UTC")):
        try:  # fast path: ISO 8601 throughout (fractional seconds; zones in the second try)
            parsed_all = trimmed.cast(fast)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        return _to_naive_utc(parsed_all) if fast.tz else parsed_all
    # Per value, several formats; a fractional part is dropped (strptime has no %f).
    trimmed = pc.replace_substring_regex(trimmed, r"(\d\d:\d\d:\d\d)\.\d+", r"\1")
    # ISO 8601 with a zone (2026-01-02T03:04:05Z, +01:00) first, then common naive formats.
    parsed = None
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z"):
        attempt = pc.strptime(trimmed, format=fmt, unit="us", error_is_null=True)
        attempt = pc.local_timestamp(attempt).cast(TIMESTAMP)
        parsed = attempt if parsed is None else pc.coalesce(parsed, attempt)
    assert parsed is not None  # noqa: S101 - the loop above runs
    for fmt in DATETIME_FORMATS:
        if parsed.null_count == column.null_count:
            break
        attempt = pc.strptime(trimmed, format=fmt, unit="us", error_is_null=True)
        parsed = pc.coalesce(parsed, attempt)
    valid = pc.is_valid(parsed)
    _keep_valid(column, valid, name, tolerance, "is not a date/time")
    return parsed


def _to_naive_utc(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.local_timestamp(column).cast(TIMESTAMP)


def _keep_valid(
    column: pa.ChunkedArray,
    valid: pa.ChunkedArray,
    name: str,
    tolerance: float | None,
    what: str,
) -> pa.ChunkedArray:
    """Null out invalid values, after checking their share against the tolerance."""
    invalid = pc.and_(pc.is_valid(column), pc.invert(pc.fill_null(valid, False)))
    bad = pc.sum(invalid).as_py() or 0
    if not bad:
        return column
    if tolerance is not None:
        present = len(column) - column.null_count
        if bad > tolerance * max(present, 1):
            first = pc.index(invalid, True).as_py()
            example = column[first].as_py()
            raise FileRejected(
                Rejection(
                    "unparseable_values",
                    f"row {first + 1}, column '{name}': {example!r} {what} "
                    f"({bad} of {present} values, {bad / max(present, 1):.1%} > tolerance "
                    f"{tolerance:.1%})",
                    column=name,
                    row=first + 1,
                    value=str(example)[:200],
                )
            )
    return pc.if_else(invalid, pa.scalar(None, column.type), column)
