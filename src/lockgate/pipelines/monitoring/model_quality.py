"""The served model's quality on a monitoring window, with ground truth or without it.

With labels joined to the window's predictions, the release's metrics are computed again on
live traffic and compared with those it was released with; without labels, the predictions'
distribution is compared with the training target's, the drift of a model no one can score
yet. (The quality of the *data* sent is :mod:`lockgate.pipelines.monitoring.quality`'s.)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from lockgate.config import MonitorConfig
from lockgate.pipelines.deployment.releases import Release
from lockgate.pipelines.monitoring.capture import Window
from lockgate.pipelines.monitoring.drift import data_drift
from lockgate.pipelines.monitoring.labels import join_labels, read_labels
from lockgate.pipelines.training.metrics import METRICS, metrics_for, score
from lockgate.ports.store import Store


def model_quality(
    store: Store,
    endpoint: str,
    start: datetime,
    window: Window,
    package: Any,
    release: Release,
    config: MonitorConfig,
) -> tuple[dict[str, Any] | None, list[str]]:
    """The served model's metrics on the window's labelled traffic, against its release's.

    The endpoint's labels (ground truth) filed from the hour of ``start`` on are joined to the
    window's predictions by inference id; a metric that cannot be computed on them (one class
    only: no AUC) is left out.

    Args:
        package: the release's loaded package (its task and classes).
        release: the current release, whose record holds the metrics it was released with.
        config: ``quality_tolerance`` is how much worse a metric may get.

    Returns:
        The model-quality section of the report (None when no label arrived) and the metrics
        worse than at release by more than the tolerance.
    """
    labels = read_labels(store, endpoint, start)
    if not labels:
        return None, []
    joined = join_labels(labels, window.predictions)
    summary: dict[str, Any] = {
        "labels": len(joined.matched),
        "unknown_labels": joined.unknown,
        "ambiguous_labels": joined.ambiguous,
        "examples": list(joined.examples),
        "metrics": {},
        "release_metrics": dict(release.record.get("metrics") or {}),
        "tolerance": config.quality_tolerance,
        "degraded": [],
    }
    if not joined.matched:
        return summary, []
    task = package.task
    if task == "classification":
        classes = list(package.classes or [])
        index = {label: i for i, label in enumerate(classes)}
        pairs = [
            (label, prediction)
            for label, prediction in joined.matched
            if str(label.label) in index and prediction.probabilities
        ]
        y_true = np.asarray([index[str(label.label)] for label, _ in pairs], dtype=np.int64)
        output = np.asarray(
            [[float(p.probabilities.get(c, 0.0)) for c in classes] for _, p in pairs],  # type: ignore[union-attr]
            dtype=np.float64,
        )
    else:
        classes = []
        y_true = np.asarray([float(label.label) for label, _ in joined.matched])
        output = np.asarray([float(p.prediction) for _, p in joined.matched])
    if len(y_true) == 0:
        return summary, []
    metrics = {}
    for metric in metrics_for(task):
        try:
            metrics[metric] = float(score(metric, y_true, output, classes or None))
        except ValueError:  # e.g. one class only among the labels: AUC is undefined
            continue
    summary["metrics"] = metrics
    degraded = []
    for metric, value in metrics.items():
        before = summary["release_metrics"].get(metric)
        if before is None or metric not in METRICS:
            continue
        worse = before - value if METRICS[metric].direction == "maximize" else value - before
        if worse > config.quality_tolerance:
            degraded.append(metric)
    summary["degraded"] = degraded
    return summary, degraded


def prediction_drift(
    statistics: Mapping[str, Any],
    target: str,
    window: Window,
    task: str,
    config: MonitorConfig,
) -> dict[str, Any] | None:
    """The predictions' distribution against the training target's, as one more feature.

    Returns:
        The drift of the feature ``prediction`` (as in the report's data drift); None when
        the baseline has no statistics of ``target`` or the window no prediction.
    """
    feature = next(
        (item for item in statistics.get("features", []) if item.get("name") == target), None
    )
    if feature is None or not window.predictions:
        return None
    kind = "categorical" if task == "classification" else "numeric"
    renamed = {**feature, "name": "prediction", "lockgate_kind": kind, "is_target": False}
    values = [item.prediction for item in window.predictions]
    column = (
        pa.array([None if v is None else str(v) for v in values]).dictionary_encode()
        if kind == "categorical"
        else pa.array([None if v is None else float(v) for v in values], pa.float64())
    )
    result = data_drift(
        {**statistics, "features": [renamed]},
        pa.table({"prediction": column}),
        {"prediction": kind},
        config.drift,
    )
    return result.features[0].as_dict() if result.features else None
