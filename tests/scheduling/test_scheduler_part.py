"""The scheduler as a part of its own, on real stores (in memory and an SQLite file): it knows
nothing of the engine, only an OccurrenceStarter and LiveRuns; and the coordinator's event
notices fit PostgreSQL's NOTIFY limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from taskcell.abc import Store
from taskcell.domain.models import Run, RunStatus, Task, TaskPattern, utcnow
from taskcell.domain.state_machine import TaskStatus
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
