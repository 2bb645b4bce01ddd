"""Cron schedules: exact fire lists through DST changes, a brute-force oracle, validation, words.

The tables below were written by hand from the tz database's rules for 2026, not computed by
the code under test:

* America/New_York: EST (-5) to EDT (-4) on Sunday 8 March at 02:00 local (07:00Z); back on
  Sunday 1 November at 02:00 EDT (06:00Z), so 01:00-02:00 local happens twice.
* Europe/Berlin: CET (+1) to CEST (+2) on Sunday 29 March at 02:00 local (01:00Z); back on
  Sunday 25 October at 03:00 CEST (01:00Z), so 02:00-03:00 local happens twice.
* Australia/Lord_Howe (a 30-minute shift): LHDT (+11) to LHST (+10:30) on Sunday 5 April at
  02:00 LHDT (Saturday 15:00Z), so 01:30-02:00 local happens twice; LHST to LHDT on Sunday
  4 October at 02:00 LHST (Saturday 15:30Z), so 02:00-02:30 local never happens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskcell.domain.cron import CronError, check_cron
from taskcell.domain.models import ScheduleConfig
from taskcell.domain.schedule import (
    describe,
    missed_occurrences,
    next_fire_time,
    upcoming_fires,
)


@dataclass(frozen=True)
class Cron:
    """A stand-in for ScheduleConfig holding a cron schedule."""

    cron: str
    timezone: str | None = None
    interval_minutes: int | None = None
    daily_time: str | None = None


def z(text: str) -> datetime:
    """ "2026-03-08 07:00" read as UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires(expr: str, zone: str, start: str, end: str) -> list[str]:
    """Fire times in (start, end], UTC, "MM-DD HH:MM", following the scheduler's own steps."""
    schedule = Cron(expr, zone)
    found: list[str] = []
    moment, last = z(start), z(end)
    while True:
        moment = next_fire_time(schedule, now=moment, previous=moment)
        if moment > last:
            return found
        found.append(moment.strftime("%m-%d %H:%M"))


