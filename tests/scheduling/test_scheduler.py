"""The scheduler with clocks moved by time-machine: grid, DST, downtime, controls."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from taskcell import Task, TaskPattern, TaskStatus
from taskcell.domain.models import RunStatus
from taskcell.engine.controllers import controller_item_id
from taskcell.engine.engine import Engine
from taskcell.engine.scheduler import SKIPPED_REASON

from .conftest import EngineFactory

START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def recurring(agent: str = "quick", **schedule: object) -> Task:
    return Task(
        query="what time is it",
        agent_name=agent,
        pattern=TaskPattern.RECURRING,
        schedule_config=schedule,
    )


async def fired_at(engine: Engine, task_id: str) -> list[datetime]:
    runs = (await engine.store.list_runs(task_id, limit=500)).items
    return sorted(
        r.scheduled_for for r in runs if r.scheduled_for and r.status is not RunStatus.SKIPPED
    )


async def controller(engine: Engine, task: Task) -> dict[str, object]:
    items = await engine.store.task_items(task.task_id, component_type="scheduled_task_controller")
    assert [i.item_id for i in items] == [controller_item_id(task)]
    content = json.loads(str((items[0].payload or {})["content"]))
    assert isinstance(content, dict)
    return content


async def test_interval_runs_stay_on_the_grid_when_runs_take_40_percent(
    engines: EngineFactory,
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        engine = await engines()
        task = await engine.submit(recurring(interval_minutes=10))
        interval = timedelta(minutes=10)
        for k in range(100):
            current = await engine.service.require_task(task.task_id)
            assert current.next_run_at == START + k * interval
            clock.move_to(current.next_run_at)
            assert await engine.scheduler.fire_due() == 1
            await engine.wait_idle()
            clock.move_to(current.next_run_at + 0.4 * interval)  # the run "took" 40%
        assert await fired_at(engine, task.task_id) == [START + k * interval for k in range(100)]


async def test_three_hours_of_downtime_is_one_coalesced_run_then_back_on_the_grid(
    engines: EngineFactory,
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        engine = await engines()
        task = await engine.submit(recurring(interval_minutes=1))
        await engine.scheduler.fire_due()
        await engine.wait_idle()
        await engine.stop()  # the server goes down for three hours
        clock.move_to(START + timedelta(hours=3, seconds=20))
        engine = await engines()
        assert await engine.scheduler.fire_due() == 1
        await engine.wait_idle()
        assert await engine.scheduler.fire_due() == 0  # never a burst
        runs = (await engine.store.list_runs(task.task_id)).items
        assert len(runs) == 2
        current = await engine.service.require_task(task.task_id)
        assert current.next_run_at == START + timedelta(hours=3, minutes=1)  # on the grid


async def test_a_restart_before_the_next_occurrence_adds_no_run(engines: EngineFactory) -> None:
    with time_machine.travel(START, tick=False) as clock:
        engine = await engines()
        task = await engine.submit(recurring(interval_minutes=60))
        await engine.scheduler.fire_due()
        await engine.wait_idle()
        await engine.stop()
        clock.move_to(START + timedelta(minutes=30))
        engine = await engines()
        assert await engine.scheduler.fire_due() == 0
        clock.move_to(START + timedelta(minutes=60))
        assert await engine.scheduler.fire_due() == 1
        await engine.wait_idle()
        assert await fired_at(engine, task.task_id) == [START, START + timedelta(minutes=60)]


async def test_a_cron_task_fires_through_the_scheduler_across_a_fall_back(
    engines: EngineFactory,
) -> None:
    # Europe/Berlin, 25 October 2026: 03:00 CEST becomes 02:00 CET at 01:00Z. A wall-clock
    # "30 2 * * *" fires once, at 02:30 CEST (00:30Z); "*/30 * * * *" every real half hour.
    begin = datetime(2026, 10, 24, 23, 50, tzinfo=UTC)
    with time_machine.travel(begin, tick=False) as clock:
        engine = await engines()
        wall = await engine.submit(
            recurring(cron="30 2 * * *", timezone="Europe/Berlin"), run_immediately=False
        )
        elapsed = await engine.submit(
            recurring(cron="*/30 * * * *", timezone="Europe/Berlin"), run_immediately=False
        )
        for _ in range(200):
            upcoming = [
                (await engine.service.require_task(t.task_id)).next_run_at for t in (wall, elapsed)
            ]
            due = min(u for u in upcoming if u is not None)
            if due > datetime(2026, 10, 26, 2, 0, tzinfo=UTC):
                break
            clock.move_to(due)
            assert await engine.scheduler.fire_due() >= 1
            await engine.wait_idle()
        wall_fires = await fired_at(engine, wall.task_id)
        assert wall_fires == [
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
            datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
        ], wall_fires
        half_hours = await fired_at(engine, elapsed.task_id)
        assert half_hours[:7] == [
            datetime(2026, 10, 25, 0, 0, tzinfo=UTC) + k * timedelta(minutes=30) for k in range(7)
        ], half_hours[:7]
        assert len(half_hours) == len(set(half_hours)) == 53, len(half_hours)  # 26 h + 1
        assert "at 02:30 every day (Europe/Berlin)" in json.dumps(await controller(engine, wall))


DST_CASES = {
    # A daily 02:30 task in New York across 2026-03-08 (02:30 does not exist: 03:00 EDT).
    "America/New_York spring": (
        datetime(2026, 3, 3, 12, tzinfo=UTC),
        [
            "2026-03-04T07:30",
            "2026-03-05T07:30",
            "2026-03-06T07:30",
            "2026-03-07T07:30",
            "2026-03-08T07:00",
            "2026-03-09T06:30",
            "2026-03-10T06:30",
            "2026-03-11T06:30",
            "2026-03-12T06:30",
            "2026-03-13T06:30",
        ],
    ),
    # ... and across 2026-11-01 (02:30 happens once, after the 01:00-02:00 repeat).
    "America/New_York autumn": (
        datetime(2026, 10, 27, 12, tzinfo=UTC),
        [
            "2026-10-28T06:30",
            "2026-10-29T06:30",
            "2026-10-30T06:30",
            "2026-10-31T06:30",
            "2026-11-01T07:30",
            "2026-11-02T07:30",
            "2026-11-03T07:30",
            "2026-11-04T07:30",
            "2026-11-05T07:30",
            "2026-11-06T07:30",
        ],
    ),
    # A daily 02:30 task in Berlin across 2026-03-29 (gap: 03:00 CEST = 01:00 UTC).
    "Europe/Berlin spring": (
        datetime(2026, 3, 24, 12, tzinfo=UTC),
        [
            "2026-03-25T01:30",
            "2026-03-26T01:30",
            "2026-03-27T01:30",
            "2026-03-28T01:30",
            "2026-03-29T01:00",
            "2026-03-30T00:30",
            "2026-03-31T00:30",
            "2026-04-01T00:30",
            "2026-04-02T00:30",
            "2026-04-03T00:30",
        ],
    ),
    # ... and across 2026-10-25 (02:30 happens twice: fires once, at the first, CEST).
    "Europe/Berlin autumn": (
        datetime(2026, 10, 20, 12, tzinfo=UTC),
        [
            "2026-10-21T00:30",
            "2026-10-22T00:30",
            "2026-10-23T00:30",
            "2026-10-24T00:30",
            "2026-10-25T00:30",
            "2026-10-26T01:30",
            "2026-10-27T01:30",
            "2026-10-28T01:30",
            "2026-10-29T01:30",
            "2026-10-30T01:30",
        ],
    ),
}


@pytest.mark.parametrize("name", list(DST_CASES))
async def test_daily_tasks_fire_at_the_exact_utc_times_across_dst(
    engines: EngineFactory, name: str
) -> None:
    start, expected = DST_CASES[name]
    zone = name.split()[0]
    with time_machine.travel(start, tick=False) as clock:
        engine = await engines()
        task = recurring(daily_time="02:30", timezone=zone)
        await engine.submit(task, run_immediately=False)
        for _ in expected:
            current = await engine.service.require_task(task.task_id)
            assert current.next_run_at is not None
            clock.move_to(current.next_run_at + timedelta(seconds=1))
            assert await engine.scheduler.fire_due() == 1
            await engine.wait_idle()
        want = [datetime.fromisoformat(t).replace(tzinfo=UTC) for t in expected]
        assert await fired_at(engine, task.task_id) == want


async def test_pause_resume_run_now_and_cancel_are_recorded(engines: EngineFactory) -> None:
    with time_machine.travel(START, tick=False) as clock:
        engine = await engines()
        task = await engine.submit(recurring(interval_minutes=5), run_immediately=False)
        assert (await controller(engine, task))["schedule"] == "every 5 minutes"

        paused = await engine.pause(task.task_id)
        assert paused.paused and paused.status is TaskStatus.RUNNING
        assert (await controller(engine, task))["paused"] is True
        clock.move_to(START + timedelta(minutes=12))
        assert await engine.scheduler.fire_due() == 0  # paused: nothing fires

        manual = await engine.run_now(task.task_id)  # allowed while paused
        await engine.wait_idle()
        assert manual.scheduled_for == START + timedelta(minutes=12)

        resumed = await engine.resume(task.task_id)
        assert not resumed.paused
        assert resumed.next_run_at == START + timedelta(minutes=15)  # from now, on the grid
        shown = await controller(engine, task)
        assert shown["paused"] is False
        assert shown["next_run_at"] == (START + timedelta(minutes=15)).isoformat()

        clock.move_to(START + timedelta(minutes=15))
        assert await engine.scheduler.fire_due() == 1
        await engine.wait_idle()
        result = await engine.cancel(task.task_id)
        assert result.updated_component_ids == [controller_item_id(task)]
        shown = await controller(engine, task)
        assert shown["task_status"] == "cancelled"
        clock.move_to(START + timedelta(minutes=30))
        assert await engine.scheduler.fire_due() == 0
        runs = sorted(
            (await engine.store.list_runs(task.task_id)).items, key=lambda r: r.created_at
        )
        assert [(r.scheduled_for, r.status) for r in runs] == [
            (START + timedelta(minutes=12), RunStatus.COMPLETED),
            (START + timedelta(minutes=15), RunStatus.COMPLETED),
        ]
        results = await engine.store.task_items(
            task.task_id, component_type="scheduled_task_result"
        )
        assert len(results) == 2
        assert json.loads(str((results[0].payload or {})["content"]))["result"] == "tick for UTC"


async def test_pausing_and_resuming_before_the_next_occurrence_keeps_it(
    engines: EngineFactory,
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        engine = await engines()
        task = await engine.submit(recurring(interval_minutes=5), run_immediately=False)
        clock.move_to(START + timedelta(minutes=1))
        await engine.pause(task.task_id)
        resumed = await engine.resume(task.task_id)
        assert resumed.next_run_at == START + timedelta(minutes=5)
        await engine.cancel(task.task_id)
        cancelled = await engine.service.require_task(task.task_id)
        assert cancelled.next_run_at is None


async def test_an_occurrence_due_while_the_previous_run_runs_is_skipped(
    engines: EngineFactory,
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        engine = await engines()
        import asyncio

        release = asyncio.Event()

        async def stuck(request: object) -> str:
            await release.wait()
            return "finally"

        engine.registry.register_local("stuck", stuck)
        task = await engine.submit(recurring("stuck", interval_minutes=1))
        assert await engine.scheduler.fire_due() == 1
        clock.move_to(START + timedelta(minutes=1))
        assert await engine.scheduler.fire_due() == 0
        release.set()
        await engine.wait_idle()
        runs = sorted(
            (await engine.store.list_runs(task.task_id)).items,
            key=lambda r: r.scheduled_for or START,
        )
        assert [(r.status, r.error) for r in runs] == [
            (RunStatus.COMPLETED, None),
            (RunStatus.SKIPPED, SKIPPED_REASON),
        ]


async def test_three_failed_runs_in_a_row_pause_the_schedule(engines: EngineFactory) -> None:
    with time_machine.travel(START, tick=False) as clock:
        engine = await engines()
        task = await engine.submit(recurring("broken", interval_minutes=1))
        for minute in range(3):
            clock.move_to(START + timedelta(minutes=minute))
            assert await engine.scheduler.fire_due() == 1
            await engine.wait_idle()
            current = await engine.service.require_task(task.task_id)
            assert current.status is TaskStatus.RUNNING  # a failed run is not a failed task
        assert current.paused
        assert current.error_message is not None
        assert current.error_message.startswith("paused after 3 failed runs in a row")
        shown = await controller(engine, task)
        assert "the tool is down" in str(shown["last_error"])
        clock.move_to(START + timedelta(minutes=5))
        assert await engine.scheduler.fire_due() == 0


async def test_a_transient_failure_is_retried_within_the_occurrence(
    engines: EngineFactory,
) -> None:
    from taskcell.agents.base import TransientAgentError

    calls = {"n": 0}

    async def shaky(request: object) -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise TransientAgentError("agent unreachable for a moment")
        return "made it"

    with time_machine.travel(START, tick=False):
        engine = await engines()
        engine.registry.register_local("shaky", shaky)
        task = await engine.submit(recurring("shaky", interval_minutes=5))
        assert await engine.scheduler.fire_due() == 1
        await engine.wait_idle()
        runs = (await engine.store.list_runs(task.task_id)).items
        assert [(r.attempt, r.status, r.result) for r in runs] == [
            (3, RunStatus.COMPLETED, "made it")
        ]
