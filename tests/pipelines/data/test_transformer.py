"""The fitted transformer: what each column kind turns into, and that it is reproducible."""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lockgate.pipelines.data import transformer as transformer_module
from lockgate.pipelines.data.columns import Kind, coerce
from lockgate.pipelines.data.reading import read_raw_file
from lockgate.pipelines.data.transformer import TabularTransformer
from lockgate.sample.churn import CHURN_COLUMNS, CHURN_TARGET, generate_churn

# Fits the churn transformer exactly as the in-process test does and prints the pickle's hex.
FIT_SCRIPT = """
import pickle, sys
import pyarrow as pa
from lockgate.pipelines.data.columns import coerce
from lockgate.pipelines.data.transformer import TabularTransformer
from lockgate.sample.churn import CHURN_COLUMNS, CHURN_TARGET, generate_churn

raw = generate_churn(1500, seed=11)
table = pa.table({n: coerce(raw.column(n), k, n, None) for n, k in CHURN_COLUMNS.items()})
fitted = TabularTransformer(CHURN_COLUMNS, CHURN_TARGET, text_max_features=40).fit(table)
fitted.transform(table)  # as preparation does before pickling
sys.stdout.write(pickle.dumps(fitted, protocol=5).hex())
"""


def canonical(raw: pa.Table, kinds: dict[str, str]) -> pa.Table:
    return pa.table(
        {name: coerce(raw.column(name), _kind(kind), name, None) for name, kind in kinds.items()}
    )


def _kind(kind: str) -> Kind:
    assert kind in ("numeric", "categorical", "text", "datetime", "id", "label")
    return kind  # type: ignore[return-value]


def churn_table(rows: int = 1500, seed: int = 11) -> pa.Table:
    return canonical(generate_churn(rows, seed=seed), CHURN_COLUMNS)


def fit(columns: dict[str, str], data: dict[str, list[Any]], **options: Any) -> TabularTransformer:
    return TabularTransformer(columns, "y", **options).fit(canonical(pa.table(data), columns))


def block(fitted: TabularTransformer, matrix: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
    """The matrix's columns whose feature name starts with ``prefix``, by name."""
    names = [str(name) for name in fitted.get_feature_names_out()]
    return {name: matrix[:, i] for i, name in enumerate(names) if name.startswith(prefix)}


# ---------------------------------------------------------------- categorical


def test_unseen_category_goes_to_other_and_null_to_missing() -> None:
    fitted = fit({"plan": "categorical"}, {"plan": ["basic", "pro", "basic", "pro", "basic"]})

    matrix = fitted.transform([{"plan": "pro"}, {"plan": "enterprise"}, {"plan": None}, {}])

    names = list(fitted.get_feature_names_out())
    assert names == ["plan=basic", "plan=pro", "plan=__other__", "plan=__missing__"]
    assert matrix.tolist() == [
        [0, 1, 0, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 1],
        [0, 0, 0, 1],
    ]


def test_rare_categories_are_grouped_into_other() -> None:
    values = ["common"] * 90 + ["usual"] * 8 + ["rare"] * 2
    fitted = fit({"c": "categorical"}, {"c": values}, rare_min_frequency=0.05)

    matrix = fitted.transform({"c": ["common", "usual", "rare"]})

    assert list(fitted.get_feature_names_out()) == [
        "c=common",
        "c=usual",
        "c=__other__",
        "c=__missing__",
    ]
    assert matrix[2].tolist() == [0, 0, 1, 0]


def test_max_categories_caps_the_width_keeping_the_most_frequent() -> None:
    values = [f"v{i}" for i in range(30) for _ in range(30 - i)]  # v0 most frequent
    fitted = fit({"c": "categorical"}, {"c": values}, max_categories=5, rare_min_frequency=0.0)

    names = list(fitted.get_feature_names_out())
    matrix = fitted.transform({"c": ["v0", "v4", "v5", "v29"]})

    assert len(names) == 5 + 2
    assert names[:5] == ["c=v0", "c=v1", "c=v2", "c=v3", "c=v4"]
    assert matrix[:, names.index("c=__other__")].tolist() == [0, 0, 1, 1]
    assert (matrix.sum(axis=1) == 1).all()  # exactly one hot per row


def test_categorical_values_sent_as_numbers_match_training_strings() -> None:
    fitted = fit({"code": "categorical"}, {"code": ["7", "8", "7", "9"]})

    matrix = fitted.transform(pd.DataFrame({"code": [7, 8, 9]}))

    assert matrix[:, :3].tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


# ---------------------------------------------------------------- numeric


def test_numeric_is_imputed_with_the_training_median_and_standardised() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 100.0, None, 2.5, None]
    fitted = fit({"x": "numeric"}, {"x": values})

    train = fitted.transform({"x": values})
    served = fitted.transform([{"x": "2.75"}, {"x": None}, {"x": "not a number"}])

    assert list(fitted.get_feature_names_out()) == ["x", "x__missing"]
    assert train[:, 0].mean() == pytest.approx(0.0, abs=1e-6)
    assert train[:, 0].std() == pytest.approx(1.0, abs=1e-6)
    # the median of the present values is 2.75: a null looks like 2.75 plus the indicator
    assert served[1, 0] == served[0, 0] == served[2, 0]
    assert served[:, 1].tolist() == [0, 1, 1]
    assert train[:, 1].tolist() == [0, 0, 0, 0, 0, 1, 0, 1]