# (expression, zone, window start, window end (UTC), the fires in that window)
TABLES: list[tuple[str, str, str, str, list[str]]] = [
    # ---- America/New_York, spring forward (8 March)
    ("0 2 * * *", "America/New_York", "2026-03-07 04:00", "2026-03-10 03:00",
     ["03-07 07:00", "03-08 07:00", "03-09 06:00"]),
    ("30 2 * * *", "America/New_York", "2026-03-07 04:00", "2026-03-10 03:00",
     ["03-07 07:30", "03-08 07:00", "03-09 06:30"]),
    ("0 1-3 * * *", "America/New_York", "2026-03-07 04:00", "2026-03-10 03:00",
     ["03-07 06:00", "03-07 07:00", "03-07 08:00",
      "03-08 06:00", "03-08 07:00",
      "03-09 05:00", "03-09 06:00", "03-09 07:00"]),
    ("*/30 * * * *", "America/New_York", "2026-03-08 05:00", "2026-03-08 08:30",
     ["03-08 05:30", "03-08 06:00", "03-08 06:30", "03-08 07:00", "03-08 07:30",
      "03-08 08:00", "03-08 08:30"]),
    # ---- America/New_York, fall back (1 November)
    ("0 2 * * *", "America/New_York", "2026-10-31 04:00", "2026-11-03 04:00",
     ["10-31 06:00", "11-01 07:00", "11-02 07:00"]),
    ("30 2 * * *", "America/New_York", "2026-10-31 04:00", "2026-11-03 04:00",
     ["10-31 06:30", "11-01 07:30", "11-02 07:30"]),
    ("0 1-3 * * *", "America/New_York", "2026-10-31 04:00", "2026-11-03 04:00",
     ["10-31 05:00", "10-31 06:00", "10-31 07:00",
      "11-01 05:00", "11-01 07:00", "11-01 08:00",
      "11-02 06:00", "11-02 07:00", "11-02 08:00"]),
    ("*/30 * * * *", "America/New_York", "2026-11-01 04:00", "2026-11-01 08:00",
     ["11-01 04:30", "11-01 05:00", "11-01 05:30", "11-01 06:00", "11-01 06:30",
      "11-01 07:00", "11-01 07:30", "11-01 08:00"]),
    # ---- Europe/Berlin, spring forward (29 March)
    ("0 2 * * *", "Europe/Berlin", "2026-03-27 23:00", "2026-03-30 22:00",
     ["03-28 01:00", "03-29 01:00", "03-30 00:00"]),
    ("30 2 * * *", "Europe/Berlin", "2026-03-27 23:00", "2026-03-30 22:00",
     ["03-28 01:30", "03-29 01:00", "03-30 00:30"]),
    ("0 1-3 * * *", "Europe/Berlin", "2026-03-27 23:00", "2026-03-30 22:00",
     ["03-28 00:00", "03-28 01:00", "03-28 02:00",
      "03-29 00:00", "03-29 01:00",
      "03-29 23:00", "03-30 00:00", "03-30 01:00"]),
    ("*/30 * * * *", "Europe/Berlin", "2026-03-28 23:30", "2026-03-29 02:00",
     ["03-29 00:00", "03-29 00:30", "03-29 01:00", "03-29 01:30", "03-29 02:00"]),
    # ---- Europe/Berlin, fall back (25 October)
    ("0 2 * * *", "Europe/Berlin", "2026-10-23 22:00", "2026-10-26 23:00",
     ["10-24 00:00", "10-25 00:00", "10-26 01:00"]),
    ("30 2 * * *", "Europe/Berlin", "2026-10-23 22:00", "2026-10-26 23:00",
     ["10-24 00:30", "10-25 00:30", "10-26 01:30"]),
    ("0 1-3 * * *", "Europe/Berlin", "2026-10-23 22:00", "2026-10-26 23:00",
     ["10-23 23:00", "10-24 00:00", "10-24 01:00",
      "10-24 23:00", "10-25 00:00", "10-25 02:00",
      "10-26 00:00", "10-26 01:00", "10-26 02:00"]),
    ("*/30 * * * *", "Europe/Berlin", "2026-10-24 23:30", "2026-10-25 02:30",
     ["10-25 00:00", "10-25 00:30", "10-25 01:00", "10-25 01:30", "10-25 02:00",
      "10-25 02:30"]),
    # ---- Australia/Lord_Howe, half an hour back (5 April)
    ("0 2 * * *", "Australia/Lord_Howe", "2026-04-02 13:00", "2026-04-06 13:30",
     ["04-02 15:00", "04-03 15:00", "04-04 15:30", "04-05 15:30"]),
    ("30 2 * * *", "Australia/Lord_Howe", "2026-04-02 13:00", "2026-04-06 13:30",
     ["04-02 15:30", "04-03 15:30", "04-04 16:00", "04-05 16:00"]),
    ("0 1-3 * * *", "Australia/Lord_Howe", "2026-04-02 13:00", "2026-04-06 13:30",
     ["04-02 14:00", "04-02 15:00", "04-02 16:00",
      "04-03 14:00", "04-03 15:00", "04-03 16:00",
      "04-04 14:00", "04-04 15:30", "04-04 16:30",
      "04-05 14:30", "04-05 15:30", "04-05 16:30"]),
    ("45 1 * * *", "Australia/Lord_Howe", "2026-04-03 13:00", "2026-04-05 13:30",
     ["04-03 14:45", "04-04 14:45"]),  # 01:45 happens twice on the 5th: the first fires
    ("*/30 * * * *", "Australia/Lord_Howe", "2026-04-04 13:30", "2026-04-04 16:00",
     ["04-04 14:00", "04-04 14:30", "04-04 15:00", "04-04 15:30", "04-04 16:00"]),
    # ---- Australia/Lord_Howe, half an hour forward (4 October)
    ("0 2 * * *", "Australia/Lord_Howe", "2026-10-01 13:30", "2026-10-05 13:00",
     ["10-01 15:30", "10-02 15:30", "10-03 15:30", "10-04 15:00"]),
    ("30 2 * * *", "Australia/Lord_Howe", "2026-10-01 13:30", "2026-10-05 13:00",
     ["10-01 16:00", "10-02 16:00", "10-03 15:30", "10-04 15:30"]),
    ("0 1-3 * * *", "Australia/Lord_Howe", "2026-10-01 13:30", "2026-10-05 13:00",
     ["10-01 14:30", "10-01 15:30", "10-01 16:30",
      "10-02 14:30", "10-02 15:30", "10-02 16:30",
      "10-03 14:30", "10-03 15:30", "10-03 16:00",
      "10-04 14:00", "10-04 15:00", "10-04 16:00"]),
    ("*/30 * * * *", "Australia/Lord_Howe", "2026-10-03 14:00", "2026-10-03 16:30",
     ["10-03 14:30", "10-03 15:00", "10-03 15:30", "10-03 16:00", "10-03 16:30"]),
]  # fmt: skip


