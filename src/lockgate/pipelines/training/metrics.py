"""Metrics a study can optimise, their direction, and how each is computed.

Classification metrics take class probabilities: ``(rows, classes)`` with columns in class
index order (the order of the data version's ``classes``), so one function scores binary and
multiclass models alike. ``roc_auc`` is one-vs-rest macro-averaged when there are more than two
classes; ``f1`` is the f1 of the second class (index 1) for two classes, macro-averaged
otherwise. Regression metrics take the predicted values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lockgate.errors import ConfigError

Direction = Literal["maximize", "minimize"]
TASKS = ("classification", "regression")


@dataclass(frozen=True)
class Metric:
    """A metric: its name, the task it scores, and whether higher is better."""

    name: str
    task: str
    direction: Direction

    def better(self, value: float, than: float) -> bool:
        """Whether ``value`` is strictly better than ``than`` for this metric."""
        return value > than if self.direction == "maximize" else value < than


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("roc_auc", "classification", "maximize"),
        Metric("f1", "classification", "maximize"),
        Metric("log_loss", "classification", "minimize"),
        Metric("accuracy", "classification", "maximize"),
        Metric("rmse", "regression", "minimize"),
        Metric("mae", "regression", "minimize"),
        Metric("r2", "regression", "maximize"),
    )
}

_DEFAULTS = {"classification": "roc_auc", "regression": "rmse"}


def validate_task(task: str) -> str:
    """``task`` itself, if it is one lockgate trains for.

    Raises:
        ConfigError: it is not ``classification`` or ``regression``.
    """
    if task not in TASKS:
        raise ConfigError(f"task '{task}' is not supported; use one of: {', '.join(TASKS)}")
    return task


def default_metric(task: str) -> str:
    """The metric a study optimises when none is configured: roc_auc, or rmse."""
    return _DEFAULTS[validate_task(task)]


def metrics_for(task: str) -> list[str]:
    """Names of the metrics valid for ``task``."""
    return [name for name, metric in METRICS.items() if metric.task == task]


def validate_metric(metric: str, task: str) -> Metric:
    """The metric named ``metric``, if it scores ``task``.

    Raises:
        ConfigError: the metric is unknown or belongs to the other task; the message lists
            the valid ones.
    """
    validate_task(task)
    valid = ", ".join(metrics_for(task))
    known = METRICS.get(metric)
    if known is None:
        raise ConfigError(f"metric '{metric}' is not known; for {task} choose one of: {valid}")
    if known.task != task:
        raise ConfigError(f"metric '{metric}' is not valid for {task}; choose one of: {valid}")
    return known


def score(
    metric: str,
    y_true: np.ndarray,
    model_output: np.ndarray,
    classes: Sequence[str] | None = None,
) -> float:
    """Score ``model_output`` against ``y_true`` with ``metric``.

    Args:
        metric: a name in :data:`METRICS`.
        y_true: class indices (classification) or target values (regression), shape ``(n,)``.
        model_output: class probabilities ``(n, len(classes))`` for classification (for two
            classes a ``(n,)`` vector of the second class's probability is accepted too);
            predicted values ``(n,)`` for regression.
        classes: the class labels, in index order; required for classification.

    Raises:
        ValueError: the metric is unknown, or the shapes do not fit together.
    """
    from sklearn import metrics as sk

    spec = METRICS.get(metric)
    if spec is None:
        raise ValueError(f"unknown metric '{metric}'")
    y_true = np.asarray(y_true)
    output = np.asarray(model_output, dtype=np.float64)
    if len(y_true) != len(output):
        raise ValueError(f"{len(y_true)} targets but {len(output)} model outputs")
    if spec.task == "regression":
        predicted = output.reshape(len(output), -1)[:, 0] if output.ndim > 1 else output
        if metric == "rmse":
            return float(np.sqrt(sk.mean_squared_error(y_true, predicted)))
        if metric == "mae":
            return float(sk.mean_absolute_error(y_true, predicted))
        return float(sk.r2_score(y_true, predicted))

    if not classes or len(classes) < 2:
        raise ValueError("classification metrics need the list of (at least two) classes")
    n_classes = len(classes)
    proba = _probabilities(output, n_classes)
    labels = np.arange(n_classes)
    if metric == "accuracy":
        return float(sk.accuracy_score(y_true, proba.argmax(axis=1)))
    if metric == "f1":
        predicted_labels = proba.argmax(axis=1)
        if n_classes == 2:
            return float(sk.f1_score(y_true, predicted_labels, pos_label=1, zero_division=0.0))
        return float(
            sk.f1_score(y_true, predicted_labels, labels=labels, average="macro", zero_division=0.0)
        )
    if metric == "log_loss":
        return float(sk.log_loss(y_true, proba, labels=labels))
    if n_classes == 2:
        return float(sk.roc_auc_score(y_true, proba[:, 1]))
    return float(sk.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=labels))


def _probabilities(output: np.ndarray, n_classes: int) -> np.ndarray:
    """``output`` as an ``(n, n_classes)`` probability matrix."""
    if output.ndim == 1 and n_classes == 2:
        return np.column_stack([1.0 - output, output])
    if output.ndim != 2 or output.shape[1] != n_classes:
        raise ValueError(
            f"classification output must have shape (rows, {n_classes}), got {output.shape}"
        )
    # float32 probabilities summing to 1 in float32 miss 1 by more than sklearn's float64
    # tolerance once widened; renormalising removes that rounding, nothing else.
    totals = output.sum(axis=1, keepdims=True)
    return np.asarray(np.divide(output, totals, out=output.copy(), where=totals > 0))
