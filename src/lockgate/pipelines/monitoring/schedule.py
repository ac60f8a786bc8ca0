"""When the monitoring job runs: an EventBridge Scheduler ``rate(...)`` or ``cron(...)`` expression.

The same expression drives the scheduler inside ``lockgate up`` and, on AWS, the EventBridge
Scheduler schedule of the stack, so it is parsed here with EventBridge's rules and run times are
computed the way EventBridge computes them, in UTC:

* ``rate(value unit)``: ``unit`` is minute(s), hour(s) or day(s). Both spellings are accepted;
  ``str(schedule)`` is the form AWS requires (singular for 1, plural otherwise).
* ``cron(minutes hours day-of-month month day-of-week year)``: six fields; exactly one of
  day-of-month and day-of-week is ``?``; ``*``, lists, ranges and ``/`` steps; months JAN-DEC;
  weekdays 1-7 or SUN-SAT where **1 is Sunday**; ``L`` (last day of the month), ``nW`` (the
  weekday nearest day n), ``LW`` (the last weekday), ``nL`` (the last weekday n of the month)
  and ``n#k`` (the k-th weekday n). Wrapping ranges, a bare ``L`` in day-of-week and
  ``L``/``W``/``#`` inside lists are refused with a message saying what to write instead.
"""

from __future__ import annotations

import calendar
import re
from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Protocol

from lockgate.errors import ConfigError

FIRST_YEAR = 1970
LAST_YEAR = 2199
"""The years EventBridge cron expressions can name."""

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
"""EventBridge numbers weekdays from 1 (SUN) to 7 (SAT), unlike Unix cron."""

_UNITS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
_FORM = re.compile(r"(rate|cron|at)\((.*)\)", re.DOTALL)
_EXAMPLES = "e.g. rate(14 days) or cron(0 12 ? * MON *)"
_ORDINALS = ("first", "second", "third", "fourth", "fifth")


class Schedule(ABC):
    """A parsed schedule expression; ``str()`` gives its canonical form for AWS."""

    expression: str

    @staticmethod
    def parse(expression: str) -> Schedule:
        """Parse an EventBridge Scheduler ``rate(...)`` or ``cron(...)`` expression.

        Raises:
            ConfigError: the expression is not one EventBridge accepts, or asks for something
                lockgate refuses; the message names the field and what to write instead.
        """
        text = expression.strip()
        form = _FORM.fullmatch(text)
        if form is None:
            raise ConfigError(f"'{expression}' is not a schedule expression; write {_EXAMPLES}")
        kind, inner = form.groups()
        if kind == "rate":
            return RateSchedule.parse_rate(text, inner)
        if kind == "cron":
            return CronSchedule.parse_cron(text, inner)
        raise ConfigError(
            f"{text}: a one-time at(...) schedule cannot repeat the monitoring job; "
            f"write {_EXAMPLES}"
        )

    @abstractmethod
    def next_after(self, when: datetime) -> datetime:
        """The first run strictly after ``when`` (UTC; a naive ``when`` is taken as UTC)."""

    @abstractmethod
    def next_run(self, last_run: datetime | None, now: datetime) -> datetime:
        """When the job should run next, given its last run; at or before ``now`` means now."""

    @abstractmethod
    def describe(self) -> str:
        """The schedule in words, e.g. "every 14 days" or "at 12:00 UTC on Mondays"."""

    def __str__(self) -> str:
        return self.expression


@dataclass(frozen=True)
class RateSchedule(Schedule):
    """``rate(value unit)``: a fixed interval counted from the previous run."""

    expression: str
    value: int
    unit: str
    """"minute", "hour" or "day"."""

    @classmethod
    def parse_rate(cls, text: str, inner: str) -> RateSchedule:
        """Parse the inside of ``rate(...)``; ``text`` is the whole expression, for messages."""
        parts = inner.split()
        if len(parts) != 2:
            raise ConfigError(f"{text}: write a number and a unit, e.g. rate(14 days)")
        number, word = parts
        unit = word.lower().removesuffix("s")
        if unit not in _UNITS:
            weeks = number.isdigit() and unit.startswith("week")
            hint = f"; for {number} {word} write rate({int(number) * 7} days)" if weeks else ""
            raise ConfigError(
                f"{text}: unit '{word}' is not one of minute(s), hour(s), day(s){hint}"
            )
        if not number.isdigit() or int(number) < 1:
            raise ConfigError(f"{text}: the value '{number}' must be a whole number of 1 or more")
        value = int(number)
        canonical = f"rate({value} {unit}{'' if value == 1 else 's'})"
        return cls(canonical, value, unit)

    @property
    def interval(self) -> timedelta:
        """The time between two runs."""
        return self.value * _UNITS[self.unit]

    def next_after(self, when: datetime) -> datetime:
        """``when + interval``: the run that follows a run at ``when``."""
        return _utc(when) + self.interval

    def next_run(self, last_run: datetime | None, now: datetime) -> datetime:
        """``now`` if the job never ran, else ``last_run + interval`` (possibly already past)."""
        return _utc(now) if last_run is None else self.next_after(last_run)

    def describe(self) -> str:
        """E.g. "every 14 days", "every hour"."""
        return f"every {self.unit}" if self.value == 1 else f"every {self.value} {self.unit}s"


