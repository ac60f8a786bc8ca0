"""The study report: one self-contained HTML file that tells how a study went.

It renders plain data (:class:`StudyReport`), never an Optuna study or an MLflow run, so the
training pipeline gathers the data and this module is tested without either. The page works
offline: inline CSS, inline SVG charts (:mod:`lockgate.pipelines.training.svg`), no script,
no external reference. Everything that comes from data (study name, parameter values,
errors) is HTML-escaped, and the same input renders the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lockgate.pipelines.training.svg import (
    MAX_POINTS,
    PALETTE,
    STYLESHEET,
    Chart,
    curve_chart,
    esc,
    hbar_chart,
    heatmap,
    padded,
    scatter_chart,
)

TOP_TRIALS = 10
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running"}
_AGES = 5  # shades of blue for "earlier / later trial" in the slice plots


@dataclass(frozen=True)
class TrialRow:
    """One trial as the report shows it.

    Attributes:
        number: Optuna trial number.
        state: ``COMPLETE``, ``PRUNED``, ``FAIL`` or ``RUNNING``.
        value: Objective value; ``None`` when the trial has none (failed, running, often
            pruned). A pruned trial's value, if given, is its last reported one.
        params: Sampled hyperparameters, in the order they were suggested.
        duration_s: Wall time in seconds; ``None`` while running.
        family: Model family; ``None`` when the trial failed before choosing one.
        error: What a failed trial raised.
    """

    number: int
    state: str
    value: float | None
    params: dict[str, str | int | float]
    duration_s: float | None
    family: str | None
    error: str | None = None


@dataclass(frozen=True, eq=False)
class Evaluation:
    """The best model scored once on the untouched test split.

    Attributes:
        task: ``classification`` or ``regression``.
        metric: Name of the study's metric.
        value: That metric on the test split.
        y_true: True targets; for classification, class indices (whole numbers).
        y_pred: Predictions, in the same form as ``y_true``.
        y_score: Class probabilities ``(rows, classes)`` in class-index order (for two
            classes a 1-D positive-class score is accepted too); ``None`` for regression.
        classes: Class names in index order; ``None`` for regression (names become ``0..k-1``).
    """

    task: str
    metric: str
    value: float
    y_true: npt.NDArray[Any]
    y_pred: npt.NDArray[Any]
    y_score: npt.NDArray[Any] | None = None
    classes: list[str] | None = None


@dataclass(frozen=True)
class StudyReport:
    """Everything the report shows about one study.

    Attributes:
        study_name: Optuna study name.
        dataset: Dataset the study trained on.
        data_version: Dataset version id.
        metric: Metric optimised on the validation split.
        direction: ``maximize`` or ``minimize``; anything else raises ``ValueError``.
        trials: Every trial of the study, in any state.
        importances: Parameter name to importance; empty when too few trials to compute.
        best: The best trial as the pipeline selected it (ties broken by cost), if any.
        evaluation: The best model on the test split, once it has been scored.
        created_at: When the report was made; the only time the page shows.
    """

    study_name: str
    dataset: str
    data_version: str
    metric: str
    direction: str
    trials: list[TrialRow]
    importances: dict[str, float]
    best: TrialRow | None
    evaluation: Evaluation | None
    created_at: str

    def __post_init__(self) -> None:
        if self.direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be 'maximize' or 'minimize', not {self.direction!r}")

    def ranked(self) -> list[TrialRow]:
        """Complete trials with a finite value, best first (ties: lower trial number)."""
        sign = -1.0 if self.direction == "maximize" else 1.0
        complete = [t for t in self.trials if t.state == "COMPLETE" and _has_value(t)]
        return sorted(complete, key=lambda t: (sign * _value(t), t.number))


def write_report(report: StudyReport, path: str | Path) -> Path:
    """Render ``report`` into ``path`` as UTF-8, creating parent folders; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_report(report), encoding="utf-8")
    return target