@pytest.mark.parametrize(
    "shape",
    [
        "list of dicts",
        pytest.param("dict of lists"),
        pytest.param("pandas"),
    ],
)
def test_columns_mixing_numbers_and_strings_are_transformed(shape: str) -> None:
    fitted = fit({"x": "numeric", "c": "categorical"}, {"x": [1.0, 2.0, 3.0], "c": ["1", "a", "a"]})
    rows: list[dict[str, Any]] = [
        {"x": 2.0, "c": 1},
        {"x": "n/a", "c": "a"},
        {"x": "3", "c": None},
    ]
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    given: Any = {"list of dicts": rows, "dict of lists": columns, "pandas": pd.DataFrame(columns)}

    matrix = fitted.transform(given[shape])

    features = [dict(zip(fitted.get_feature_names_out(), row, strict=True)) for row in matrix]
    assert features[1]["x"] == features[0]["x"]  # unparseable -> missing -> median 2.0
    assert features[2]["x"] > features[0]["x"]
    assert [row["c=1"] for row in features] == [1.0, 0.0, 0.0]


def test_no_missing_indicator_when_training_had_no_nulls() -> None:
    fitted = fit({"x": "numeric"}, {"x": [1.0, 2.0, 3.0]})

    matrix = fitted.transform({"x": [None, 2.0]})

    assert list(fitted.get_feature_names_out()) == ["x"]
    assert matrix.shape == (2, 1)
    assert matrix[0, 0] == matrix[1, 0]  # a null is imputed as the median, 2.0


def test_constant_numeric_column_does_not_divide_by_zero() -> None:
    fitted = fit({"x": "numeric"}, {"x": [5.0, 5.0, 5.0]})

    matrix = fitted.transform({"x": [5.0, 6.0]})

    assert np.isfinite(matrix).all()
    assert matrix[:, 0].tolist() == [0.0, 1.0]


def test_an_infinite_value_does_not_poison_the_whole_feature(tmp_path: Path) -> None:
    path = tmp_path / "inf.csv"
    path.write_text("x\n" + "\n".join([*map(str, range(200)), "inf"]) + "\n")
    raw, _ = read_raw_file(path, {"x": None}, 0.01)
    table = pa.table({"x": coerce(raw.column("x"), "numeric", "x", 0.01)})

    fitted = TabularTransformer({"x": "numeric"}, "y").fit(table)

    assert np.isfinite(fitted.transform(table)).all()


# ---------------------------------------------------------------- text


def test_text_width_never_exceeds_text_max_features() -> None:
    table = churn_table(800)

    fitted = TabularTransformer({"last_ticket_text": "text"}, "y", text_max_features=7).fit(table)
    matrix = fitted.transform(table)

    names = list(fitted.get_feature_names_out())
    assert len(names) == 7
    assert all(name.startswith("last_ticket_text~") for name in names)
    assert matrix.shape == (800, 7)
    assert matrix.any()


@pytest.mark.parametrize(
    "values",
    [[None, None, None], ["", " ", "!"], ["a", "-", "?"]],
    ids=["all-null", "blank", "no-words"],
)
def test_text_without_words_gives_zero_width_without_error(values: list[str | None]) -> None:
    fitted = fit({"note": "text", "x": "numeric"}, {"note": values, "x": [1.0, 2.0, 3.0]})

    matrix = fitted.transform([{"note": "now some words", "x": 1.0}])

    assert list(fitted.get_feature_names_out()) == ["x"]
    assert matrix.shape == (1, 1)


