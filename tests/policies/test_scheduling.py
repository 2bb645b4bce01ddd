"""Overlap and catch-up policies through the engine, with clocks moved by time-machine."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from taskcell import Task, TaskPattern
from taskcell.domain.models import Run, RunStatus
from taskcell.domain.policies import (
    CANCELLED_BY_NEWER,
    SKIPPED_BUFFER_FULL,
    SKIPPED_MISSED,
    SKIPPED_OLD,
    SKIPPED_RUNNING,
)
from taskcell.engine.engine import Engine
from taskcell.engine.recurring import RunInProgress

from .conftest import EngineFactory, Gate

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TEN = timedelta(minutes=10)


def recurring(agent: str = "gate", minutes: int = 10, **policies: object) -> Task:
    return Task(
        query="tick",
        agent_name=agent,
        pattern=TaskPattern.RECURRING,
        schedule_config={"interval_minutes": minutes},
        **policies,  # type: ignore[arg-type]
    )


async def runs_of(engine: Engine, task_id: str) -> list[Run]:
    runs = (await engine.store.list_runs(task_id, limit=500)).items
    return sorted(runs, key=lambda r: (r.scheduled_for or START, r.created_at))


async def states(engine: Engine, task_id: str) -> list[tuple[datetime | None, RunStatus]]:
    return [(r.scheduled_for, r.status) for r in await runs_of(engine, task_id)]


async def first_run_held(engine: Engine, gate: Gate, **policies: object) -> Task:
    """A recurring task every 10 minutes whose first run (at START) holds at the gate."""
    task = await engine.submit(recurring(**policies))
    assert await engine.scheduler.fire_due() == 1
    await asyncio.wait_for(gate.entered.wait(), 10)
    return task


async def fire_at(engine: Engine, clock: time_machine.Coordinates, moment: datetime) -> int:
    clock.move_to(moment)
    return await engine.scheduler.fire_due()


async def drain(engine: Engine, gate: Gate) -> None:
    """Let every run end, starting the queued ones in turn."""
    gate.open.set()
    await engine.wait_idle()
    while await engine.scheduler.fire_due():
        await engine.wait_idle()


async def test_skip_records_occurrences_due_while_a_run_goes_on(
    engines: EngineFactory, gate: Gate
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        engine = await engines()
        task = await first_run_held(engine, gate, overlap="skip")
        assert await fire_at(engine, clock, START + TEN) == 0
        assert await fire_at(engine, clock, START + 2 * TEN) == 0
        await drain(engine, gate)
        runs = await runs_of(engine, task.task_id)
        assert [(r.scheduled_for, r.status) for r in runs] == [
            (START, RunStatus.COMPLETED),
            (START + TEN, RunStatus.SKIPPED),
            (START + 2 * TEN, RunStatus.SKIPPED),
        ]
        assert {r.error for r in runs[1:]} == {SKIPPED_RUNNING}
        gate.open.clear()
        assert await fire_at(engine, clock, START + 3 * TEN) == 1
        clock.move_to(START + 3 * TEN + timedelta(seconds=5))
        with pytest.raises(RunInProgress):  # run now, too, honours skip
            await engine.run_now(task.task_id)


async def test_buffer_one_keeps_one_waiting_and_skips_the_rest(
    engines: EngineFactory, gate: Gate
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        engine = await engines()
        task = await first_run_held(engine, gate, overlap="buffer_one")
        assert await fire_at(engine, clock, START + TEN) == 0
        assert await fire_at(engine, clock, START + 2 * TEN) == 0
        assert await states(engine, task.task_id) == [
            (START, RunStatus.RUNNING),
            (START + TEN, RunStatus.QUEUED),
            (START + 2 * TEN, RunStatus.SKIPPED),
        ]
        skipped = (await runs_of(engine, task.task_id))[2]
        assert skipped.error == SKIPPED_BUFFER_FULL
        await drain(engine, gate)
        assert await states(engine, task.task_id) == [
            (START, RunStatus.COMPLETED),
            (START + TEN, RunStatus.COMPLETED),
            (START + 2 * TEN, RunStatus.SKIPPED),
        ]
        assert gate.calls == 2


async def test_buffer_all_runs_every_occurrence_in_order_one_at_a_time(
    engines: EngineFactory, gate: Gate
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        engine = await engines()
        task = await first_run_held(engine, gate, overlap="buffer_all")
        for k in (1, 2, 3):
            assert await fire_at(engine, clock, START + k * TEN) == 0
        assert [s for _, s in await states(engine, task.task_id)] == [
            RunStatus.RUNNING,
            *[RunStatus.QUEUED] * 3,
        ]
        gate.open.set()
        await engine.wait_idle()
        order = []
        while await engine.scheduler.fire_due():
            running = await engine.store.runs_in_status([RunStatus.RUNNING], task_id=task.task_id)
            assert len(running) == 1  # never two at once
            order.append(running[0].scheduled_for)
            await engine.wait_idle()
        assert order == [START + k * TEN for k in (1, 2, 3)]
        assert {s for _, s in await states(engine, task.task_id)} == {RunStatus.COMPLETED}


async def test_cancel_other_cancels_the_run_in_progress_and_starts_the_new_one(
    engines: EngineFactory, gate: Gate
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        engine = await engines()
        task = await first_run_held(engine, gate, overlap="cancel_other")
        assert await fire_at(engine, clock, START + TEN) == 1
        # The replaced run's agent call is stopped before anything lets it go.
        await asyncio.wait_for(gate.stopped.wait(), 10)
        await drain(engine, gate)
        runs = await runs_of(engine, task.task_id)
        assert [(r.scheduled_for, r.status) for r in runs] == [
            (START, RunStatus.CANCELLED),
            (START + TEN, RunStatus.COMPLETED),
        ]
        assert runs[0].error == CANCELLED_BY_NEWER
        assert gate.cancelled == 1  # the replaced run's agent call was stopped
        current = await engine.require_task(task.task_id)
        assert current.status.value == "running"  # the schedule goes on


async def test_allow_all_lets_runs_overlap(engines: EngineFactory, gate: Gate) -> None:
    with time_machine.travel(START, tick=False) as clock:
        engine = await engines()
        task = await first_run_held(engine, gate, overlap="allow_all")
        assert await fire_at(engine, clock, START + TEN) == 1
        assert await fire_at(engine, clock, START + 2 * TEN) == 1
        running = await engine.store.runs_in_status([RunStatus.RUNNING], task_id=task.task_id)
        assert len(running) == 3
        assert engine.is_running_here(task.task_id)
        clock.move_to(START + 2 * TEN + timedelta(seconds=5))
        run = await engine.run_now(task.task_id)  # run now overlaps too
        assert run.status is RunStatus.RUNNING
        await drain(engine, gate)
        runs = await runs_of(engine, task.task_id)
        assert len(runs) == 4 and {r.status for r in runs} == {RunStatus.COMPLETED}
        assert gate.calls == 4


async def test_run_now_queues_behind_the_run_in_progress_when_buffered(
    engines: EngineFactory, gate: Gate
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        engine = await engines()
        task = await first_run_held(engine, gate, overlap="buffer_all")
        clock.move_to(START + timedelta(seconds=5))
        run = await engine.run_now(task.task_id)
        assert run.status is RunStatus.QUEUED
        await drain(engine, gate)
        assert gate.calls == 2


async def test_cancelling_a_task_closes_its_queued_occurrences(
    engines: EngineFactory, gate: Gate
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        engine = await engines()
        task = await first_run_held(engine, gate, overlap="buffer_all")
        await fire_at(engine, clock, START + TEN)
        await fire_at(engine, clock, START + 2 * TEN)
        await engine.cancel(task.task_id)
        await engine.wait_idle()
        assert [s for _, s in await states(engine, task.task_id)] == [RunStatus.CANCELLED] * 3
        assert await engine.scheduler.fire_due() == 0


async def test_paused_tasks_queued_occurrences_wait_for_the_resume(
    engines: EngineFactory, gate: Gate
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        engine = await engines()
        task = await first_run_held(engine, gate, overlap="buffer_all")
        await fire_at(engine, clock, START + TEN)
        await engine.pause(task.task_id)
        gate.open.set()
        await engine.wait_idle()
        assert await engine.scheduler.fire_due() == 0
        assert (await states(engine, task.task_id))[1] == (START + TEN, RunStatus.QUEUED)
        await engine.resume(task.task_id)
        assert await engine.scheduler.fire_due() == 1
        await engine.wait_idle()
        assert (await states(engine, task.task_id))[1] == (START + TEN, RunStatus.COMPLETED)


# -- catch-up after three hours down -------------------------------------------------


DOWN = timedelta(hours=3, seconds=20)
FIVE = timedelta(minutes=5)
MISSED = [START + k * FIVE for k in range(1, 37)]  # 12:05 .. 15:00: 36 missed occurrences


async def down_three_hours(engines: EngineFactory, **policies: object) -> tuple[Engine, Task]:
    """A 5-minute task that ran at START, then a server down for three hours."""
    engine = await engines()
    task = await engine.submit(recurring("quick", 5, **policies))
    assert await engine.scheduler.fire_due() == 1
    await engine.wait_idle()
    await engine.stop()
    return engine, task


async def test_after_three_hours_down_coalesce_gives_one_run(engines: EngineFactory) -> None:
    with time_machine.travel(START, tick=False) as clock:
        _, task = await down_three_hours(engines, catchup="coalesce")
        clock.move_to(START + DOWN)
        engine = await engines()
        assert await engine.scheduler.fire_due() == 1
        await engine.wait_idle()
        assert await engine.scheduler.fire_due() == 0
        assert await states(engine, task.task_id) == [
            (START, RunStatus.COMPLETED),
            (MISSED[-1], RunStatus.COMPLETED),  # the latest missed occurrence
        ]


async def test_after_three_hours_down_skip_gives_none(engines: EngineFactory) -> None:
    with time_machine.travel(START, tick=False) as clock:
        _, task = await down_three_hours(engines, catchup="skip")
        clock.move_to(START + DOWN + timedelta(minutes=1, seconds=30))  # 15:01:50: none on time
        engine = await engines()
        assert await engine.scheduler.fire_due() == 0
        runs = await runs_of(engine, task.task_id)
        assert [(r.scheduled_for, r.status) for r in runs] == [
            (START, RunStatus.COMPLETED),
            *[(at, RunStatus.SKIPPED) for at in MISSED],
        ]
        assert {r.error for r in runs[1:]} == {SKIPPED_MISSED}
        current = await engine.require_task(task.task_id)
        assert current.next_run_at == START + 37 * FIVE  # the schedule goes on from now


async def test_after_three_hours_down_all_runs_every_missed_occurrence_in_order(
    engines: EngineFactory,
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        _, task = await down_three_hours(engines, catchup="all", overlap="buffer_all")
        clock.move_to(START + DOWN)
        engine = await engines()
        order = []
        while await engine.scheduler.fire_due():
            running = await engine.store.runs_in_status([RunStatus.RUNNING], task_id=task.task_id)
            order += [r.scheduled_for for r in running]
            await engine.wait_idle()
        assert order == MISSED
        assert [s for _, s in await states(engine, task.task_id)] == [RunStatus.COMPLETED] * 37


async def test_all_with_a_window_skips_the_older_ones_with_the_reason(
    engines: EngineFactory,
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        _, task = await down_three_hours(
            engines, catchup="all", overlap="allow_all", catchup_window_seconds=1800
        )
        clock.move_to(START + DOWN)
        engine = await engines()
        assert await engine.scheduler.fire_due() == 6  # 14:35 .. 15:00, overlapping
        await engine.wait_idle()
        runs = await runs_of(engine, task.task_id)
        recent = [at for at in MISSED if START + DOWN - at <= timedelta(minutes=30)]
        assert [r.scheduled_for for r in runs if r.status is RunStatus.COMPLETED] == [
            START,
            *recent,
        ]
        old = [r for r in runs if r.status is RunStatus.SKIPPED]
        assert [r.scheduled_for for r in old] == [at for at in MISSED if at not in recent]
        assert {r.error for r in old} == {SKIPPED_OLD}


async def test_queued_occurrences_survive_a_crash_and_run_after_recovery(
    engines: EngineFactory, gate: Gate
) -> None:
    """A process dies with a run in progress and two occurrences queued behind it: the next
    process closes the orphan as interrupted and runs the queued ones, in order, once each."""
    with time_machine.travel(START, tick=False) as clock:
        engine = await engines()
        task = await first_run_held(engine, gate, overlap="buffer_all")
        await fire_at(engine, clock, START + TEN)
        await fire_at(engine, clock, START + 2 * TEN)
        # The crash: the rows stay as they are (the process's runs never settle).
        [held] = await engine.store.runs_in_status([RunStatus.RUNNING], task_id=task.task_id)
        await engine.store.update_run(held.run_id, {"owner": "dead-process"})
        # The old engine writes nothing more (its run's fence is gone, so what it would record
        # is refused) and stops: two engines on one file in one event loop could block each
        # other, one waiting for SQLite's lock in a call the other's commit needs the loop
        # for. A new one opens the same file.
        await engine.stop()
        assert await states(engine, task.task_id) == [
            (START, RunStatus.RUNNING),
            (START + TEN, RunStatus.QUEUED),
            (START + 2 * TEN, RunStatus.QUEUED),
        ]
        gate.open.set()
        fresh = await engines()  # start-up recovery: the orphan is closed as interrupted
        assert await fresh.scheduler.fire_due() == 1
        await fresh.wait_idle()
        assert await fresh.scheduler.fire_due() == 1
        await fresh.wait_idle()
        assert await fresh.scheduler.fire_due() == 0
        assert await states(fresh, task.task_id) == [
            (START, RunStatus.INTERRUPTED),
            (START + TEN, RunStatus.COMPLETED),
            (START + 2 * TEN, RunStatus.COMPLETED),
        ]
