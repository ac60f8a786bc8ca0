"""Data drift: every feature of a window of traffic against its data version's baseline.

The reference rows are gone by the time monitoring runs; only the stored summaries of
:mod:`lockgate.pipelines.data.baseline` remain, so each test is built from those:

* numeric, datetime (in days) and text (string length): a Kolmogorov-Smirnov test of the
  window against the reference CDF rebuilt from the 101 stored quantiles, with the effect
  measured as the Wasserstein distance between the two quantile functions in reference
  standard deviations;
* categorical: a chi-square test of homogeneity of the window's counts against the stored
  reference counts, with the effect measured as the Jensen-Shannon distance (base 2).

A feature drifts when its Benjamini-Hochberg adjusted p-value is below ``alpha`` *and* its
effect reaches the minimum size: with a large window every p-value is tiny (the quantile
sketch alone is only accurate to about 1%), so significance says the difference is real and
the effect size says it is big enough to matter.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import special

from lockgate.config import DriftConfig
from lockgate.pipelines.data.baseline import QUANTILE_SAMPLE
from lockgate.pipelines.data.transformer import MICROS_PER_DAY

SHOWN_CATEGORIES = 20
"""Categories listed by name in a feature's plotted distribution; the rest are ``__other__``."""
OTHER = "__other__"
MIN_EXPECTED = 5.0
"""Smallest expected count of a chi-square cell; rarer categories are pooled until it holds."""
EXACT_KS_MAX_N = 3_000
"""Effective n up to which the KS p-value is exact (``kstwo``, whose cost grows with n);
above, Stephens' corrected asymptotic form, at most 0.0025 above it (conservative)."""
TAIL = 0.01
"""The Wasserstein distance is taken between quantile functions winsorised at this tail
share, so the extreme values of a heavy-tailed feature cannot make drift on their own."""

PARALLEL_MIN_VALUES = 500_000
NUMERIC_KINDS = ("numeric", "datetime", "text")
Distribution = dict[str, list[Any]]


@dataclass
class FeatureDrift:
    """One feature's verdict, and both distributions on the same support for plotting.

    ``test`` is None when the feature could not be tested (``note`` says why); then the
    statistic, p-values and effect size are None and ``drifted`` is False.
    """

    feature: str
    kind: str
    test: str | None
    effect: str | None
    effect_threshold: float | None
    n_reference: int = 0
    n_current: int = 0
    statistic: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    effect_size: float | None = None
    drifted: bool = False
    distribution: Distribution = field(default_factory=dict)
    """Both sides on one support, for plotting: numeric ``{"edges", "reference", "current"}``
    (shares per bin), categorical ``{"values", ...}`` (shares per value); empty if untested."""
    note: str | None = None

    @property
    def tested(self) -> bool:
        return self.p_value is not None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: no NaN or infinity (None instead)."""
        result: dict[str, Any] = _json_ready(asdict(self))
        result["tested"] = self.tested
        return result


@dataclass
class DatasetDrift:
    """The dataset's verdict: drifted when the share of drifted features reaches ``threshold``
    (the importance-weighted share when weighting is configured and importances given)."""

    features: list[FeatureDrift]
    share: float
    weighted_share: float | None
    threshold: float
    drifted: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: no NaN or infinity (None instead)."""
        return {
            "drifted": self.drifted,
            "share": _json_ready(self.share),
            "weighted_share": _json_ready(self.weighted_share),
            "threshold": self.threshold,
            "tested": sum(feature.tested for feature in self.features),
            "drifted_features": [f.feature for f in self.features if f.drifted],
            "features": [feature.as_dict() for feature in self.features],
        }