class _Days(Protocol):
    """Which days of a month a cron expression runs on."""

    def days(self, year: int, month: int) -> list[int]:
        """The matching days of ``month`` in ``year``, ascending."""

    def words(self) -> str:
        """The rule in words ("on Mondays", "on the last day of the month")."""


@dataclass(frozen=True)
class CronSchedule(Schedule):
    """``cron(minutes hours day-of-month month day-of-week year)``, in UTC."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    rule: _Days
    """The day-of-month or day-of-week rule (the field that is not ``?``)."""
    months: tuple[int, ...]
    years: tuple[int, ...]

    @classmethod
    def parse_cron(cls, text: str, inner: str) -> CronSchedule:
        """Parse the inside of ``cron(...)``; ``text`` is the whole expression, for messages."""
        fields = inner.upper().split()
        if len(fields) != 6:
            unix = " (Unix cron has 5; add a year, * for every year)" if len(fields) == 5 else ""
            raise ConfigError(
                f"{text}: EventBridge cron takes 6 fields, minutes hours day-of-month month "
                f"day-of-week year, not {len(fields)}{unix}; e.g. cron(0 12 ? * MON *)"
            )
        canonical = f"cron({' '.join(fields)})"
        minute, hour, dom, month, dow, year = fields
        try:
            schedule = cls(
                canonical,
                _MINUTES.values(minute),
                _HOURS.values(hour),
                _day_rule(dom, dow),
                _MONTH.values(month),
                _YEAR.values(year),
            )
        except _FieldProblem as problem:
            raise ConfigError(f"{canonical}: {problem}") from None
        if schedule._first_at_or_after(datetime(FIRST_YEAR, 1, 1, tzinfo=UTC)) is None:
            raise ConfigError(
                f"{canonical}: no date between {FIRST_YEAR} and {LAST_YEAR} matches it; check "
                "that the day-of-month exists in the months chosen (there is no 30 FEB)"
            )
        return schedule

    @cached_property
    def _times(self) -> list[int]:
        """The run times within a day, as minutes after midnight, ascending."""
        return sorted(hour * 60 + minute for hour in self.hours for minute in self.minutes)

    def next_after(self, when: datetime) -> datetime:
        """The first time the expression matches strictly after ``when``.

        Raises:
            ConfigError: no later time matches (the year field has passed).
        """
        start = _utc(when).replace(second=0, microsecond=0) + timedelta(minutes=1)
        found = self._first_at_or_after(start)
        if found is None:
            raise ConfigError(
                f"{self.expression}: no run after {_utc(when):%Y-%m-%d %H:%M} UTC; "
                "its year field has passed, choose later years or *"
            )
        return found

    def next_run(self, last_run: datetime | None, now: datetime) -> datetime:
        """The first match after ``last_run``; if never run, the first from ``now``'s minute on.

        Counting ``now``'s own minute lets a caller that polls (every 30 s, say) find a job
        never run due during its matching minute. A match after ``last_run`` that is already
        past (nothing was running then) is returned as is: the caller runs once to catch up.
        """
        if last_run is not None:
            return self.next_after(last_run)
        return self.next_after(_utc(now).replace(second=0, microsecond=0) - timedelta(minutes=1))

    def describe(self) -> str:
        """E.g. "at 12:00 UTC on Mondays", "every 15 minutes", "at 06:30 UTC on day 1 of ..."."""
        when = self._time_words()
        days = self.rule.words()
        text = when if days == "every day" and "every" in when else f"{when} {days}"
        if len(self.months) < 12:
            text += " in " + _join([calendar.month_name[m] for m in self.months])
        if len(self.years) < LAST_YEAR - FIRST_YEAR + 1:
            text += " in " + _ranges(self.years)
        return text

    def _time_words(self) -> str:
        if len(self._times) == 24 * 60:
            return "every minute"
        if len(self.hours) == 24:
            step = self.minutes[1] - self.minutes[0] if len(self.minutes) > 1 else 0
            if step and self.minutes == tuple(range(0, 60, step)) and 60 % step == 0:
                return f"every {step} minutes"
            if self.minutes == (0,):
                return "every hour"
            plural = "s" if len(self.minutes) > 1 else ""
            return f"at minute{plural} {_ranges(self.minutes)} of every hour"
        if len(self._times) <= 4:
            return "at " + _join([f"{t // 60:02d}:{t % 60:02d}" for t in self._times]) + " UTC"
        return f"at minutes {_ranges(self.minutes)} of hours {_ranges(self.hours)} UTC"

    def _first_at_or_after(self, start: datetime) -> datetime | None:
        """The first matching minute at or after ``start`` (a whole minute), None if none."""
        for day in self._dates_from(start.date()):
            floor = start.hour * 60 + start.minute if day == start.date() else 0
            index = bisect_left(self._times, floor)
            if index < len(self._times):
                minute = self._times[index]
                return datetime.combine(day, time(minute // 60, minute % 60), UTC)
        return None

    def _dates_from(self, first: date) -> Iterator[date]:
        # Month by month, each month's days from its rule: at most 12 * 230 months to look at,
        # however rare the expression (a fifth Thursday in February comes every 28 years).
        for year in self.years[bisect_left(self.years, first.year) :]:
            for month in self.months:
                if (year, month) < (first.year, first.month):
                    continue
                for day in self.rule.days(year, month):
                    candidate = date(year, month, day)
                    if candidate >= first:
                        yield candidate


class _FieldProblem(Exception):
    """A cron field is wrong; the parser adds the expression to the message."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    steps: bool = True
    note: str = ""

    def problem(self, text: str, what: str) -> _FieldProblem:
        return _FieldProblem(f"{self.name} '{text}' {what}")

    def number(self, token: str, text: str) -> int:
        """One value: a number in range or a name (JAN, MON)."""
        if not token:
            raise self.problem(text, "has an empty value; check its commas, dashes and slashes")
        if token in self.names:
            return self.low + self.names.index(token)
        if token.isdigit() and self.low <= int(token) <= self.high:
            return int(token)
        allowed = f"{self.low}-{self.high}"
        if self.names:
            allowed += f" or {self.names[0]}-{self.names[-1]}"
        which = "is" if token == text else f"has '{token}', which is"
        raise self.problem(text, f"{which} not one of {allowed}{self.note}")

    def values(self, text: str) -> tuple[int, ...]:
        """The values a field of ``*``, lists, ranges and steps selects, ascending."""
        chosen: set[int] = set()
        for item in text.split(","):
            span, slash, step_text = item.partition("/")
            step = 1
            if slash:
                if not self.steps:
                    raise self.problem(text, "cannot use '/'; list the values instead")
                if not step_text.isdigit() or int(step_text) < 1:
                    raise self.problem(text, f"has step '{step_text}'; use a whole number >= 1")
                step = int(step_text)
            if span == "*":
                low, high = self.low, self.high
            else:
                first, dash, last = span.partition("-")
                low = self.number(first, text)
                high = self.number(last, text) if dash else (self.high if slash else low)
                if high < low:
                    raise self.problem(
                        text, f"has range {span}, which runs backwards; split it in two ranges"
                    )
            chosen.update(range(low, high + 1, step))
        return tuple(sorted(chosen))


