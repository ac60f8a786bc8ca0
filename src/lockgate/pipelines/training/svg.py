"""Inline SVG charts for the offline study report: points and lines, bars, a heatmap.

Hand-written rather than matplotlib so the report needs no plotting library and renders the
same bytes for the same input (coordinates rounded to 0.1 px, no generated ids). Charts draw
with CSS classes defined in :data:`STYLESHEET`; only data-driven colours (heatmap intensity,
one colour per curve) are inline. All text reaching the SVG is escaped by :func:`tag`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

MAX_POINTS = 1500  # markers in one scatter; more points are thinned evenly
MAX_CURVE_POINTS = 400  # vertices of one curve

# Okabe-Ito colour-blind-safe palette, without its yellow (unreadable on white).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")


def esc(text: object) -> str:
    """Escape any value for HTML/SVG text and attribute positions."""
    return escape(str(text), quote=True)


def _n(value: float) -> str:
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


def tag(name: str, content: str = "", /, **attrs: object) -> str:
    """One SVG element; ``content`` is markup already, attribute values are escaped.

    Floats are rounded to 0.1 px; ``class_`` becomes ``class``, ``text_anchor`` ``text-anchor``.
    """
    text = "".join(
        f' {key.rstrip("_").replace("_", "-")}="{_n(v) if isinstance(v, float) else esc(v)}"'
        for key, v in attrs.items()
    )
    return f"<{name}{text}>{content}</{name}>" if content else f"<{name}{text}/>"


def tick_label(value: float) -> str:
    """Short label for an axis tick (``0.25``, ``1e-05``, ``1.2e+03``)."""
    return "0" if value == 0 else f"{value:.3g}"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick positions (1, 2, 2.5 or 5 times a power of ten) inside [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1.0, 2.0, 2.5, 5.0, 10.0) if raw <= m * magnitude)
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def padded(lo: float, hi: float, fraction: float = 0.06) -> tuple[float, float]:
    """Widen a data range a little so points do not sit on the frame; handles lo == hi."""
    lo, hi = min(lo, hi), max(lo, hi)
    span = hi - lo
    if span == 0:
        half = (abs(lo) * 0.2 or 1.0) / 2
        return lo - half, hi + half
    return lo - span * fraction, hi + span * fraction


class Scale:
    """Maps a numeric domain onto a pixel range, linearly or in log10."""

    def __init__(self, domain: tuple[float, float], start: float, end: float, log: bool = False):
        self.lo, self.hi = domain
        self.start, self.end, self.log = start, end, log

    def _t(self, value: float) -> float:
        return math.log10(value) if self.log else value

    def __call__(self, value: float) -> float:
        """Pixel position of ``value``."""
        lo, hi = self._t(self.lo), self._t(self.hi)
        if hi == lo:
            return (self.start + self.end) / 2
        return self.start + (self._t(value) - lo) / (hi - lo) * (self.end - self.start)

    def ticks(self) -> list[float]:
        """Tick positions inside the domain (decades, and 2 and 5 when few decades)."""
        if not self.log:
            return nice_ticks(self.lo, self.hi)
        decades = range(math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi)) + 1)
        steps = (1.0,) if len(decades) > 3 else (1.0, 2.0, 5.0)
        candidates = (m * 10.0**d for d in decades for m in steps)
        return [v for v in candidates if self.lo <= v <= self.hi]


class Chart:
    """One plot area with axes; add marks (points, lines), then :meth:`render`.

    Args:
        chart_id: Stable ``id`` of the ``<svg>`` element (tests and links find charts by it).
        x_domain: ``(lo, hi)`` of the x axis; ignored when ``categories`` are given.
        y_domain: ``(lo, hi)`` of the y axis.
        x_label: Title under the x axis.
        y_label: Title beside the y axis.
        size: ``(width, height)`` of the drawing in pixels; it scales down with the page.
        x_log: Log10 x axis (positive domain only).
        categories: Category names for a categorical x axis; category ``i`` sits at x = ``i``.
        no_value_band: Reserve a strip under the plot for marks that have no y value.
    """

    def __init__(
        self,
        chart_id: str,
        x_domain: tuple[float, float],
        y_domain: tuple[float, float],
        x_label: str,
        y_label: str,
        *,
        size: tuple[int, int] = (640, 340),
        x_log: bool = False,
        categories: Sequence[str] = (),
        no_value_band: bool = False,
    ) -> None:
        self.chart_id, self.x_label, self.y_label = chart_id, x_label, y_label
        self.width, self.height = size
        self.left, self.right, self.top, self.bottom = 64.0, size[0] - 16.0, 14.0, size[1] - 44.0
        self.band_top = self.bottom - 20.0 if no_value_band else self.bottom
        self.categories = list(categories)
        if self.categories:
            x_domain = (-0.5, len(self.categories) - 0.5)
        self.x = Scale(x_domain, self.left, self.right, x_log)
        self.y = Scale(y_domain, self.band_top - 4.0, self.top)
        self.marks: list[str] = []

    def no_value_y(self) -> float:
        """Pixel y of the centre of the no-value strip."""
        return (self.band_top + self.bottom) / 2

    def point(
        self, x: float, y: float, css_class: str, title: str = "", *, shape: str = "circle"
    ) -> None:
        """Add a marker at pixel ``(x, y)``: ``circle``, ``ring`` (larger, hollow) or ``cross``."""
        tip = tag("title", esc(title)) if title else ""
        if shape == "cross":
            a, b, c, d = _n(x - 4), _n(x + 4), _n(y - 4), _n(y + 4)
            path = f"M{a} {c}L{b} {d}M{a} {d}L{b} {c}"
            self.marks.append(tag("path", tip, class_=css_class, d=path))
        else:
            radius = 7 if shape == "ring" else 4
            self.marks.append(tag("circle", tip, class_=css_class, cx=x, cy=y, r=radius))

    def polyline(
        self, points: Sequence[tuple[float, float]], css_class: str, style: str = ""
    ) -> None:
        """Add a line through pixel points (``style`` for a data-driven colour)."""
        coords = " ".join(f"{_n(x)},{_n(y)}" for x, y in points)
        extra = {"style": style} if style else {}
        self.marks.append(tag("polyline", class_=css_class, points=coords, **extra))

    def _axes(self) -> str:
        parts = []
        for tick in self.y.ticks():
            y = self.y(tick)
            parts.append(tag("line", class_="grid", x1=self.left, x2=self.right, y1=y, y2=y))
            parts.append(tag("text", tick_label(tick), x=self.left - 6, y=y + 4, text_anchor="end"))
        if self.categories:
            xs = [(self.x(i), esc(_short(c, 18))) for i, c in enumerate(self.categories)]
        else:
            xs = [(self.x(t), tick_label(t)) for t in self.x.ticks()]
        for x, label in xs:
            parts.append(tag("line", class_="tick", x1=x, x2=x, y1=self.bottom, y2=self.bottom + 5))
            parts.append(tag("text", label, x=x, y=self.bottom + 18, text_anchor="middle"))
        if self.band_top != self.bottom:
            w, h = self.right - self.left, self.bottom - self.band_top
            parts.append(
                tag("rect", class_="no-value-band", x=self.left, y=self.band_top, width=w, height=h)
            )
            parts.append(
                tag("text", "no value", x=self.left - 6, y=self.no_value_y() + 4, text_anchor="end")
            )
        frame = f"M{_n(self.left)} {_n(self.top)}V{_n(self.bottom)}H{_n(self.right)}"
        mid_x, mid_y = (self.left + self.right) / 2, (self.top + self.band_top) / 2
        parts.append(tag("path", class_="frame", d=frame))
        parts.append(
            tag(
                "text",
                esc(self.x_label),
                class_="label",
                x=mid_x,
                y=self.height - 6.0,
                text_anchor="middle",
            )
        )
        turn = f"translate(14 {_n(mid_y)}) rotate(-90)"
        parts.append(
            tag("text", esc(self.y_label), class_="label", transform=turn, text_anchor="middle")
        )
        return tag("g", "".join(parts), class_="axis")

    def render(self, description: str) -> str:
        """The ``<svg>`` element, with ``description`` as its accessible name."""
        content = self._axes() + "".join(self.marks)
        return svg(self.chart_id, self.width, self.height, content, description)


def svg(chart_id: str, width: int, height: int, content: str, description: str) -> str:
    """The outer ``<svg>`` of a chart; its viewBox lets it scale with the page."""
    box = f"0 0 {width} {height}"
    attrs = {"role": "img", "aria-label": description}
    return tag(
        "svg",
        content,
        id=chart_id,
        class_="chart",
        viewBox=box,
        width=width,
        height=height,
        **attrs,
    )


def thin(n: int, limit: int) -> list[int]:
    """At most ``limit`` evenly spaced indices into ``n`` items, first and last kept.

    Big arrays then plot as small SVG, and the same input always keeps the same points.
    """
    if n <= limit:
        return list(range(n))
    return sorted({round(i * (n - 1) / (limit - 1)) for i in range(limit)})


def _short(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def hbar_chart(
    chart_id: str, labels: Sequence[str], values: Sequence[float], description: str
) -> str:
    """Horizontal bars, one per label in the order given, each with its value printed."""
    label_width = min(220, 12 + 7 * max((len(_short(label, 30)) for label in labels), default=4))
    width, row, top = 640, 26, 8
    scale = Scale((0.0, max([*values, 1e-12])), label_width + 8.0, width - 70.0)
    parts = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y, bar = float(top + i * row), max(scale(value) - scale.start, 1.0)
        parts.append(
            tag(
                "g",
                tag("title", esc(f"{label}: {value:.3f}"))
                + tag("text", esc(_short(label, 30)), x=label_width, y=y + 17, text_anchor="end")
                + tag("rect", class_="bar", x=scale.start, y=y + 4, width=bar, height=row - 8)
                + tag("text", f"{value:.3f}", class_="bar-value", x=scale(value) + 6, y=y + 17),
                class_="bar-row",
                data_label=label,
            )
        )
    return svg(chart_id, width, top * 2 + row * len(labels), "".join(parts), description)


def heatmap(
    chart_id: str, counts: Sequence[Sequence[int]], labels: Sequence[str], description: str
) -> str:
    """A confusion matrix: rows are true classes, columns predicted ones, counts printed.

    Colour is the share of the row, so a rare class's errors stay visible. Each cell is a
    ``g.cm-cell`` with ``data-row``, ``data-col`` and ``data-count``.
    """
    k = len(labels)
    cell = max(28.0, min(72.0, 400.0 / max(k, 1)))
    label_width = min(160, 16 + 7 * max((len(_short(label, 20)) for label in labels), default=1))
    left, top = 30.0 + label_width, 8.0
    width, height = int(left + cell * k + 16), int(top + cell * k + label_width * 0.6 + 30)
    turn = f"translate(14 {_n(top + cell * k / 2)}) rotate(-90)"
    parts = [
        tag(
            "text",
            "predicted class",
            class_="label",
            x=left + cell * k / 2,
            y=height - 8.0,
            text_anchor="middle",
        ),
        tag("text", "true class", class_="label", transform=turn, text_anchor="middle"),
    ]
    for i, row in enumerate(counts):
        total = sum(row) or 1
        y_mid = top + (i + 0.5) * cell + 4
        parts.append(
            tag("text", esc(_short(labels[i], 20)), x=left - 6, y=y_mid, text_anchor="end")
        )
        for j, count in enumerate(row):
            share, x, y = count / total, left + j * cell, top + i * cell
            title = f"true {labels[i]}, predicted {labels[j]}: {count} ({share:.1%} of row)"
            fill = f"rgba(0,114,178,{0.06 + 0.94 * share:.3f})"
            ink = "#ffffff" if share > 0.55 else "#1a1a1a"
            parts.append(
                tag(
                    "g",
                    tag("title", esc(title))
                    + tag("rect", x=x, y=y, width=cell - 2, height=cell - 2, fill=fill)
                    + tag(
                        "text",
                        str(count),
                        x=x + cell / 2 - 1,
                        y=y + cell / 2 + 4,
                        text_anchor="middle",
                        fill=ink,
                    ),
                    class_="cm-cell",
                    data_row=i,
                    data_col=j,
                    data_count=count,
                )
            )
    for j, label in enumerate(labels):
        turn = f"translate({_n(left + (j + 0.5) * cell)} {_n(top + k * cell + 8)}) rotate(35)"
        parts.append(tag("text", esc(_short(label, 20)), transform=turn))
    return svg(chart_id, width, height, "".join(parts), description)


def scatter_chart(
    chart_id: str, xs: Sequence[float], ys: Sequence[float], labels: tuple[str, str], reference: str
) -> str:
    """Points (at most :data:`MAX_POINTS`) with a dashed reference line: ``diagonal`` (y = x)
    or ``zero`` (y = 0).

    With ``diagonal`` both axes share one domain, so a perfect model lies on the line; with
    ``zero`` the y axis is symmetric around 0, so a bias shows as an off-centre cloud.
    """
    if reference == "diagonal":
        x_dom = y_dom = padded(min(min(xs), min(ys)), max(max(xs), max(ys)))
        line = [(x_dom[0], x_dom[0]), (x_dom[1], x_dom[1])]
    else:
        x_dom = padded(min(xs), max(xs))
        reach = max(abs(v) for v in padded(min(ys), max(ys)))
        y_dom, line = (-reach, reach), [(x_dom[0], 0.0), (x_dom[1], 0.0)]
    chart = Chart(chart_id, x_dom, y_dom, *labels, size=(420, 360))
    chart.polyline([(chart.x(x), chart.y(y)) for x, y in line], "chance")
    for i in thin(len(xs), MAX_POINTS):
        chart.point(chart.x(xs[i]), chart.y(ys[i]), "pt-eval")
    return chart.render(f"{labels[1]} against {labels[0]}")


def curve_chart(
    chart_id: str,
    curves: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    labels: tuple[str, str],
) -> str:
    """Curves in the unit square (ROC), each ``(colour, xs, ys)``, over a dashed chance line."""
    chart = Chart(chart_id, (0.0, 1.0), (0.0, 1.0), *labels, size=(420, 360))
    chart.polyline([(chart.x(0.0), chart.y(0.0)), (chart.x(1.0), chart.y(1.0))], "chance")
    for colour, xs, ys in curves:
        points = [(chart.x(xs[i]), chart.y(ys[i])) for i in thin(len(xs), MAX_CURVE_POINTS)]
        chart.polyline(points, "curve", f"stroke:{colour}")
    return chart.render(f"{labels[1]} against {labels[0]}")


STYLESHEET = """
:root{--ink:#1a1a1a;--muted:#5f6b76;--line:#d9dee3;--accent:#0072B2;--bad:#c0392b;
--soft:#f4f6f8;font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,
sans-serif;color:var(--ink);background:#fff}
body{margin:0}main{max-width:1080px;margin:0 auto;padding:24px 28px 64px;line-height:1.45}
h1{font-size:1.9rem;margin:.1rem 0 .6rem;overflow-wrap:anywhere}
h2{font-size:1.2rem;margin:0 0 .6rem;padding-bottom:.3rem;border-bottom:1px solid var(--line)}
section{margin-top:34px}.kicker{margin:0;color:var(--muted);font-size:.8rem;
text-transform:uppercase;letter-spacing:.08em}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:10px 24px;
margin:14px 0 0}.facts dt{color:var(--muted);font-size:.78rem}.facts dd{margin:0;
font-weight:600;overflow-wrap:anywhere}
.counts{display:flex;flex-wrap:wrap;gap:8px;margin:0}.count{padding:3px 10px;border-radius:12px;
background:var(--soft);font-size:.88rem}.count.complete{background:#e3f1fa}
.count.pruned{background:#eeeeee}.count.fail{background:#fbe4e1}.count.running{background:#fff4d6}
.notice{margin-top:16px;padding:12px 16px;border-left:4px solid #E69F00;background:#fff8e8}
.note{color:var(--muted);margin:.2rem 0 .6rem}.lead{margin:.2rem 0 .8rem}
figure{margin:0}figcaption{font-weight:600;margin-bottom:4px}figcaption small{
font-weight:400;color:var(--muted);margin-left:6px}
svg.chart{max-width:100%;height:auto;font-size:11px;fill:var(--ink)}
.axis text{fill:var(--muted)}.axis .label{fill:var(--ink);font-size:12px}
.grid{stroke:#eef0f2}.tick,.frame{stroke:#9aa5b0;fill:none}.no-value-band{fill:#f7f0ef}
.pt-complete{fill:var(--accent);fill-opacity:.75}.pt-pruned{fill:#fff;stroke:#8c8c8c;
stroke-width:1.4}.pt-fail{stroke:var(--bad);stroke-width:2;fill:none}.pt-running{fill:#E69F00}
.pt-best,.pt-best-slice{fill:none;stroke:#D55E00;stroke-width:2.2}.pt-best-slice{fill:#D55E00}
.best-line{fill:none;stroke:#D55E00;stroke-width:1.8}
.pt-age0{fill:#9ecae1}.pt-age1{fill:#6baed6}.pt-age2{fill:#3182bd}.pt-age3{fill:#08519c}
.pt-age4{fill:#08306b}[class^=pt-age]{fill-opacity:.85}
.pt-eval{fill:var(--accent);fill-opacity:.35}.chance{stroke:#9aa5b0;stroke-dasharray:4 4;fill:none}
.curve{fill:none;stroke-width:2}.bar{fill:var(--accent)}.bar-value{fill:var(--muted)}
.legend{font-size:.85rem;color:var(--muted);margin:0 0 6px}.key{display:inline-block;width:10px;
height:10px;margin:0 4px 0 10px;vertical-align:middle;border-radius:50%}
.key.complete{background:var(--accent)}.key.pruned{border:1.5px solid #8c8c8c}
.key.fail{color:var(--bad);width:auto;height:auto;font-weight:700}
.key.best-line{width:16px;height:2px;border-radius:0;background:#D55E00}
.key.best{border:2px solid #D55E00;width:12px;height:12px}
.key.running{background:#E69F00}
.slices{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:18px}
.slice figcaption{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9rem}
.pair{display:flex;flex-wrap:wrap;gap:28px;align-items:flex-start}
table{border-collapse:collapse;font-size:.88rem}th,td{padding:5px 10px;text-align:left;
border-bottom:1px solid var(--line);vertical-align:top}th{color:var(--muted);font-weight:600}
td.value,td.num,td.auc,td.auc-macro{font-variant-numeric:tabular-nums;white-space:nowrap}
tr.best td{background:#fdf0e6}#top-trials-table{width:100%}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.8rem;background:var(--soft);
padding:1px 5px;border-radius:4px;margin:0 4px 3px 0;display:inline-block;word-break:break-all}
.auc-table{margin-top:8px}.swatch{display:inline-block;width:12px;height:3px;margin-right:6px;
vertical-align:middle}.failures{list-style:none;padding:0}.failures li{margin-bottom:12px}
pre.error{background:#fbf1f0;border-left:3px solid var(--bad);padding:8px 12px;margin:4px 0 0;
white-space:pre-wrap;overflow-wrap:anywhere;max-height:16em;overflow:auto;font-size:.8rem}
"""