def data_drift(
    statistics: Mapping[str, Any],
    current: pa.Table,
    columns: Mapping[str, str],
    config: DriftConfig,
    importance: Mapping[str, float] | None = None,
) -> DatasetDrift:
    """Test every feature of ``current`` against the baseline ``statistics``.

    Args:
        statistics: the data version's ``baseline/statistics.json``.
        current: the window's rows in canonical types (see
            :func:`lockgate.pipelines.monitoring.quality.coerce_window`).
        columns: column name -> kind; ``id`` columns are skipped, and so is the target
            (flagged ``is_target`` in the statistics).
        config: significance, minimum effects and the dataset threshold.
        importance: feature -> the model's importance, for the weighted share; features it
            does not name weigh nothing.
    """
    baseline = {feature["name"]: feature for feature in statistics.get("features", [])}
    names = [
        name
        for name, kind in columns.items()
        if kind != "id" and not baseline.get(name, {}).get("is_target", False)
    ]

    def judge(name: str) -> FeatureDrift:
        kind = columns[name]
        if name not in baseline:
            return _untested(name, kind, config, "the baseline has no statistics for it")
        if name not in current.column_names:
            return _untested(name, kind, config, "absent from the window")
        column = current.column(name)
        if kind in NUMERIC_KINDS:
            return _numeric(name, kind, baseline[name], column, config)
        return _categorical(name, kind, baseline[name], column, config)

    # Sorting releases the GIL, so large windows' features run side by side on threads.
    if current.num_rows * len(names) < PARALLEL_MIN_VALUES:
        features = [judge(name) for name in names]
    else:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            features = list(pool.map(judge, names))
    _adjust(features, config)
    return _verdict(features, config, importance)


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (the false discovery rate at which each would be
    a discovery), in the order given."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * p.size / np.arange(1, p.size + 1)
    adjusted = np.empty_like(p)
    # each is the smallest scaled p-value at its rank or after it, capped at 1
    adjusted[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return [float(value) for value in adjusted]


def _adjust(features: list[FeatureDrift], config: DriftConfig) -> None:
    tested = [feature for feature in features if feature.p_value is not None]
    adjusted = benjamini_hochberg([feature.p_value or 0.0 for feature in tested])
    for feature, p_adjusted in zip(tested, adjusted, strict=True):
        feature.p_adjusted = p_adjusted
        effect, threshold = feature.effect_size or 0.0, feature.effect_threshold or 0.0
        feature.drifted = p_adjusted < config.alpha and effect >= threshold


def _verdict(
    features: list[FeatureDrift], config: DriftConfig, importance: Mapping[str, float] | None
) -> DatasetDrift:
    tested = [feature for feature in features if feature.tested]
    drifted = [feature for feature in tested if feature.drifted]
    share = len(drifted) / len(tested) if tested else 0.0
    weighted: float | None = None
    if importance is not None:
        total = sum(max(importance.get(f.feature, 0.0), 0.0) for f in tested)
        if total > 0:
            weighted = sum(max(importance.get(f.feature, 0.0), 0.0) for f in drifted) / total
    judged = weighted if config.weight_by_importance and weighted is not None else share
    drifted_dataset = bool(tested) and judged >= config.share_threshold
    return DatasetDrift(features, share, weighted, config.share_threshold, drifted_dataset)


def _untested(name: str, kind: str, config: DriftConfig, note: str) -> FeatureDrift:
    if kind in NUMERIC_KINDS:
        return FeatureDrift(name, kind, None, "wasserstein", config.min_effect_numeric, note=note)
    return FeatureDrift(
        name, kind, None, "jensen_shannon", config.min_effect_categorical, note=note
    )


# --- numeric, datetime and text length ---------------------------------------------------


def _numeric(
    name: str, kind: str, stats_doc: Mapping[str, Any], column: pa.ChunkedArray, config: DriftConfig
) -> FeatureDrift:
    if kind == "text":
        string_stats = stats_doc.get("string_statistics", {})
        common, summary = string_stats.get("common", {}), string_stats.get("length", {})
    else:
        summary = stats_doc.get("numerical_statistics", {})
        common = summary.get("common", {})
    result = _untested(name, kind, config, "")
    quantiles = summary.get("distribution", {}).get("quantiles")
    result.n_reference = n_reference = int(common.get("num_present", 0))
    if not quantiles or not n_reference:
        result.note = "the baseline has no values for it"
        return result
    values = _sorted_values(column, kind)
    result.n_current = values.size
    if not values.size:
        result.note = "no values in the window"
        return result

    q = np.asarray(quantiles["q"], dtype=np.float64)
    ref_q = np.maximum.accumulate(np.asarray(quantiles["values"], dtype=np.float64))
    statistic = _ks_statistic(values, q, ref_q)
    # The reference CDF is as precise as the sample its quantiles were computed from.
    p_value = _ks_p_value(statistic, min(n_reference, QUANTILE_SAMPLE), values.size)
    distance = _winsorised_wasserstein(q, ref_q, _quantiles(values, q))
    # A constant reference has no spread to measure in: use its magnitude (or 1) instead.
    scale = summary.get("std_dev") or abs(summary.get("mean") or 0.0) or 1.0
    result.test, result.note, result.statistic, result.p_value = "ks", None, statistic, p_value
    result.effect_size = distance / scale
    result.distribution = _histograms(summary, values)
    return result


def _sorted_values(column: pa.ChunkedArray, kind: str) -> np.ndarray:
    present = column.drop_null()
    if kind == "text":
        values = _buffer_values(pc.utf8_length(present).cast(pa.float64()), np.float64)
    elif kind == "datetime":
        values = _buffer_values(present.cast(pa.int64()), np.int64) / MICROS_PER_DAY
    else:
        values = _buffer_values(present.cast(pa.float64()), np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        values = values[finite]
    return np.sort(values)


def _buffer_values(column: pa.ChunkedArray, dtype: type[np.generic]) -> np.ndarray:
    """A null-free fixed-width column's values, read from its buffers without a copy
    (``to_numpy`` imports pandas where it is installed: half a second of every run)."""
    size = np.dtype(dtype).itemsize
    parts = [
        np.frombuffer(chunk.buffers()[1], dtype, len(chunk), chunk.offset * size)
        for chunk in column.chunks
        if len(chunk)
    ]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def _ks_statistic(values: np.ndarray, q: np.ndarray, ref_q: np.ndarray) -> float:
    """The KS distance of sorted ``values`` from the reference CDF the quantiles allow.

    Between two stored quantile values the reference CDF is only known to lie between their
    q's, one 1% step apart. For a continuous feature (all quantile values distinct) it is
    taken as linear in between, far more accurate than a step, except in the two outermost
    bands: those end at the sample's minimum and maximum, where a line misses the tail's
    curve by up to half a step and would alone make a large window "significant". A feature
    whose quantiles repeat a value has point masses (counts, flags, a spike at 0), where a
    line would be off by up to a step anywhere; its CDF is known only to within the steps.
    Where the CDF is a band, the distance is how far the window's CDF leaves the band, so the
    test is conservative there rather than fooled by the sketch's resolution.

    Only the linear stretch costs a pass over the values; everywhere else the window's CDF
    is a step and the band is constant, so the extremes sit at the ends of index ranges.
    """
    knots, first = np.unique(ref_q, return_index=True)
    last = np.append(first[1:] - 1, ref_q.size - 1)
    left, right = q[first], q[last]  # F just below, and at, each knot
    k, n = knots.size, values.size
    start = np.searchsorted(values, knots, side="left")  # values before each knot
    stop = np.searchsorted(values, knots, side="right")  # values up to and at it
    following = np.append(start[1:], n)  # the end of the values after each knot
    upper_after = np.append(left[1:], 1.0)  # F(x) <= F just below the next knot
    lower_before = np.append(0.0, right[:-1])  # F(knot-) >= F at the previous knot
    continuous = k == ref_q.size
    if continuous:
        upper_at = lower_at = right
        # Bands whose both ends lie within [TAIL, 1 - TAIL] are linear: a contiguous run.
        first_band = int(np.searchsorted(q, TAIL - 1e-9))
        last_band = int(np.searchsorted(q, 1.0 - TAIL + 1e-9)) - 2
    else:
        upper_at, lower_at = upper_after, lower_before
        first_band, last_band = k, -1
    linear = np.zeros(k, dtype=bool)
    linear[first_band : last_band + 1] = True

    above = float(start[0]) / n  # values below the reference minimum, where F = 0
    under = 0.0
    hit = stop > start
    if hit.any():
        above = max(above, float(np.max(stop[hit] / n - upper_at[hit])))
        under = max(under, float(np.max(lower_at[hit] - start[hit] / n)))
    inside = (following > stop) & ~linear
    if inside.any():
        above = max(above, float(np.max(following[inside] / n - upper_after[inside])))
        under = max(under, float(np.max(right[inside] - stop[inside] / n)))
    low, high = (stop[first_band], start[last_band + 1]) if last_band >= first_band else (0, 0)
    if high > low:
        # np.interp is exact at the knots inside this stretch too (continuous: left == right).
        gap = np.arange(low + 1, high + 1, dtype=np.float64) / n
        gap -= np.interp(values[low:high], knots, right)
        above = max(above, float(gap.max()))
        under = max(under, 1.0 / n - float(gap.min()))
    return max(above, under, 0.0)


def _ks_p_value(statistic: float, n_reference: int, n_current: int) -> float:
    """Two-sample KS p-value, as scipy's ``ks_2samp`` computes it for large samples."""
    en = n_reference * n_current / (n_reference + n_current)
    if en <= EXACT_KS_MAX_N:
        # scipy.stats takes most of a second to import: only small windows need it.
        from scipy.stats import kstwo

        return float(kstwo.sf(statistic, max(round(en), 1)))
    root = math.sqrt(en)
    return float(special.kolmogorov((root + 0.12 + 0.11 / root) * statistic))


def _quantiles(values: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``np.quantile(values, q)`` (linear) of already sorted values, without re-partitioning."""
    position = q * (values.size - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, values.size - 1)
    quantiles: np.ndarray = values[low] + (position - low) * (values[high] - values[low])
    return quantiles


def _winsorised_wasserstein(q: np.ndarray, ref_q: np.ndarray, cur_q: np.ndarray) -> float:
    """W1 between the quantile functions held constant beyond ``TAIL`` at either end
    (trapezoids between the stored quantiles)."""
    low = np.searchsorted(q, TAIL - 1e-9)
    high = np.searchsorted(q, 1.0 - TAIL + 1e-9) - 1
    gaps = np.abs(ref_q - cur_q)[low : high + 1]
    width = np.diff(q[low : high + 1])
    inner = float(np.sum(width * (gaps[:-1] + gaps[1:]) / 2.0))
    return inner + float(q[low] * gaps[0] + (1.0 - q[high]) * gaps[-1])


def _histograms(summary: Mapping[str, Any], values: np.ndarray) -> Distribution:
    """Shares per bin of the baseline histogram, with an underflow and an overflow bin added
    when the window's values fall outside it (the last bin includes its upper edge)."""
    buckets = summary["distribution"]["histogram"]["buckets"]
    edges = [float(b["lower_bound"]) for b in buckets] + [float(buckets[-1]["upper_bound"])]
    counts = np.asarray([b["count"] for b in buckets], dtype=np.float64)
    n = values.size
    cuts = np.searchsorted(values, edges[:-1], side="left").tolist()
    cuts.append(int(np.searchsorted(values, edges[-1], side="right")))
    current = np.diff(cuts).astype(np.float64)
    reference = counts / max(counts.sum(), 1.0)
    shares = current / n
    if cuts[0] > 0:
        edges.insert(0, float(values[0]))
        reference, shares = np.append(0.0, reference), np.append(cuts[0] / n, shares)
    if cuts[-1] < n:
        edges.append(float(values[-1]))
        reference, shares = np.append(reference, 0.0), np.append(shares, (n - cuts[-1]) / n)
    return {"edges": edges, "reference": reference.tolist(), "current": shares.tolist()}


# --- categorical ---------------------------------------------------------------------------


def _categorical(
    name: str, kind: str, stats_doc: Mapping[str, Any], column: pa.ChunkedArray, config: DriftConfig
) -> FeatureDrift:
    string_stats = stats_doc.get("string_statistics", {})
    distribution = string_stats.get("distribution", {}).get("categorical", {})
    result = _untested(name, kind, config, "")
    result.n_reference = n_reference = int(string_stats.get("common", {}).get("num_present", 0))
    if not n_reference:
        result.note = "the baseline has no values for it"
        return result
    seen = {str(b["value"]): int(b["count"]) for b in distribution.get("buckets", [])}
    other_reference = int(distribution.get("other_count", 0))
    counted = pc.value_counts(column.drop_null()).to_pylist()
    window = {str(item["values"]): int(item["counts"]) for item in counted}
    result.n_current = n_current = sum(window.values())
    if not n_current:
        result.note = "no values in the window"
        return result

    leftover = {value: count for value, count in window.items() if value not in seen}
    # The last cell: values the window has and the stored top values lack; "unseen" if the
    # reference had no other values, else pooled with them (a new value may be one of those).
    reference = np.asarray([*seen.values(), other_reference], dtype=np.float64)
    current = np.asarray(
        [*(window.get(value, 0) for value in seen), sum(leftover.values())], dtype=np.float64
    )

    statistic, p_value = _chi_square(reference, current)
    result.test, result.note, result.statistic, result.p_value = "chi2", None, statistic, p_value
    result.effect_size = _jensen_shannon(reference, current)
    result.distribution = _shown_categories(
        seen, window, leftover, other_reference, n_reference, n_current
    )
    return result


def _chi_square(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Chi-square test of homogeneity of two count vectors over the same cells.

    Two samples, not goodness of fit against fixed frequencies: the reference counts are a
    sample too, and a category it never saw would have an expected count of zero. Cells whose
    smaller expected count is under MIN_EXPECTED are pooled (rarest first) until every cell
    has at least that; fewer than two cells left means there is nothing to compare.
    """
    totals = reference + current
    keep = totals > 0
    reference, current, totals = reference[keep], current[keep], totals[keep]
    n_ref, n_cur = reference.sum(), current.sum()
    if not n_ref or not n_cur:
        return 0.0, 1.0
    everything = n_ref + n_cur
    smallest = MIN_EXPECTED * everything / min(n_ref, n_cur)
    order = np.argsort(totals, kind="stable")
    reference, current, totals = reference[order], current[order], totals[order]
    # Pool a prefix of the ascending totals: the shortest one that is itself big enough and
    # leaves only big-enough cells behind.
    pooled = np.cumsum(totals)
    cut = int(np.searchsorted(totals, smallest, side="left"))
    if cut and pooled[cut - 1] < smallest:
        cut = min(int(np.searchsorted(pooled, smallest, side="left")) + 1, totals.size)
    cells_ref = np.append(reference[cut:], reference[:cut].sum()) if cut else reference
    cells_cur = np.append(current[cut:], current[:cut].sum()) if cut else current
    if cells_ref.size < 2:
        return 0.0, 1.0
    observed = np.vstack([cells_ref, cells_cur])
    expected = np.outer([n_ref, n_cur], observed.sum(axis=0)) / everything
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return statistic, float(special.chdtrc(cells_ref.size - 1, statistic))


def _jensen_shannon(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, so in [0, 1]) between two count vectors' shares."""
    p, r = reference / reference.sum(), current / current.sum()
    middle = (p + r) / 2.0

    def divergence(a: np.ndarray) -> float:
        inside = a > 0
        return float(np.sum(a[inside] * np.log2(a[inside] / middle[inside])))

    return math.sqrt(max((divergence(p) + divergence(r)) / 2.0, 0.0))


def _shown_categories(
    seen: Mapping[str, int],
    window: Mapping[str, int],
    leftover: Mapping[str, int],
    other_reference: int,
    n_reference: int,
    n_current: int,
) -> Distribution:
    """The SHOWN_CATEGORIES values most frequent on either side (new ones by name), the rest
    pooled as ``__other__``."""
    candidates = {value: (count, window.get(value, 0)) for value, count in seen.items()}
    candidates.update({value: (0, count) for value, count in leftover.items()})
    ranked = sorted(
        candidates.items(),
        key=lambda item: (-max(item[1][0] / n_reference, item[1][1] / n_current), item[0]),
    )[:SHOWN_CATEGORIES]
    values = [value for value, _ in ranked]
    reference = [counts[0] / n_reference for _, counts in ranked]
    current = [counts[1] / n_current for _, counts in ranked]
    if len(candidates) > len(ranked) or other_reference:
        values.append(OTHER)
        reference.append(max(1.0 - sum(reference), 0.0))
        current.append(max(1.0 - sum(current), 0.0))
    return {"values": values, "reference": reference, "current": current}


def _json_ready(value: Any) -> Any:
    """``value`` with any NaN or infinite float (none is expected; JSON has none) as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    return [_json_ready(item) for item in value] if isinstance(value, list | tuple) else value