_MINUTES = _Field("minutes", 0, 59)
_HOURS = _Field("hours", 0, 23)
_DOM = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, MONTHS)
_DOW = _Field("day-of-week", 1, 7, WEEKDAYS, steps=False, note=" (1 is SUN, 7 is SAT)")
_YEAR = _Field("year", FIRST_YEAR, LAST_YEAR)


def _day_rule(dom: str, dow: str) -> _Days:
    """The rule of whichever of day-of-month and day-of-week is not ``?``."""
    if dom == "?" and dow == "?":
        raise _FieldProblem(
            "day-of-month and day-of-week cannot both be '?'; put * in one of them for every day"
        )
    if "?" not in (dom, dow):
        both = "both be '*'" if dom == dow == "*" else f"both be set ('{dom}' and '{dow}')"
        raise _FieldProblem(f"day-of-month and day-of-week cannot {both}; put ? in one of them")
    if dom != "?":
        return _month_day_rule(dom)
    return _weekday_rule(dow)


def _month_day_rule(text: str) -> _Days:
    if text == "L":
        return _LastDay()
    if text == "LW":
        return _NearestWeekday(None)
    nearest = re.fullmatch(r"(\d+)W", text)
    if nearest:
        return _NearestWeekday(_DOM.number(nearest.group(1), text))
    if "L" in text or "W" in text:
        raise _DOM.problem(text, "can use L, LW or nW (e.g. 15W) only alone, not in lists")
    return _MonthDays(_DOM.values(text))


