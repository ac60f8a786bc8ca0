"""The monitoring schedule: EventBridge rate(...) and cron(...) expressions and their run times."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from lockgate.errors import ConfigError
from lockgate.pipelines.monitoring.schedule import CronSchedule, RateSchedule, Schedule

# Thursday 26 November 2026, 10:56:08 UTC
NOW = datetime(2026, 11, 26, 10, 56, 8, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- rate ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "canonical", "interval", "words"),
    [
        ("rate(14 days)", "rate(14 days)", timedelta(days=14), "every 14 days"),
        ("rate(1 day)", "rate(1 day)", timedelta(days=1), "every day"),
        ("rate(1 days)", "rate(1 day)", timedelta(days=1), "every day"),
        ("rate(5 minute)", "rate(5 minutes)", timedelta(minutes=5), "every 5 minutes"),
        ("  rate(1 Hours) ", "rate(1 hour)", timedelta(hours=1), "every hour"),
    ],
)
def test_a_rate_is_read_in_either_spelling_and_written_as_aws_requires(
    written: str, canonical: str, interval: timedelta, words: str
) -> None:
    schedule = Schedule.parse(written)

    assert isinstance(schedule, RateSchedule)
    assert str(schedule) == canonical
    assert schedule.interval == interval
    assert schedule.describe() == words


def test_a_rate_runs_at_once_the_first_time_then_one_interval_after_the_last_run() -> None:
    schedule = Schedule.parse("rate(14 days)")
    last_run = at("2026-11-01T09:00:00")

    assert schedule.next_run(None, NOW) == NOW
    assert schedule.next_run(last_run, NOW) == at("2026-11-15T09:00:00")
    assert schedule.next_after(last_run) == at("2026-11-15T09:00:00")


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("rate(2 weeks)", "rate(2 weeks): unit 'weeks' is not one of minute(s), hour(s), day(s)"),
        ("rate(2 weeks)", "for 2 weeks write rate(14 days)"),
        ("rate(0 days)", "rate(0 days): the value '0' must be a whole number of 1 or more"),
        ("rate(1.5 hours)", "the value '1.5' must be a whole number"),
        ("rate(14)", "rate(14): write a number and a unit, e.g. rate(14 days)"),
        ("every 14 days", "'every 14 days' is not a schedule expression; write e.g. rate(14"),
        ("at(2027-01-01T00:00:00)", "a one-time at(...) schedule cannot repeat"),
    ],
)
def test_a_wrong_rate_is_refused_saying_what_to_write(expression: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        Schedule.parse(expression)

    assert message in str(error.value)


# -- cron: parsing and errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        (
            "cron(0 12 * * * *)",
            "cron(0 12 * * * *): day-of-month and day-of-week cannot both be '*'; "
            "put ? in one of them",
        ),
        ("cron(0 12 1 * MON *)", "cannot both be set ('1' and 'MON'); put ? in one of them"),
        ("cron(0 12 ? * ? *)", "cannot both be '?'; put * in one of them"),
        ("cron(0 12 * * ?)", "takes 6 fields, minutes hours day-of-month month day-of-week year"),
        ("cron(0 12 * * ?)", "Unix cron has 5; add a year"),
        ("cron(60 * * * ? *)", "cron(60 * * * ? *): minutes '60' is not one of 0-59"),
        ("cron(0 24 * * ? *)", "hours '24' is not one of 0-23"),
        ("cron(0 0 1,32 * ? *)", "day-of-month '1,32' has '32', which is not one of 1-31"),
        ("cron(0 0 * FOO ? *)", "month 'FOO' is not one of 1-12 or JAN-DEC"),
        ("cron(0 0 ? * 0 *)", "day-of-week '0' is not one of 1-7 or SUN-SAT (1 is SUN, 7 is SAT)"),
        ("cron(0 0 1 1 ? 2200)", "year '2200' is not one of 1970-2199"),
        ("cron(0 22-2 * * ? *)", "hours '22-2' has range 22-2, which runs backwards"),
        ("cron(*/0 * * * ? *)", "minutes '*/0' has step '0'; use a whole number >= 1"),
        ("cron(0 0 1,,2 * ? *)", "day-of-month '1,,2' has an empty value"),
        ("cron(0 0 ? * */2 *)", "day-of-week '*/2' cannot use '/'; list the values instead"),
        ("cron(0 0 ? * L *)", "day-of-week 'L' is ambiguous; write SAT for Saturdays or e.g. 6L"),
        ("cron(0 0 1,L * ? *)", "day-of-month '1,L' can use L, LW or nW (e.g. 15W) only alone"),
        ("cron(0 0 L-2 * ? *)", "day-of-month 'L-2' can use L, LW or nW"),
        ("cron(0 0 ? * 2#6 *)", "day-of-week '2#6' must count 1 to 5 after '#'"),
        ("cron(0 0 ? * 2#1,3 *)", "day-of-week '2#1,3' can use nL or n#k"),
        ("cron(0 0 ? * 9L *)", "day-of-week '9L' has '9', which is not one of 1-7"),
        ("cron(0 0 30 2 ? *)", "cron(0 0 30 2 ? *): no date between 1970 and 2199 matches it"),
        ("cron(0 0 31 APR,JUN,SEP,NOV ? *)", "check that the day-of-month exists"),
    ],
)
def test_a_wrong_cron_is_refused_naming_the_field_and_the_fix(
    expression: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        Schedule.parse(expression)

    assert message in str(error.value)


def test_names_are_read_in_any_case_and_written_in_capitals() -> None:
    schedule = Schedule.parse("cron(0  12 ? jan-mar mon-fri *)")

    assert isinstance(schedule, CronSchedule)
    assert str(schedule) == "cron(0 12 ? JAN-MAR MON-FRI *)"
    assert schedule.months == (1, 2, 3)


# -- cron: run times -------------------------------------------------------------------------


def test_day_of_week_1_is_sunday_as_in_eventbridge() -> None:
    sunday = Schedule.parse("cron(0 12 ? * 1 *)").next_after(NOW)
    monday = Schedule.parse("cron(0 12 ? * 2 *)").next_after(NOW)

    assert sunday == at("2026-11-29T12:00:00")
    assert sunday.strftime("%A") == "Sunday"
    assert monday == Schedule.parse("cron(0 12 ? * MON *)").next_after(NOW)
    assert monday.strftime("%A") == "Monday"


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("cron(0 12 ? * MON *)", "2026-11-26T10:56:08", "2026-11-30T12:00:00"),
        ("cron(0 12 ? * MON *)", "2026-11-30T12:00:00", "2026-12-07T12:00:00"),
        ("cron(*/15 * * * ? *)", "2026-11-26T10:56:08", "2026-11-26T11:00:00"),
        ("cron(*/15 * * * ? *)", "2026-11-26T23:59:00", "2026-11-27T00:00:00"),
        ("cron(0/20 9-17/4 * * ? *)", "2026-11-26T13:40:00", "2026-11-26T17:00:00"),
        # L: the last day, 28 or 29 in February.
        ("cron(0 9 L * ? *)", "2027-02-01T00:00:00", "2027-02-28T09:00:00"),
        ("cron(0 9 L * ? *)", "2028-02-01T00:00:00", "2028-02-29T09:00:00"),
        # 1W: 1 May 2027 is a Saturday; the nearest weekday within May is Monday the 3rd.
        ("cron(0 9 1W * ? *)", "2027-04-15T00:00:00", "2027-05-03T09:00:00"),
        # 15W: 15 August 2027 is a Sunday, so Monday the 16th.
        ("cron(0 9 15W * ? *)", "2027-08-01T00:00:00", "2027-08-16T09:00:00"),
        # LW: 31 October 2027 is a Sunday, so Friday the 29th.
        ("cron(0 9 LW * ? *)", "2027-10-01T00:00:00", "2027-10-29T09:00:00"),
        # 6L: the last Friday of November 2026 is the 27th.
        ("cron(0 9 ? * 6L *)", "2026-11-26T10:56:08", "2026-11-27T09:00:00"),
        ("cron(0 9 ? * FRIL *)", "2026-11-27T09:00:00", "2026-12-25T09:00:00"),
        # 2#2: the second Monday of December 2026 (the 1st is a Tuesday).
        ("cron(0 9 ? * 2#2 *)", "2026-11-26T10:56:08", "2026-12-14T09:00:00"),
        ("cron(30 8 1,15 JAN,JUL ? 2027-2030)", "2026-11-26T10:56:08", "2027-01-01T08:30:00"),
        ("cron(30 8 1,15 JAN,JUL ? 2027-2030)", "2027-01-15T08:30:00", "2027-07-01T08:30:00"),
        ("cron(0 0 29 2 ? *)", "2026-11-26T10:56:08", "2028-02-29T00:00:00"),
        # 2100 is not a leap year: the next 29 February after 2096 is in 2104.
        ("cron(0 0 29 2 ? *)", "2096-03-01T00:00:00", "2104-02-29T00:00:00"),
    ],
)
def test_cron_next_after_is_the_first_matching_minute_after(
    expression: str, after: str, expected: str
) -> None:
    assert Schedule.parse(expression).next_after(at(after)) == at(expected)


def test_a_rare_cron_is_found_years_ahead_without_stepping_through_them() -> None:
    # A fifth Thursday in February needs a leap year whose 1 February is a Thursday.
    found = Schedule.parse("cron(0 0 ? 2 5#5 *)").next_after(NOW)

    leap_thursdays = [
        year
        for year in range(2027, 2100)
        if date(year, 2, 1).weekday() == 3 and (year % 4 == 0)  # Thursday, leap year
    ]
    assert found == datetime(leap_thursdays[0], 2, 29, tzinfo=UTC)
    assert found.strftime("%A") == "Thursday"


DAY = timedelta(days=1)
MATCHES: list[tuple[str, Callable[[datetime], bool]]] = [
    (
        "cron(*/7 3-5 ? * TUE,THU *)",
        lambda t: t.minute % 7 == 0 and 3 <= t.hour <= 5 and t.strftime("%a") in ("Tue", "Thu"),
    ),
    ("cron(45 23 L * ? *)", lambda t: (t.minute, t.hour) == (45, 23) and (t + DAY).day == 1),
    (
        "cron(5,50 */5 10-12 * ? *)",
        lambda t: t.minute in (5, 50) and t.hour % 5 == 0 and 10 <= t.day <= 12,
    ),
]


@pytest.mark.parametrize(("expression", "matches"), MATCHES)
def test_cron_next_after_agrees_with_a_minute_by_minute_search(
    expression: str, matches: Callable[[datetime], bool]
) -> None:
    schedule = Schedule.parse(expression)
    start = at("2027-01-27T00:00:00")
    every_minute = (start + timedelta(minutes=n) for n in range(80 * 24 * 60))
    matching = [moment for moment in every_minute if matches(moment)]

    for step in range(0, 40 * 24 * 60, 97):  # every 97 minutes over 40 days, across months
        moment = start + timedelta(minutes=step, seconds=30)
        assert schedule.next_after(moment) == matching[bisect_right(matching, moment)], moment


def test_times_in_other_zones_are_converted_to_utc() -> None:
    paris = timezone(timedelta(hours=1))

    found = Schedule.parse("cron(0 12 * * ? *)").next_after(
        datetime(2026, 11, 26, 12, 30, 0, 0, paris)
    )

    assert found == at("2026-11-26T12:00:00")
    assert found.tzinfo == UTC


def test_a_cron_whose_years_have_passed_says_so() -> None:
    schedule = Schedule.parse("cron(0 0 1 1 ? 2020)")

    with pytest.raises(ConfigError) as error:
        schedule.next_after(NOW)

    assert "cron(0 0 1 1 ? 2020): no run after 2026-11-26 10:56 UTC" in str(error.value)
    assert "year field has passed" in str(error.value)


def test_a_cron_never_run_is_due_at_its_next_time_counting_the_current_minute() -> None:
    schedule = Schedule.parse("cron(0 12 * * ? *)")

    assert schedule.next_run(None, NOW) == at("2026-11-26T12:00:00")
    # A scheduler polling every 30 s sees the job due during its minute, not tomorrow.
    assert schedule.next_run(None, at("2026-11-26T12:00:00")) == at("2026-11-26T12:00:00")
    assert schedule.next_run(None, at("2026-11-26T12:00:31")) == at("2026-11-26T12:00:00")
    assert schedule.next_run(None, at("2026-11-26T12:01:00")) == at("2026-11-27T12:00:00")


def test_a_cron_run_missed_while_down_is_due_at_once() -> None:
    schedule = Schedule.parse("cron(0 12 * * ? *)")

    due = schedule.next_run(at("2026-11-20T12:00:00"), NOW)

    assert due == at("2026-11-21T12:00:00")
    assert due <= NOW


# -- describe --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("cron(0 12 ? * MON *)", "at 12:00 UTC on Mondays"),
        ("cron(0 12 * * ? *)", "at 12:00 UTC every day"),
        ("cron(*/15 * * * ? *)", "every 15 minutes"),
        ("cron(* * * * ? *)", "every minute"),
        ("cron(0 * * * ? *)", "every hour"),
        ("cron(5 * * * ? *)", "at minute 5 of every hour"),
        (
            "cron(0 */6 ? * MON-FRI *)",
            "at 00:00, 06:00, 12:00 and 18:00 UTC on weekdays (Monday to Friday)",
        ),
        ("cron(0 8 ? * 1,7 *)", "at 08:00 UTC on weekends"),
        ("cron(0 8 ? * 2,4,6 *)", "at 08:00 UTC on Mondays, Wednesdays and Fridays"),
        ("cron(30 6 1 * ? *)", "at 06:30 UTC on day 1 of the month"),
        ("cron(0 9 L * ? *)", "at 09:00 UTC on the last day of the month"),
        ("cron(0 9 LW * ? *)", "at 09:00 UTC on the last weekday of the month"),
        ("cron(0 9 15W * ? *)", "at 09:00 UTC on the weekday nearest day 15 of the month"),
        ("cron(0 9 ? * 6L *)", "at 09:00 UTC on the last Friday of the month"),
        ("cron(0 9 ? * 2#2 *)", "at 09:00 UTC on the second Monday of the month"),
        (
            "cron(0 0 1 JAN,JUL ? 2027)",
            "at 00:00 UTC on day 1 of the month in January and July in 2027",
        ),
        ("cron(0,30 9-17 * * ? *)", "at minutes 0, 30 of hours 9-17 UTC every day"),
    ],
)
def test_describe_says_when_in_words(expression: str, words: str) -> None:
    assert Schedule.parse(expression).describe() == words
