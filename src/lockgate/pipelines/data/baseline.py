"""Baseline statistics and constraints of the training data, for the monitoring pipeline.

Shaped after SageMaker Model Monitor's ``statistics.json`` and ``constraints.json`` (same
top-level keys, ``inferred_type`` values and ``common`` counters) so tools that read those
read these, with lockgate's reference distributions added: an equal-width histogram and
quantiles for numeric features, value frequencies for categorical ones. Monitoring compares
against these stored summaries and never rereads the reference data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lockgate.pipelines.data.transformer import MICROS_PER_DAY

QUANTILE_SAMPLE = 200_000
TOP_VALUES = 1000
QUANTILES = [round(q, 2) for q in np.linspace(0.0, 1.0, 101)]


def build_baseline(
    table: pa.Table,
    columns: dict[str, str],
    target: str,
    task: str,
    bins: int,
    seed: int,
    domain_limit: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(statistics, constraints)`` of the training rows in ``table`` (canonical types)."""
    rng = np.random.default_rng(seed)
    features: list[dict[str, Any]] = []
    constraints: list[dict[str, Any]] = []
    kinds = {**columns, target: "label" if task == "classification" else "numeric"}
    for name, kind in kinds.items():
        if kind == "id":
            continue
        column = table.column(name)
        stats, constraint = _feature(name, kind, column, bins, rng, domain_limit)
        stats["is_target"] = name == target
        features.append(stats)
        if name != target:
            constraints.append(constraint)
    statistics = {
        "version": 0.0,
        "dataset": {"item_count": table.num_rows},
        "features": features,
    }
    constraint_doc = {
        "version": 0.0,
        "features": constraints,
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "datatype_check_threshold": 1.0,
            "domain_content_threshold": 1.0,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": 0.1,
                "comparison_method": "Robust",
            },
        },
    }
    return statistics, constraint_doc


def _feature(
    name: str,
    kind: str,
    column: pa.ChunkedArray,
    bins: int,
    rng: np.random.Generator,
    domain_limit: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    present = len(column) - column.null_count
    common = {"num_present": present, "num_missing": column.null_count}
    completeness = present / len(column) if len(column) else 1.0
    constraint: dict[str, Any] = {"name": name, "completeness": round(completeness, 6)}
    if kind in ("numeric", "datetime"):
        values = _as_float(column, kind)
        stats = {
            "name": name,
            "inferred_type": "Fractional",
            "lockgate_kind": kind,
            "numerical_statistics": {"common": common, **_numeric_summary(values, bins, rng)},
        }
        constraint["inferred_type"] = "Fractional"
        if values.size:
            constraint["num_constraints"] = {"is_non_negative": bool(values.min() >= 0)}
        return stats, constraint
    if kind == "text":
        lengths = pc.utf8_length(column.drop_null()).to_numpy(zero_copy_only=False)
        stats = {
            "name": name,
            "inferred_type": "String",
            "lockgate_kind": kind,
            "string_statistics": {
                "common": common,
                "length": _numeric_summary(np.asarray(lengths, dtype=np.float64), bins, rng),
            },
        }
        constraint["inferred_type"] = "String"
        return stats, constraint
    counts = pc.value_counts(column.drop_null()).to_pylist()
    ranked = sorted(counts, key=lambda item: (-item["counts"], str(item["values"])))
    stats = {
        "name": name,
        "inferred_type": "String",
        "lockgate_kind": "categorical" if kind == "categorical" else kind,
        "string_statistics": {
            "common": common,
            "distinct_count": len(ranked),
            "distribution": {
                "categorical": {
                    "buckets": [
                        {"value": item["values"], "count": item["counts"]}
                        for item in ranked[:TOP_VALUES]
                    ],
                    "other_count": sum(item["counts"] for item in ranked[TOP_VALUES:]),
                }
            },
        },
    }
    constraint["inferred_type"] = "String"
    if len(ranked) <= domain_limit:
        constraint["string_constraints"] = {"domains": sorted(str(i["values"]) for i in ranked)}
    return stats, constraint


def _as_float(column: pa.ChunkedArray, kind: str) -> np.ndarray:
    present = column.drop_null()
    if kind == "datetime":
        micros = present.cast(pa.int64()).to_numpy(zero_copy_only=False)
        return np.asarray(micros, dtype=np.float64) / MICROS_PER_DAY
    values = np.asarray(present.to_numpy(zero_copy_only=False), dtype=np.float64)
    return values[np.isfinite(values)]


def _numeric_summary(values: np.ndarray, bins: int, rng: np.random.Generator) -> dict[str, Any]:
    if not values.size:
        return {"mean": None, "sum": 0.0, "std_dev": None, "min": None, "max": None}
    low, high = float(values.min()), float(values.max())
    counts, edges = np.histogram(values, bins=bins, range=(low, high if high > low else low + 1))
    sample = values if values.size <= QUANTILE_SAMPLE else rng.choice(values, QUANTILE_SAMPLE)
    quantiles = np.quantile(sample, QUANTILES)
    return {
        "mean": float(values.mean()),
        "sum": float(values.sum()),
        "std_dev": float(values.std()),
        "min": low,
        "max": high,
        "distribution": {
            "histogram": {
                "buckets": [
                    {"lower_bound": float(lo), "upper_bound": float(hi), "count": int(count)}
                    for lo, hi, count in zip(edges[:-1], edges[1:], counts, strict=True)
                ]
            },
            "quantiles": {"q": QUANTILES, "values": [float(v) for v in quantiles]},
        },
    }
