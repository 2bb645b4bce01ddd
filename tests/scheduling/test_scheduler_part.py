"""The scheduler as a part of its own, on real stores (in memory and an SQLite file): it knows
nothing of the engine, only an OccurrenceStarter and LiveRuns; and the coordinator's event
notices fit PostgreSQL's NOTIFY limit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from taskcell.abc import Store
from taskcell.domain.models import Run, RunStatus, Task, TaskPattern, utcnow
from taskcell.domain.state_machine import TaskStatus
from taskcell.engine import scheduler as scheduler_module
from taskcell.engine.cluster import NOTIFY_CHUNK, event_notices
from taskcell.engine.controllers import Controllers
from taskcell.engine.eventlog import EventLog
from taskcell.engine.recurring import occurrence_run
from taskcell.engine.scheduler import SKIPPED_REASON, Scheduler
from taskcell.engine.supervisor import Supervisor
from taskcell.service import TaskService
from taskcell.stores.memory import InMemoryTaskStore
from taskcell.stores.sqlite import SQLiteTaskStore


@dataclass
class Starter:
    """Records the occurrences it is asked to start; ``busy`` tasks run here already."""

    started: list[tuple[str, Run]] = field(default_factory=list)
    busy: set[str] = field(default_factory=set)

    def new_run(self, task: Task, scheduled_for: datetime) -> Run:
        return occurrence_run(task, scheduled_for, "here", timedelta(seconds=30))

    def start(self, task: Task, run: Run) -> None:
        self.started.append((task.task_id, run))

    def is_running_here(self, task_id: str) -> bool:
        return task_id in self.busy


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    made: Store = (
        InMemoryTaskStore() if request.param == "memory" else SQLiteTaskStore(tmp_path / "s.db")
    )
    await made.open()
    try:
        yield made
    finally:
        await made.close()


async def due_task(store: Store) -> Task:
    task = Task(
        query="q",
        agent_name="agent",
        pattern=TaskPattern.RECURRING,
        schedule_config={"interval_minutes": 5},
    )
    task.status, task.next_run_at = TaskStatus.RUNNING, utcnow() - timedelta(seconds=1)
    await TaskService(store).add_task(task)
    return task


def scheduler(store: Store, starter: Starter) -> tuple[Scheduler, EventLog]:
    log = EventLog(store)
    controllers = Controllers(store, log, default_zone="UTC")
    made = Scheduler(
        store, Supervisor(), log, controllers, starter, starter, owner="here", default_zone="UTC"
    )
    return made, log


async def test_a_due_occurrence_is_claimed_once_and_handed_to_the_starter(store: Store) -> None:
    task = await due_task(store)
    starter = Starter()
    part, _ = scheduler(store, starter)
    assert await part.fire_due() == 1
    assert [t for t, _ in starter.started] == [task.task_id]
    run = starter.started[0][1]
    stored = await store.load_run(run.run_id)
    assert stored is not None and stored.owner == "here" and stored.status is RunStatus.RUNNING
    assert await part.fire_due() == 0, "an occurrence was claimed twice"
    armed = await store.load(task.task_id)
    assert armed is not None and armed.next_run_at is not None and armed.next_run_at > utcnow()


async def test_an_occurrence_due_while_a_run_goes_on_here_is_skipped(store: Store) -> None:
    task = await due_task(store)
    starter = Starter(busy={task.task_id})
    part, _ = scheduler(store, starter)
    assert await part.fire_due() == 0
    assert starter.started == [], "a busy task's occurrence was started"
    runs = (await store.list_runs(task.task_id, limit=5)).items
    assert [(r.status, r.error) for r in runs] == [(RunStatus.SKIPPED, SKIPPED_REASON)]


def test_event_notices_stay_within_the_notify_limit() -> None:
    ids = {f"task-{n:05d}-{'x' * 30}" for n in range(1000)}
    notices = event_notices("me", ids)
    assert len(notices) > 1, "a long list was sent as one notice"
    assert all(len(n.encode()) <= NOTIFY_CHUNK + 100 for n in notices), [len(n) for n in notices]
    told = {i for n in notices for i in n.split("|", 2)[2].split(",")}
    assert told == ids, "a task id was lost or changed when split"
    assert all(n.startswith("me|events|") for n in notices)


async def test_the_scheduler_reads_ahead_before_the_occurrences_fall_due(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shortly before the earliest due time, the loop reads ahead what the claim will read;
    the claim follows. (A read-ahead shortened to 0.2 s here, the task due 0.6 s ahead.)"""
    monkeypatch.setattr(scheduler_module, "READ_AHEAD_SECONDS", 0.2)
    task = await due_task(store)
    await store.update(task.task_id, {"next_run_at": utcnow() + timedelta(seconds=0.6)})
    calls: list[tuple[str, int]] = []
    claimed = asyncio.Event()
    read_ahead, start_due = store.read_ahead, store.start_due

    async def reading_ahead(due_before: datetime, *, limit: int = 500) -> int:
        found = await read_ahead(due_before, limit=limit)
        calls.append(("read_ahead", found))
        return found

    async def starting(*args: Any, **kwargs: Any) -> list[tuple[Task, Run | None]]:
        answered = await start_due(*args, **kwargs)
        calls.append(("start_due", len(answered)))
        if answered:
            claimed.set()
        return answered

    monkeypatch.setattr(store, "read_ahead", reading_ahead)
    monkeypatch.setattr(store, "start_due", starting)
    part, _ = scheduler(store, Starter())
    loop = asyncio.create_task(part.run())
    try:
        async with asyncio.timeout(30):
            await claimed.wait()
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    first_claim = calls.index(("start_due", 1))
    assert ("read_ahead", 1) in calls[:first_claim], calls


async def test_a_due_time_past_the_fallback_poll_is_read_ahead_too(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sleep is capped by the fallback poll: a due time beyond it is still read ahead
    before it falls due (0.3 s ahead here, the poll 1 s, the task due 3.2 s ahead: a read
    ahead at the end of each poll's sleep would come at 0.7 s and 2.4 s, and miss it)."""
    monkeypatch.setattr(scheduler_module, "READ_AHEAD_SECONDS", 0.3)
    task = await due_task(store)
    await store.update(task.task_id, {"next_run_at": utcnow() + timedelta(seconds=3.2)})
    found: list[int] = []
    claimed = asyncio.Event()
    read_ahead, start_due = store.read_ahead, store.start_due

    async def reading_ahead(due_before: datetime, *, limit: int = 500) -> int:
        found.append(await read_ahead(due_before, limit=limit))
        return found[-1]

    async def starting(*args: Any, **kwargs: Any) -> list[tuple[Task, Run | None]]:
        answered = await start_due(*args, **kwargs)
        if answered:
            claimed.set()
            assert 1 in found, "claimed before it was read ahead"
        return answered

    monkeypatch.setattr(store, "read_ahead", reading_ahead)
    monkeypatch.setattr(store, "start_due", starting)
    part, _ = scheduler(store, Starter())
    part.fallback_poll_seconds = 1.0
    loop = asyncio.create_task(part.run())
    try:
        async with asyncio.timeout(30):
            await claimed.wait()
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    assert 1 in found
