"""Data-quality checks of a window of requests against a real baseline, violation by violation."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from lockgate.config import MonitorConfig
from lockgate.pipelines.data.baseline import build_baseline
from lockgate.pipelines.deployment.payload import CSV, JSON, Rows, parse_rows
from lockgate.pipelines.monitoring.quality import (
    Violation,
    coerce_window,
    data_quality,
    window_table,
)

COLUMNS = {
    "customer": "id",
    "age": "numeric",
    "plan": "categorical",
    "signed_up": "datetime",
    "note": "text",
}
TARGET = "churned"
SCHEMA = list(COLUMNS)


@pytest.fixture(scope="module")
def baseline() -> tuple[dict[str, Any], dict[str, Any]]:
    """1000 reference rows: age 98% complete, plan one of three, every other column full."""
    rng = np.random.default_rng(3)
    n = 1000
    age = rng.normal(40, 10, n)
    table = pa.table(
        {
            "customer": pa.array([f"c{i}" for i in range(n)]),
            "age": pa.array(age, mask=np.arange(n) < 20),
            "plan": pa.array(rng.choice(["basic", "plus", "pro"], n)).dictionary_encode(),
            "signed_up": pa.array(
                np.datetime64("2025-01-01", "us") + rng.integers(0, 10**12, n).astype("m8[us]")
            ),
            "note": pa.array(["fine"] * n),
            TARGET: pa.array(rng.choice(["yes", "no"], n)),
        }
    )
    statistics, constraints = build_baseline(table, COLUMNS, TARGET, "classification", 20, 1, 50)
    return json.loads(json.dumps(statistics)), json.loads(json.dumps(constraints))


def _row(i: int, **changes: Any) -> dict[str, Any]:
    row = {
        "customer": f"w{i}",
        "age": str(30 + i % 40),
        "plan": ("basic", "plus", "pro")[i % 3],
        "signed_up": "2025-03-04 05:06:07",
        "note": "ok",
    }
    row.update(changes)
    return row


def _csv(rows: list[dict[str, Any]]) -> Rows:
    """A CSV request body with a header, parsed as the endpoint parses it."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return parse_rows(out.getvalue().encode(), CSV, SCHEMA)


def _check(
    rows: list[dict[str, Any]],
    baseline: tuple[dict[str, Any], dict[str, Any]],
    sent: list[str] | None = None,
    config: MonitorConfig | None = None,
) -> list[dict[str, str]]:
    raw = window_table([_csv(rows)])
    canonical, errors = coerce_window(raw, COLUMNS)
    statistics, constraints = baseline
    violations = data_quality(
        sent if sent is not None else list(rows[0]),
        canonical,
        errors,
        COLUMNS,
        statistics,
        constraints,
        config or MonitorConfig(),
    )
    assert all(isinstance(item, Violation) for item in violations)
    return [item.as_dict() for item in violations]


def test_a_clean_window_has_no_violations(baseline: tuple[dict[str, Any], dict[str, Any]]) -> None:
    assert _check([_row(i) for i in range(100)], baseline) == []


