"""``read_ahead`` on every store: it reads the armed tasks due before a moment, at most
``limit``, and changes nothing."""

from __future__ import annotations

from datetime import timedelta

from taskcell.abc import Store
from taskcell.domain.models import Task, TaskPattern
from taskcell.domain.state_machine import TaskStatus


async def armed(store: Store, due_in: timedelta, *, paused: bool = False) -> Task:
    now = await store.clock()
    task = Task(
        query="report",
        agent_name="echo",
        pattern=TaskPattern.RECURRING,
        schedule_config={"interval_minutes": 5},
        status=TaskStatus.RUNNING,
        next_run_at=now + due_in,
        paused=paused,
    )
    await store.save(task)  # type: ignore[attr-defined]
    return task


async def test_read_ahead_reads_the_tasks_due_soon_and_changes_nothing(store: Store) -> None:
    soon = [await armed(store, timedelta(seconds=s)) for s in (1, 2, 3)]
    await armed(store, timedelta(hours=1))  # not due soon
    await armed(store, timedelta(seconds=1), paused=True)  # not armed
    before = [await store.load(t.task_id) for t in soon]
    now = await store.clock()
    assert await store.read_ahead(now + timedelta(seconds=10)) == 3
    assert await store.read_ahead(now + timedelta(seconds=10), limit=2) == 2
    assert await store.read_ahead(now - timedelta(seconds=10)) == 0
    assert [await store.load(t.task_id) for t in soon] == before
    assert [(await store.list_runs(t.task_id, limit=5)).items for t in soon] == [[], [], []]
