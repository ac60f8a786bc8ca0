"""The study report's test-split section: how the selected best model did on unseen rows.

Classification gets a confusion matrix and ROC curves (one vs rest for more than two classes),
regression gets RMSE, MAE, R² and predicted-vs-actual and residual plots. The numbers are
computed here with numpy and match scikit-learn's, so the report needs no scikit-learn.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from lockgate.pipelines.training.report_data import Evaluation
from lockgate.pipelines.training.report_markup import fmt_value, note, section
from lockgate.pipelines.training.svg import (
    MAX_POINTS,
    PALETTE,
    curve_chart,
    esc,
    heatmap,
    scatter_chart,
)


def evaluation_section(evaluation: Evaluation | None) -> str:
    """The ``evaluation`` section: what the best model scored on test, with its plots.

    Raises:
        ValueError: The evaluation's class labels do not match its classes.
    """
    heading = "Best model on the test split"
    if evaluation is None:
        return section("evaluation", heading, note("The best model has not been scored on test."))
    rows = np.asarray(evaluation.y_true).size
    if rows == 0:
        return section("evaluation", heading, note("The test split is empty."))
    lead = (
        f'<p class="lead">{esc(evaluation.metric)} on test: <b id="test-metric">'
        f"{esc(fmt_value(evaluation.value))}</b> · {rows} rows</p>\n"
    )
    if evaluation.task == "classification":
        return section("evaluation", heading, lead, _classification(evaluation))
    return section("evaluation", heading, lead, _regression(evaluation))


def _class_names(evaluation: Evaluation) -> list[str]:
    if evaluation.classes:
        return [str(c) for c in evaluation.classes]
    score = evaluation.y_score
    width = score.shape[1] if score is not None and score.ndim == 2 else 0
    top = int(max(np.max(evaluation.y_true), np.max(evaluation.y_pred)))
    return [str(i) for i in range(max(width, top + 1, 2))]


def class_indices(values: npt.NDArray[Any], classes: list[str]) -> npt.NDArray[np.int64]:
    """Class labels (integer or whole-float class indices) as ``int64`` indices.

    Raises:
        ValueError: A label is not a whole number naming one of ``classes``.
    """
    labels = np.ravel(values)
    index = labels.astype(np.int64) if labels.dtype.kind in "biuf" else None
    if index is None or not np.array_equal(index, labels):
        raise ValueError("class labels must be class indices (whole numbers), not names")
    if index.size and (index.min() < 0 or index.max() >= len(classes)):
        raise ValueError(f"a class index is out of range for the {len(classes)} classes")
    return index


def roc_curve(
    positive: npt.NDArray[np.bool_], score: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float] | None:
    """False and true positive rates at every distinct threshold, and the area under them.

    Tied scores form one step, so the area equals the Mann-Whitney statistic, which is what
    scikit-learn's ``roc_auc_score`` computes. ``None`` when only one class is present.
    """
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(-score, kind="mergesort")
    ordered, hits = score[order], positive[order]
    last = np.r_[np.flatnonzero(np.diff(ordered)), hits.size - 1]
    tps = np.cumsum(hits)[last]
    fpr, tpr = np.r_[0.0, (last + 1 - tps) / n_neg], np.r_[0.0, tps / n_pos]
    return fpr, tpr, float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _classification(evaluation: Evaluation) -> str:
    classes = _class_names(evaluation)
    true = class_indices(evaluation.y_true, classes)
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(counts, (true, class_indices(evaluation.y_pred, classes)), 1)
    accuracy = float(np.trace(counts)) / int(counts.sum())
    matrix = heatmap("chart-confusion-matrix", counts.tolist(), classes, "confusion matrix on test")
    return (
        '<div class="pair"><figure id="confusion-matrix"><figcaption>Confusion matrix '
        f"<small>accuracy {accuracy:.3f}</small></figcaption>{matrix}</figure>\n"
        f"{_roc(evaluation, classes, true)}</div>"
    )


def _roc(evaluation: Evaluation, classes: list[str], true: npt.NDArray[np.int64]) -> str:
    caption = '<figure id="roc"><figcaption>ROC curve</figcaption>'
    if evaluation.y_score is None:
        return f"{caption}{note('No class probabilities were given, so no ROC curve.')}</figure>"
    score = np.asarray(evaluation.y_score, dtype=np.float64)
    if score.ndim == 1 or len(classes) == 2:
        column = score if score.ndim == 1 else score[:, 1]
        curves = [(f"{classes[1]} vs {classes[0]}", true == 1, column)]
    else:
        curves = [(f"{name} vs rest", true == i, score[:, i]) for i, name in enumerate(classes)]
    lines: list[tuple[str, list[float], list[float]]] = []
    rows, aucs = [], []
    for i, (label, positive, column) in enumerate(curves):
        colour = PALETTE[i % len(PALETTE)]
        found = roc_curve(positive, column)
        if found is None:
            rows.append(f"<tr><td>{esc(label)}</td><td>n/a (one class only in test)</td></tr>")
            continue
        fpr, tpr, auc = found
        aucs.append(auc)
        lines.append((colour, fpr.tolist(), tpr.tolist()))
        rows.append(
            f'<tr data-curve="{esc(label)}"><td><span class="swatch" style="background:{colour}">'
            f'</span>{esc(label)}</td><td class="auc">{auc:.3f}</td></tr>'
        )
    if len(curves) > 2 and aucs:
        rows.append(
            '<tr class="macro"><td>macro average (one vs rest)</td>'
            f'<td class="auc-macro">{sum(aucs) / len(aucs):.3f}</td></tr>'
        )
    table = f'<table class="auc-table"><tr><th>curve</th><th>AUC</th></tr>{"".join(rows)}</table>'
    svg = curve_chart("chart-roc", lines, ("false positive rate", "true positive rate"))
    return f"{caption}{svg}{table}</figure>"


def _regression(evaluation: Evaluation) -> str:
    true = np.ravel(evaluation.y_true).astype(np.float64)
    pred = np.ravel(evaluation.y_pred).astype(np.float64)
    residual = true - pred
    rmse, mae = float(np.sqrt(np.mean(residual**2))), float(np.mean(np.abs(residual)))
    spread = float(np.sum((true - true.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / spread if spread > 0 else math.nan
    shown = f" (plots show {MAX_POINTS} of {true.size} rows)" if true.size > MAX_POINTS else ""
    stats = f"RMSE {fmt_value(rmse)} · MAE {fmt_value(mae)} · R² {fmt_value(r2)}{shown}"
    t, p, r = true.tolist(), pred.tolist(), residual.tolist()
    actual = scatter_chart("chart-predicted-actual", t, p, ("actual", "predicted"), "diagonal")
    resid = scatter_chart("chart-residuals", p, r, ("predicted", "actual minus predicted"), "zero")
    return (
        f'<p class="lead" id="regression-stats">{esc(stats)}</p>\n<div class="pair">'
        f'<figure id="predicted-vs-actual"><figcaption>Predicted vs actual</figcaption>{actual}'
        f'</figure><figure id="residuals"><figcaption>Residuals</figcaption>{resid}</figure></div>'
    )