def render_report(report: StudyReport) -> str:
    """Render ``report`` as one offline HTML document (no script, no external resource).

    Raises:
        ValueError: The evaluation's class labels do not match its classes.
    """
    sections = [
        _summary(report),
        _history(report),
        _importances(report),
        _slices(report),
        _evaluation(report.evaluation),
        _top_trials(report),
        _failed_trials(report),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(f'Study {report.study_name} · lockgate')}</title>\n"
        f"<style>{STYLESHEET}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(sections)
        + "\n</main>\n</body>\n</html>\n"
    )


def fmt_value(value: float | None) -> str:
    """A metric value as the report prints it: 4 decimals, or 4 significant digits."""
    if value is None:
        return "—"
    if not math.isfinite(value) or (value != 0 and not 1e-3 <= abs(value) < 1e4):
        return f"{value:.4g}"
    return f"{value:.4f}"


def _fmt_param(value: str | int | float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def _has_value(trial: TrialRow) -> bool:
    return trial.value is not None and math.isfinite(trial.value)


def _value(trial: TrialRow) -> float:
    return float(trial.value) if trial.value is not None else math.nan


def _section(section_id: str, heading: str, *content: str) -> str:
    return f'<section id="{section_id}">\n<h2>{esc(heading)}</h2>\n{"".join(content)}\n</section>'


def _note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def _summary(report: StudyReport) -> str:
    counts = {state: sum(t.state == state for t in report.trials) for state in STATES}
    better = "higher" if report.direction == "maximize" else "lower"
    best = report.best
    best_text = "—"
    if best is not None and best.value is not None:
        best_text = f"{fmt_value(best.value)} (trial {best.number}, {best.family or 'no family'})"
    facts = {
        "Dataset": report.dataset,
        "Data version": report.data_version,
        "Metric": f"{report.metric} ({report.direction}: {better} is better)",
        "Best value": best_text,
        "Created": report.created_at,
    }
    rows = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in facts.items())
    badges = "".join(
        f'<span class="count {state.lower()}" data-state="{state}"><b>{counts[state]}</b> '
        f"{label}</span>"
        for state, label in STATES.items()
    )
    notice = ""
    if counts["COMPLETE"] == 0:
        notice = (
            '<p class="notice" id="no-complete-trials">No trial has completed yet, so this '
            "study has no best value, no history of values and no evaluated model.</p>\n"
        )
    return (
        f'<header id="summary">\n<p class="kicker">lockgate · study report</p>\n'
        f'<h1>{esc(report.study_name)}</h1>\n<p class="counts"><span class="count total">'
        f'<b>{len(report.trials)}</b> trials</span>{badges}</p>\n<dl class="facts">{rows}</dl>\n'
        f"{notice}</header>"
    )


