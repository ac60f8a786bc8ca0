"""How the study report writes things: values, parameters, durations and its sections.

The formats and the two HTML building blocks (a headed section, a note) that every part of
the page shares, so the summary, the charts and the tables print a number the same way. The
monitoring report prints its numbers with :func:`fmt_value` too. Text is HTML-escaped here.
"""

from __future__ import annotations

import math

from lockgate.pipelines.training.svg import esc


def fmt_value(value: float | None) -> str:
    """A metric value as the report prints it: 4 decimals, or 4 significant digits."""
    if value is None:
        return "—"
    if not math.isfinite(value) or (value != 0 and not 1e-3 <= abs(value) < 1e4):
        return f"{value:.4g}"
    return f"{value:.4f}"


def fmt_param(value: str | int | float) -> str:
    """A hyperparameter value: floats to 4 significant digits, anything else as it is."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def fmt_duration(seconds: float | None) -> str:
    """A wall time in seconds, minutes and seconds from one minute on; "—" when unknown."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def section(section_id: str, heading: str, *content: str) -> str:
    """A ``<section>`` with id ``section_id``, an escaped ``<h2>`` heading, then ``content``."""
    return f'<section id="{section_id}">\n<h2>{esc(heading)}</h2>\n{"".join(content)}\n</section>'


def note(text: str) -> str:
    """A paragraph of explanatory ``text``, escaped."""
    return f'<p class="note">{esc(text)}</p>'