def test_text_vocabulary_fitted_on_a_seeded_sample_is_reproducible() -> None:
    table = churn_table(1500)
    options = {"text_max_features": 30, "text_fit_rows": 200}

    one = TabularTransformer({"last_ticket_text": "text"}, "y", seed=1, **options).fit(table)
    same = TabularTransformer({"last_ticket_text": "text"}, "y", seed=1, **options).fit(table)

    assert list(one.get_feature_names_out()) == list(same.get_feature_names_out())
    assert np.array_equal(one.transform(table), same.transform(table))


# ---------------------------------------------------------------- datetime


def test_datetime_parts_of_a_known_date() -> None:
    fitted = fit({"at": "datetime"}, {"at": ["2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z", None]})
    when = datetime(2026, 3, 15, 6, 0, tzinfo=UTC)  # a Sunday

    matrix = fitted.transform([{"at": "2026-03-15T07:00:00+01:00"}, {"at": None}])
    parts = {name.split("__")[1]: column for name, column in block(fitted, matrix, "at").items()}

    assert list(parts) == [
        "days",
        "month_sin",
        "month_cos",
        "weekday_sin",
        "weekday_cos",
        "hour_sin",
        "hour_cos",
        "missing",
    ]
    expected = {
        "month_sin": math.sin(2 * math.pi * when.month / 12),
        "month_cos": math.cos(2 * math.pi * when.month / 12),
        "weekday_sin": math.sin(2 * math.pi * when.weekday() / 7),
        "weekday_cos": math.cos(2 * math.pi * when.weekday() / 7),
        "hour_sin": math.sin(2 * math.pi * when.hour / 24),
        "hour_cos": math.cos(2 * math.pi * when.hour / 24),
    }
    for part, value in expected.items():
        assert parts[part][0] == pytest.approx(value, abs=1e-6), part
        assert parts[part][1] == 0.0, part
    assert parts["missing"].tolist() == [0.0, 1.0]
    # training dates: 2025-01-01 and 2026-01-01 (the null is imputed with their median)
    days = (when - datetime(2025, 7, 2, 12, tzinfo=UTC)).total_seconds() / 86_400
    assert parts["days"][0] == pytest.approx(days / (365 / 2 * math.sqrt(2 / 3)), rel=1e-5)


def test_dates_in_different_zones_for_the_same_instant_give_the_same_features() -> None:
    fitted = fit({"at": "datetime"}, {"at": ["2025-01-01", "2025-06-01"]})

    matrix = fitted.transform(
        {"at": ["2025-03-01T23:30:00Z", "2025-03-02T01:30:00+02:00", "2025-03-01T18:30:00-05:00"]}
    )

    assert np.array_equal(matrix[0], matrix[1])
    assert np.array_equal(matrix[0], matrix[2])


# ---------------------------------------------------------------- input shapes


def test_every_input_shape_gives_the_same_matrix() -> None:
    fitted = TabularTransformer(CHURN_COLUMNS, CHURN_TARGET, text_max_features=16).fit(
        churn_table(600)
    )
    raw = generate_churn(25, seed=99).drop_columns([CHURN_TARGET])
    rows = [
        {
            key: (value.isoformat() if isinstance(value, datetime) else value)
            for key, value in r.items()
        }
        for r in raw.to_pylist()
    ]
    columns = {name: [row[name] for row in rows] for name in rows[0]}

    shapes: dict[str, Any] = {
        "arrow": raw,
        "list of dicts": rows,
        "dict of lists": columns,
        "pandas": pd.DataFrame(columns),
    }
    matrices = {name: fitted.transform(value) for name, value in shapes.items()}

    expected = matrices["arrow"]
    assert expected.shape == (25, fitted.n_features_out_)
    assert expected.dtype == np.float32
    for name, matrix in matrices.items():
        assert np.array_equal(matrix, expected), name


