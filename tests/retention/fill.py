"""A small history to prune: tasks, runs, events and items written straight through a store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskcell.abc import Store
from taskcell.domain.events import ConversationItem, Event, EventType, Role
from taskcell.domain.models import Run, RunStatus, ScheduleConfig, Task, TaskPattern
from taskcell.domain.state_machine import TaskStatus

#: "Now" for every retention test (time-machine travels here).
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def event(
    task: Task,
    seq: int,
    at: datetime,
    *,
    run_id: str | None = None,
    kind: EventType = EventType.MESSAGE,
) -> Event:
    return Event(
        event=kind,
        task_id=task.task_id,
        conversation_id=task.conversation_id,
        thread_id=task.thread_id,
        item_id=f"{task.task_id}-item-{seq}",
        role=Role.AGENT,
        payload={"content": f"event {seq}"},
        created_at=at,
        run_id=run_id,
        seq=seq,
    )


def item(task: Task, number: int, at: datetime) -> ConversationItem:
    return ConversationItem(
        item_id=f"{task.task_id}-item-{number}",
        conversation_id=task.conversation_id,
        thread_id=task.thread_id,
        task_id=task.task_id,
        run_id=None,
        role=Role.AGENT,
        event=EventType.MESSAGE,
        payload={"content": f"item {number}"},
        created_at=at,
        updated_at=at,
    )


async def once_task(
    store: Store,
    task_id: str,
    *,
    created: datetime,
    finished: datetime | None,
    events: int = 5,
    items: int = 2,
    conversation: str | None = None,
) -> Task:
    """A once task created at ``created``, finished (completed) at ``finished`` (None: still
    running), with ``events`` events (the last a ``done`` when finished) and ``items`` items."""
    task = Task(
        task_id=task_id,
        query="summarise",
        agent_name="echo",
        conversation_id=conversation or f"conv-{task_id}",
        status=TaskStatus.COMPLETED if finished else TaskStatus.RUNNING,
        created_at=created,
        updated_at=finished or created,
        started_at=created,
        completed_at=finished,
        attempt=1,
    )
    await store.save(task)
    run = Run(
        task_id=task_id,
        created_at=created,
        started_at=created,
        finished_at=finished,
        status=RunStatus.COMPLETED if finished else RunStatus.RUNNING,
        owner="p1",
        lease_expires_at=created + timedelta(days=365),
    )
    await store.add_run(run)
    batch = []
    for seq in range(1, events + 1):
        kind = EventType.DONE if finished and seq == events else EventType.MESSAGE
        batch.append(
            event(task, seq, created + timedelta(seconds=seq), run_id=run.run_id, kind=kind)
        )
    await store.append_events(batch, [item(task, n, created) for n in range(1, items + 1)])
    return task


async def recurring_task(
    store: Store, task_id: str, run_starts: list[datetime], *, open_last: bool = True
) -> tuple[Task, list[Run]]:
    """A recurring task with two opening events, then a run at each of ``run_starts`` with
    three events each (the last run still running when ``open_last``)."""
    first = run_starts[0] - timedelta(hours=1)
    task = Task(
        task_id=task_id,
        query="report",
        agent_name="clock",
        pattern=TaskPattern.RECURRING,
        schedule_config=ScheduleConfig(interval_minutes=60),
        status=TaskStatus.RUNNING,
        created_at=first,
        updated_at=first,
        started_at=first,
        next_run_at=T0 + DAY,
    )
    await store.save(task)
    seq = 0
    batch = []
    for _ in range(2):
        seq += 1
        batch.append(event(task, seq, first + timedelta(seconds=seq)))
    await store.append_events(batch, [])
    runs = []
    for index, start in enumerate(run_starts):
        is_open = open_last and index == len(run_starts) - 1
        run = Run(
            task_id=task_id,
            scheduled_for=start,
            created_at=start,
            started_at=start,
            finished_at=None if is_open else start + timedelta(minutes=1),
            status=RunStatus.RUNNING if is_open else RunStatus.COMPLETED,
            owner="p1",
            lease_expires_at=T0 + timedelta(days=365),
        )
        assert await store.add_run(run)  # as the engine does: the run, then its events
        runs.append(run)
        batch = []
        for offset in range(3):
            seq += 1
            batch.append(event(task, seq, start + timedelta(seconds=offset + 1), run_id=run.run_id))
        await store.append_events(batch, [])
    return task, runs