def _history(report: StudyReport) -> str:
    heading = "Optimisation history"
    trials = sorted(report.trials, key=lambda t: t.number)
    values = [_value(t) for t in trials if _has_value(t) and t.state in ("COMPLETE", "PRUNED")]
    if not values:
        return _section("history", heading, _note("No trial has a value yet."))
    numbers = [t.number for t in trials]
    chart = Chart(
        "chart-history",
        padded(min(numbers), max(numbers), 0.03),
        padded(min(values), max(values)),
        "trial number",
        report.metric,
        size=(960, 340),
        no_value_band=any(not _has_value(t) for t in trials),
    )
    steps: list[tuple[float, float]] = []
    best: float | None = None
    for trial in (t for t in trials if t.state == "COMPLETE" and _has_value(t)):
        x = chart.x(trial.number)
        if best is not None:
            steps.append((x, chart.y(best)))
        best = _value(trial) if best is None else _better(report, best, _value(trial))
        steps.append((x, chart.y(best)))
    if steps:
        chart.polyline([*steps, (chart.right, steps[-1][1])], "best-line")
    for trial in trials:
        state = trial.state.lower()
        tip = f"trial {trial.number} · {state} · {fmt_value(trial.value)}"
        tip += f" · {trial.family or 'no family'}"
        if trial.error and trial.error.strip():
            tip += " · " + trial.error.strip().splitlines()[-1][:160]
        if not _has_value(trial):
            shape = "cross" if trial.state == "FAIL" else "circle"
            chart.point(chart.x(trial.number), chart.no_value_y(), f"pt-{state}", tip, shape=shape)
        elif trial.state in ("COMPLETE", "PRUNED"):
            chart.point(chart.x(trial.number), chart.y(_value(trial)), f"pt-{state}", tip)
    if report.best is not None and _has_value(report.best):
        x, y = chart.x(report.best.number), chart.y(_value(report.best))
        chart.point(x, y, "pt-best", f"selected best: trial {report.best.number}", shape="ring")
    legend = (
        '<p class="legend"><span class="key complete"></span>complete '
        '<span class="key pruned"></span>pruned (last reported value) '
        '<span class="key fail">&times;</span>failed <span class="key best-line"></span>'
        'best so far <span class="key best"></span>selected best '
        '<span class="key running"></span>running</p>\n'
    )
    svg = chart.render(f"{report.metric} of each trial by trial number, with the best so far")
    return _section("history", heading, legend, f"<figure>{svg}</figure>")


def _better(report: StudyReport, a: float, b: float) -> float:
    return max(a, b) if report.direction == "maximize" else min(a, b)


def _importances(report: StudyReport) -> str:
    heading = "Parameter importances"
    if not report.importances:
        complete = sum(t.state == "COMPLETE" for t in report.trials)
        text = (
            f"Too few complete trials to compute parameter importances ({complete} complete); "
            "they appear once the study has more completed trials."
        )
        return _section("importances", heading, _note(text))
    ordered = sorted(report.importances.items(), key=lambda kv: (-kv[1], kv[0]))
    names, values = [k for k, _ in ordered], [v for _, v in ordered]
    svg = hbar_chart(
        "chart-importances", names, values, f"importance of parameters for {report.metric}"
    )
    text = (
        "How much each parameter mattered for the metric, as Optuna's importance evaluator sees it."
    )
    return _section("importances", heading, _note(text), f"<figure>{svg}</figure>")


def _slices(report: StudyReport) -> str:
    heading = "Metric by parameter"
    trials = sorted(
        (t for t in report.trials if t.state == "COMPLETE" and _has_value(t)),
        key=lambda t: t.number,
    )
    # Most important parameters first, then the rest in the order they were suggested.
    by_importance = sorted(report.importances, key=lambda n: (-report.importances[n], n))
    names = list(dict.fromkeys([*by_importance, *(n for t in trials for n in t.params)]))
    names = [n for n in names if any(n in t.params for t in trials)]
    if not names:
        return _section("slices", heading, _note("No complete trial to plot."))
    figures = [_slice(report, index, name, trials) for index, name in enumerate(names)]
    text = (
        "Each complete trial's value against one parameter; darker points are later trials, "
        "the orange one is the selected best."
    )
    return _section("slices", heading, _note(text), f'<div class="slices">{"".join(figures)}</div>')


