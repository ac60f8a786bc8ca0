"""Data quality of a window of traffic, as SageMaker Model Monitor's constraint checks.

Each problem is a :class:`Violation` shaped like an entry of Model Monitor's
``constraint_violations.json`` (``feature_name``, ``constraint_check_type``, ``description``),
with its check type names: ``missing_column_check``, ``extra_column_check``,
``data_type_check``, ``completeness_check`` and ``categorical_values_check``.

The window arrives as the requests' rows, parsed by
:func:`lockgate.pipelines.deployment.payload.parse_rows`. :func:`window_table` joins them into
one Arrow table of raw values (text from CSV bodies, JSON values as sent), which
:func:`coerce_window` turns into the canonical types drift is measured on, counting the values
that do not parse as their column's kind.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from lockgate.config import MonitorConfig
from lockgate.pipelines.data.columns import Kind, coerce
from lockgate.pipelines.data.rejection import FileRejected
from lockgate.pipelines.deployment.payload import Rows

MISSING_COLUMN = "missing_column_check"
EXTRA_COLUMN = "extra_column_check"
DATA_TYPE = "data_type_check"
COMPLETENESS = "completeness_check"
CATEGORICAL_VALUES = "categorical_values_check"
EXAMPLES = 3
"""New categories named in a violation's description."""
_EXPECTED_TYPE = {"numeric": "Fractional", "datetime": "Fractional (date/time)"}


@dataclass(frozen=True)
class Violation:
    """One failed check, as an entry of Model Monitor's ``constraint_violations.json``."""

    feature_name: str
    constraint_check_type: str
    description: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def window_table(requests: Sequence[Rows]) -> pa.Table:
    """The rows of several parsed requests as one table of raw values.

    A column is present if any request sent it (rows of requests without it are null). A
    column stays text if every request was CSV; otherwise Arrow infers its type from the JSON
    values, and a column mixing numbers and strings (or CSV text and JSON numbers) becomes
    text, which :func:`coerce_window` then parses as the serving model does.
    """
    names: dict[str, None] = {}
    for rows in requests:
        names.update(dict.fromkeys(rows.columns))
    text = all(rows.text for rows in requests)
    arrays: dict[str, pa.Array] = {}
    for name in names:
        values: list[Any] = []
        for rows in requests:
            values.extend(rows.columns.get(name, [None] * rows.count))
        arrays[name] = pa.array(values, pa.string()) if text else _inferred(values)
    return pa.table(arrays) if arrays else pa.table({})


def coerce_window(raw: pa.Table, columns: Mapping[str, str]) -> tuple[pa.Table, dict[str, int]]:
    """The window in canonical types, and per column the values that did not parse.

    Columns of ``raw`` that ``columns`` does not name are left out. A value that does not
    parse as its column's kind (``"abc"`` for a number, a non-finite number) becomes null and
    is counted; a JSON ``NaN`` is a missing value, as in the serving model, not a bad one.

    Args:
        raw: the window's raw rows (see :func:`window_table`).
        columns: column name -> kind.
    """
    canonical: dict[str, pa.ChunkedArray] = {}
    errors: dict[str, int] = {}
    for name, kind in columns.items():
        if name not in raw.column_names:
            continue
        column = _nan_as_null(raw.column(name))
        sent = len(column) - column.null_count
        parsed = _coerced(column, kind, name)
        canonical[name] = parsed
        errors[name] = max(sent - (len(parsed) - parsed.null_count), 0)
    table = pa.table(canonical) if canonical else pa.table({})
    return table, errors