@pytest.mark.parametrize(("expr", "zone", "start", "end", "expected"), TABLES)
def test_fire_times_through_dst_changes_match_the_tz_database(
    expr: str, zone: str, start: str, end: str, expected: list[str]
) -> None:
    got = fires(expr, zone, start, end)
    assert got == expected, f"{expr} in {zone} over ({start}, {end}]: {got}"


def test_the_upcoming_list_walks_the_same_fire_times() -> None:
    schedule = Cron("0 1-3 * * *", "Europe/Berlin")
    first = next_fire_time(schedule, now=z("2026-10-24 23:30"))
    got = [t.strftime("%m-%d %H:%M") for t in upcoming_fires(schedule, first=first, count=4)]
    assert got == ["10-25 00:00", "10-25 02:00", "10-26 00:00", "10-26 01:00"]


def test_aliases_fire_as_their_five_fields() -> None:
    zone = "Europe/Berlin"
    assert fires("@hourly", zone, "2026-10-25 00:30", "2026-10-25 02:00") == [
        "10-25 01:00",
        "10-25 02:00",
    ]  # every real hour, also through the repeated one
    assert fires("@daily", zone, "2026-10-24 12:00", "2026-10-26 12:00") == [
        "10-24 22:00",
        "10-25 23:00",
    ]
    assert fires("@weekly", zone, "2026-10-20 00:00", "2026-11-03 00:00") == [
        "10-24 22:00",  # Sunday 00:00 CEST
        "10-31 23:00",  # Sunday 00:00 CET
    ]
    assert fires("@monthly", zone, "2026-10-15 00:00", "2026-12-15 00:00") == [
        "10-31 23:00",
        "11-30 23:00",
    ]
    assert fires("@yearly", "UTC", "2026-06-01 00:00", "2028-06-01 00:00") == [
        "01-01 00:00",
        "01-01 00:00",
    ]


def test_weekday_names_and_numbers_agree() -> None:
    by_name = fires("0 9 * * MON-FRI", "Europe/Berlin", "2026-11-27 00:00", "2026-12-04 00:00")
    by_number = fires("0 9 * * 1-5", "Europe/Berlin", "2026-11-27 00:00", "2026-12-04 00:00")
    assert (
        by_name
        == by_number
        == [
            "11-27 08:00",  # Friday
            "11-30 08:00",
            "12-01 08:00",
            "12-02 08:00",
            "12-03 08:00",
        ]
    )


def test_missed_cron_occurrences_are_counted() -> None:
    schedule = Cron("*/30 * * * *", "Europe/Berlin")
    # (00:00Z, 03:00Z] on 25 October: local 02:00-03:00 twice, still one fire per real half hour.
    missed = missed_occurrences(schedule, previous=z("2026-10-25 00:00"), now=z("2026-10-25 03:00"))
    assert missed == 6
    backwards = missed_occurrences(
        schedule, previous=z("2026-10-25 03:00"), now=z("2026-10-25 00:00")
    )
    assert backwards == 0


@pytest.mark.parametrize(
    ("expr", "zone", "words"),
    [
        ("0 9 * * MON-FRI", "Europe/Berlin", "at 09:00 on Monday through Friday (Europe/Berlin)"),
        ("*/30 * * * *", "UTC", "every 30th minute of every hour (UTC)"),
        ("@daily", "America/New_York", "at 00:00 every day (America/New_York)"),
        ("0 1-3 * * *", "Asia/Tokyo", "at minute 0 past every hour from 1 through 3 (Asia/Tokyo)"),
    ],
)
def test_describe_says_a_cron_schedule_in_words(expr: str, zone: str, words: str) -> None:
    assert describe(Cron(expr, zone)) == words