def _slice(report: StudyReport, index: int, name: str, trials: list[TrialRow]) -> str:
    age = {t.number: i * _AGES // len(trials) for i, t in enumerate(trials)}
    best = report.best.number if report.best is not None else None
    rows = [(t.params[name], _value(t), t.number) for t in trials if name in t.params]
    values = [v for _, v, _ in rows]
    numeric = all(isinstance(p, int | float) and not isinstance(p, bool) for p, _, _ in rows)
    categories = [] if numeric else sorted({str(p) for p, _, _ in rows})
    xs = [float(p) if numeric else float(categories.index(str(p))) for p, _, _ in rows]
    log = numeric and min(xs) > 0 and max(xs) / min(xs) >= 100
    x_domain = (min(xs) / 1.25, max(xs) * 1.25) if log else padded(min(xs), max(xs))
    chart = Chart(
        f"chart-slice-{index}",
        x_domain,
        padded(min(values), max(values)),
        name,
        report.metric,
        size=(320, 230),
        x_log=log,
        categories=categories,
    )
    seen: dict[float, int] = {}
    for x, (param, value, number) in zip(xs, rows, strict=True):
        px = chart.x(x)
        if not numeric:
            # Spread a category's points by the golden ratio: deterministic, few overlaps.
            seen[x] = seen.get(x, 0) + 1
            px += ((seen[x] * 0.618034) % 1 - 0.5) * (chart.x(1.0) - chart.x(0.0)) * 0.6
        css = "pt-best-slice" if number == best else f"pt-age{age[number]}"
        tip = f"trial {number} · {name}={_fmt_param(param)} · {fmt_value(value)}"
        chart.point(px, chart.y(value), css, tip)
    kind = "log scale" if log else ("numeric" if numeric else "categorical")
    return (
        f'<figure class="slice" data-param="{esc(name)}"><figcaption>{esc(name)} '
        f"<small>{kind}</small></figcaption>{chart.render(f'{report.metric} by {name}')}</figure>"
    )


def _evaluation(evaluation: Evaluation | None) -> str:
    heading = "Best model on the test split"
    if evaluation is None:
        return _section("evaluation", heading, _note("The best model has not been scored on test."))
    rows = np.asarray(evaluation.y_true).size
    if rows == 0:
        return _section("evaluation", heading, _note("The test split is empty."))
    lead = (
        f'<p class="lead">{esc(evaluation.metric)} on test: <b id="test-metric">'
        f"{esc(fmt_value(evaluation.value))}</b> · {rows} rows</p>\n"
    )
    if evaluation.task == "classification":
        return _section("evaluation", heading, lead, _classification(evaluation))
    return _section("evaluation", heading, lead, _regression(evaluation))


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
        return f"{caption}{_note('No class probabilities were given, so no ROC curve.')}</figure>"
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


def _top_trials(report: StudyReport) -> str:
    ranked = report.ranked()[:TOP_TRIALS]
    if not ranked:
        return _section("top-trials", "Top trials", _note("No complete trial to compare."))
    best = report.best.number if report.best is not None else None
    rows = []
    for rank, trial in enumerate(ranked, start=1):
        params = " ".join(
            f"<code>{esc(k)}={esc(_fmt_param(v))}</code>" for k, v in trial.params.items()
        )
        css = ' class="best"' if trial.number == best else ""
        family, duration = esc(trial.family or "—"), _fmt_duration(trial.duration_s)
        rows.append(
            f'<tr data-trial="{trial.number}"{css}><td>{rank}</td><td>{trial.number}</td>'
            f'<td class="value">{fmt_value(trial.value)}</td><td>{family}</td>'
            f'<td class="num">{duration}</td><td class="params">{params}</td></tr>'
        )
    order = "highest" if report.direction == "maximize" else "lowest"
    table = (
        f'<table id="top-trials-table"><thead><tr><th>rank</th><th>trial</th>'
        f"<th>{esc(report.metric)}</th><th>family</th><th>duration</th><th>parameters</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )
    text = f"The {len(ranked)} complete trials with the {order} {report.metric}."
    return _section("top-trials", "Top trials", f"{_note(text)}\n{table}")


def _failed_trials(report: StudyReport) -> str:
    failed = sorted((t for t in report.trials if t.state == "FAIL"), key=lambda t: t.number)
    if not failed:
        return _section("failed-trials", "Failed trials", _note("No trial failed."))
    items = "".join(
        f'<li data-trial="{t.number}"><b>trial {t.number}</b> · {esc(t.family or "no family")} · '
        f"{_fmt_duration(t.duration_s)}"
        f'<pre class="error">{esc(t.error or "no error recorded")}</pre></li>'
        for t in failed
    )
    return _section("failed-trials", "Failed trials", f'<ul class="failures">{items}</ul>')