def data_quality(
    raw_columns: Sequence[str],
    canonical: pa.Table,
    type_errors: Mapping[str, int],
    columns: Mapping[str, str],
    statistics: Mapping[str, Any],
    constraints: Mapping[str, Any],
    config: MonitorConfig,
) -> list[Violation]:
    """Model Monitor's data-quality checks of a window against the baseline.

    Args:
        raw_columns: every column name the window's requests sent, including ones the model
            does not know (:func:`parse_rows` keeps only known ones, so these come from the
            bodies' headers or keys; passing ``raw.column_names`` checks no extra columns).
        canonical, type_errors: from :func:`coerce_window`.
        columns: column name -> kind (``id`` columns are neither required nor extra).
        statistics, constraints: the data version's ``baseline/statistics.json`` and
            ``baseline/constraints.json``.
        config: ``max_null_increase`` and ``max_unseen_share``.

    Returns:
        The violations: missing columns, extra columns, then per feature its type,
        completeness and categorical-values checks; empty if the window passes.
    """
    baseline = {feature["name"]: feature for feature in statistics.get("features", [])}
    limits = {feature["name"]: feature for feature in constraints.get("features", [])}
    targets = {name for name, feature in baseline.items() if feature.get("is_target")}
    features = {name: kind for name, kind in columns.items() if kind != "id"}
    sent = set(raw_columns)
    rows = canonical.num_rows
    violations = [
        Violation(
            name,
            MISSING_COLUMN,
            f"There are missing columns in current dataset: '{name}' ({kind}) is missing from "
            f"every request in the window ({rows} rows).",
        )
        for name, kind in features.items()
        if name not in sent
    ]
    violations += [
        Violation(
            name,
            EXTRA_COLUMN,
            f"There are extra columns in current dataset: '{name}' is not a column of the "
            "baseline, so the model ignores it.",
        )
        for name in dict.fromkeys(raw_columns)
        if name not in columns and name not in targets
    ]
    if not rows:
        return violations
    for name, kind in features.items():
        if name not in canonical.column_names:
            continue
        column = canonical.column(name)
        bad = int(type_errors.get(name, 0))
        missing = column.null_count - bad
        violations += _data_type(name, kind, bad, rows - missing, limits.get(name, {}))
        violations += _completeness(
            name, missing, rows, baseline.get(name), limits.get(name), config
        )
        if kind == "categorical":
            violations += _categorical_values(
                name, column, baseline.get(name), limits.get(name), config
            )
    return violations


def _data_type(
    name: str, kind: str, bad: int, present: int, limits: Mapping[str, Any]
) -> list[Violation]:
    if not bad:
        return []
    expected = _EXPECTED_TYPE.get(kind, limits.get("inferred_type", "String"))
    share = 1.0 - bad / present
    return [
        Violation(
            name,
            DATA_TYPE,
            f"Data type match requirement is not met. Expected data type: {expected}, "
            f"Expected match: 100.0%. Observed: Only {share:.1%} of data is {expected} "
            f"({bad} of {present} values, {bad / present:.1%}, could not be parsed as {kind}).",
        )
    ]


def _completeness(
    name: str,
    missing: int,
    rows: int,
    stats_doc: Mapping[str, Any] | None,
    limits: Mapping[str, Any] | None,
    config: MonitorConfig,
) -> list[Violation]:
    expected = _baseline_completeness(stats_doc, limits)
    observed = 1.0 - missing / rows
    lowest = expected - config.max_null_increase
    # A hair of slack: the baseline's completeness is stored rounded to 6 places.
    if observed >= lowest - 1e-6:
        return []
    return [
        Violation(
            name,
            COMPLETENESS,
            f"Data completeness requirement is not met. Expected: at least {max(lowest, 0):.1%} "
            f"of data present (baseline {expected:.1%}, less max_null_increase "
            f"{config.max_null_increase:.1%}). Observed: Only {observed:.1%} of data is present "
            f"({missing} of {rows} values missing).",
        )
    ]


def _baseline_completeness(
    stats_doc: Mapping[str, Any] | None, limits: Mapping[str, Any] | None
) -> float:
    if limits and limits.get("completeness") is not None:
        return float(limits["completeness"])
    common = _common(stats_doc or {})
    present, missing = common.get("num_present", 0), common.get("num_missing", 0)
    return present / (present + missing) if present + missing else 1.0