def test_a_feature_column_absent_from_every_request_is_a_missing_column(
    baseline: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    rows = [{k: v for k, v in _row(i).items() if k not in ("note", "customer")} for i in range(50)]

    assert _check(rows, baseline) == [
        {
            "feature_name": "note",
            "constraint_check_type": "missing_column_check",
            "description": "There are missing columns in current dataset: 'note' (text) is "
            "missing from every request in the window (50 rows).",
        }
    ]


def test_unknown_columns_are_extra_but_id_columns_and_the_target_are_not(
    baseline: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    rows = [_row(i) for i in range(50)]
    sent = [*rows[0], TARGET, "coupon", "coupon"]

    assert _check(rows, baseline, sent) == [
        {
            "feature_name": "coupon",
            "constraint_check_type": "extra_column_check",
            "description": "There are extra columns in current dataset: 'coupon' is not a "
            "column of the baseline, so the model ignores it.",
        }
    ]


def test_values_that_do_not_parse_are_a_data_type_violation_and_not_missing(
    baseline: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    rows = [_row(i, age="abc" if i < 3 else str(i)) for i in range(100)]
    rows[5]["signed_up"] = "next tuesday"

    assert _check(rows, baseline) == [
        {
            "feature_name": "age",
            "constraint_check_type": "data_type_check",
            "description": "Data type match requirement is not met. Expected data type: "
            "Fractional, Expected match: 100.0%. Observed: Only 97.0% of data is Fractional "
            "(3 of 100 values, 3.0%, could not be parsed as numeric).",
        },
        {
            "feature_name": "signed_up",
            "constraint_check_type": "data_type_check",
            "description": "Data type match requirement is not met. Expected data type: "
            "Fractional (date/time), Expected match: 100.0%. Observed: Only 99.0% of data is "
            "Fractional (date/time) (1 of 100 values, 1.0%, could not be parsed as datetime).",
        },
    ]


@pytest.mark.parametrize(("missing", "violated"), [(10, False), (12, False), (13, True)])
def test_completeness_may_drop_max_null_increase_below_the_baseline(
    baseline: tuple[dict[str, Any], dict[str, Any]], missing: int, violated: bool
) -> None:
    # baseline: 98% of ages present; allowed: 88%.
    rows = [_row(i, age=None if i < missing else "41") for i in range(100)]

    expected = [
        {
            "feature_name": "age",
            "constraint_check_type": "completeness_check",
            "description": "Data completeness requirement is not met. Expected: at least "
            "88.0% of data present (baseline 98.0%, less max_null_increase 10.0%). Observed: "
            f"Only {100 - missing}.0% of data is present ({missing} of 100 values missing).",
        }
    ]
    assert _check(rows, baseline) == (expected if violated else [])


def test_new_categories_beyond_max_unseen_share_are_named(
    baseline: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    new = ["trial"] * 7 + ["gold"] * 2 + ["free", "vip", "vip"]
    rows = [_row(i, plan=new[i] if i < len(new) else "pro") for i in range(100)]

    assert _check(rows, baseline) == [
        {
            "feature_name": "plan",
            "constraint_check_type": "categorical_values_check",
            "description": "Data does not meet domain content requirement. Expected: at most "
            "5.0% of values outside the baseline's 3 categories. Observed: 12.0% (12 of 100 "
            "values) are new categories: 'trial' (7), 'gold' (2), 'vip' (2) and 1 more.",
        }
    ]
    few = [_row(i, plan="trial" if i < 5 else "pro") for i in range(100)]
    assert _check(few, baseline) == []
    assert _check(few, baseline, config=MonitorConfig(max_unseen_share=0.04)) != []


def test_no_categorical_check_when_the_baseline_kept_only_the_top_values() -> None:
    rng = np.random.default_rng(4)
    codes = pa.array([f"code{i}" for i in rng.integers(0, 1500, 20_000)]).dictionary_encode()
    table = pa.table({"code": codes, TARGET: pa.array(["no"] * 20_000)})
    statistics, constraints = build_baseline(
        table, {"code": "categorical"}, TARGET, "classification", 20, 1, 50
    )
    window = pa.table({"code": pa.array(["brand-new"] * 100).dictionary_encode()})

    violations = data_quality(
        ["code"],
        window,
        {"code": 0},
        {"code": "categorical"},
        statistics,
        constraints,
        MonitorConfig(),
    )

    assert violations == []


def test_coerce_window_counts_unparseable_values_per_column() -> None:
    body = json.dumps(  # Python's json writes NaN for a missing float
        [
            {"age": 40.5, "plan": 3, "note": "hi"},
            {"age": float("nan"), "plan": "pro", "note": None},
            {"age": 41, "plan": "basic", "note": "x"},
        ]
    )
    json_rows = parse_rows(body.encode(), JSON, SCHEMA)
    csv_rows = _csv([_row(0, age="1e400"), _row(1, age=" 7 "), _row(2, age="seven")])

    raw = window_table([json_rows, csv_rows])
    canonical, errors = coerce_window(raw, COLUMNS)

    assert raw.num_rows == 6
    assert canonical.schema.field("age").type == pa.float64()
    assert pa.types.is_dictionary(canonical.schema.field("plan").type)
    assert canonical.column("age").to_pylist() == [40.5, None, 41.0, None, 7.0, None]
    assert canonical.column("plan").to_pylist() == ["3", "pro", "basic", "basic", "plus", "pro"]
    # NaN was sent for "missing"; 1e400 overflows and "seven" is not a number.
    assert errors["age"] == 2
    assert errors["plan"] == errors["note"] == 0
    # the JSON request sent no signed_up or customer: null for its rows, not errors
    assert canonical.column("signed_up").null_count == 3 and errors["signed_up"] == 0


def test_window_table_keeps_text_from_csv_and_values_from_json() -> None:
    only_json = parse_rows(b'[{"age": 1, "plan": "a"}, {"age": 2.5, "plan": "b"}]', JSON, SCHEMA)
    only_csv = _csv([_row(0), _row(1)])

    assert window_table([only_json]).schema.field("age").type == pa.float64()
    assert window_table([only_csv]).schema.field("age").type == pa.string()
    both = window_table([only_json, only_csv])
    assert both.column("age").to_pylist() == ["1", "2.5", "30", "31"]
    assert both.column("customer").to_pylist() == [None, None, "w0", "w1"]