def test_missing_columns_at_transform_time_count_as_missing_values() -> None:
    fitted = fit(
        {"x": "numeric", "c": "categorical", "at": "datetime"},
        {"x": [1.0, None, 3.0], "c": ["a", "b", "a"], "at": ["2025-01-01", None, "2025-02-01"]},
    )

    matrix = fitted.transform([{"unrelated": 1}])

    features = dict(zip(fitted.get_feature_names_out(), matrix[0], strict=True))
    assert features["x__missing"] == 1.0
    assert features["c=__missing__"] == 1.0
    assert features["at__missing"] == 1.0


def test_feature_names_match_the_matrix_width_and_leave_out_ids() -> None:
    table = churn_table(600)
    fitted = TabularTransformer(CHURN_COLUMNS, CHURN_TARGET, text_max_features=16).fit(table)

    names = [str(name) for name in fitted.get_feature_names_out()]
    matrix = fitted.transform(table)

    assert len(names) == matrix.shape[1] == fitted.n_features_out_
    assert len(set(names)) == len(names)
    assert not any(name.startswith("customer_id") for name in names)
    assert np.isfinite(matrix).all()


def test_features_do_not_depend_on_how_rows_are_chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    table = churn_table(600)
    fitted = TabularTransformer(CHURN_COLUMNS, CHURN_TARGET, text_max_features=16).fit(table)
    whole = fitted.transform(table)

    monkeypatch.setattr(transformer_module, "TRANSFORM_CHUNK", 37)

    assert np.array_equal(fitted.transform(table), whole)


# ---------------------------------------------------------------- pickling


def test_pickle_round_trip_gives_identical_features() -> None:
    table = churn_table(600)
    fitted = TabularTransformer(CHURN_COLUMNS, CHURN_TARGET, text_max_features=16).fit(table)

    loaded = pickle.loads(pickle.dumps(fitted, protocol=5))  # noqa: S301 - our own bytes

    assert np.array_equal(loaded.transform(table), fitted.transform(table))
    assert list(loaded.get_feature_names_out()) == list(fitted.get_feature_names_out())


def test_two_fits_pickle_to_identical_bytes_across_processes() -> None:
    table = churn_table(1500, seed=11)
    fitted = TabularTransformer(CHURN_COLUMNS, CHURN_TARGET, text_max_features=40).fit(table)
    fitted.transform(table)  # as preparation does before pickling
    here = pickle.dumps(fitted, protocol=5)
    hash_seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"

    result = subprocess.run(
        [sys.executable, "-c", FIT_SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
    )

    assert bytes.fromhex(result.stdout) == here


# ---------------------------------------------------------------- labels


def test_classification_labels_sort_numbers_numerically() -> None:
    fitted = TabularTransformer({"x": "numeric"}, "y", task="classification")
    target = pa.chunked_array([pa.array(["10", "2", "1", "2", "10", None])])

    y = fitted.fit_target(target.drop_null())

    assert fitted.classes_ == ["1", "2", "10"]
    assert y.dtype == np.int64
    assert y.tolist() == [2, 1, 0, 1, 2]


def test_numeric_labels_sort_before_word_labels() -> None:
    fitted = TabularTransformer({"x": "numeric"}, "y")

    fitted.fit_target(pa.chunked_array([pa.array(["yes", "no", "3", "maybe"])]))

    assert fitted.classes_ == ["3", "maybe", "no", "yes"]


def test_unseen_label_raises_value_error_naming_it() -> None:
    fitted = TabularTransformer({"x": "numeric"}, "y")
    fitted.fit_target(pa.chunked_array([pa.array(["churn", "stay"])]))

    with pytest.raises(ValueError, match="'cancelled'"):
        fitted.transform_target(pa.chunked_array([pa.array(["stay", "cancelled"])]))


def test_regression_target_is_float32() -> None:
    fitted = TabularTransformer({"x": "numeric"}, "y", task="regression")

    y = fitted.fit_target(pa.chunked_array([pa.array([1.5, 2.25, -3.0])]))

    assert y.dtype == np.float32
    assert y.tolist() == [1.5, 2.25, -3.0]


def test_a_category_written_as_a_huge_float_is_kept_as_text() -> None:
    from lockgate.pipelines.data.columns import coerce

    column = coerce(pa.array([1e39, 2.0, 3.0]), "categorical", "plan", None)
    assert column.to_pylist() == ["1e+39", "2", "3"]
    assert coerce(pa.array([2.0, 3.0]), "categorical", "plan", None).to_pylist() == ["2", "3"]
