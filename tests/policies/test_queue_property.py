"""A hypothesis state machine over the stores' overlap bookkeeping (memory and SQLite): random
claims (with catch-up batches), run ends, queued starts and added occurrences never give an
occurrence two runs, never two runs in progress under a buffer policy, and start queued
occurrences in order."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from taskcell.abc import TaskStore
from taskcell.domain.models import Run, RunStatus, ScheduleConfig, Task, TaskPattern, utcnow
from taskcell.domain.state_machine import TaskStatus
from taskcell.stores.memory import InMemoryTaskStore
from taskcell.stores.sqlite import SQLiteTaskStore

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
LEASE = timedelta(hours=1)


class Queues(RuleBasedStateMachine):
    """One recurring task per overlap policy; time moves a minute per claim."""

    kind = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = tempfile.TemporaryDirectory()
        self.store: TaskStore = (
            InMemoryTaskStore()
            if self.kind == "memory"
            else SQLiteTaskStore(Path(self.folder.name) / "q.db")
        )
        self.run(self.store.open())
        self.tasks: dict[str, Task] = {}
        self.next_due: dict[str, datetime] = {}
        self.started: dict[str, list[datetime]] = {}  # queued runs started, in start order

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.store.close())
        self.loop.close()
        self.folder.cleanup()

    @initialize()
    def tasks_of_every_policy(self) -> None:
        for policy in ("skip", "buffer_one", "buffer_all", "cancel_other", "allow_all"):
            task = Task(
                task_id=f"t-{policy}",
                query="q",
                agent_name="echo",
                pattern=TaskPattern.RECURRING,
                schedule_config=ScheduleConfig(interval_minutes=1),
                status=TaskStatus.RUNNING,
                next_run_at=T0,
                overlap=policy,
            )
            self.run(self.store.save(task))  # type: ignore[attr-defined]
            self.tasks[task.task_id] = task
            self.started[task.task_id] = []

    def occurrence(self, task_id: str, at: datetime) -> Run:
        now = utcnow()
        return Run(
            task_id=task_id,
            scheduled_for=at,
            owner="p",
            started_at=now,
            created_at=now,
            lease_expires_at=now + LEASE,
        )

    @rule(batch=st.integers(1, 3))
    def claim(self, batch: int) -> None:
        """Every task comes due; the claim brings ``batch`` occurrences (a catch-up)."""
        for task_id in self.tasks:
            self.run(self.store.update(task_id, {"next_run_at": T0}))

        def make(task: Task, due: datetime) -> list[Run]:
            base = self.next_due.get(task.task_id, T0)
            return [self.occurrence(task.task_id, base + k * MINUTE) for k in range(batch)]

        def upcoming(task: Task) -> datetime:
            return T0

        self.run(self.store.start_due(T0, upcoming, make, skipped_reason="skip", limit=50))
        for task_id in self.tasks:
            self.next_due[task_id] = self.next_due.get(task_id, T0) + batch * MINUTE

    @rule(data=st.data())
    def a_run_ends(self, data: st.DataObject) -> None:
        running = self.run(self.store.runs_in_status([RunStatus.RUNNING]))
        if running:
            run = data.draw(st.sampled_from(running))
            self.run(self.store.update_run(run.run_id, {"status": RunStatus.COMPLETED}))

    @rule()
    def start_queued(self) -> None:
        for task, run in self.run(self.store.start_queued("q", LEASE)):
            waiting = self.run(self.store.runs_in_status([RunStatus.QUEUED], task_id=task.task_id))
            assert all(run.scheduled_for < w.scheduled_for for w in waiting)  # type: ignore[operator]
            self.started[task.task_id].append(run.scheduled_for)  # type: ignore[arg-type]

    @rule(offset=st.integers(-3, 3))
    def add_occurrence(self, offset: int) -> None:
        """A run now or a backfill: maybe an occurrence that has a run already."""
        for task_id in self.tasks:
            at = self.next_due.get(task_id, T0) + offset * MINUTE
            self.run(self.store.add_occurrences(task_id, [self.occurrence(task_id, at)]))

    @invariant()
    def each_occurrence_once_and_buffers_one_at_a_time(self) -> None:
        if not self.tasks:
            return
        for task_id, task in self.tasks.items():
            runs = self.run(self.store.list_runs(task_id, limit=1000)).items
            slots = [r.scheduled_for for r in runs]
            assert len(slots) == len(set(slots)), runs
            running = [r for r in runs if r.status is RunStatus.RUNNING]
            queued = [r for r in runs if r.status is RunStatus.QUEUED]
            if task.overlap.value in ("skip", "buffer_one", "buffer_all", "cancel_other"):
                assert len(running) <= 1, running
            if task.overlap.value == "buffer_one":
                assert len(queued) <= 1, queued
            if task.overlap.value in ("skip", "cancel_other", "allow_all"):
                assert queued == []


class SQLiteQueues(Queues):
    kind = "sqlite"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("machine", [Queues, SQLiteQueues])
def test_queues_keep_their_rules(machine: type[Queues]) -> None:
    runner = machine.TestCase
    runner.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)
    runner().runTest()
