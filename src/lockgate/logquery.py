"""Reading lockgate's JSON logs back: which records a query selects, and how many of each.

``lockgate logs`` is a thin shell over this module: :meth:`LogQuery.parse` turns the command's
options into a query (or a :class:`~lockgate.errors.ConfigError` that says what is accepted),
:func:`select` reads the environments' log folders and returns the matching records merged by
time, and :func:`count_by` is its counts table. Each filter has a CloudWatch Logs Insights
equivalent, listed in ``docs/logs.md``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lockgate.durations import seconds_in
from lockgate.errors import ConfigError
from lockgate.logs import LEVELS, PIPELINES, read_lines

DEFAULT_SINCE = "24h"
SINCE_FORMS = (
    "a duration like 90s, 30m, 2h, 7d (or 1h30m), or an ISO date/time like 2026-11-26 or "
    "2026-11-26T08:00 (UTC unless it has an offset)"
)
COUNTED_LEVELS = ("debug", "info", "warning", "error", "critical")
"""The columns of the counts table, lowest level first."""
NO_PIPELINE = "-"
"""The counts-table row of records logged outside any pipeline's run."""


def parse_duration(text: str) -> timedelta | None:
    """``90s``, ``30m``, ``2h``, ``7d`` or a sum like ``1h30m``; None if not one (a bare
    number is refused: seconds or a year?)."""
    if text.strip().replace(".", "", 1).isdigit():
        return None
    seconds = seconds_in(text)
    return None if seconds is None else timedelta(seconds=seconds)


def parse_since(text: str, now: datetime) -> datetime:
    """The start of the window ``--since`` names: a duration back from ``now``, or a date/time.

    Raises:
        ConfigError: ``text`` is neither form, or a duration of zero.
    """
    duration = parse_duration(text)
    if duration is not None:
        if duration <= timedelta(0):
            raise ConfigError(f"--since '{text}' must be longer than zero; use {SINCE_FORMS}")
        return now - duration
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--since '{text}' is not {SINCE_FORMS}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def record_time(record: Mapping[str, Any]) -> datetime | None:
    """A record's ``time`` as an aware datetime; None when it is missing or unreadable."""
    try:
        moment = datetime.fromisoformat(str(record.get("time", "")))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _choice(option: str, value: str | None, allowed: Iterable[str]) -> str | None:
    if value is None:
        return None
    choices = list(allowed)
    normal = value.strip().lower()
    if normal not in choices:
        raise ConfigError(f"{option} '{value}' is not one of {', '.join(choices)}")
    return normal


@dataclass(frozen=True)
class LogQuery:
    """Which records ``lockgate logs`` selects; every filter that is set must hold.

    Attributes:
        since: records at or after this moment (aware, UTC).
        pipeline: one of :data:`~lockgate.logs.PIPELINES`.
        level: the lowest level shown (``warning`` shows warning, error and critical).
        grep: a case-insensitive substring of the message, the event or the JSON of the fields.
        run_id: the records of this run.
        env: the records whose ``env`` is this environment.
    """

    since: datetime
    pipeline: str | None = None
    level: str | None = None
    grep: str | None = None
    run_id: str | None = None
    env: str | None = None

    @classmethod
    def parse(
        cls,
        *,
        now: datetime,
        since: str = DEFAULT_SINCE,
        pipeline: str | None = None,
        level: str | None = None,
        grep: str | None = None,
        run_id: str | None = None,
        env: str | None = None,
    ) -> LogQuery:
        """The query the command-line options describe.

        Raises:
            ConfigError: an option has a value it does not accept; the message lists them.
        """
        return cls(
            since=parse_since(since, now),
            pipeline=_choice("--pipeline", pipeline, PIPELINES),
            level=_choice("--level", level, LEVELS),
            grep=grep or None,
            run_id=run_id or None,
            env=env or None,
        )

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether ``record`` (a :data:`~lockgate.logs.SCHEMA` document) passes every filter."""
        moment = record_time(record)
        if moment is None or moment < self.since:
            return False
        if self.pipeline is not None and record.get("pipeline") != self.pipeline:
            return False
        if self.env is not None and record.get("env") != self.env:
            return False
        if self.run_id is not None and record.get("run_id") != self.run_id:
            return False
        if self.level is not None:
            rank = LEVELS.get(str(record.get("level", "")).lower(), -1)
            if rank < LEVELS[self.level]:
                return False
        return self.grep is None or self.grep.casefold() in _searchable(record)


def _searchable(record: Mapping[str, Any]) -> str:
    fields = json.dumps(record.get("fields") or {}, default=str, ensure_ascii=False)
    return "\n".join(
        (str(record.get("message", "")), str(record.get("event", "")), fields)
    ).casefold()


def select(folders: Sequence[Path], query: LogQuery) -> list[dict[str, Any]]:
    """The records of ``folders`` that ``query`` matches, oldest first.

    Processes append to the same daily files concurrently, so lines are only nearly in time
    order within a file and not at all across folders: the records are sorted by their time
    (ties keep the order they were read in).
    """
    found: list[tuple[datetime, dict[str, Any]]] = []
    for folder in folders:
        for record in read_lines(folder, query.since):
            moment = record_time(record)
            if moment is not None and query.matches(record):
                found.append((moment, record))
    found.sort(key=lambda pair: pair[0])
    return [record for _, record in found]


def count_by(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Records per pipeline and level: ``{pipeline: {level: count, ..., "total": count}}``.

    Rows come in :data:`~lockgate.logs.PIPELINES` order (only those with records), then any
    other pipeline name, then :data:`NO_PIPELINE`. Every row has each of
    :data:`COUNTED_LEVELS`; a level outside them counts in ``total`` only.
    """
    counts: dict[str, dict[str, int]] = {}
    for record in records:
        pipeline = str(record.get("pipeline") or NO_PIPELINE)
        row = counts.setdefault(pipeline, dict.fromkeys((*COUNTED_LEVELS, "total"), 0))
        level = str(record.get("level", "")).lower()
        if level in COUNTED_LEVELS:
            row[level] += 1
        row["total"] += 1

    def position(name: str) -> tuple[int, str]:
        if name in PIPELINES:
            return PIPELINES.index(name), name
        return (len(PIPELINES) + 1, name) if name == NO_PIPELINE else (len(PIPELINES), name)

    return {name: counts[name] for name in sorted(counts, key=position)}


def totals(counts: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """The column sums of a :func:`count_by` table."""
    summed = dict.fromkeys((*COUNTED_LEVELS, "total"), 0)
    for row in counts.values():
        for key in summed:
            summed[key] += row.get(key, 0)
    return summed
