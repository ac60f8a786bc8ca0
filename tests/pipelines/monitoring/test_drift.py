"""Data drift against real baselines, on constructed data whose answer is known."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial import distance

from lockgate.config import DriftConfig
from lockgate.pipelines.data.baseline import build_baseline
from lockgate.pipelines.data.transformer import MICROS_PER_DAY
from lockgate.pipelines.monitoring.drift import (
    OTHER,
    DatasetDrift,
    FeatureDrift,
    benjamini_hochberg,
    data_drift,
)

Sampler = Callable[[np.random.Generator, int], np.ndarray]
# Twenty numeric features of different shapes: symmetric, skewed, heavy-tailed, bounded, and
# discrete ones (counts, a flag), whose quantile sketch has repeated values.
SHAPES: dict[str, Sampler] = {
    "normal": lambda rng, n: rng.normal(50.0, 10.0, n),
    "lognormal": lambda rng, n: rng.lognormal(3.0, 0.8, n),
    "uniform": lambda rng, n: rng.uniform(-1.0, 1.0, n),
    "exponential": lambda rng, n: rng.exponential(2.0, n),
    "student_t3": lambda rng, n: rng.standard_t(3, n),
    "gamma": lambda rng, n: rng.gamma(2.0, 3.0, n),
    "beta": lambda rng, n: rng.beta(2.0, 5.0, n),
    "bimodal": lambda rng, n: np.where(
        rng.random(n) < 0.4, rng.normal(-2, 1, n), rng.normal(3, 1, n)
    ),
    "poisson3": lambda rng, n: rng.poisson(3.0, n).astype(np.float64),
    "flag": lambda rng, n: (rng.random(n) < 0.3).astype(np.float64),
}
NUMERIC = {f"{shape}_{i}": shape for i in range(2) for shape in SHAPES}
COLUMNS = {name: "numeric" for name in NUMERIC}
CONTINUOUS = [name for name, shape in NUMERIC.items() if shape not in ("poisson3", "flag")]


def _numeric_table(
    rng: np.random.Generator, n: int, shift: dict[str, float] | None = None
) -> pa.Table:
    """The twenty numeric features, ``shift`` adding that many of a feature's std devs."""
    columns: dict[str, Any] = {}
    for name, shape in NUMERIC.items():
        values = SHAPES[shape](rng, n)
        if shift and name in shift:
            values = values + shift[name] * values.std()
        columns[name] = values
    columns["y"] = pa.array(np.where(rng.random(n) < 0.5, "yes", "no"))
    return pa.table(columns)


def _baseline(table: pa.Table, columns: dict[str, str], seed: int = 7) -> dict[str, Any]:
    statistics, _ = build_baseline(table, columns, "y", "classification", 20, seed, 50)
    # Monitoring reads the stored JSON document, so test against what survives it.
    loaded: dict[str, Any] = json.loads(json.dumps(statistics))
    return loaded


def _by_name(result: DatasetDrift) -> dict[str, FeatureDrift]:
    return {feature.feature: feature for feature in result.features}


def _categories(rng: np.random.Generator, n: int, shares: dict[str, float]) -> pa.Array:
    values = rng.choice(list(shares), size=n, p=list(shares.values()))
    return pa.array(values).dictionary_encode()


# ---------------------------------------------------------------- verdicts


def test_no_drift_on_data_drawn_from_the_baseline_distribution() -> None:
    rng = np.random.default_rng(1)
    statistics = _baseline(_numeric_table(rng, 20_000), COLUMNS)

    result = data_drift(statistics, _numeric_table(rng, 5_000), COLUMNS, DriftConfig())

    assert not result.drifted
    assert result.share == 0.0
    assert all(f.tested and not f.drifted for f in result.features)
    assert all(f.test == "ks" and f.effect == "wasserstein" for f in result.features)
    assert max(f.effect_size or 0.0 for f in result.features) < 0.05
    assert {(f.n_reference, f.n_current) for f in result.features} == {(20_000, 5_000)}


