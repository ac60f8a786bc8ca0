"""The seeded split, the safetensors files trainers read, and the monitoring baseline."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

from lockgate.pipelines.data.baseline import build_baseline
from lockgate.pipelines.data.columns import Kind, coerce
from lockgate.pipelines.data.split import SPLITS, split_indices
from lockgate.pipelines.data.tensors import write_safetensors
from lockgate.sample.churn import CHURN_COLUMNS, CHURN_TARGET, generate_churn

# ---------------------------------------------------------------- split


@pytest.mark.parametrize("n_rows", [1000, 997, 20])
def test_split_sizes_match_the_fractions(n_rows: int) -> None:
    splits = split_indices(n_rows, 0.2, 0.1, seed=42)

    assert len(splits["test"]) == round(n_rows * 0.1)
    assert len(splits["validation"]) == round(n_rows * 0.2)
    assert len(splits["train"]) == n_rows - round(n_rows * 0.1) - round(n_rows * 0.2)


@pytest.mark.parametrize("stratified", [False, True])
def test_splits_are_disjoint_sorted_and_cover_every_row(stratified: bool) -> None:
    strata = np.arange(1000) % 3 if stratified else None

    splits = split_indices(1000, 0.15, 0.15, seed=7, strata=strata)

    together = np.concatenate([splits[name] for name in SPLITS])
    assert sorted(together.tolist()) == list(range(1000))
    for name in SPLITS:
        assert np.array_equal(splits[name], np.sort(splits[name]))


def test_same_seed_gives_the_same_split_and_another_seed_a_different_one() -> None:
    first = split_indices(500, 0.15, 0.15, seed=3)
    again = split_indices(500, 0.15, 0.15, seed=3)
    other = split_indices(500, 0.15, 0.15, seed=4)

    for name in SPLITS:
        assert np.array_equal(first[name], again[name])
    assert not np.array_equal(first["test"], other["test"])
    assert not np.array_equal(first["train"], other["train"])


def test_stratified_split_keeps_a_ten_percent_minority_in_proportion() -> None:
    rng = np.random.default_rng(0)
    strata = (rng.permutation(2000) < 200).astype(np.int64)  # 10% class 1, shuffled

    splits = split_indices(2000, 0.15, 0.15, seed=9, strata=strata)

    overall = strata.mean()
    for name in SPLITS:
        share = strata[splits[name]].mean()
        assert abs(share - overall) <= 0.01, (name, share)
    assert strata[splits["test"]].sum() == 30


def test_stratified_split_still_matches_the_fractions() -> None:
    strata = np.repeat([0, 1, 2], [700, 200, 100])

    splits = split_indices(1000, 0.15, 0.15, seed=1, strata=strata)

    assert {name: len(rows) for name, rows in splits.items()} == {
        "train": 700,
        "validation": 150,
        "test": 150,
    }


def test_split_of_no_rows_is_three_empty_splits() -> None:
    splits = split_indices(0, 0.15, 0.15, seed=1, strata=np.empty(0, dtype=np.int64))

    assert all(len(splits[name]) == 0 for name in SPLITS)


# ---------------------------------------------------------------- tensors


@pytest.mark.parametrize("y_dtype", [np.int64, np.float32], ids=["classes", "regression"])
def test_safetensors_load_back_to_the_same_arrays(tmp_path: Path, y_dtype: type) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(123, 17)).astype(np.float32)
    y = (rng.integers(0, 3, 123) if y_dtype is np.int64 else rng.normal(size=123)).astype(y_dtype)
    path = tmp_path / "train.safetensors"

    write_safetensors(path, {"X": x, "y": y})
    loaded = load_file(str(path))

    assert set(loaded) == {"X", "y"}
    assert loaded["X"].dtype == np.float32
    assert loaded["y"].dtype == np.dtype(y_dtype)
    assert np.array_equal(loaded["X"], x)
    assert np.array_equal(loaded["y"], y)


def test_non_contiguous_arrays_are_written_as_their_values(tmp_path: Path) -> None:
    base = np.arange(60, dtype=np.float32).reshape(6, 10)
    path = tmp_path / "views.safetensors"

    write_safetensors(path, {"X": base[:, ::3], "y": np.asfortranarray(base[:3, :4])})
    loaded = load_file(str(path))

    assert np.array_equal(loaded["X"], base[:, ::3])
    assert np.array_equal(loaded["y"], base[:3, :4])


def test_safetensors_metadata_is_preserved(tmp_path: Path) -> None:
    path = tmp_path / "validation.safetensors"
    metadata = {"dataset": "churn", "version": "dv-0123456789abcdef", "split": "validation"}

    write_safetensors(path, {"X": np.ones((2, 2), np.float32)}, metadata)

    with safe_open(str(path), "np") as handle:
        assert handle.metadata() == metadata


def test_returned_sha256_is_the_files_sha256(tmp_path: Path) -> None:
    path = tmp_path / "test.safetensors"
    x = np.random.default_rng(1).normal(size=(50, 8)).astype(np.float32)

    digest = write_safetensors(path, {"X": x, "y": np.arange(50, dtype=np.int64)}, {"k": "v"})

    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_tensors_give_the_same_bytes(tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(size=(20, 3)).astype(np.float32)
    y = np.arange(20, dtype=np.int64)

    first = write_safetensors(tmp_path / "a.safetensors", {"X": x, "y": y}, {"split": "train"})
    second = write_safetensors(tmp_path / "b.safetensors", {"y": y, "X": x}, {"split": "train"})

    assert first == second


def test_zero_row_tensors_are_written_and_load(tmp_path: Path) -> None:
    path = tmp_path / "empty.safetensors"

    digest = write_safetensors(
        path, {"X": np.zeros((0, 9), np.float32), "y": np.zeros(0, np.int64)}, {"split": "test"}
    )
    loaded = load_file(str(path))

    assert loaded["X"].shape == (0, 9)
    assert loaded["X"].dtype == np.float32
    assert loaded["y"].shape == (0,)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_unsupported_dtype_is_refused_with_the_tensor_name(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="'mask'"):
        write_safetensors(tmp_path / "x.safetensors", {"mask": np.zeros(3, dtype=bool)})


# ---------------------------------------------------------------- baseline


@pytest.fixture(scope="module")
def churn_baseline() -> tuple[pa.Table, dict[str, Any], dict[str, Any]]:
    raw = generate_churn(1200, seed=5)
    kinds: dict[str, Kind] = {name: _kind(kind) for name, kind in CHURN_COLUMNS.items()}
    kinds[CHURN_TARGET] = "label"
    table = pa.table({name: coerce(raw.column(name), k, name, None) for name, k in kinds.items()})
    statistics, constraints = build_baseline(
        table, dict(CHURN_COLUMNS), CHURN_TARGET, "classification", 20, 42, 50
    )
    # what monitoring reads is the JSON file, so check the documents survive it
    return table, json.loads(json.dumps(statistics)), json.loads(json.dumps(constraints))


def _kind(kind: str) -> Kind:
    assert kind in ("numeric", "categorical", "text", "datetime", "id", "label")
    return kind  # type: ignore[return-value]


def _features(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {feature["name"]: feature for feature in document["features"]}


def _common(feature: dict[str, Any]) -> dict[str, int]:
    section = feature.get("numerical_statistics") or feature["string_statistics"]
    common: dict[str, int] = section["common"]
    return common


def test_statistics_count_items_and_present_and_missing_values(
    churn_baseline: tuple[pa.Table, dict[str, Any], dict[str, Any]],
) -> None:
    table, statistics, _ = churn_baseline
    features = _features(statistics)

    assert statistics["dataset"]["item_count"] == 1200
    assert "customer_id" not in features  # ids are not features
    assert set(features) == set(CHURN_COLUMNS) - {"customer_id"} | {CHURN_TARGET}
    for name, feature in features.items():
        column = table.column(name)
        assert _common(feature) == {
            "num_present": 1200 - column.null_count,
            "num_missing": column.null_count,
        }, name
    assert _common(features["monthly_charges"])["num_missing"] > 0  # ~2% null in the sample


@pytest.mark.parametrize("name", ["tenure_months", "monthly_charges", "signup_date"])
def test_numeric_histogram_counts_sum_to_present_and_quantiles_rise(
    churn_baseline: tuple[pa.Table, dict[str, Any], dict[str, Any]], name: str
) -> None:
    _, statistics, _ = churn_baseline
    numeric = _features(statistics)[name]["numerical_statistics"]

    buckets = numeric["distribution"]["histogram"]["buckets"]
    quantiles = numeric["distribution"]["quantiles"]
    assert len(buckets) == 20
    assert sum(bucket["count"] for bucket in buckets) == numeric["common"]["num_present"]
    assert buckets[0]["lower_bound"] == numeric["min"]
    assert buckets[-1]["upper_bound"] == numeric["max"]
    values = quantiles["values"]
    assert len(values) == len(quantiles["q"]) == 101
    assert all(low <= high for low, high in itertools.pairwise(values))
    assert values[0] == numeric["min"]
    assert values[-1] == numeric["max"]


def test_monthly_charges_summary_matches_the_data(
    churn_baseline: tuple[pa.Table, dict[str, Any], dict[str, Any]],
) -> None:
    table, statistics, _ = churn_baseline
    present = np.array(table.column("monthly_charges").drop_null().to_pylist())

    numeric = _features(statistics)["monthly_charges"]["numerical_statistics"]

    assert numeric["mean"] == pytest.approx(present.mean())
    assert numeric["std_dev"] == pytest.approx(present.std())
    assert numeric["min"] == present.min()
    assert numeric["max"] == present.max()


@pytest.mark.parametrize("name", ["plan", "region", "contract", CHURN_TARGET])
def test_categorical_bucket_counts_sum_to_present(
    churn_baseline: tuple[pa.Table, dict[str, Any], dict[str, Any]], name: str
) -> None:
    table, statistics, _ = churn_baseline
    strings = _features(statistics)[name]["string_statistics"]

    categorical = strings["distribution"]["categorical"]
    counts = [bucket["count"] for bucket in categorical["buckets"]]
    assert sum(counts) + categorical["other_count"] == strings["common"]["num_present"]
    assert counts == sorted(counts, reverse=True)
    assert strings["distinct_count"] == len(table.column(name).unique().drop_null())


def test_text_statistics_describe_lengths(
    churn_baseline: tuple[pa.Table, dict[str, Any], dict[str, Any]],
) -> None:
    _, statistics, _ = churn_baseline
    text = _features(statistics)["last_ticket_text"]

    assert text["lockgate_kind"] == "text"
    length = text["string_statistics"]["length"]
    buckets = length["distribution"]["histogram"]["buckets"]
    assert sum(b["count"] for b in buckets) == text["string_statistics"]["common"]["num_present"]
    assert length["min"] > 0


def test_constraints_hold_completeness_and_categorical_domains(
    churn_baseline: tuple[pa.Table, dict[str, Any], dict[str, Any]],
) -> None:
    table, _, constraints = churn_baseline
    features = _features(constraints)

    for name, constraint in features.items():
        column = table.column(name)
        assert constraint["completeness"] == pytest.approx(1 - column.null_count / 1200), name
    assert features["plan"]["string_constraints"]["domains"] == [
        "basic",
        "family",
        "premium",
        "standard",
    ]
    assert features["contract"]["string_constraints"]["domains"] == sorted(
        table.column("contract").unique().to_pylist()
    )
    assert features["tenure_months"]["num_constraints"] == {"is_non_negative": True}
    assert "string_constraints" not in features["last_ticket_text"]


def test_target_is_flagged_and_left_out_of_constraints(
    churn_baseline: tuple[pa.Table, dict[str, Any], dict[str, Any]],
) -> None:
    _, statistics, constraints = churn_baseline

    flagged = [f["name"] for f in statistics["features"] if f["is_target"]]

    assert flagged == [CHURN_TARGET]
    assert CHURN_TARGET not in _features(constraints)
    assert set(_features(constraints)) == set(CHURN_COLUMNS) - {"customer_id"}


def test_a_categorical_with_more_values_than_the_domain_limit_has_no_domain() -> None:
    table = pa.table(
        {"code": pa.array([f"v{i % 30}" for i in range(300)]), "y": pa.array([1.0] * 300)}
    )

    _, constraints = build_baseline(table, {"code": "categorical"}, "y", "regression", 10, 1, 20)

    assert "string_constraints" not in _features(constraints)["code"]


def test_regression_target_gets_numeric_statistics() -> None:
    table = pa.table({"x": pa.array([1.0, 2.0, None]), "y": pa.array([0.5, 1.5, 2.5])})

    statistics, _ = build_baseline(table, {"x": "numeric"}, "y", "regression", 4, 1, 10)

    target = _features(statistics)["y"]
    assert target["is_target"] is True
    assert target["numerical_statistics"]["mean"] == pytest.approx(1.5)


def test_baseline_is_the_same_for_the_same_rows(
    churn_baseline: tuple[pa.Table, dict[str, Any], dict[str, Any]],
) -> None:
    table, statistics, constraints = churn_baseline

    again = build_baseline(table, dict(CHURN_COLUMNS), CHURN_TARGET, "classification", 20, 42, 50)

    assert json.loads(json.dumps(again[0])) == statistics
    assert json.loads(json.dumps(again[1])) == constraints
