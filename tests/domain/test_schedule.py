"""Tests for taskcell.domain.schedule: DST, anchored intervals, misfires, descriptions."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskcell.domain.schedule import (
    ScheduleLike,
    describe,
    is_valid_zone,
    missed_occurrences,
    next_fire_time,
    resolve_zone_name,
)
from taskcell.domain.schedule import _local_zone_name as local_zone_name


@dataclass(frozen=True)
class Sched:
    """A stand-in for ScheduleConfig with the attributes schedule arithmetic reads."""

    interval_minutes: int | None = None
    daily_time: str | None = None
    timezone: str | None = None
    cron: str | None = None


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def daily(at: str, zone: str | None) -> Sched:
    return Sched(daily_time=at, timezone=zone)


def every(minutes: int) -> Sched:
    return Sched(interval_minutes=minutes)


def fire_times(schedule: ScheduleLike, start: datetime, count: int) -> list[datetime]:
    """Iterate next_fire_time as a scheduler would: each run starts at its fire time."""
    out: list[datetime] = []
    now, previous = start, None
    for _ in range(count):
        fire = next_fire_time(schedule, now=now, previous=previous)
        out.append(fire)
        now, previous = fire, fire
    return out


# --------------------------------------------------------------------------- DST, exact


def test_new_york_0230_across_spring_forward() -> None:
    # 2026-03-08: 02:00 EST -> 03:00 EDT; 02:30 does not exist, fires at 03:00 EDT.
    assert fire_times(daily("02:30", "America/New_York"), utc(2026, 3, 4, 12), 10) == [
        utc(2026, 3, 5, 7, 30),  # 02:30 EST
        utc(2026, 3, 6, 7, 30),
        utc(2026, 3, 7, 7, 30),
        utc(2026, 3, 8, 7, 0),  # gap -> 03:00 EDT
        utc(2026, 3, 9, 6, 30),  # 02:30 EDT
        utc(2026, 3, 10, 6, 30),
        utc(2026, 3, 11, 6, 30),
        utc(2026, 3, 12, 6, 30),
        utc(2026, 3, 13, 6, 30),
        utc(2026, 3, 14, 6, 30),
    ]


def test_new_york_0230_across_fall_back() -> None:
    # 2026-11-01: 02:00 EDT -> 01:00 EST; 02:30 is unambiguous (EST) that day.
    assert fire_times(daily("02:30", "America/New_York"), utc(2026, 10, 28, 12), 10) == [
        utc(2026, 10, 29, 6, 30),  # 02:30 EDT
        utc(2026, 10, 30, 6, 30),
        utc(2026, 10, 31, 6, 30),
        utc(2026, 11, 1, 7, 30),  # 02:30 EST
        utc(2026, 11, 2, 7, 30),
        utc(2026, 11, 3, 7, 30),
        utc(2026, 11, 4, 7, 30),
        utc(2026, 11, 5, 7, 30),
        utc(2026, 11, 6, 7, 30),
        utc(2026, 11, 7, 7, 30),
    ]


def test_new_york_0130_fires_once_when_it_occurs_twice() -> None:
    # 2026-11-01 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
    assert fire_times(daily("01:30", "America/New_York"), utc(2026, 10, 28, 12), 10) == [
        utc(2026, 10, 29, 5, 30),  # 01:30 EDT
        utc(2026, 10, 30, 5, 30),
        utc(2026, 10, 31, 5, 30),
        utc(2026, 11, 1, 5, 30),  # first 01:30 (EDT) only
        utc(2026, 11, 2, 6, 30),  # 01:30 EST
        utc(2026, 11, 3, 6, 30),
        utc(2026, 11, 4, 6, 30),
        utc(2026, 11, 5, 6, 30),
        utc(2026, 11, 6, 6, 30),
        utc(2026, 11, 7, 6, 30),
    ]


def test_new_york_second_0130_is_not_an_occurrence() -> None:
    schedule = daily("01:30", "America/New_York")
    # now between the two 01:30s (01:45 EDT): the next is the following day.
    assert next_fire_time(schedule, now=utc(2026, 11, 1, 5, 45)) == utc(2026, 11, 2, 6, 30)
    # A scheduler restarted from the first occurrence does not pick the second.
    assert next_fire_time(
        schedule, now=utc(2026, 11, 1, 5, 30), previous=utc(2026, 11, 1, 5, 30)
    ) == utc(2026, 11, 2, 6, 30)


def test_berlin_0230_across_spring_forward() -> None:
    # 2026-03-29: 02:00 CET -> 03:00 CEST; 02:30 does not exist, fires at 03:00 CEST.
    assert fire_times(daily("02:30", "Europe/Berlin"), utc(2026, 3, 25, 12), 10) == [
        utc(2026, 3, 26, 1, 30),  # 02:30 CET
        utc(2026, 3, 27, 1, 30),
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1, 0),  # gap -> 03:00 CEST
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
        utc(2026, 3, 31, 0, 30),
        utc(2026, 4, 1, 0, 30),
        utc(2026, 4, 2, 0, 30),
        utc(2026, 4, 3, 0, 30),
        utc(2026, 4, 4, 0, 30),
    ]


def test_berlin_0230_across_fall_back() -> None:
    # 2026-10-25: 03:00 CEST -> 02:00 CET; 02:30 occurs twice, fires at the first (CEST).
    assert fire_times(daily("02:30", "Europe/Berlin"), utc(2026, 10, 21, 12), 10) == [
        utc(2026, 10, 22, 0, 30),  # 02:30 CEST
        utc(2026, 10, 23, 0, 30),
        utc(2026, 10, 24, 0, 30),
        utc(2026, 10, 25, 0, 30),  # first 02:30 (CEST) only
        utc(2026, 10, 26, 1, 30),  # 02:30 CET
        utc(2026, 10, 27, 1, 30),
        utc(2026, 10, 28, 1, 30),
        utc(2026, 10, 29, 1, 30),
        utc(2026, 10, 30, 1, 30),
        utc(2026, 10, 31, 1, 30),
    ]


def test_lord_howe_half_hour_gap() -> None:
    # 2026-10-04 02:00 LHST (+10:30) -> 02:30 LHDT (+11); 02:15 fires at 02:30 LHDT.
    schedule = daily("02:15", "Australia/Lord_Howe")
    assert next_fire_time(schedule, now=utc(2026, 10, 3, 12)) == utc(2026, 10, 3, 15, 30)


def test_daily_uses_default_zone_when_schedule_has_none() -> None:
    schedule = daily("09:00", None)
    now = utc(2026, 7, 1, 12)
    assert next_fire_time(schedule, now=now) == utc(2026, 7, 2, 9)
    assert next_fire_time(schedule, now=now, default_zone="Asia/Kolkata") == utc(2026, 7, 2, 3, 30)


def test_daily_later_today_and_exactly_now() -> None:
    schedule = daily("09:00", "UTC")
    assert next_fire_time(schedule, now=utc(2026, 7, 1, 8, 59)) == utc(2026, 7, 1, 9)
    # strictly after now
    assert next_fire_time(schedule, now=utc(2026, 7, 1, 9)) == utc(2026, 7, 2, 9)


def test_daily_never_repeats_previous_when_clock_steps_back() -> None:
    schedule = daily("09:00", "UTC")
    fire = next_fire_time(schedule, now=utc(2026, 7, 1, 8), previous=utc(2026, 7, 1, 9))
    assert fire == utc(2026, 7, 2, 9)


# --------------------------------------------------------------------------- intervals


def test_interval_runs_taking_forty_percent_do_not_drift() -> None:
    interval = timedelta(minutes=15)
    schedule = every(15)
    start = utc(2026, 1, 1, 0, 0)
    now, previous = start, start
    for k in range(1, 101):
        fire = next_fire_time(schedule, now=now, previous=previous)
        assert fire == start + k * interval
        now, previous = fire + interval * 0.4, fire  # the run ends 40% into the interval


def test_interval_without_previous_is_now_plus_interval() -> None:
    now = utc(2026, 5, 5, 10, 7, 13)
    assert next_fire_time(every(5), now=now) == utc(2026, 5, 5, 10, 12, 13)


def test_interval_exactly_on_grid_is_strictly_after_now() -> None:
    previous = utc(2026, 5, 5, 10)
    assert next_fire_time(every(5), now=previous, previous=previous) == utc(2026, 5, 5, 10, 5)
    now = utc(2026, 5, 5, 10, 10)
    assert next_fire_time(every(5), now=now, previous=previous) == utc(2026, 5, 5, 10, 15)


def test_three_hours_down_for_a_one_minute_task() -> None:
    schedule = every(1)
    previous = utc(2026, 6, 1, 12, 0)
    now = previous + timedelta(hours=3, seconds=20)  # back up three hours later
    assert next_fire_time(schedule, now=now, previous=previous) == utc(2026, 6, 1, 15, 1)
    assert missed_occurrences(schedule, previous=previous, now=now) == 180


def test_missed_occurrences_interval_bounds() -> None:
    schedule = every(10)
    previous = utc(2026, 6, 1, 12)
    assert missed_occurrences(schedule, previous=previous, now=previous) == 0
    assert missed_occurrences(schedule, previous=previous, now=utc(2026, 6, 1, 11)) == 0
    assert missed_occurrences(schedule, previous=previous, now=utc(2026, 6, 1, 12, 9)) == 0
    assert missed_occurrences(schedule, previous=previous, now=utc(2026, 6, 1, 12, 10)) == 1
    # ten years of downtime is still constant time
    ten_years = missed_occurrences(schedule, previous=previous, now=utc(2036, 6, 1, 12))
    assert ten_years == (utc(2036, 6, 1, 12) - previous) // timedelta(minutes=10)


def test_missed_occurrences_daily_across_dst() -> None:
    schedule = daily("02:30", "America/New_York")
    # (03-05 07:30, 03-10 06:30]: 03-06, 03-07, 03-08 (07:00), 03-09, 03-10
    assert (
        missed_occurrences(schedule, previous=utc(2026, 3, 5, 7, 30), now=utc(2026, 3, 10, 6, 30))
        == 5
    )
    assert (
        missed_occurrences(schedule, previous=utc(2026, 3, 5, 7, 30), now=utc(2026, 3, 10, 6, 29))
        == 4
    )
    one_day = daily("01:30", "America/New_York")
    # the second 01:30 of 2026-11-01 is not an occurrence
    assert (
        missed_occurrences(one_day, previous=utc(2026, 11, 1, 5, 30), now=utc(2026, 11, 1, 7)) == 0
    )
    # many years: constant-time, matches the count of calendar days
    assert (
        missed_occurrences(schedule, previous=utc(2020, 1, 1, 12), now=utc(2030, 1, 1, 12))
        == (date(2030, 1, 1) - date(2020, 1, 1)).days
    )


# --------------------------------------------------------------------------- validation


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_fire_time(every(5), now=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        next_fire_time(every(5), now=utc(2026, 1, 1), previous=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        missed_occurrences(
            daily("09:00", "UTC"), previous=datetime(2026, 1, 1), now=utc(2026, 1, 2)
        )


def test_aware_non_utc_input_gives_utc_output() -> None:
    now = datetime(2026, 7, 1, 8, 0, tzinfo=ZoneInfo("Europe/Berlin"))  # 06:00 UTC
    fire = next_fire_time(daily("09:00", "Europe/Berlin"), now=now)
    assert fire == utc(2026, 7, 1, 7)
    assert fire.tzinfo is UTC
    assert next_fire_time(every(30), now=now).tzinfo is UTC


@pytest.mark.parametrize(
    "schedule",
    [
        Sched(),
        Sched(interval_minutes=5, daily_time="09:00"),
        Sched(interval_minutes=0),
        Sched(daily_time="24:00"),
        Sched(daily_time="9:00"),
        Sched(daily_time="09:00", timezone="Mars/Olympus"),
    ],
)
def test_invalid_schedules_are_refused(schedule: Sched) -> None:
    with pytest.raises(ValueError):
        next_fire_time(schedule, now=utc(2026, 1, 1))


def test_is_valid_zone() -> None:
    for name in ("UTC", "Europe/Berlin", "America/New_York", "US/Eastern", "Etc/GMT+5"):
        assert is_valid_zone(name), name
    for bad in (None, "", "America", "Mars/Olympus", " UTC", "../UTC", "/etc/localtime"):
        assert not is_valid_zone(bad), bad
    assert not is_valid_zone("localtime")


def test_resolve_zone_name() -> None:
    assert resolve_zone_name("Asia/Kolkata") == "Asia/Kolkata"
    with pytest.raises(ValueError, match="time zone"):
        resolve_zone_name("Nowhere/Special")
    assert is_valid_zone(resolve_zone_name(None))


def test_local_zone_from_tz_variable(tmp_path: Path) -> None:
    assert local_zone_name({"TZ": "Europe/Berlin"}, tmp_path) == "Europe/Berlin"
    assert local_zone_name({"TZ": ":Asia/Tokyo"}, tmp_path) == "Asia/Tokyo"
    path_tz = {"TZ": ":/usr/share/zoneinfo/America/Chicago"}
    assert local_zone_name(path_tz, tmp_path) == "America/Chicago"


def test_local_zone_from_etc_files(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    assert local_zone_name({}, tmp_path) == "UTC"
    (etc / "localtime").symlink_to("/usr/share/zoneinfo/posix/Pacific/Auckland")
    assert local_zone_name({}, tmp_path) == "Pacific/Auckland"
    (etc / "timezone").write_text("Europe/Lisbon\n", encoding="utf-8")
    assert local_zone_name({}, tmp_path) == "Europe/Lisbon"
    assert local_zone_name({"TZ": "Bogus/Zone"}, tmp_path) == "Europe/Lisbon"
    assert local_zone_name({"TZ": "America/Lima"}, tmp_path) == "America/Lima"
    assert os.path.islink(etc / "localtime")


# --------------------------------------------------------------------------- describe


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        (every(1), "every minute"),
        (every(5), "every 5 minutes"),
        (every(90), "every 90 minutes"),
        (every(60), "every hour"),
        (every(120), "every 2 hours"),
        (every(1440), "every day"),
        (every(2880), "every 2 days"),
        (every(1500), "every 25 hours"),
        (daily("09:00", "Europe/Berlin"), "daily at 09:00 (Europe/Berlin)"),
        (daily("23:59", None), "daily at 23:59 (UTC)"),
    ],
)
def test_describe(schedule: Sched, words: str) -> None:
    assert describe(schedule) == words


def test_describe_names_the_default_zone() -> None:
    assert describe(daily("07:05", None), default_zone="Asia/Kolkata") == (
        "daily at 07:05 (Asia/Kolkata)"
    )


# --------------------------------------------------------------------------- properties

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Europe/London",
    "Australia/Lord_Howe",
    "Australia/Sydney",
    "Asia/Kolkata",
    "America/Sao_Paulo",
    "Pacific/Chatham",
    "America/Santiago",
    "Asia/Tehran",
    "Pacific/Auckland",
]

nows = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
daily_times = st.builds(time, st.integers(0, 23), st.integers(0, 59))


def _wall(value: datetime) -> datetime:
    return value.replace(tzinfo=None, fold=0)


def _is_first_valid_instant_after_gap(fire: datetime, target: time, zone: ZoneInfo) -> bool:
    """The offset changes at ``fire`` and the skipped wall times contain ``target``."""
    before = (fire - timedelta(seconds=1)).astimezone(zone)
    after = fire.astimezone(zone)
    if before.utcoffset() == after.utcoffset():
        return False
    days = {before.date(), after.date()}
    return any(_wall(before) < datetime.combine(d, target) < _wall(after) for d in days)


def _valid_first_occurrences(
    zone: ZoneInfo, target: time, first: date, last: date
) -> list[datetime]:
    """Independent oracle: every existing fold=0 occurrence of ``target`` on these days."""
    out: list[datetime] = []
    day = first
    while day <= last:
        local = datetime.combine(day, target, tzinfo=zone)
        instant = local.astimezone(UTC)
        if _wall(instant.astimezone(zone)) == _wall(local):
            out.append(instant)
        day += timedelta(days=1)
    return out


def _transitions(zone_name: str) -> list[datetime]:
    """Every UTC offset change of ``zone_name`` in 2025-2028, to the microsecond."""
    zone = ZoneInfo(zone_name)
    out: list[datetime] = []
    day = utc(2025, 1, 1)
    while day < utc(2029, 1, 1):
        nxt = day + timedelta(days=1)
        if day.astimezone(zone).utcoffset() != nxt.astimezone(zone).utcoffset():
            lo, hi = day, nxt
            while hi - lo > timedelta(microseconds=1):
                mid = lo + (hi - lo) // 2
                if mid.astimezone(zone).utcoffset() == lo.astimezone(zone).utcoffset():
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
        day = nxt
    return out


TRANSITIONS = [(name, t) for name in ZONES for t in _transitions(name)]


@st.composite
def near_transitions(draw: st.DrawFn) -> tuple[str, time, datetime]:
    """A zone, a daily time within 90 minutes of a DST change's wall time, and a now
    within a day and a half before it to a few hours after it."""
    zone_name, change = draw(st.sampled_from(TRANSITIONS))
    wall = (change - timedelta(seconds=1)).astimezone(ZoneInfo(zone_name))
    target = wall + timedelta(minutes=draw(st.integers(-90, 90)))
    now = change + timedelta(minutes=draw(st.integers(-36 * 60, 6 * 60)))
    now += timedelta(microseconds=draw(st.integers(0, 59_999_999)))
    return zone_name, target.time().replace(second=0, microsecond=0), now


def _check_daily_fire(zone_name: str, target: time, now: datetime) -> None:
    schedule = daily(f"{target:%H:%M}", zone_name)
    zone = ZoneInfo(zone_name)
    fire = next_fire_time(schedule, now=now)

    assert fire.tzinfo is UTC
    assert now < fire <= now + timedelta(hours=26)
    local = fire.astimezone(zone)
    if local.time() == target:
        assert local.fold == 0  # the first of two, if the wall time repeats
    else:
        assert _is_first_valid_instant_after_gap(fire, target, zone)
    # no valid occurrence was skipped between now and fire
    first, last = now.astimezone(zone).date() - timedelta(days=1), local.date()
    for instant in _valid_first_occurrences(zone, target, first, last):
        assert not now < instant < fire
    # idempotent just before the fire time, and moves a day on at it
    assert next_fire_time(schedule, now=fire - timedelta(microseconds=1)) == fire
    assert next_fire_time(schedule, now=fire) > fire + timedelta(hours=20)


def test_transition_table_is_plausible() -> None:
    # New York and Berlin change twice a year; Kolkata never.
    assert sum(name == "America/New_York" for name, _ in TRANSITIONS) == 8
    assert sum(name == "Europe/Berlin" for name, _ in TRANSITIONS) == 8
    assert not any(name == "Asia/Kolkata" for name, _ in TRANSITIONS)
    assert ("America/New_York", utc(2026, 3, 8, 7)) in TRANSITIONS


@settings(max_examples=400, deadline=None)
@given(zone_name=st.sampled_from(ZONES), target=daily_times, now=nows)
def test_daily_next_fire_time_properties(zone_name: str, target: time, now: datetime) -> None:
    _check_daily_fire(zone_name, target, now)


@settings(max_examples=600, deadline=None)
@given(case=near_transitions())
def test_daily_next_fire_time_properties_near_dst_changes(
    case: tuple[str, time, datetime],
) -> None:
    _check_daily_fire(*case)


@settings(max_examples=200, deadline=None)
@given(
    zone_name=st.sampled_from(ZONES),
    target=daily_times,
    previous=nows | near_transitions().map(lambda case: case[2]),
    span=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=12)),
)
def test_daily_missed_occurrences_counts_the_fire_times(
    zone_name: str, target: time, previous: datetime, span: timedelta
) -> None:
    schedule = daily(f"{target:%H:%M}", zone_name)
    now = previous + span
    count, fire = 0, next_fire_time(schedule, now=previous)
    while fire <= now:
        count += 1
        fire = next_fire_time(schedule, now=fire, previous=fire)
    assert missed_occurrences(schedule, previous=previous, now=now) == count


@settings(max_examples=400, deadline=None)
@given(
    minutes=st.integers(1, 7 * 1440),
    previous=nows,
    elapsed=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)),
)
def test_interval_properties(minutes: int, previous: datetime, elapsed: timedelta) -> None:
    schedule = every(minutes)
    interval = timedelta(minutes=minutes)
    now = previous + elapsed
    fire = next_fire_time(schedule, now=now, previous=previous)

    k, rest = divmod(fire - previous, interval)
    assert k >= 1
    assert rest == timedelta(0)
    assert fire > now >= fire - interval
    assert missed_occurrences(schedule, previous=previous, now=now) == k - 1