def test_a_mean_shift_is_found_in_exactly_the_shifted_features() -> None:
    rng = np.random.default_rng(2)
    statistics = _baseline(_numeric_table(rng, 20_000), COLUMNS)
    shifted = {"normal_0": 0.5, "gamma_1": 0.3, "poisson3_0": 0.4, "lognormal_1": -0.3}

    result = data_drift(statistics, _numeric_table(rng, 5_000, shifted), COLUMNS, DriftConfig())

    assert {f.feature for f in result.features if f.drifted} == set(shifted)
    features = _by_name(result)
    # A pure shift moves every quantile by the same amount: W1 is the shift.
    assert features["normal_0"].effect_size == pytest.approx(0.5, abs=0.05)
    assert result.share == pytest.approx(4 / 20)
    assert not result.drifted


def test_a_tiny_shift_on_a_huge_sample_is_significant_but_not_drift() -> None:
    rng = np.random.default_rng(3)
    columns = {"x": "numeric"}
    reference = pa.table({"x": rng.normal(0, 1, 200_000), "y": np.full(200_000, "a")})
    statistics = _baseline(reference, columns)
    current = pa.table({"x": rng.normal(0.02, 1, 1_000_000)})

    (feature,) = data_drift(statistics, current, columns, DriftConfig()).features

    assert feature.p_adjusted is not None and feature.p_adjusted < 0.05
    assert feature.effect_size == pytest.approx(0.02, abs=0.01)
    assert not feature.drifted


def test_a_categorical_frequency_change_is_drift_by_chi_square_and_jensen_shannon() -> None:
    rng = np.random.default_rng(4)
    columns = {"plan": "categorical"}
    names = ["basic", "plus", "pro"]
    before = rng.choice(names, size=10_000, p=[0.5, 0.3, 0.2])
    after = rng.choice(names, size=3_000, p=[0.3, 0.3, 0.4])
    reference = pa.table({"plan": pa.array(before).dictionary_encode(), "y": np.full(10_000, "a")})
    statistics = _baseline(reference, columns)
    window = pa.table({"plan": pa.array(after).dictionary_encode()})

    (feature,) = data_drift(statistics, window, columns, DriftConfig()).features

    assert feature.drifted and feature.test == "chi2" and feature.effect == "jensen_shannon"
    table = np.asarray([[np.sum(side == name) for name in names] for side in (before, after)])
    chi2, p_value, dof, _ = stats.chi2_contingency(table, correction=False)
    assert dof == 2
    assert feature.statistic == pytest.approx(chi2)
    assert feature.p_value == pytest.approx(p_value, rel=1e-6)
    expected = distance.jensenshannon(table[0], table[1], base=2)
    assert feature.effect_size == pytest.approx(expected)
    assert feature.distribution["values"] == ["basic", "pro", "plus"]
    assert sum(feature.distribution["reference"]) == pytest.approx(1.0)


def test_an_unseen_category_gets_its_own_cell_and_is_shown_by_name() -> None:
    rng = np.random.default_rng(5)
    columns = {"plan": "categorical"}
    shares = {"basic": 0.5, "plus": 0.3, "pro": 0.2}
    reference = pa.table({"plan": _categories(rng, 10_000, shares), "y": np.full(10_000, "a")})
    statistics = _baseline(reference, columns)
    window = _categories(rng, 3_000, {"basic": 0.35, "plus": 0.21, "pro": 0.14, "trial": 0.3})

    (feature,) = data_drift(statistics, pa.table({"plan": window}), columns, DriftConfig()).features

    assert feature.drifted
    shown = dict(zip(feature.distribution["values"], feature.distribution["current"], strict=True))
    reference_shares = dict(
        zip(feature.distribution["values"], feature.distribution["reference"], strict=True)
    )
    assert shown["trial"] == pytest.approx(0.3, abs=0.03)
    assert reference_shares["trial"] == 0.0
    assert OTHER not in shown


