"""The monitoring report: one offline HTML page on how an endpoint's traffic looked in a window.

It renders the run's ``report.json`` document (a plain mapping), so it is tested without a job.
Inline CSS and SVG (the study report's :mod:`lockgate.pipelines.training.svg` helpers), no
script, no URL. Every string from the document is escaped (feature names and category values
are user data); missing or ``null`` keys show as "—"; the same document gives the same bytes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lockgate.pipelines.training.report_markup import fmt_value
from lockgate.pipelines.training.svg import STYLESHEET, Chart, Scale, esc, padded, svg, tag
from lockgate.ports.store import write_atomically

MAX_CATEGORIES = 12  # category values drawn per feature; the rest are counted in a note
MAX_RUN_LABELS = 5  # runs labelled by time on an over-time chart's x axis (they must not touch)
RUN_SIZE = (480, 260)  # an over-time chart, two side by side

VERDICTS = {
    "ok": ("OK", "No data quality violation and no dataset drift in this window."),
    "drift": ("Drift", "The share of drifted features reached the threshold."),
    "violations": ("Violations", "Captured rows broke data quality constraints."),
    "no_data": ("No data", "Too little traffic was captured to judge this window."),
}

Json = Mapping[str, Any]  # an object of the report.json document
Bins = tuple[list[float], list[str]]  # a histogram's drawn edges, and each bin's range as text

MONITORING_STYLESHEET = (
    STYLESHEET
    + """