def test_describe_names_the_default_zone_when_the_schedule_has_none() -> None:
    assert describe(Cron("0 9 * * *"), "Europe/Paris") == "at 09:00 every day (Europe/Paris)"


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("61 * * * *", "cron field 1 (minute) '61' is not valid"),
        ("0 24 * * *", "cron field 2 (hour) '24' is not valid"),
        ("0 9 0 * *", "cron field 3 (day-of-month) '0' is not valid"),
        ("0 9 * 13 *", "cron field 4 (month) '13' is not valid"),
        ("0 9 * * MON-FRX", "cron field 5 (day-of-week) 'MON-FRX' is not valid"),
        ("*/0 * * * *", "cron field 1 (minute) '*/0' is not valid"),
        ("5-1 * * * *", "cron field 1 (minute) '5-1' is not valid"),
        ("0 9 * *", "cron needs 5 fields"),
        ("0 0 9 * * *", "cron needs 5 fields"),
        ("", "cron must be fields"),
        (" 0 9 * * *", "cron must be fields"),
        ("0 9 * * *\n", "cron must be fields"),
        ("0\t9 * * *", "cron must be fields"),
        ("0 9 * * ?", "cron must be fields"),
        ("@often", "unknown cron alias"),
        ("0 0 31 2 *", "cron field 3 (day-of-month) '31' falls in none of the months"),
        ("0 0 30 2 *", "cron field 3 (day-of-month) '30' falls in none of the months"),
        ("x" * 201, "cron must be at most 200 characters"),
    ],
)
def test_a_bad_cron_is_refused_naming_the_field(expr: str, message: str) -> None:
    with pytest.raises(CronError, match="^" + re.escape(message)):
        check_cron(expr)
    with pytest.raises(ValueError, match=re.escape(message)):
        ScheduleConfig(cron=expr)


def test_the_position_of_the_bad_field_is_kept() -> None:
    with pytest.raises(CronError) as caught:
        check_cron("0 9 * * MON-FRX")
    assert caught.value.position == 5, caught.value


@pytest.mark.parametrize(
    "expr",
    ["0 9 * * MON-FRI", "*/15 8-18 * * 1-5", "0 0 29 2 *", "@hourly", "@weekly", "5 4 * * sun"],
)
def test_good_crons_are_accepted(expr: str) -> None:
    assert ScheduleConfig(cron=expr, timezone="Europe/Berlin").cron == expr


# --------------------------------------------------------------------------- the oracle

ORACLE_ZONES = [
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "America/Santiago",  # changes at midnight: the skipped hour moves a day's fires
    "Pacific/Chatham",  # +12:45 / +13:45
    "America/St_Johns",  # -3:30 / -2:30
    "Europe/Dublin",  # "negative" DST in the tz database
    "Asia/Kolkata",  # no DST
]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Fields:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]  # of the month, 1..31
    weekdays: frozenset[int]  # 0 = Sunday
    minute_text: str
    hour_text: str
    day_text: str
    weekday_text: str

    @property
    def expression(self) -> str:
        return f"{self.minute_text} {self.hour_text} {self.day_text} * {self.weekday_text}"

    @property
    def wall_clock(self) -> bool:
        """The contract: a schedule naming both its minutes and hours keeps wall times."""
        return not self.minute_text.startswith("*") and not self.hour_text.startswith("*")


def _listed(draw: st.DrawFn, values: range, most: int) -> tuple[frozenset[int], str]:
    chosen = draw(st.sets(st.sampled_from(values), min_size=1, max_size=most))
    return frozenset(chosen), ",".join(str(v) for v in sorted(chosen))