def test_rare_cells_are_pooled_so_expected_counts_stay_at_least_five() -> None:
    columns = {"code": "categorical"}
    before = ["a"] * 5000 + ["b"] * 5000 + ["c"]
    after = ["a"] * 50 + ["b"] * 50 + ["new"]
    reference = pa.table({"code": pa.array(before).dictionary_encode(), "y": ["n"] * len(before)})
    statistics = _baseline(reference, columns)
    window = pa.table({"code": pa.array(after).dictionary_encode()})

    (feature,) = data_drift(statistics, window, columns, DriftConfig()).features

    # Alone, the new value's cell (expected 0.01 in the window) would give chi2 ~ 100. Every
    # cell needs a total of 5 x 10101 / 101 = 500: "c" and the unseen cell pool with "b".
    chi2, p_value, _, _ = stats.chi2_contingency([[5000, 5001], [50, 51]], correction=False)
    assert feature.statistic == pytest.approx(chi2)
    assert feature.p_value == pytest.approx(p_value)
    assert not feature.drifted
    assert "new" in feature.distribution["values"]


def test_a_discrete_feature_is_measured_against_the_band_its_quantiles_allow() -> None:
    columns = {"flag": "numeric"}
    reference = pa.table({"flag": np.repeat([0.0, 1.0], [7000, 3000]), "y": ["n"] * 10_000})
    statistics = _baseline(reference, columns)
    window = pa.table({"flag": np.repeat([0.0, 1.0], [600, 400])})

    (feature,) = data_drift(statistics, window, columns, DriftConfig()).features

    # 70% zeros before, 60% now: the quantiles put F(0) at 0.70 (q = 0.70 lies between the
    # last 0 and the first 1), so the distance is exactly the true one, 0.10.
    assert feature.statistic == pytest.approx(0.10)
    expected = stats.ks_2samp(reference.column("flag").to_numpy(), window.column("flag").to_numpy())
    assert feature.statistic == pytest.approx(expected.statistic)


def test_datetimes_drift_in_days_and_text_in_length() -> None:
    rng = np.random.default_rng(8)
    columns = {"signed_up": "datetime", "comment": "text"}
    start = np.datetime64("2025-01-01T00:00:00", "us").astype(np.int64)

    def frame(n: int, days: float, words: int) -> pa.Table:
        micros = start + (rng.normal(days, 30, n) * MICROS_PER_DAY).astype(np.int64)
        lengths = rng.integers(1, words, n)
        return pa.table(
            {
                "signed_up": pa.array(micros, pa.timestamp("us")),
                "comment": pa.array(["w" * int(k) for k in lengths]),
                "y": np.full(n, "a"),
            }
        )

    statistics = _baseline(frame(10_000, 0, 40), columns)
    result = _by_name(data_drift(statistics, frame(2_000, 30, 60), columns, DriftConfig()))

    assert result["signed_up"].drifted and result["comment"].drifted
    assert result["signed_up"].effect_size == pytest.approx(1.0, abs=0.1)  # 30 of 30 days
    same = _by_name(data_drift(statistics, frame(2_000, 0, 40), columns, DriftConfig()))
    assert not same["signed_up"].drifted and not same["comment"].drifted


def test_features_without_values_are_reported_untested() -> None:
    rng = np.random.default_rng(9)
    columns = {"a": "numeric", "b": "numeric", "c": "categorical", "id": "id"}
    reference = pa.table(
        {
            "a": rng.normal(size=500),
            "b": rng.normal(size=500),
            "c": _categories(rng, 500, {"x": 0.5, "z": 0.5}),
            "id": pa.array([str(i) for i in range(500)]),
            "y": np.full(500, "a"),
        }
    )
    statistics = _baseline(reference, columns)
    window = pa.table({"a": pa.nulls(50, pa.float64()), "c": pa.nulls(50, pa.string())})

    result = data_drift(statistics, window, columns, DriftConfig())

    notes = {f.feature: (f.tested, f.note) for f in result.features}
    assert notes == {
        "a": (False, "no values in the window"),
        "b": (False, "absent from the window"),
        "c": (False, "no values in the window"),
    }
    assert not result.drifted and result.share == 0.0
    document = json.loads(json.dumps(result.as_dict(), allow_nan=False))
    assert document["tested"] == 0
    assert document["features"][0]["p_value"] is None