.verdict{display:inline-block;font-size:2.6rem;font-weight:700;line-height:1.1;margin:8px 0 4px;
padding:4px 20px;border-radius:10px;background:#eeeeee;color:#555}.verdict.ok{background:#e3f4ec;
color:#00704a}.verdict.drift{background:#fff1dc;color:#9a5200}
.verdict.violations{background:#fbe4e1;color:#a93226}.pill{display:inline-block;padding:1px 9px;
border-radius:10px;font-size:.8rem;font-weight:600;background:#e3f4ec;color:#00704a}
.pill.bad{background:#fbe4e1;color:#a93226}.messages{margin:12px 0 0;padding:10px 16px 10px 34px;
border-left:4px solid #E69F00;background:#fff8e8}.table-wrap{overflow-x:auto}table.wide{width:100%}
td small,th small{display:block;color:var(--muted);font-weight:400}tr.drifted>*{background:#fff8ee}
tbody th{color:var(--ink);overflow-wrap:anywhere;max-width:220px}.over{color:var(--bad);
font-weight:600}.jump a{margin-right:8px}.dist-ref{fill:#c9d1d9;fill-opacity:.75;stroke:#8c99a6}
.dist-cur{fill:none;stroke:#0072B2;stroke-width:2}.bar-ref{fill:#b8c2cc}.bar-cur{fill:#0072B2}
.bin{fill:transparent}.threshold{fill:none;stroke:var(--bad);stroke-width:1.5;stroke-dasharray:5 4}
.release-line{fill:none;stroke:#009E73;stroke-width:1.5;stroke-dasharray:5 4}.run-line{fill:none;
stroke:#8c99a6;stroke-width:1.5}.meter{position:relative;max-width:480px;height:14px;
margin:0 0 14px;background:#eef0f2;border-radius:3px}.meter span{position:absolute;left:0;top:0;
bottom:0;background:var(--accent);border-radius:3px}.meter span.over{background:#E69F00}
.meter i{position:absolute;top:-4px;bottom:-4px;width:2px;margin-left:-1px;background:var(--bad)}
.v-ok{fill:#009E73;background:#009E73}.v-drift{fill:#E69F00;background:#E69F00}
.v-violations{fill:var(--bad);background:var(--bad)}.v-no_data,.v-unknown{fill:#9aa5b0;
background:#9aa5b0}.pt-this{fill:none;stroke:var(--ink);stroke-width:1.6}.key.line{width:16px;
height:2px;border-radius:0}.key.ref{background:#c9d1d9;border-radius:2px}
.key.cur{background:#0072B2;border-radius:2px}path.no-value{fill:none;stroke:#5f6b76;stroke-width:2}
"""
)


def write_monitoring_report(report: Mapping[str, Any], path: str | Path) -> Path:
    """Render ``report`` into ``path`` (UTF-8, parent folders created); returns the path.

    Atomic: a temporary file beside ``path`` is renamed over it, so a reader sees the previous
    page or the new one, never half of one.
    """
    target = Path(path)
    write_atomically(target, [render_monitoring_report(report).encode("utf-8")])
    return target


def render_monitoring_report(report: Mapping[str, Any]) -> str:
    """Render a monitoring run's ``report.json`` document as one offline HTML document.

    Args:
        report: The document; any key may be missing or ``null`` (shown as "—" or as a note).

    Returns:
        The page: inline CSS and SVG, no script, no URL.
    """
    title = f"Monitoring {_text(report.get('endpoint'))} · {_text(report.get('run'))} · lockgate"
    sections = [
        _summary(report),
        _data_quality(_map(report.get("data_quality"))),
        _data_drift(report.get("data_drift")),
        _model_quality(report),
        _over_time(report),
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{MONITORING_STYLESHEET}</style>\n</head>\n"
        "<body>\n<main>\n" + "\n".join(sections) + "\n</main>\n</body>\n</html>\n"
    )
    # User strings (messages, category values) may hold URLs. The reader sees them as written,
    # but the file holds none, so offline checks and link scanners find nothing to follow.
    return page.replace("://", "&#58;//")


def _map(value: object) -> Json:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: object) -> str:
    return "—" if value is None or value == "" else str(value)


def _count(value: object) -> str:
    return "—" if (number := _num(value)) is None else f"{number:,.0f}"


def _section(section_id: str, heading: str, *content: str) -> str:
    return f'<section id="{section_id}">\n<h2>{esc(heading)}</h2>\n{"".join(content)}\n</section>'


def _note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def _table(table_id: str, headers: Sequence[str], rows: str) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return (
        f'<div class="table-wrap"><table class="wide" id="{table_id}"><thead><tr>{head}</tr>'
        f"</thead><tbody>{rows}</tbody></table></div>"
    )


def _row(css: str, heading: str, *cells: str) -> str:
    """A table row: ``heading`` (escaped here) names it; ``cells`` are markup already."""
    tds = "".join(f"<td>{cell}</td>" for cell in cells)
    return f'<tr class="{css}"><th scope="row">{esc(heading)}</th>{tds}</tr>'


def _pill(bad: bool, text: str) -> str:
    return f'<span class="pill{" bad" if bad else ""}">{esc(text)}</span>'


def _verdict_key(value: object) -> str:
    return value if isinstance(value, str) and value in VERDICTS else "unknown"


def _summary(report: Json) -> str:
    window, release = _map(report.get("window")), _map(report.get("release"))
    verdict = report.get("verdict")
    key = _verdict_key(verdict)
    label, meaning = VERDICTS.get(key) or (_text(verdict), "The job gave no known verdict.")
    model = f"{_text(release.get('model'))} v{_text(release.get('version'))}"
    model = f"{model} (release {_text(release.get('seq'))})" if release else "no release"
    facts = {
        "Environment": report.get("env"),
        "Window": f"{_text(window.get('start'))} → {_text(window.get('end'))}",
        "Traffic": f"{_count(report.get('rows'))} rows, {_count(report.get('requests'))} requests",
        "Release model": model,
        "Data version": release.get("data_version"),
        "Package sha256": release.get("package_sha256"),
        "Run": report.get("run"),
        "Checked at": report.get("time"),
    }
    rows = "".join(f"<div><dt>{k}</dt><dd>{esc(_text(v))}</dd></div>" for k, v in facts.items())
    messages = "".join(f"<li>{esc(_text(m))}</li>" for m in _list(report.get("messages")))
    return (
        '<header id="summary">\n<p class="kicker">lockgate · monitoring report</p>\n'
        f"<h1>{esc(_text(report.get('endpoint')))}</h1>\n"
        f'<p id="verdict" class="verdict {key}" data-verdict="{key}">{esc(label)}</p>\n'
        f'<p class="lead">{esc(meaning)}</p>\n<dl class="facts">{rows}</dl>\n'
        + (f'<ul class="messages" id="messages">{messages}</ul>\n' if messages else "")
        + "</header>"
    )


def _data_quality(quality: Json) -> str:
    heading = "Data quality"
    if not quality:
        return _section("data-quality", heading, _note("Data quality was not checked."))
    violations = [_map(v) for v in _list(quality.get("violations"))]
    if not violations:
        return _section("data-quality", heading, _note("No constraint was violated."))
    keys = ("feature_name", "constraint_check_type", "description")
    rows = "".join(_row("violation", *(esc(_text(v.get(k))) for k in keys)) for v in violations)
    table = _table("violations-table", ("feature", "check", "description"), rows)
    count = f"{len(violations)} constraint violation{'s' if len(violations) != 1 else ''}."
    return _section("data-quality", heading, _note(count), table)


def _data_drift(drift: object) -> str:
    heading = "Data drift"
    if not isinstance(drift, Mapping):
        return _section("data-drift", heading, _note("Data drift was not computed for this run."))
    features = sorted((_map(f) for f in _list(drift.get("features"))), key=_drift_order)
    drifted = [f for f in features if f.get("drifted") is True]
    share, threshold = _num(drift.get("share")), _num(drift.get("threshold"))
    weighted = _num(drift.get("weighted_share"))
    bad = drift.get("drifted") is True
    lead = (
        f'<p class="lead" id="drift-verdict"><b>{len(drifted)} of {len(features)}</b> features '
        f"drifted: share {fmt_value(share)}"
        + (f", weighted share {fmt_value(weighted)}" if weighted is not None else "")
        + f" against a threshold of {fmt_value(threshold)} · "
        + _pill(bad, "dataset drifted" if bad else "dataset not drifted")
        + "</p>"
    )
    links = [
        f'<a href="#feature-{i}">{esc(_text(f.get("feature")))}</a>' for i, f in enumerate(drifted)
    ]
    jump = (
        f'<p class="jump" id="drifted-features">Drifted: {" ".join(links)}</p>\n' if links else ""
    )
    if not features:
        return _section("data-drift", heading, lead, _note("No feature was compared."))
    table = _feature_table(features, "feature")
    return _section("data-drift", heading, lead, _meter(share, threshold), jump, table)


def _drift_order(feature: Json) -> tuple[bool, float, str]:
    """Drifted first; then furthest past (or closest to) its effect threshold; then by name."""
    size, limit = _num(feature.get("effect_size")), _num(feature.get("effect_threshold"))
    ratio = size / limit if size is not None and limit else -math.inf
    return feature.get("drifted") is not True, -ratio, _text(feature.get("feature"))


def _meter(share: float | None, threshold: float | None) -> str:
    """A bar from 0 to 1: the share of drifted features, with the threshold marked."""
    if share is None:
        return ""
    over = " over" if threshold is not None and share >= threshold else ""
    width, left = (f"{min(max(v, 0.0), 1.0):.1%}" for v in (share, threshold or 0.0))
    mark = "" if threshold is None else f'<i style="left:{left}"></i>'
    return (  # a CSS bar: only computed widths are inline, no user string
        f'<div class="meter" id="drift-meter" role="img" aria-label="share {fmt_value(share)}, '
        f'threshold {fmt_value(threshold)}"><span class="meter-fill{over}" '
        f'style="width:{width}"></span>{mark}</div>\n'
    )


def _feature_table(features: Sequence[Json], prefix: str) -> str:
    rows = "".join(_feature_row(f, f"{prefix}-{i}") for i, f in enumerate(features))
    legend = (
        '<p class="legend"><span class="key ref"></span>reference (training data) '
        '<span class="key cur"></span>current window</p>\n'
    )
    headers = ("feature", "test", "p-value", "effect size", "verdict", "reference vs current")
    return legend + _table(f"{prefix}-table", headers, rows)


def _feature_row(feature: Json, row_id: str) -> str:
    name, drifted = _text(feature.get("feature")), feature.get("drifted") is True
    distribution = _distribution(feature)
    kind = feature.get("kind") or ("categorical" if "values" in distribution else "numeric")
    size, limit = _num(feature.get("effect_size")), _num(feature.get("effect_threshold"))
    over = size is not None and limit is not None and size >= limit
    versus = f" {'≥' if over else '&lt;'} {fmt_value(limit)}" if None not in (size, limit) else ""
    effect = (
        f'<td class="num effect"><span class="{"over" if over else "within"}">{fmt_value(size)}'
        f"</span><small>{esc(_text(feature.get('effect')))}{versus}</small></td>"
    )
    pill = _pill(drifted, "drifted" if drifted else "ok")
    stat, p_value, p_adjusted = (
        fmt_value(_num(feature.get(k))) for k in ("statistic", "p_value", "p_adjusted")
    )
    chart = _distribution_chart(f"chart-{row_id}", name, distribution)
    return (
        f'<tr id="{row_id}" class="feature{" drifted" if drifted else ""}" '
        f'data-drifted="{str(drifted).lower()}"><th scope="row" class="feature-name">{esc(name)}'
        f"<small>{esc(_text(kind))} · {_count(feature.get('n_reference'))} reference / "
        f"{_count(feature.get('n_current'))} current rows</small></th>"
        f'<td class="test">{esc(_text(feature.get("test")))}<small>statistic {stat}</small></td>'
        f'<td class="num p-value">{p_value}<small>adjusted {p_adjusted}</small></td>{effect}'
        f'<td>{pill}</td><td class="distribution">{chart}</td></tr>'
    )


def _distribution(feature: Json) -> Json:
    """The plotting data: under ``distribution``, or (older form) a dict under ``reference``."""
    for key in ("distribution", "reference"):
        found = _map(feature.get(key))
        if "edges" in found or "values" in found:
            return found
    return {}


def _shares(values: object, length: int) -> list[float] | None:
    shares = [_num(v) for v in _list(values)]
    if len(shares) != length or any(s is None or not math.isfinite(s) for s in shares):
        return None
    return [float(s or 0.0) for s in shares]


def _distribution_chart(chart_id: str, name: str, distribution: Json) -> str:
    if "values" in distribution:
        labels = [_text(v) for v in _list(distribution.get("values"))]
        ref = _shares(distribution.get("reference"), len(labels))
        cur = _shares(distribution.get("current"), len(labels))
        if labels and ref is not None and cur is not None:
            return _categorical_chart(chart_id, name, labels, ref, cur)
    else:
        bins = _bins(_list(distribution.get("edges")))
        count = len(bins[1]) if bins else 0
        ref = _shares(distribution.get("reference"), count)
        cur = _shares(distribution.get("current"), count)
        if bins and ref is not None and cur is not None:
            return _numeric_chart(chart_id, name, bins, ref, cur)
    return _note("No distribution to plot.")


def _bins(raw: list[Any]) -> Bins | None:
    """Drawn bin edges and each bin's range as text. An open end (infinite or null) is drawn
    one typical bin wide but named as open ("below 18"); other edges must be finite."""
    edges = [_num(e) for e in raw]
    inner = edges[1:-1]
    if len(edges) < 2 or any(e is None or not math.isfinite(e) for e in inner):
        return None
    finite = [e for e in edges if e is not None and math.isfinite(e)]
    if not finite:
        return None
    step = (finite[-1] - finite[0]) / (len(finite) - 1) if len(finite) > 1 else 0.0
    step = step or max(abs(finite[0]), 1.0)
    low, high = (e is None or not math.isfinite(e) for e in (edges[0], edges[-1]))
    drawn = [finite[0] - step if low else finite[0], *(e or 0.0 for e in inner)]
    drawn.append(finite[-1] + step if high else finite[-1])
    names = [f"[{a:.4g}, {b:.4g})" for a, b in itertools.pairwise(drawn)]
    names[0] = f"below {drawn[1]:.4g}" if low else names[0]
    names[-1] = f"{drawn[-2]:.4g} and above" if high else names[-1]
    return (drawn, names) if all(a <= b for a, b in itertools.pairwise(drawn)) else None


def _numeric_chart(chart_id: str, name: str, bins: Bins, ref: list[float], cur: list[float]) -> str:
    """Two step histograms over the same bins: reference filled, current as a line."""
    top = max([*ref, *cur, 1e-12]) * 1.1
    edges, names = bins
    x_domain = padded(edges[0], edges[-1], 0.0)
    chart = Chart(chart_id, x_domain, (0.0, top), name, "share", size=(300, 150))
    for shares, css in ((ref, "dist-ref"), (cur, "dist-cur")):
        points = [(chart.x(edges[0]), chart.y(0.0))]
        for i, share in enumerate(shares):
            points += [(chart.x(edges[i]), chart.y(share)), (chart.x(edges[i + 1]), chart.y(share))]
        chart.polyline([*points, (chart.x(edges[-1]), chart.y(0.0))], css)
    for i, (r, c) in enumerate(zip(ref, cur, strict=True)):  # a tooltip per bin
        x0, x1 = chart.x(edges[i]), chart.x(edges[i + 1])
        tip = f"{names[i]}: reference {r:.1%}, current {c:.1%}"
        chart.marks.append(_bar("bin", x0, chart.top, x1 - x0, chart.bottom - chart.top, tip))
    return chart.render(f"distribution of {name}: reference and current share per bin")


def _categorical_chart(
    chart_id: str, name: str, labels: list[str], ref: list[float], cur: list[float]
) -> str:
    """Paired horizontal bars per value (reference above current), most common values first."""
    order = sorted(range(len(labels)), key=lambda i: (-max(ref[i], cur[i]), labels[i]))
    shown = order[:MAX_CATEGORIES]
    label_width, row, width = 96.0, 22.0, 300
    scale = Scale((0.0, max([*ref, *cur, 1e-12])), label_width + 6.0, width - 48.0)
    parts = []
    for n, i in enumerate(shown):
        y = 4.0 + n * row
        label = labels[i] if len(labels[i]) <= 14 else labels[i][:13] + "…"
        tip = f"{labels[i]}: reference {ref[i]:.1%}, current {cur[i]:.1%}"
        content = (
            tag("title", esc(tip))
            + tag("text", esc(label), x=label_width, y=y + 15.0, text_anchor="end")
            + _bar("bar-ref", scale.start, y + 2.0, scale(ref[i]) - scale.start, 8.0)
            + _bar("bar-cur", scale.start, y + 10.0, scale(cur[i]) - scale.start, 8.0)
            + tag("text", f"{cur[i]:.0%}", class_="bar-value", x=scale(cur[i]) + 4, y=y + 18.0)
        )
        parts.append(tag("g", content, class_="bar-row"))
    height = int(8 + row * len(shown))
    chart = svg(chart_id, width, height, "".join(parts), f"share of each value of {name}")
    hidden = len(labels) - len(shown)
    return chart + (_note(f"and {hidden} less common values") if hidden > 0 else "")


def _bar(css: str, x: float, y: float, width: float, height: float, tip: str = "") -> str:
    title = tag("title", esc(tip)) if tip else ""
    return tag("rect", title, class_=css, x=x, y=y, width=max(width, 0.5), height=height)


def _model_quality(report: Json) -> str:
    heading = "Model quality"
    quality, prediction = report.get("model_quality"), report.get("prediction_drift")
    parts = []
    if isinstance(quality, Mapping):
        parts.append(_labelled_metrics(quality))
    if isinstance(prediction, Mapping):
        text = "Predictions of this window against the release's predictions on its data."
        if not isinstance(quality, Mapping):
            text = "No labels were joined to this window, so its predictions are compared instead."
        parts.append(f'<div id="prediction-drift">{_note(text)}')
        parts.append(_feature_table([prediction], "prediction") + "</div>")
    if not parts:
        parts.append(_note("No labels were joined to this window and no prediction drift was run."))
    return _section("model-quality", heading, *parts)


def _labelled_metrics(quality: Json) -> str:
    metrics, release = _map(quality.get("metrics")), _map(quality.get("release_metrics"))
    degraded = {str(m) for m in _list(quality.get("degraded"))}
    counts = (
        f'<p class="lead" id="label-counts"><b>{_count(quality.get("labels"))}</b> labelled rows '
        f"joined · {_count(quality.get('unknown_labels'))} unknown labels · "
        f"{_count(quality.get('ambiguous_labels'))} ambiguous labels</p>\n"
    )
    rows = []
    for name in dict.fromkeys([*metrics, *release]):
        now, then = _num(metrics.get(name)), _num(release.get(name))
        values = fmt_value(now), fmt_value(then)
        change = fmt_value(now - then) if now is not None and then is not None else "—"
        bad = name in degraded
        pill = _pill(bad, "degraded" if bad else "ok")
        rows.append(_row(f"metric{' degraded' if bad else ''}", name, *values, change, pill))
    if not rows:
        return counts + _note("No metric could be computed from the joined labels.")
    tolerance = fmt_value(_num(quality.get("tolerance")))
    text = f"A metric is degraded when it is worse than the release's by more than {tolerance}."
    headers = ("metric", "this window", "release", "change", "status")
    return counts + _note(text) + _table("metrics-table", headers, "".join(rows))


def _over_time(report: Json) -> str:
    heading = "Over time"
    history = [_map(h) for h in _list(report.get("history"))]
    if len(history) < 2:
        return _section("over-time", heading, _note("Charts over time appear from the second run."))
    threshold = _num(_map(report.get("data_drift")).get("threshold"))
    shares = [_num(h.get("share")) for h in history]
    label = "share of drifted features"
    figures = [_run_chart("chart-history-share", history, shares, label, (threshold, "threshold"))]
    release = _map(_map(report.get("model_quality")).get("release_metrics"))
    names = dict.fromkeys(name for h in history for name in _map(h.get("metrics")))
    for i, name in enumerate(names):
        values = [_num(_map(h.get("metrics")).get(name)) for h in history]
        if any(v is not None for v in values):
            line = (_num(release.get(name)), "release-line")
            figures.append(_run_chart(f"chart-history-metric-{i}", history, values, name, line))
    keys = [f'<span class="key v-{k}"></span>{esc(v[0].lower())}' for k, v in VERDICTS.items()]
    legend = (
        f'<p class="legend">runs by verdict: {" ".join(keys)} · <span class="key line '
        'v-violations"></span>drift threshold <span class="key line v-ok"></span>release</p>\n'
    )
    note = _note(f"{len(history)} runs, oldest first; the ringed point is this run.")
    pair = f'<div class="pair">{"".join(figures)}</div>'
    return _section("over-time", heading, note, legend, pair)


def _run_label(run: Json) -> str:
    when = _text(run.get("time") or run.get("run"))
    return when[5:16].replace("T", " ") if len(when) >= 16 else when


def _run_chart(
    chart_id: str,
    history: list[Json],
    values: list[float | None],
    label: str,
    line: tuple[float | None, str],
) -> str:
    """One value per run, oldest first, coloured by verdict; a run without a value is a cross
    in the strip under the plot. ``line`` is a dashed level and its CSS class."""
    reference, line_css = line
    known = [v for v in values if v is not None]
    span = [*known, *([] if reference is None else [reference])]
    bounds = (0.0, 1.0) if line_css == "threshold" else padded(min(span), max(span))
    every, n = math.ceil(len(history) / MAX_RUN_LABELS), len(history)  # no label at the very edge
    ticks = [
        _run_label(r) if i % every == 0 and n - i >= every else "" for i, r in enumerate(history)
    ]
    band, axis = len(known) < len(values), "run time (UTC)"
    chart = Chart(
        chart_id, (0, 1), bounds, axis, label, size=RUN_SIZE, categories=ticks, no_value_band=band
    )
    if reference is not None:
        level = chart.y(reference)
        chart.polyline([(chart.left, level), (chart.right, level)], line_css)
    marks = [None if v is None else (chart.x(i), chart.y(v)) for i, v in enumerate(values)]
    for _, group in itertools.groupby(marks, key=lambda mark: mark is None):  # lines break at gaps
        if len(stretch := [m for m in group if m is not None]) > 1:
            chart.polyline(stretch, "run-line")
    y = 0.0
    for i, (run, value) in enumerate(zip(history, values, strict=True)):
        css = f"v-{_verdict_key(run.get('verdict'))}"
        y = chart.no_value_y() if value is None else chart.y(value)
        tip = f"{_text(run.get('run'))} · {_text(run.get('verdict'))} · {label} {fmt_value(value)}"
        shape = "cross" if value is None else "circle"
        chart.point(chart.x(i), y, f"{css} no-value" if value is None else css, tip, shape=shape)
    chart.point(chart.x(len(history) - 1), y, "pt-this", "this run", shape="ring")
    drawing = chart.render(f"{label} per monitoring run")
    return f"<figure><figcaption>{esc(label)}</figcaption>{drawing}</figure>"
