"""The pure rules of overlap, catch-up and backfill (taskcell.domain.policies)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskcell.domain.models import ScheduleConfig
from taskcell.domain.policies import (
    MAX_BACKFILL,
    MAX_CATCHUP,
    SKIPPED_BUFFER_FULL,
    SKIPPED_MISSED,
    SKIPPED_OLD,
    SKIPPED_RUNNING,
    Admission,
    OverlapPolicy,
    TooManyOccurrences,
    admit,
    backfill_occurrences,
    catch_up,
    latest_fires,
    skip_reason,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EVERY_MINUTE = ScheduleConfig(interval_minutes=1)
HOURLY_CRON = ScheduleConfig(cron="0 * * * *", timezone="Europe/Berlin")
MINUTE_CRON = ScheduleConfig(cron="* * * * *", timezone="UTC")
DAILY_NINE = ScheduleConfig(daily_time="09:00", timezone="America/New_York")


@pytest.mark.parametrize(
    ("policy", "running", "queued", "decision"),
    [
        ("skip", 0, 0, Admission.START),
        ("skip", 1, 0, Admission.SKIP),
        ("skip", 0, 1, Admission.SKIP),
        ("buffer_one", 0, 0, Admission.START),
        ("buffer_one", 1, 0, Admission.QUEUE),
        ("buffer_one", 1, 1, Admission.SKIP),
        ("buffer_all", 1, 0, Admission.QUEUE),
        ("buffer_all", 1, 7, Admission.QUEUE),
        ("buffer_all", 0, 2, Admission.QUEUE),  # behind the waiting ones, in order
        ("cancel_other", 0, 0, Admission.START),
        ("cancel_other", 2, 0, Admission.REPLACE),
        ("allow_all", 3, 0, Admission.START),
    ],
)
def test_admit(policy: str, running: int, queued: int, decision: Admission) -> None:
    assert admit(policy, running=running, queued=queued) is decision


def test_skip_reasons_say_which_policy() -> None:
    assert skip_reason(OverlapPolicy.SKIP) == SKIPPED_RUNNING
    assert skip_reason("buffer_one") == SKIPPED_BUFFER_FULL
    assert "buffer_one" in SKIPPED_BUFFER_FULL


# -- catch-up: three hours down, an every-minute schedule ------------------------------


DOWN = timedelta(hours=3)
NOW = T0 + DOWN + timedelta(seconds=20)
MISSED = [T0 + timedelta(minutes=k) for k in range(181)]  # T0 .. T0 + 3 h, all due


def test_on_time_occurrence_runs_under_every_policy() -> None:
    for policy in ("coalesce", "skip", "all"):
        plan = catch_up(EVERY_MINUTE, due=T0, now=T0 + timedelta(seconds=2), policy=policy)
        assert plan.run == [T0] and plan.skipped == []


def test_three_hours_down_coalesce_gives_one_run_for_the_latest() -> None:
    plan = catch_up(EVERY_MINUTE, due=T0, now=NOW, policy="coalesce")
    assert plan.run == [MISSED[-1]]
    assert plan.skipped == []
    assert plan.coalesced == 180


def test_three_hours_down_skip_gives_none_and_records_each() -> None:
    plan = catch_up(EVERY_MINUTE, due=T0, now=NOW, policy="skip")
    # The last one (20 s late) is on time: it runs; the 180 before it were missed.
    assert plan.run == [MISSED[-1]]
    assert plan.skipped == [(t, SKIPPED_MISSED) for t in MISSED[:-1]]
    hourly = ScheduleConfig(interval_minutes=60)  # down 3 h 20 min: none is on time
    plan = catch_up(hourly, due=T0, now=T0 + timedelta(hours=3, minutes=20), policy="skip")
    assert plan.run == []
    assert [t for t, _ in plan.skipped] == [T0 + timedelta(hours=k) for k in range(4)]


def test_three_hours_down_all_gives_every_missed_occurrence_in_order() -> None:
    plan = catch_up(EVERY_MINUTE, due=T0, now=NOW, policy="all")
    assert plan.run == MISSED
    assert plan.skipped == []


def test_the_window_skips_older_occurrences_with_the_reason() -> None:
    window = 30 * 60
    plan = catch_up(EVERY_MINUTE, due=T0, now=NOW, policy="all", window_seconds=window)
    recent = [t for t in MISSED if NOW - t <= timedelta(seconds=window)]
    assert plan.run == recent and len(recent) == 30
    assert plan.skipped == [(t, SKIPPED_OLD) for t in MISSED if t not in recent]
    assert SKIPPED_OLD.endswith("older than the catch-up window")
    plan = catch_up(EVERY_MINUTE, due=T0, now=NOW, policy="coalesce", window_seconds=window)
    assert plan.run == [MISSED[-1]]
    assert len(plan.skipped) == 181 - 30


def test_all_never_runs_more_than_the_cap_and_costs_little() -> None:
    now = T0 + timedelta(days=365)  # a year down, every minute: 525,601 occurrences
    plan = catch_up(EVERY_MINUTE, due=T0, now=now, policy="all")
    assert len(plan.run) == MAX_CATCHUP
    assert plan.run[-1] == now and plan.run == sorted(plan.run)
    assert plan.unrecorded == 525_601 - MAX_CATCHUP
    plan = catch_up(MINUTE_CRON, due=T0, now=now, policy="all")
    assert len(plan.run) == MAX_CATCHUP and plan.run[-1] == now
    plan = catch_up(MINUTE_CRON, due=T0, now=now, policy="skip")
    assert len(plan.skipped) + len(plan.run) == MAX_CATCHUP and plan.unrecorded > 0


def test_cron_catch_up_across_a_dst_change() -> None:
    # Berlin springs forward on 29 March 2026 at 01:00Z: hourly fires stay every real hour.
    due = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)
    now = datetime(2026, 3, 29, 3, 0, 10, tzinfo=UTC)
    plan = catch_up(HOURLY_CRON, due=due, now=now, policy="all")
    assert plan.run == [due + timedelta(hours=k) for k in range(6)]


@settings(max_examples=40, deadline=None)
@given(
    start_minutes=st.integers(0, 60 * 24 * 20),
    span_minutes=st.integers(0, 60 * 24 * 40),
    limit=st.integers(1, 50),
    schedule=st.sampled_from([HOURLY_CRON, DAILY_NINE, ScheduleConfig(cron="*/7 9-10 * * *")]),
)
def test_latest_fires_against_a_walk(
    start_minutes: int, span_minutes: int, limit: int, schedule: ScheduleConfig
) -> None:
    lo = T0 + timedelta(minutes=start_minutes)
    hi = lo + timedelta(minutes=span_minutes)
    walked = backfill_occurrences(
        schedule, start=lo, end=hi + timedelta(microseconds=1), anchor=None, limit=10**6
    )
    found, earlier = latest_fires(schedule, anchor=lo, lo=lo, hi=hi, limit=limit)
    assert found == walked[-limit:]
    left_out = len(walked) - len(found)
    assert min(left_out, 1) <= earlier <= left_out  # a count for the logs: a lower bound


# -- backfill ------------------------------------------------------------------------


def test_backfill_is_start_inclusive_end_exclusive_in_order() -> None:
    times = backfill_occurrences(
        EVERY_MINUTE, start=T0, end=T0 + timedelta(minutes=5), anchor=T0 + timedelta(days=1)
    )
    assert times == [T0 + timedelta(minutes=k) for k in range(5)]
    times = backfill_occurrences(
        DAILY_NINE,
        start=datetime(2026, 3, 6, tzinfo=UTC),
        end=datetime(2026, 3, 10, 13, 0, tzinfo=UTC),  # 09:00 EDT on 9 March is 13:00Z
        anchor=None,
    )
    assert times == [
        datetime(2026, 3, 6, 14, 0, tzinfo=UTC),
        datetime(2026, 3, 7, 14, 0, tzinfo=UTC),
        datetime(2026, 3, 8, 13, 0, tzinfo=UTC),  # New York sprang forward that night
        datetime(2026, 3, 9, 13, 0, tzinfo=UTC),
    ]


def test_backfill_keeps_an_interval_on_its_grid() -> None:
    anchor = T0 + timedelta(minutes=7)  # the armed next time: the grid is :07, :17, ...
    schedule = ScheduleConfig(interval_minutes=10)
    times = backfill_occurrences(schedule, start=T0, end=T0 + timedelta(minutes=30), anchor=anchor)
    assert times == [T0 + timedelta(minutes=m) for m in (7, 17, 27)]


def test_backfill_refuses_over_a_thousand_and_reversed_ranges() -> None:
    thousand = backfill_occurrences(
        EVERY_MINUTE, start=T0, end=T0 + timedelta(minutes=MAX_BACKFILL), anchor=T0
    )
    assert len(thousand) == MAX_BACKFILL
    with pytest.raises(TooManyOccurrences):
        backfill_occurrences(
            EVERY_MINUTE, start=T0, end=T0 + timedelta(minutes=MAX_BACKFILL + 1), anchor=T0
        )
    with pytest.raises(TooManyOccurrences):
        backfill_occurrences(MINUTE_CRON, start=T0, end=T0 + timedelta(days=1), anchor=None)
    with pytest.raises(ValueError, match="end must be after start"):
        backfill_occurrences(EVERY_MINUTE, start=T0, end=T0, anchor=T0)
    with pytest.raises(ValueError, match=r"aware|offset|naive|timezone"):
        backfill_occurrences(
            EVERY_MINUTE, start=T0.replace(tzinfo=None), end=T0 + timedelta(hours=1), anchor=T0
        )


def test_an_armed_time_the_schedule_no_longer_has_still_runs() -> None:
    """A schedule edited after its next time was armed: that armed occurrence fires once."""
    due = datetime(2026, 3, 1, 8, 5, tzinfo=UTC)
    daily_midnight = ScheduleConfig(daily_time="00:00", timezone="UTC")
    for policy in ("coalesce", "skip", "all"):
        assert catch_up(daily_midnight, due=due, now=due, policy=policy).run == [due]