# ---------------------------------------------------------------- statistics


def test_benjamini_hochberg_matches_a_hand_computation() -> None:
    # sorted: 0.01 (x4/1 = 0.04), 0.03 (x4/2 = 0.06), 0.04 (x4/3 = 0.0533), 0.2 (x4/4);
    # then each is the smallest of itself and those ranked after it.
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.2]) == pytest.approx(
        [0.04, 0.16 / 3, 0.16 / 3, 0.2]
    )
    assert benjamini_hochberg([]) == []


def test_features_carry_bh_adjusted_p_values_across_tested_features() -> None:
    rng = np.random.default_rng(10)
    statistics = _baseline(_numeric_table(rng, 5_000), COLUMNS)
    window = _numeric_table(rng, 1_000, {"normal_0": 0.2, "beta_1": 0.15})

    result = data_drift(statistics, window, COLUMNS, DriftConfig())

    p_values = [f.p_value or 0.0 for f in result.features]
    m = len(p_values)
    ranked = sorted(range(m), key=lambda i: p_values[i])
    by_hand = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        index = ranked[rank - 1]
        running = min(running, p_values[index] * m / rank)
        by_hand[index] = running
    assert [f.p_adjusted for f in result.features] == pytest.approx(by_hand)


def test_ks_statistic_matches_scipy_against_an_exactly_known_reference() -> None:
    # A uniform reference's quantiles are q themselves: the rebuilt CDF is exact inside the
    # outer 1% bands, where the band can only make the distance smaller.
    q = [round(v, 2) for v in np.linspace(0.0, 1.0, 101)]
    summary = {
        "common": {"num_present": 10**9, "num_missing": 0},
        "mean": 0.5,
        "std_dev": 12**-0.5,
        "distribution": {
            "histogram": {"buckets": [{"lower_bound": 0.0, "upper_bound": 1.0, "count": 10**9}]},
            "quantiles": {"q": q, "values": q},
        },
    }
    statistics = {
        "features": [{"name": "u", "lockgate_kind": "numeric", "numerical_statistics": summary}]
    }
    rng = np.random.default_rng(11)
    for trial in range(20):
        values = np.sort(rng.uniform(0.0, 1.0 if trial % 2 else 0.9, 3_000))
        (feature,) = data_drift(
            statistics, pa.table({"u": values}), {"u": "numeric"}, DriftConfig()
        ).features
        ranks = np.arange(1, values.size + 1) / values.size
        gaps = np.maximum(ranks - values, values - (ranks - 1 / values.size))
        theirs = stats.kstest(values, "uniform").statistic
        assert gaps.max() == pytest.approx(theirs)
        assert feature.statistic is not None
        assert theirs - 0.01 - 1e-12 <= feature.statistic <= theirs + 1e-12
        if 0.01 < values[np.argmax(gaps)] < 0.99:
            assert feature.statistic == pytest.approx(theirs)


def test_numeric_distribution_uses_the_baseline_bins_plus_overflow_bins() -> None:
    rng = np.random.default_rng(12)
    columns = {"x": "numeric"}
    statistics = _baseline(
        pa.table({"x": rng.uniform(0, 10, 5_000), "y": np.full(5_000, "a")}), columns
    )
    buckets = statistics["features"][0]["numerical_statistics"]["distribution"]["histogram"][
        "buckets"
    ]
    edges = [b["lower_bound"] for b in buckets] + [buckets[-1]["upper_bound"]]
    inside = rng.uniform(edges[0], edges[-1], 996)
    window = np.concatenate([[-3.0, -1.0], inside, [12.0, 15.0]])

    (feature,) = data_drift(statistics, pa.table({"x": window}), columns, DriftConfig()).features

    plotted = feature.distribution
    assert plotted["edges"] == [-3.0, *edges, 15.0]
    assert len(plotted["reference"]) == len(plotted["current"]) == 22
    assert plotted["reference"][0] == plotted["reference"][-1] == 0.0
    assert plotted["current"][0] == plotted["current"][-1] == pytest.approx(2 / 1000)
    assert sum(plotted["current"]) == pytest.approx(1.0)
    assert sum(plotted["reference"]) == pytest.approx(1.0)