def _categorical_values(
    name: str,
    column: pa.ChunkedArray,
    stats_doc: Mapping[str, Any] | None,
    limits: Mapping[str, Any] | None,
    config: MonitorConfig,
) -> list[Violation]:
    domain = _domain(stats_doc, limits)
    if domain is None:
        return []
    counted = pc.value_counts(column.drop_null())
    values = [str(v) for v in counted.field("values").to_pylist()]
    counts = counted.field("counts").to_pylist()
    present = sum(counts)
    unseen = sorted(
        (
            (count, value)
            for value, count in zip(values, counts, strict=True)
            if value not in domain
        ),
        key=lambda item: (-item[0], item[1]),
    )
    new = sum(count for count, _ in unseen)
    if not present or new / present <= config.max_unseen_share:
        return []
    examples = ", ".join(f"{value!r} ({count})" for count, value in unseen[:EXAMPLES])
    more = f" and {len(unseen) - EXAMPLES} more" if len(unseen) > EXAMPLES else ""
    return [
        Violation(
            name,
            CATEGORICAL_VALUES,
            f"Data does not meet domain content requirement. Expected: at most "
            f"{config.max_unseen_share:.1%} of values outside the baseline's {len(domain)} "
            f"categories. Observed: {new / present:.1%} ({new} of {present} values) are new "
            f"categories: {examples}{more}.",
        )
    ]


def _domain(
    stats_doc: Mapping[str, Any] | None, limits: Mapping[str, Any] | None
) -> set[str] | None:
    """The baseline's categories, or None if it kept too many to list them all."""
    domains = (limits or {}).get("string_constraints", {}).get("domains")
    if domains is not None:
        return {str(value) for value in domains}
    string_stats = (stats_doc or {}).get("string_statistics", {})
    categorical = string_stats.get("distribution", {}).get("categorical", {})
    if categorical.get("other_count", 0) or "buckets" not in categorical:
        return None  # beyond the stored top values, a value may be one the baseline had
    return {str(bucket["value"]) for bucket in categorical["buckets"]}


def _common(stats_doc: Mapping[str, Any]) -> Mapping[str, Any]:
    for key in ("numerical_statistics", "string_statistics"):
        if key in stats_doc:
            common: Mapping[str, Any] = stats_doc[key].get("common", {})
            return common
    return {}


def _nan_as_null(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """JSON's NaN is a missing value (Python's json writes it for one), not a bad one."""
    if not pa.types.is_floating(column.type) or not pc.any(pc.is_nan(column)).as_py():
        return column
    return pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)


def _coerced(column: pa.ChunkedArray, kind: str, name: str) -> pa.ChunkedArray:
    """``column`` as ``kind``'s canonical type, unparseable values null."""
    as_kind = cast(Kind, kind)
    try:
        try:
            parsed = coerce(column, as_kind, name, tolerance=None)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, FileRejected):
            # Typed values Arrow cannot convert (a list, a number too big for the integer a
            # category goes through): judged as their text, as in a CSV body.
            parsed = coerce(_text(column), as_kind, name, tolerance=None)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, FileRejected):
        parsed = coerce(pa.nulls(len(column), pa.string()), as_kind, name, tolerance=None)
    if kind == "numeric":
        # A number parsed from text can still overflow to infinity ("1e400"): no value.
        parsed = pc.if_else(pc.is_finite(parsed), parsed, pa.scalar(None, pa.float64()))
    return parsed


def _text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return pa.chunked_array([_as_text(column.to_pylist())])


def _inferred(values: list[Any]) -> pa.Array:
    """JSON values as one array; mixed numbers and strings (or an integer beyond int64)
    become text, as the serving model reads them."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return _as_text(values)


def _as_text(values: list[Any]) -> pa.Array:
    """Values as their text; None and NaN (JSON's missing number) stay missing."""
    return pa.array(
        [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values],
        pa.string(),
    )