@st.composite
def cron_fields(draw: st.DrawFn) -> Fields:
    hour_kind = draw(st.sampled_from(["list", "list", "star", "step"]))
    if hour_kind == "list":
        hours, hour_text = _listed(draw, range(24), 4)
    elif hour_kind == "star":
        hours, hour_text = frozenset(range(24)), "*"
    else:
        step = draw(st.integers(2, 6))
        hours, hour_text = frozenset(range(0, 24, step)), f"*/{step}"
    if hour_kind == "list" and draw(st.booleans()):
        step = draw(st.sampled_from([15, 20, 30]))
        minutes, minute_text = frozenset(range(0, 60, step)), f"*/{step}"
    else:
        minutes, minute_text = _listed(draw, range(60), 2 if hour_kind == "list" else 1)
    days, day_text = frozenset(range(1, 32)), "*"
    weekdays, weekday_text = frozenset(range(7)), "*"
    restrict = draw(st.sampled_from(["none", "days", "weekdays"]))
    if restrict == "days":
        days, day_text = _listed(draw, range(1, 32), 6)
    elif restrict == "weekdays":
        weekdays, weekday_text = _listed(draw, range(7), 3)
    return Fields(minutes, hours, days, weekdays, minute_text, hour_text, day_text, weekday_text)


def _offsets(zone: ZoneInfo, start: int, minutes: int) -> list[int]:
    """The zone's UTC offset in whole minutes at each minute from ``start`` (epoch minutes),
    asked of zoneinfo once an hour, and every minute in an hour whose offset changes."""
    out: list[int] = []

    def offset_at(minute: int) -> int:
        moment = _EPOCH + timedelta(minutes=minute)
        delta = moment.astimezone(zone).utcoffset()
        assert delta is not None
        return int(delta.total_seconds()) // 60

    for hour_start in range(start, start + minutes, 60):
        first, after = offset_at(hour_start), offset_at(hour_start + 60)
        if first == after:
            out.extend([first] * 60)
        else:
            out.extend(offset_at(hour_start + m) for m in range(60))
    return out[:minutes]


def oracle(fields: Fields, zone_name: str, start: int, minutes: int) -> list[int]:
    """Fire times (epoch minutes) in (start, start + minutes], minute by minute.

    Elapsed-time schedules fire at every real minute whose local wall time matches. Wall-clock
    schedules fire a matching wall time the first time it happens, and, when the clock jumps
    over matching wall times, once at the first minute after the jump.
    """
    offsets = _offsets(ZoneInfo(zone_name), start + 1, minutes)

    def matches(local: int) -> bool:
        if local % 60 not in fields.minutes or (local // 60) % 24 not in fields.hours:
            return False
        day = (_EPOCH + timedelta(minutes=local)).date()
        return day.day in fields.days and (day.weekday() + 1) % 7 in fields.weekdays

    found: list[int] = []
    fired_walls: set[int] = set()
    previous_local: int | None = None
    for index, offset in enumerate(offsets):
        moment = start + 1 + index
        local = moment + offset
        if not fields.wall_clock:
            if matches(local):
                found.append(moment)
            continue
        skipped = range(previous_local + 1, local) if previous_local is not None else range(0)
        due = any(matches(wall) for wall in skipped)
        if matches(local) and local not in fired_walls:
            fired_walls.add(local)
            due = True
        if due:
            found.append(moment)
        previous_local = local
    return found


# Twenty years minute by minute: 10-26 s on a busy 2-core machine, more beside stress-ng.
@pytest.mark.timeout(300)
@settings(max_examples=20, deadline=None)
@given(
    fields=cron_fields(),
    zone=st.sampled_from(ORACLE_ZONES),
    year=st.sampled_from([2026, 2027]),
)
def test_no_fire_time_is_repeated_or_skipped_over_a_year(
    fields: Fields, zone: str, year: int
) -> None:
    start = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    start_minute = int((start - _EPOCH).total_seconds()) // 60
    expected = oracle(fields, zone, start_minute, int((end - start).total_seconds()) // 60)
    schedule = Cron(fields.expression, zone)
    got: list[int] = []
    moment = start
    while True:
        moment = next_fire_time(schedule, now=moment, previous=moment)
        if moment > end:
            break
        got.append(int((moment - _EPOCH).total_seconds()) // 60)
    if got != expected:
        missing = sorted(set(expected) - set(got))[:5]
        extra = sorted(set(got) - set(expected))[:5]
        shown = [[str(_EPOCH + timedelta(minutes=m)) for m in part] for part in (missing, extra)]
        pytest.fail(f"{fields.expression} in {zone}: missing {shown[0]}, extra {shown[1]}")
