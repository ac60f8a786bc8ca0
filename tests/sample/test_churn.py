"""Tests for the seeded churn data generator."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest
from scipy.stats import ks_2samp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from lockgate.sample.churn import (
    CHURN_COLUMNS,
    CHURN_TARGET,
    generate_churn,
    write_churn_csv,
)


def _numpy(table: pa.Table, column: str) -> npt.NDArray[np.float64]:
    return np.asarray(table[column].to_numpy(zero_copy_only=False), dtype=np.float64)


def _share(table: pa.Table, column: str, value: str) -> float:
    return float(pc.mean(pc.equal(table[column], value).cast(pa.float64())).as_py())


def _features(table: pa.Table) -> npt.NDArray[np.float64]:
    """A few numeric columns plus one-hot contract and payment method."""
    charges = np.nan_to_num(_numpy(table, "monthly_charges"), nan=60.0)
    columns = [_numpy(table, "tenure_months"), charges, _numpy(table, "support_calls")]
    for column, values in (
        ("contract", ("month-to-month", "one-year", "two-year")),
        ("payment_method", ("credit-card", "bank-transfer", "electronic-check")),
    ):
        labels = np.asarray(table[column].to_numpy(zero_copy_only=False))
        columns.extend((labels == value).astype(np.float64) for value in values)
    return np.column_stack(columns)


def test_same_arguments_write_identical_bytes(tmp_path: Path) -> None:
    for gzip in (False, True):
        first = write_churn_csv(tmp_path / f"a{gzip}.csv", 2_000, seed=3, shift=0.4, gzip=gzip)
        second = write_churn_csv(tmp_path / f"b{gzip}.csv", 2_000, seed=3, shift=0.4, gzip=gzip)
        assert first.read_bytes() == second.read_bytes()


def test_different_seeds_give_different_data_and_disjoint_ids() -> None:
    first = generate_churn(1_000, seed=1)
    second = generate_churn(1_000, seed=2)

    assert not first.equals(second)
    assert not first["monthly_charges"].equals(second["monthly_charges"])
    ids = set(first["customer_id"].to_pylist()) | set(second["customer_id"].to_pylist())
    assert len(ids) == 2_000


def test_columns_have_the_kinds_churn_columns_declares() -> None:
    table = generate_churn(5_000)

    assert table.column_names == [*CHURN_COLUMNS, CHURN_TARGET]
    for name, kind in CHURN_COLUMNS.items():
        column = table[name]
        if kind == "id":
            assert pa.types.is_string(column.type)
            assert pc.count_distinct(column).as_py() == len(table)
        elif kind == "datetime":
            assert column.type == pa.timestamp("s", tz="UTC")
        elif kind == "numeric":
            assert pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
        elif kind == "categorical":
            assert pa.types.is_string(column.type)
            assert 3 <= pc.count_distinct(column).as_py() <= 8
        elif kind == "text":
            assert pa.types.is_string(column.type)
            assert pc.count_distinct(column).as_py() > 100
        else:
            pytest.fail(f"unknown kind {kind!r} for {name}")
    assert set(table[CHURN_TARGET].unique().to_pylist()) == {0, 1}


def test_categories_have_the_documented_values() -> None:
    table = generate_churn(20_000)

    assert set(table["plan"].unique().to_pylist()) == {"basic", "standard", "premium", "family"}
    assert set(table["contract"].unique().to_pylist()) == {
        "month-to-month",
        "one-year",
        "two-year",
    }
    assert pc.count_distinct(table["region"]).as_py() == 8
    assert 0.002 < _share(table, "payment_method", "mailed-check") < 0.01


def test_signups_lie_in_the_three_years_before_start() -> None:
    start = datetime(2024, 6, 1)  # naive: taken as UTC
    table = generate_churn(5_000, start=start)

    signups = table["signup_date"]
    assert pc.max(signups).as_py() <= start.replace(tzinfo=UTC)
    assert pc.min(signups).as_py() >= start.replace(tzinfo=UTC) - timedelta(days=3 * 365)
    assert pc.min(table["tenure_months"]).as_py() == 0
    assert pc.max(table["tenure_months"]).as_py() == 35
    assert pc.max(generate_churn(100)["signup_date"]).as_py() < datetime(2026, 1, 1, tzinfo=UTC)


def test_customer_ids_follow_signup_order() -> None:
    table = generate_churn(1_000, seed=12).sort_by("signup_date")

    ids = table["customer_id"].to_pylist()
    assert ids[0] == "C12-0000001"
    assert ids == sorted(ids)


def test_about_two_percent_of_monthly_charges_are_missing() -> None:
    table = generate_churn(20_000)

    share = table["monthly_charges"].null_count / len(table)
    assert 0.015 < share < 0.025
    for name in CHURN_COLUMNS:
        if name not in ("monthly_charges", "last_ticket_text"):
            assert table[name].null_count == 0, name


def test_tickets_are_missing_exactly_for_customers_without_support_calls() -> None:
    table = generate_churn(5_000)

    no_calls = pc.equal(table["support_calls"], 0)
    assert pc.is_null(table["last_ticket_text"]).equals(no_calls)
    assert 0 < pc.sum(no_calls).as_py() < len(table) / 2


def test_churn_rate_is_between_twenty_and_thirty_percent() -> None:
    for seed in (1, 7, 42):
        rate = _numpy(generate_churn(10_000, seed=seed), CHURN_TARGET).mean()
        assert 0.2 <= rate <= 0.3, (seed, rate)


def test_complaint_words_raise_churn() -> None:
    table = generate_churn(50_000)
    churned = _numpy(table, CHURN_TARGET)
    text = pc.fill_null(table["last_ticket_text"], "")

    cancel = pc.match_substring(text, "cancel").to_numpy(zero_copy_only=False)
    calm = pc.match_substring_regex(text, "password|address|thanks").to_numpy(zero_copy_only=False)
    assert churned[cancel].mean() > churned[calm].mean() + 0.15


def test_a_logistic_regression_learns_the_target() -> None:
    train = generate_churn(10_000, seed=1)
    test = generate_churn(5_000, seed=2)

    model = LogisticRegression(max_iter=2_000).fit(_features(train), _numpy(train, CHURN_TARGET))
    scores = model.predict_proba(_features(test))[:, 1]
    assert roc_auc_score(_numpy(test, CHURN_TARGET), scores) > 0.7


def test_shift_moves_numeric_distributions_and_another_seed_does_not() -> None:
    baseline = generate_churn(5_000, seed=7)
    drifted = generate_churn(5_000, seed=7, shift=1.0)
    other_seed = generate_churn(5_000, seed=8)

    def charges(table: pa.Table) -> npt.NDArray[np.float64]:
        values = _numpy(table, "monthly_charges")
        return values[~np.isnan(values)]

    assert ks_2samp(charges(baseline), charges(drifted)).pvalue < 1e-6
    assert ks_2samp(charges(baseline), charges(other_seed)).pvalue > 0.01
    assert charges(drifted).mean() > charges(baseline).mean() + 10
    assert _numpy(drifted, "support_calls").mean() > _numpy(baseline, "support_calls").mean()
    assert _numpy(drifted, "tenure_months").mean() < _numpy(baseline, "tenure_months").mean()


def test_shift_changes_category_and_topic_mix() -> None:
    baseline = generate_churn(5_000)
    drifted = generate_churn(5_000, shift=1.0)

    m2m = "month-to-month"
    assert _share(drifted, "contract", m2m) > _share(baseline, "contract", m2m) + 0.15
    assert _share(drifted, "region", "desert") > 4 * _share(baseline, "region", "desert")

    def outage_share(table: pa.Table) -> float:
        text = table["last_ticket_text"].drop_null()
        is_outage = pc.match_substring_regex(text, "outage|service")
        return float(pc.mean(is_outage.cast(pa.float64())).as_py())

    assert outage_share(drifted) > outage_share(baseline) + 0.1


def test_shift_makes_customers_more_price_sensitive() -> None:
    def price_coefficient(shift: float) -> float:
        table = generate_churn(30_000, seed=5, shift=shift)
        features = _features(table)
        scaled = (features - features.mean(axis=0)) / features.std(axis=0)
        model = LogisticRegression(max_iter=2_000).fit(scaled, _numpy(table, CHURN_TARGET))
        return float(model.coef_[0][1] / features[:, 1].std())

    assert price_coefficient(1.0) > price_coefficient(0.0) + 0.01


@pytest.mark.parametrize(
    ("rows", "seed", "shift", "message"),
    [
        (0, 7, 0.0, "rows"),
        (-5, 7, 0.0, "rows"),
        (10, -1, 0.0, "seed"),
        (10, 7, -0.1, "shift"),
        (10, 7, 1.5, "shift"),
        (10, 7, math.nan, "shift"),
    ],
)
def test_invalid_arguments_raise_value_error(
    rows: int, seed: int, shift: float, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        generate_churn(rows, seed=seed, shift=shift)
    with pytest.raises(ValueError, match=message):
        write_churn_csv(tmp_path / "bad.csv", rows, seed=seed, shift=shift)
    assert not (tmp_path / "bad.csv").exists()


def test_gzip_csv_reads_back_to_the_generated_table(tmp_path: Path) -> None:
    path = write_churn_csv(tmp_path / "nested" / "churn.csv.gz", 3_000, seed=4, gzip=True)

    assert path == tmp_path / "nested" / "churn.csv.gz"
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    read_back = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    assert read_back.equals(generate_churn(3_000, seed=4))