# ---------------------------------------------------------------- dataset verdict


def _four_features(shifted: dict[str, float]) -> tuple[dict[str, Any], pa.Table, dict[str, str]]:
    rng = np.random.default_rng(13)
    columns = {name: "numeric" for name in ("a", "b", "c", "d")}
    reference = pa.table({**{n: rng.normal(size=5_000) for n in columns}, "y": np.full(5_000, "a")})
    window = pa.table({n: rng.normal(shifted.get(n, 0.0), 1.0, 2_000) for n in columns})
    return _baseline(reference, columns), window, columns


def test_the_dataset_drifts_when_the_share_of_drifted_features_reaches_the_threshold() -> None:
    statistics, window, columns = _four_features({"a": 0.5, "b": 0.5})

    half = data_drift(statistics, window, columns, DriftConfig(share_threshold=0.5))
    more = data_drift(statistics, window, columns, DriftConfig(share_threshold=0.75))

    assert half.share == more.share == 0.5
    assert half.drifted and not more.drifted
    assert half.weighted_share is None
    assert half.as_dict()["drifted_features"] == ["a", "b"]


def test_importance_weighting_judges_the_weighted_share_when_configured() -> None:
    statistics, window, columns = _four_features({"a": 0.5})
    importance = {"a": 0.7, "b": 0.1, "c": 0.1, "d": 0.1}

    plain = data_drift(statistics, window, columns, DriftConfig(), importance)
    weighted = data_drift(
        statistics, window, columns, DriftConfig(weight_by_importance=True), importance
    )
    unnamed = data_drift(
        statistics, window, columns, DriftConfig(weight_by_importance=True), {"zzz": 1.0}
    )

    assert plain.share == weighted.share == 0.25
    assert plain.weighted_share == weighted.weighted_share == pytest.approx(0.7)
    assert not plain.drifted and weighted.drifted
    # no importance for any tested feature: back to the plain share
    assert unnamed.weighted_share is None and not unnamed.drifted


# ---------------------------------------------------------------- calibration


def test_null_repetitions_keep_false_alarms_within_alpha() -> None:
    """200 seeded repetitions with reference and window from the same distribution."""
    repeats, n_reference, n_current = 200, 4_000, 2_000
    dataset_alarms = family_alarms = 0
    drifted = {name: 0 for name in COLUMNS}
    significant = {name: 0 for name in COLUMNS}
    for seed in range(repeats):
        rng = np.random.default_rng(1000 + seed)
        statistics = _baseline(_numeric_table(rng, n_reference), COLUMNS, seed)
        result = data_drift(statistics, _numeric_table(rng, n_current), COLUMNS, DriftConfig())
        dataset_alarms += result.drifted
        family_alarms += any((f.p_adjusted or 1.0) < 0.05 for f in result.features)
        for feature in result.features:
            drifted[feature.feature] += feature.drifted
            significant[feature.feature] += (feature.p_value or 1.0) < 0.05

    assert dataset_alarms / repeats <= 0.05
    # With no drift anywhere, BH at alpha bounds the chance of any discovery by alpha
    # (0.08: alpha plus two binomial standard deviations of 200 repetitions).
    assert family_alarms / repeats <= 0.08
    assert max(drifted.values()) / repeats <= 0.05
    # Unadjusted p-values of continuous features are close to uniform: ~5% below 0.05 ...
    continuous = sum(significant[name] for name in CONTINUOUS) / (repeats * len(CONTINUOUS))
    assert 0.03 <= continuous <= 0.07
    # ... and discrete ones are conservative rather than fooled by the sketch's 1% steps.
    discrete = [significant[name] / repeats for name in COLUMNS if name not in CONTINUOUS]
    assert max(discrete) <= 0.05