def _weekday_rule(text: str) -> _Days:
    if text == "L":
        raise _DOW.problem(
            text, "is ambiguous; write SAT for Saturdays or e.g. 6L for the last Friday"
        )
    last = re.fullmatch(r"(\w+)L", text)
    if last:
        return _NthWeekday(_DOW.number(last.group(1), text), 0)
    nth = re.fullmatch(r"(\w+)#(\d+)", text)
    if nth:
        if not 1 <= int(nth.group(2)) <= 5:
            raise _DOW.problem(text, "must count 1 to 5 after '#' (e.g. 2#1 for the first Monday)")
        return _NthWeekday(_DOW.number(nth.group(1), text), int(nth.group(2)))
    if "L" in text or "#" in text:
        raise _DOW.problem(text, "can use nL or n#k (e.g. 6L, 2#1) only alone, not in lists")
    return _Weekdays(_DOW.values(text))


@dataclass(frozen=True)
class _MonthDays:
    values: tuple[int, ...]

    def days(self, year: int, month: int) -> list[int]:
        length = calendar.monthrange(year, month)[1]
        return [day for day in self.values if day <= length]

    def words(self) -> str:
        if len(self.values) == 31:
            return "every day"
        plural = "s" if len(self.values) > 1 else ""
        return f"on day{plural} {_ranges(self.values)} of the month"


@dataclass(frozen=True)
class _LastDay:
    """``L`` in day-of-month: the month's last day, whatever its weekday."""

    def days(self, year: int, month: int) -> list[int]:
        return [calendar.monthrange(year, month)[1]]

    def words(self) -> str:
        return "on the last day of the month"


@dataclass(frozen=True)
class _NearestWeekday:
    """``nW``: the weekday nearest day n within the month; ``LW`` (day None): the last weekday."""

    day: int | None

    def days(self, year: int, month: int) -> list[int]:
        first_weekday, length = calendar.monthrange(year, month)
        day = length if self.day is None else self.day
        if day > length:
            return []
        weekday = (first_weekday + day - 1) % 7  # Monday 0 ... Sunday 6
        if weekday == calendar.SATURDAY:
            day = day - 1 if day > 1 else day + 2
        elif weekday == calendar.SUNDAY:
            day = day + 1 if day < length else day - 2
        return [day]

    def words(self) -> str:
        if self.day is None:
            return "on the last weekday of the month"
        return f"on the weekday nearest day {self.day} of the month"


@dataclass(frozen=True)
class _NthWeekday:
    """``weekday#nth`` (1 to 5), or with ``nth`` 0 ``weekdayL``, the last one of the month."""

    weekday: int
    nth: int

    def days(self, year: int, month: int) -> list[int]:
        first_weekday, length = calendar.monthrange(year, month)
        target = _python_weekday(self.weekday)
        if self.nth == 0:
            last_weekday = (first_weekday + length - 1) % 7
            return [length - (last_weekday - target) % 7]
        day = 1 + (target - first_weekday) % 7 + 7 * (self.nth - 1)
        return [day] if day <= length else []

    def words(self) -> str:
        which = "last" if self.nth == 0 else _ORDINALS[self.nth - 1]
        return f"on the {which} {_weekday_name(self.weekday)} of the month"


@dataclass(frozen=True)
class _Weekdays:
    values: tuple[int, ...]
    """EventBridge weekdays: 1 (Sunday) to 7 (Saturday)."""

    def days(self, year: int, month: int) -> list[int]:
        first_weekday, length = calendar.monthrange(year, month)
        wanted = {_python_weekday(value) for value in self.values}
        return [day for day in range(1, length + 1) if (first_weekday + day - 1) % 7 in wanted]

    def words(self) -> str:
        if len(self.values) == 7:
            return "every day"
        if self.values == (2, 3, 4, 5, 6):
            return "on weekdays (Monday to Friday)"
        if self.values == (1, 7):
            return "on weekends"
        return "on " + _join([_weekday_name(value) + "s" for value in self.values])


def _python_weekday(value: int) -> int:
    """EventBridge's 1 (SUN) ... 7 (SAT) as Python's Monday 0 ... Sunday 6."""
    return (value + 5) % 7


def _weekday_name(value: int) -> str:
    return calendar.day_name[_python_weekday(value)]


def _join(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _ranges(values: Sequence[int]) -> str:
    """``0, 1, 2, 3, 10`` as "0-3, 10"."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return ", ".join(
        f"{run[0]}-{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)) for run in runs
    )


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
