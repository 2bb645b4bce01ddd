"""Run time-outs with the clock moved by time-machine: a run past ``run_timeout_seconds`` is
stopped (its remote A2A task cancelled), recorded failed "timed out after N s"; a once task's
attempt is retried while attempts remain; a recurring task's time-outs count towards its
pause; the deadline is stored with the run and kept by an attempt that resumes it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from controls.conftest import EngineFactory, Hang, wait_for_event
from taskcell.agents.demo import slow
from taskcell.domain.events import Event, EventType
from taskcell.domain.models import RunStatus, ScheduleConfig, Task, TaskPattern
from taskcell.domain.state_machine import TaskStatus
from taskcell.engine.engine import Engine
from taskcell.engine.recurring import FAILURES_BEFORE_PAUSE

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def wait_for(engine: Engine, task_id: str, found: Callable[[Event], bool]) -> Event:
    """The first event of the task's log (replayed, then live) that ``found`` accepts."""

    async def read() -> Event:
        async for event in engine.subscribe(task_id):
            if found(event):
                return event
        raise AssertionError("the log ended first")

    return await asyncio.wait_for(read(), 20)


def says(text: str) -> Callable[[Event], bool]:
    return lambda event: text in str((event.payload or {}).get("content"))


async def test_a_hung_once_task_is_retried_then_fails_timed_out(
    engines: EngineFactory, hang: Hang
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        engine = await engines()
        task = await engine.submit(
            Task(query="hang", agent_name="hang", run_timeout_seconds=60, max_attempts=2)
        )
        for _ in (1, 2):
            await hang.next_call()
            clock.shift(59)
            assert engine.deadlines.fire_due() == 0  # not yet
            clock.shift(2)
            assert engine.deadlines.fire_due() == 1
        events = await wait_for_event(engine, task.task_id, EventType.DONE)
        await engine.wait_idle()
    current = await engine.require_task(task.task_id)
    assert current.status is TaskStatus.FAILED
    assert current.error_message == "timed out after 60 s (gave up after 2 attempts)"
    runs = (await engine.list_runs(task.task_id, limit=10)).items
    assert [(r.attempt, r.status, r.error) for r in runs] == [
        (2, RunStatus.FAILED, "timed out after 60 s"),
        (1, RunStatus.FAILED, "timed out after 60 s"),
    ]
    for run in runs:
        assert run.started_at is not None
        assert run.deadline_at == run.started_at + timedelta(seconds=60)
    assert hang.calls == 2 and hang.cancelled == 2  # the agent's work was stopped each time
    kinds = [e.event for e in events]
    assert kinds[-2:] == [EventType.TASK_FAILED, EventType.DONE]
    assert any(
        "Attempt 1 of 2 failed: timed out after 60 s" in str((e.payload or {}).get("content"))
        for e in events
    )


async def test_a_remote_a2a_task_past_its_time_out_is_cancelled_at_the_agent(
    engines: EngineFactory,
) -> None:
    with time_machine.travel(START, tick=True) as clock:
        engine = await engines()
        task = await engine.submit(
            Task(
                query="stream for 600 seconds",
                agent_name="slow",
                run_timeout_seconds=30,
                max_attempts=1,
            )
        )
        await wait_for_event(engine, task.task_id, EventType.TASK_STARTED)
        clock.shift(31)
        assert engine.deadlines.fire_due() == 1
        await wait_for_event(engine, task.task_id, EventType.DONE)
        await engine.wait_idle()
    current = await engine.require_task(task.task_id)
    assert current.status is TaskStatus.FAILED, current
    assert current.error_message == "timed out after 30 s (gave up after 1 attempt)"
    assert current.remote_task_ids, current
    assert current.remote_task_ids[-1] in slow.CANCELLED  # the cancel reached the agent
    (run,) = (await engine.list_runs(task.task_id, limit=10)).items
    assert (run.status, run.error) == (RunStatus.FAILED, "timed out after 30 s")


async def test_recurring_time_outs_fail_runs_and_pause_after_three(
    engines: EngineFactory, hang: Hang
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        engine = await engines()
        task = await engine.submit(
            Task(
                query="hang",
                agent_name="hang",
                pattern=TaskPattern.RECURRING,
                schedule_config=ScheduleConfig(interval_minutes=10),
                run_timeout_seconds=120,
            )
        )
        for k in range(FAILURES_BEFORE_PAUSE):
            clock.move_to(START + timedelta(minutes=10 * k))
            assert await engine.scheduler.fire_due() == 1
            await hang.next_call()
            clock.shift(121)
            assert engine.deadlines.fire_due() == 1
            await engine.wait_idle()
    current = await engine.require_task(task.task_id)
    assert current.status is TaskStatus.RUNNING and current.paused
    assert current.error_message == (
        f"paused after {FAILURES_BEFORE_PAUSE} failed runs in a row; "
        "last error: timed out after 120 s"
    )
    runs = (await engine.list_runs(task.task_id, limit=10)).items
    assert [(r.status, r.error) for r in runs] == [
        (RunStatus.FAILED, "timed out after 120 s")
    ] * FAILURES_BEFORE_PAUSE
    assert hang.cancelled == FAILURES_BEFORE_PAUSE


async def test_a_recurring_run_of_a_remote_agent_times_out_and_is_cancelled_there(
    engines: EngineFactory,
) -> None:
    with time_machine.travel(START, tick=True) as clock:
        engine = await engines()
        task = await engine.submit(
            Task(
                query="stream for 600 seconds",
                agent_name="slow",
                pattern=TaskPattern.RECURRING,
                schedule_config=ScheduleConfig(interval_minutes=60),
                run_timeout_seconds=45,
            )
        )
        assert await engine.scheduler.fire_due() == 1
        await wait_for_event(engine, task.task_id, EventType.TASK_STARTED)
        clock.shift(46)
        assert engine.deadlines.fire_due() == 1
        await engine.wait_idle()
    (run,) = (await engine.list_runs(task.task_id, limit=10)).items
    assert (run.status, run.error) == (RunStatus.FAILED, "timed out after 45 s")
    current = await engine.require_task(task.task_id)
    assert current.remote_task_ids[-1] in slow.CANCELLED
    assert current.status is TaskStatus.RUNNING and not current.paused  # one failure only
    items = await engine.list_items(task.conversation_id, user_id=None, limit=50, cursor=None)
    results = [i.payload for i in items.items if i.item_id == f"{run.run_id}:result"]
    assert results and "Run failed: timed out after 45 s" in str(results[0])


async def test_a_run_resumed_after_a_restart_keeps_its_deadline(engines: EngineFactory) -> None:
    with time_machine.travel(START, tick=True) as clock:
        engine = await engines()
        task = await engine.submit(
            Task(
                query="stream for 600 seconds",
                agent_name="slow",
                run_timeout_seconds=60,
                max_attempts=3,
            )
        )
        await wait_for_event(engine, task.task_id, EventType.TASK_STARTED)
        await engine.stop()  # the run is interrupted; its remote task is left to resume
        (first,) = (await engine.list_runs(task.task_id, limit=10)).items
        assert first.status is RunStatus.INTERRUPTED and first.deadline_at is not None
        clock.shift(120)  # down for two minutes: past the run's deadline
        engine = await engines()  # recovery starts attempt 2, which resumes the remote task
        timed_out = await wait_for(engine, task.task_id, says("Attempt 2 of 3 failed: timed"))
        await wait_for(
            engine,
            task.task_id,
            lambda e: e.event is EventType.TASK_STARTED and e.seq > timed_out.seq,
        )
        await engine.cancel(task.task_id)
        await engine.wait_idle()
    runs = (await engine.list_runs(task.task_id, limit=10)).items
    third, second = runs[0], runs[1]
    assert (second.attempt, second.status, second.error) == (
        2,
        RunStatus.FAILED,
        "timed out after 60 s",
    )
    assert second.deadline_at == first.deadline_at  # kept, not restarted
    assert third.started_at is not None  # attempt 3 starts afresh, with a deadline of its own
    assert third.deadline_at == third.started_at + timedelta(seconds=60)
    resumed = (await engine.require_task(task.task_id)).remote_task_ids
    assert resumed[0] in slow.CANCELLED  # the timed-out remote task was cancelled, not resumed


async def test_a_users_cancel_of_a_bounded_run_stays_a_cancel(
    engines: EngineFactory, hang: Hang
) -> None:
    engine = await engines()
    task = await engine.submit(Task(query="hang", agent_name="hang", run_timeout_seconds=3600))
    await hang.next_call()
    assert len(engine.deadlines) == 1
    await engine.cancel(task.task_id)
    await engine.wait_idle()
    (run,) = (await engine.list_runs(task.task_id, limit=10)).items
    assert run.status is RunStatus.CANCELLED
    assert (await engine.require_task(task.task_id)).status is TaskStatus.CANCELLED
    assert len(engine.deadlines) == 0 and engine.deadlines.fired == 0


@pytest.mark.parametrize("seconds", [None, 5])
async def test_only_a_task_with_a_time_out_gives_its_runs_a_deadline(
    engines: EngineFactory, seconds: int | None
) -> None:
    engine = await engines()
    task = await engine.submit(Task(query="hi", agent_name="echo", run_timeout_seconds=seconds))
    await wait_for_event(engine, task.task_id, EventType.DONE)
    await engine.wait_idle()
    (run,) = (await engine.list_runs(task.task_id, limit=10)).items
    assert run.status is RunStatus.COMPLETED
    if seconds is None:
        assert run.deadline_at is None
    else:
        assert run.started_at is not None
        assert run.deadline_at == run.started_at + timedelta(seconds=seconds)


async def test_waiting_for_a_reply_does_not_count_and_the_reply_gets_a_new_deadline(
    engines: EngineFactory,
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        engine = await engines()
        task = await engine.submit(
            Task(query="report", agent_name="asks", run_timeout_seconds=60, max_attempts=1)
        )
        await wait_for_event(engine, task.task_id, EventType.PLAN_REQUIRE_USER_INPUT)
        await engine.wait_idle()
        clock.shift(3600)  # an hour to answer: the wait is not the run's work
        assert engine.deadlines.fire_due() == 0
        await engine.provide_input(task.task_id, "sales")
        await wait_for(engine, task.task_id, says("working on sales"))
        (run,) = (await engine.list_runs(task.task_id, limit=10)).items
        assert run.deadline_at == START + timedelta(seconds=3660)  # from the reply
        clock.shift(61)
        assert engine.deadlines.fire_due() == 1
        await wait_for_event(engine, task.task_id, EventType.DONE, seconds=20)
        await engine.wait_idle()
    current = await engine.require_task(task.task_id)
    assert current.status is TaskStatus.FAILED and current.error_message == "timed out after 60 s"
    (run,) = (await engine.list_runs(task.task_id, limit=10)).items
    assert (run.status, run.error) == (RunStatus.FAILED, "timed out after 60 s")
