"""The study report: one self-contained HTML file that tells how a study went.

This module assembles the page: the summary, the optimisation history, parameter importances,
the metric by parameter, the top and the failed trials, and (from
:mod:`lockgate.pipelines.training.report_evaluation`) the best model on the test split. It
renders plain data (:mod:`lockgate.pipelines.training.report_data`), never an Optuna study or
an MLflow run, so the training pipeline gathers the data and this module is tested without
either. The page works offline: inline CSS, inline SVG charts
(:mod:`lockgate.pipelines.training.svg`), no script, no external reference. Everything that
comes from data (study name, parameter values, errors) is HTML-escaped, and the same input
renders the same bytes.
"""

from __future__ import annotations

from pathlib import Path

from lockgate.pipelines.training.report_data import (
    StudyReport,
    TrialRow,
    has_value,
    value_or_nan,
)
from lockgate.pipelines.training.report_evaluation import evaluation_section
from lockgate.pipelines.training.report_markup import (
    fmt_duration,
    fmt_param,
    fmt_value,
    note,
    section,
)
from lockgate.pipelines.training.svg import STYLESHEET, Chart, esc, hbar_chart, padded

TOP_TRIALS = 10
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running"}
_AGES = 5  # shades of blue for "earlier / later trial" in the slice plots


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
        evaluation_section(report.evaluation),
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
    values = [value_or_nan(t) for t in trials if has_value(t) and t.state in ("COMPLETE", "PRUNED")]
    if not values:
        return section("history", heading, note("No trial has a value yet."))
    numbers = [t.number for t in trials]
    chart = Chart(
        "chart-history",
        padded(min(numbers), max(numbers), 0.03),
        padded(min(values), max(values)),
        "trial number",
        report.metric,
        size=(960, 340),
        no_value_band=any(not has_value(t) for t in trials),
    )
    steps: list[tuple[float, float]] = []
    best: float | None = None
    for trial in (t for t in trials if t.state == "COMPLETE" and has_value(t)):
        x = chart.x(trial.number)
        if best is not None:
            steps.append((x, chart.y(best)))
        best = value_or_nan(trial) if best is None else _better(report, best, value_or_nan(trial))
        steps.append((x, chart.y(best)))
    if steps:
        chart.polyline([*steps, (chart.right, steps[-1][1])], "best-line")
    for trial in trials:
        state = trial.state.lower()
        tip = f"trial {trial.number} · {state} · {fmt_value(trial.value)}"
        tip += f" · {trial.family or 'no family'}"
        if trial.error and trial.error.strip():
            tip += " · " + trial.error.strip().splitlines()[-1][:160]
        if not has_value(trial):
            shape = "cross" if trial.state == "FAIL" else "circle"
            chart.point(chart.x(trial.number), chart.no_value_y(), f"pt-{state}", tip, shape=shape)
        elif trial.state in ("COMPLETE", "PRUNED"):
            chart.point(chart.x(trial.number), chart.y(value_or_nan(trial)), f"pt-{state}", tip)
    if report.best is not None and has_value(report.best):
        x, y = chart.x(report.best.number), chart.y(value_or_nan(report.best))
        chart.point(x, y, "pt-best", f"selected best: trial {report.best.number}", shape="ring")
    legend = (
        '<p class="legend"><span class="key complete"></span>complete '
        '<span class="key pruned"></span>pruned (last reported value) '
        '<span class="key fail">&times;</span>failed <span class="key best-line"></span>'
        'best so far <span class="key best"></span>selected best '
        '<span class="key running"></span>running</p>\n'
    )
    svg = chart.render(f"{report.metric} of each trial by trial number, with the best so far")
    return section("history", heading, legend, f"<figure>{svg}</figure>")


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
        return section("importances", heading, note(text))
    ordered = sorted(report.importances.items(), key=lambda kv: (-kv[1], kv[0]))
    names, values = [k for k, _ in ordered], [v for _, v in ordered]
    svg = hbar_chart(
        "chart-importances", names, values, f"importance of parameters for {report.metric}"
    )
    text = (
        "How much each parameter mattered for the metric, as Optuna's importance evaluator sees it."
    )
    return section("importances", heading, note(text), f"<figure>{svg}</figure>")


def _slices(report: StudyReport) -> str:
    heading = "Metric by parameter"
    trials = sorted(
        (t for t in report.trials if t.state == "COMPLETE" and has_value(t)),
        key=lambda t: t.number,
    )
    # Most important parameters first, then the rest in the order they were suggested.
    by_importance = sorted(report.importances, key=lambda n: (-report.importances[n], n))
    names = list(dict.fromkeys([*by_importance, *(n for t in trials for n in t.params)]))
    names = [n for n in names if any(n in t.params for t in trials)]
    if not names:
        return section("slices", heading, note("No complete trial to plot."))
    figures = [_slice(report, index, name, trials) for index, name in enumerate(names)]
    text = (
        "Each complete trial's value against one parameter; darker points are later trials, "
        "the orange one is the selected best."
    )
    return section("slices", heading, note(text), f'<div class="slices">{"".join(figures)}</div>')


def _slice(report: StudyReport, index: int, name: str, trials: list[TrialRow]) -> str:
    age = {t.number: i * _AGES // len(trials) for i, t in enumerate(trials)}
    best = report.best.number if report.best is not None else None
    rows = [(t.params[name], value_or_nan(t), t.number) for t in trials if name in t.params]
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
        tip = f"trial {number} · {name}={fmt_param(param)} · {fmt_value(value)}"
        chart.point(px, chart.y(value), css, tip)
    kind = "log scale" if log else ("numeric" if numeric else "categorical")
    return (
        f'<figure class="slice" data-param="{esc(name)}"><figcaption>{esc(name)} '
        f"<small>{kind}</small></figcaption>{chart.render(f'{report.metric} by {name}')}</figure>"
    )


def _top_trials(report: StudyReport) -> str:
    ranked = report.ranked()[:TOP_TRIALS]
    if not ranked:
        return section("top-trials", "Top trials", note("No complete trial to compare."))
    best = report.best.number if report.best is not None else None
    rows = []
    for rank, trial in enumerate(ranked, start=1):
        params = " ".join(
            f"<code>{esc(k)}={esc(fmt_param(v))}</code>" for k, v in trial.params.items()
        )
        css = ' class="best"' if trial.number == best else ""
        family, duration = esc(trial.family or "—"), fmt_duration(trial.duration_s)
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
    return section("top-trials", "Top trials", f"{note(text)}\n{table}")


def _failed_trials(report: StudyReport) -> str:
    failed = sorted((t for t in report.trials if t.state == "FAIL"), key=lambda t: t.number)
    if not failed:
        return section("failed-trials", "Failed trials", note("No trial failed."))
    items = "".join(
        f'<li data-trial="{t.number}"><b>trial {t.number}</b> · {esc(t.family or "no family")} · '
        f"{fmt_duration(t.duration_s)}"
        f'<pre class="error">{esc(t.error or "no error recorded")}</pre></li>'
        for t in failed
    )
    return section("failed-trials", "Failed trials", f'<ul class="failures">{items}</ul>')
