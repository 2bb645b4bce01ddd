"""Bad values are refused with the field named; the in-memory helpers follow the state machine."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from pydantic import ValidationError

from taskcell import InvalidTransition, ScheduleConfig, Task, TaskPattern, TaskStatus
from taskcell.domain.models import new_id


def errors_of(**fields: Any) -> list[tuple[str, str]]:
    values: dict[str, Any] = {"query": "hello", "agent_name": "echo"}
    values.update(fields)
    with pytest.raises(ValidationError) as caught:
        Task(**values)
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in caught.value.errors()]


def recurring(**schedule: Any) -> list[tuple[str, str]]:
    return errors_of(pattern="recurring", schedule_config=schedule)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"query": ""}, ("query", "query must not be empty")),
        ({"query": "   "}, ("query", "query must not be empty")),
        (
            {"query": "x" * 40_000},
            ("query", "query is 40000 characters long; the limit is 32000"),
        ),
    ],
)
def test_bad_queries_name_the_field(fields: dict[str, Any], expected: tuple[str, str]) -> None:
    assert errors_of(**fields) == [expected]


@pytest.mark.parametrize("value", ["24:00", "9:5", "09:60", "9:05", "noon", ""])
def test_bad_daily_times_name_the_field(value: str) -> None:
    assert recurring(daily_time=value) == [
        ("schedule_config.daily_time", "daily_time must be HH:MM, 00:00 to 23:59")
    ]


@pytest.mark.parametrize("value", [0, -5, 525_601])
def test_bad_intervals_name_the_field(value: int) -> None:
    assert recurring(interval_minutes=value) == [
        (
            "schedule_config.interval_minutes",
            "interval_minutes must be a whole number from 1 to 525600",
        )
    ]


@pytest.mark.parametrize(
    "schedule",
    [
        {"interval_minutes": 5, "daily_time": "09:00"},
        {"interval_minutes": 5, "cron": "0 9 * * *"},
        {"daily_time": "09:00", "cron": "0 9 * * *"},
        {},
        {"timezone": "UTC"},
    ],
)
def test_two_or_no_schedule_kinds_are_refused(schedule: dict[str, Any]) -> None:
    assert recurring(**schedule) == [
        ("schedule_config", "exactly one of interval_minutes, daily_time and cron must be set")
    ]


def test_unknown_zone_is_named() -> None:
    assert recurring(daily_time="09:00", timezone="Mars/Base") == [
        ("schedule_config.timezone", "unknown time zone 'Mars/Base'")
    ]


def test_recurring_needs_a_schedule_and_once_takes_none() -> None:
    assert errors_of(pattern="recurring") == [
        ("schedule_config", "a recurring task needs a schedule_config")
    ]
    assert errors_of(schedule_config={"interval_minutes": 5}) == [
        ("schedule_config", "a once task takes no schedule_config; use pattern recurring")
    ]


def test_good_values_pass_and_helpers_follow_the_state_machine() -> None:
    task = Task(
        query="hi",
        agent_name="clock",
        pattern=TaskPattern.RECURRING,
        schedule_config=ScheduleConfig(daily_time="23:59", timezone="Asia/Kolkata"),
    )
    assert task.is_scheduled() and not task.is_running()
    task.start()
    assert task.is_running() and task.started_at is not None
    task.wait_for_input()
    assert task.is_waiting_input()
    task.start()
    task.complete()
    assert task.is_finished() and task.completed_at is not None
    with pytest.raises(InvalidTransition, match="cannot become cancelled: it is completed"):
        task.cancel()
    other = Task(query="hi", agent_name="echo")
    other.fail("agent unreachable")
    assert (other.status, other.error_message) == (TaskStatus.FAILED, "agent unreachable")


def test_new_ids_are_distinct_time_ordered_uuid7_hex() -> None:
    with time_machine.travel(datetime(2026, 5, 4, 3, 2, 1, 5000, tzinfo=UTC), tick=False):
        ids = [new_id() for _ in range(2000)]
    with time_machine.travel(datetime(2026, 5, 4, 3, 2, 1, 6000, tzinfo=UTC), tick=False):
        later = new_id()
    assert len(set(ids)) == len(ids)
    milliseconds = int(datetime(2026, 5, 4, 3, 2, 1, 5000, tzinfo=UTC).timestamp() * 1000)
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert (parsed.hex, parsed.version, parsed.variant) == (value, 7, uuid.RFC_4122), value
        assert parsed.int >> 80 == milliseconds, "the first 48 bits are the time in ms"
    assert later > max(ids), "an id made a millisecond later sorts after"
    # 74 random bits: no two ids of one millisecond share them.
    assert len({value[12:] for value in ids}) == len(ids)
