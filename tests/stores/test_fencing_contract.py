"""Fencing, closed logs, one-write recovery and the lease primitives, on every store.

Every test runs on the memory, SQLite and PostgreSQL stores through the ``store`` fixture of
``tests/conftest.py``: a run's writes are guarded by its fence (owner and epoch) in the same
write, a takeover bumps the epoch, a log closes at its final ``done``, recovery closes a run
and requeues its task in one write, and a claimed occurrence is stored with its run.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from taskcell.abc import LeaseLost, LogClosed, Store, TaskStore
from taskcell.domain.events import Event, EventType, Role
from taskcell.domain.models import (
    Fence,
    Run,
    RunStatus,
    ScheduleConfig,
    Task,
    TaskPattern,
    utcnow,
)
from taskcell.domain.state_machine import TaskStatus

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
EXPIRED = timedelta(seconds=-1)  # a lease that ran out already (the store's clock decides)
REASON = "interrupted: the server stopped while it ran"


def as_store(store: TaskStore) -> Store:
    return cast(Store, store)


def event(
    task_id: str, seq: int, kind: EventType = EventType.MESSAGE_CHUNK, **fields: Any
) -> Event:
    values: dict[str, Any] = {
        "event": kind,
        "task_id": task_id,
        "conversation_id": "conv-1",
        "thread_id": "thread-1",
        "item_id": f"item-{task_id}-{seq}",
        "role": Role.AGENT,
        "payload": {"content": f"chunk {seq}"},
        "created_at": T0 + timedelta(milliseconds=seq),
        "seq": seq,
    }
    values.update(fields)
    return Event(**values)


async def running_once_task(
    store: TaskStore, *, owner: str = "p1", max_attempts: int = 3, lease: timedelta = LEASE
) -> Run:
    """A once task running its first attempt under ``owner`` with a lease of ``lease``."""
    task = Task(query="q", agent_name="echo", max_attempts=max_attempts, created_at=T0)
    await store.save(task)
    now = utcnow()
    run = Run(task_id=task.task_id, owner=owner, started_at=now, lease_expires_at=now + lease)
    assert await store.start_run(run, now=now)
    return run


def closing(status: RunStatus) -> dict[str, Any]:
    return {"status": status, "finished_at": utcnow()}


async def test_a_run_settles_under_its_own_fence(store: TaskStore) -> None:
    run = await running_once_task(store)
    closed, moved = await store.finish_run(
        run.run_id,
        closing(RunStatus.COMPLETED),
        task_id=run.task_id,
        target=TaskStatus.COMPLETED,
        fence=run.fence,
    )
    assert (closed, moved) == (True, True)
    task = await store.load(run.task_id)
    assert task is not None and task.status is TaskStatus.COMPLETED


async def test_a_taken_over_run_cannot_settle_requeue_or_update(store: TaskStore) -> None:
    full = as_store(store)
    run = await running_once_task(store, owner="p1", lease=EXPIRED)
    stale = run.fence
    # Its lease expired and p2 takes it over: closed, requeued, the epoch bumped.
    taken = await full.interrupt_expired(REASON, by="p2")
    assert [(r.run_id, r.epoch, r.closed_by) for r in taken] == [(run.run_id, 1, "p2")]
    for settle in (
        store.finish_run(
            run.run_id,
            closing(RunStatus.COMPLETED),
            task_id=run.task_id,
            target=TaskStatus.COMPLETED,
            fence=stale,
        ),
        store.finish_run(
            run.run_id,
            closing(RunStatus.INTERRUPTED),
            task_id=run.task_id,
            target=TaskStatus.PENDING,
            expected=[TaskStatus.RUNNING],
            fence=stale,
        ),
        store.update_run(run.run_id, {"status": RunStatus.WAITING_INPUT}, fence=stale),
        store.update(run.task_id, {"remote_task_ids": ["r-stale"]}, fence=stale),
    ):
        with pytest.raises(LeaseLost) as refused:
            await settle
        assert refused.value.run_ids == {run.run_id}
    task = await store.load(run.task_id)
    assert task is not None
    assert (task.status, task.remote_task_ids) == (TaskStatus.PENDING, [])
    stored = await store.load_run(run.run_id)
    assert stored is not None and stored.status is RunStatus.INTERRUPTED, stored


async def test_a_fenced_settle_of_a_closed_run_changes_nothing(store: TaskStore) -> None:
    run = await running_once_task(store)
    await store.update_run(run.run_id, closing(RunStatus.FAILED), fence=run.fence)
    with pytest.raises(LeaseLost):
        await store.finish_run(
            run.run_id,
            closing(RunStatus.INTERRUPTED),
            task_id=run.task_id,
            target=TaskStatus.PENDING,
            expected=[TaskStatus.RUNNING],
            fence=run.fence,
        )
    task = await store.load(run.task_id)
    assert task is not None and task.status is TaskStatus.RUNNING, task


async def test_continue_run_is_a_takeover(store: TaskStore) -> None:
    run = await running_once_task(store, owner="p1")
    assert await store.update_run(run.run_id, {"status": RunStatus.WAITING_INPUT}, fence=run.fence)
    assert await store.transition(run.task_id, TaskStatus.WAITING_INPUT)
    assert await store.continue_run(
        run.run_id, task_id=run.task_id, owner="p2", lease_expires_at=T0 + LEASE
    )
    stored = await store.load_run(run.run_id)
    assert stored is not None and (stored.owner, stored.epoch) == ("p2", 1)
    with pytest.raises(LeaseLost):
        await store.update_run(run.run_id, {"attempt": 2}, fence=run.fence)
    assert await store.update_run(run.run_id, {"attempt": 2}, fence=stored.fence)


async def test_events_of_a_stale_run_are_refused_with_the_whole_batch(store: TaskStore) -> None:
    full = as_store(store)
    run = await running_once_task(store, owner="p1", lease=EXPIRED)
    stale = run.fence
    await full.append_events([event(run.task_id, 1, fence=stale)], [])
    await full.interrupt_expired(REASON, by="p2")
    user = event(run.task_id, 2, EventType.MESSAGE, role=Role.USER)
    with pytest.raises(LeaseLost) as refused:
        await full.append_events([user, event(run.task_id, 3, fence=stale)], [])
    assert refused.value.run_ids == {run.run_id}
    assert [e.seq for e in await full.read_events(run.task_id)] == [1]
    # Without the stale run's event the batch goes in; unfenced writes are unaffected.
    await full.append_events([user], [])
    assert [e.seq for e in await full.read_events(run.task_id)] == [1, 2]


async def test_a_run_writes_its_closing_events_after_settling_itself(store: TaskStore) -> None:
    full = as_store(store)
    run = await running_once_task(store)
    await store.finish_run(
        run.run_id,
        closing(RunStatus.COMPLETED),
        task_id=run.task_id,
        target=TaskStatus.COMPLETED,
        fence=run.fence,
    )
    batch = [
        event(run.task_id, 1, EventType.TASK_COMPLETED, fence=run.fence),
        event(run.task_id, 2, EventType.DONE, fence=run.fence),
    ]
    await full.append_events(batch, [])
    assert [e.event for e in await full.read_events(run.task_id)] == [
        EventType.TASK_COMPLETED,
        EventType.DONE,
    ]


async def test_a_finished_task_log_closes_at_its_done(store: TaskStore) -> None:
    full = as_store(store)
    run = await running_once_task(store)
    task_id = run.task_id
    await full.append_events([event(task_id, 1)], [])
    await store.finish_run(
        run.run_id, closing(RunStatus.COMPLETED), task_id=task_id, target=TaskStatus.COMPLETED
    )
    # Events after the closing done in the same batch: refused with it.
    with pytest.raises(LogClosed):
        await full.append_events(
            [event(task_id, 2, EventType.DONE), event(task_id, 3, EventType.DONE)], []
        )
    assert await full.last_seq(task_id) == 1
    await full.append_events([event(task_id, 2, EventType.DONE)], [])
    for late in (event(task_id, 3, EventType.DONE), event(task_id, 3)):
        with pytest.raises(LogClosed) as refused:
            await full.append_events([late], [])
        assert refused.value.task_ids == {task_id}
    assert [e.event for e in await full.read_events(task_id)] == [
        EventType.MESSAGE_CHUNK,
        EventType.DONE,
    ]


async def test_a_recurring_task_log_closes_only_at_its_final_done(store: TaskStore) -> None:
    full = as_store(store)
    task = Task(
        query="q",
        agent_name="echo",
        pattern=TaskPattern.RECURRING,
        schedule_config=ScheduleConfig(interval_minutes=1),
        status=TaskStatus.RUNNING,
        created_at=T0,
    )
    await store.save(task)
    # The done after its controller does not close it (the task is running).
    await full.append_events([event(task.task_id, 1, EventType.DONE)], [])
    await full.append_events([event(task.task_id, 2)], [])
    assert await store.transition(task.task_id, TaskStatus.CANCELLED)
    await full.append_events(
        [event(task.task_id, 3, EventType.TASK_CANCELLED), event(task.task_id, 4, EventType.DONE)],
        [],
    )
    with pytest.raises(LogClosed):
        await full.append_events([event(task.task_id, 5, EventType.DONE)], [])
    assert await full.last_seq(task.task_id) == 4


async def test_recovery_closes_and_requeues_or_fails_in_one_write(store: TaskStore) -> None:
    full = as_store(store)
    retried = await running_once_task(store, owner="dead", max_attempts=2, lease=EXPIRED)
    last = await running_once_task(store, owner="dead", max_attempts=1, lease=EXPIRED)
    live = await running_once_task(store, owner="alive")
    assert await full.renew_leases("alive", LEASE) == 1
    taken = await full.interrupt_expired(REASON, by="p2")
    assert {r.run_id for r in taken} == {retried.run_id, last.run_id}
    assert all(r.status is RunStatus.INTERRUPTED and r.error == REASON for r in taken)
    requeued, failed, untouched = [await store.load(r.task_id) for r in (retried, last, live)]
    assert requeued is not None and requeued.status is TaskStatus.PENDING, requeued
    assert failed is not None and failed.status is TaskStatus.FAILED, failed
    closed_at = {r.run_id: r.finished_at for r in taken}
    assert failed.error_message == REASON and failed.completed_at == closed_at[last.run_id]
    assert untouched is not None and untouched.status is TaskStatus.RUNNING
    # Each expired run is taken over once.
    assert await full.interrupt_expired(REASON, by="p3") == []


async def test_interrupt_without_a_recoverer_leaves_tasks_alone(store: TaskStore) -> None:
    full = as_store(store)
    run = await running_once_task(store, owner="dead", lease=EXPIRED)
    taken = await full.interrupt_expired(REASON)
    assert [(r.run_id, r.epoch, r.closed_by) for r in taken] == [(run.run_id, 1, None)]
    task = await store.load(run.task_id)
    assert task is not None and task.status is TaskStatus.RUNNING


async def test_renew_leases_renews_only_the_owners_open_runs(store: TaskStore) -> None:
    full = as_store(store)
    mine = await running_once_task(store, owner="p1")
    other = await running_once_task(store, owner="p2")
    ended = await running_once_task(store, owner="p1")
    await store.update_run(ended.run_id, closing(RunStatus.COMPLETED), fence=ended.fence)
    before = {x.run_id: await lease_of(store, x) for x in (mine, other, ended)}
    assert await full.renew_leases("p1", timedelta(hours=2)) == 1
    after = {x.run_id: await lease_of(store, x) for x in (mine, other, ended)}
    assert after[mine.run_id] > utcnow() + timedelta(hours=1) > before[mine.run_id]
    assert (after[other.run_id], after[ended.run_id]) == (
        before[other.run_id],
        before[ended.run_id],
    )


async def lease_of(store: TaskStore, run: Run) -> datetime:
    stored = await store.load_run(run.run_id)
    assert stored is not None and stored.lease_expires_at is not None
    return stored.lease_expires_at


async def test_runs_finished_by_are_only_those_the_process_closed_itself(store: TaskStore) -> None:
    full = as_store(store)
    own = await running_once_task(store, owner="dead")
    taken = await running_once_task(store, owner="dead", lease=EXPIRED)
    await store.update_run(own.run_id, closing(RunStatus.COMPLETED), fence=own.fence)
    await full.interrupt_expired(REASON, by="p2")
    since = utcnow() - timedelta(minutes=1)
    assert [r.run_id for r in await full.runs_finished_by("dead", since)] == [own.run_id]
    assert [r.run_id for r in await full.runs_finished_by("p2", since)] == [taken.run_id]
    assert await full.runs_finished_by("dead", utcnow() + timedelta(minutes=1)) == []


def recurring_task(due: datetime) -> Task:
    return Task(
        query="q",
        agent_name="echo",
        pattern=TaskPattern.RECURRING,
        schedule_config=ScheduleConfig(interval_minutes=1),
        status=TaskStatus.RUNNING,
        next_run_at=due,
        created_at=T0,
    )


def occurrence(owner: str) -> Any:
    def make(task: Task, due: datetime) -> Run:
        now = utcnow()
        return Run(
            task_id=task.task_id,
            scheduled_for=due,
            owner=owner,
            started_at=now,
            lease_expires_at=now + LEASE,
        )

    return make


def a_minute_on(task: Task) -> datetime:
    assert task.next_run_at is not None
    return task.next_run_at + timedelta(minutes=1)


async def test_start_due_stores_each_claimed_occurrence_with_its_run(store: TaskStore) -> None:
    tasks = [recurring_task(T0 - timedelta(seconds=i)) for i in range(20)]
    for task in tasks:
        await store.save(task)
    first, second = await asyncio.gather(
        store.start_due(T0, a_minute_on, occurrence("p1"), skipped_reason="skip", limit=50),
        store.start_due(T0, a_minute_on, occurrence("p2"), skipped_reason="skip", limit=50),
    )
    started = [*first, *second]
    assert sorted(t.task_id for t, _ in started) == sorted(t.task_id for t in tasks)
    for task, run in started:
        assert run is not None and run.status is RunStatus.RUNNING
        runs = (await store.list_runs(task.task_id)).items
        assert [(r.run_id, r.status, r.owner) for r in runs] == [
            (run.run_id, RunStatus.RUNNING, run.owner)
        ]
        lease = runs[0].lease_expires_at
        assert lease is not None and lease > utcnow() + LEASE / 2, runs
        stored = await store.load(task.task_id)
        assert stored is not None and stored.next_run_at == task.next_run_at
    assert await store.start_due(T0, a_minute_on, occurrence("p1"), skipped_reason="s") == []


async def test_start_due_records_a_skip_while_a_leased_run_goes_on(store: TaskStore) -> None:
    task = recurring_task(T0)
    await store.save(task)
    now = utcnow()
    previous = Run(
        task_id=task.task_id,
        scheduled_for=T0 - timedelta(minutes=1),
        owner="p1",
        lease_expires_at=now + LEASE,
        created_at=now,
    )
    assert await store.add_run(previous)
    [(_, run)] = await store.start_due(
        T0, a_minute_on, occurrence("p2"), skipped_reason="still running"
    )
    assert run is not None
    assert (run.status, run.error, run.scheduled_for) == (RunStatus.SKIPPED, "still running", T0)
    runs = {r.run_id: r.status for r in (await store.list_runs(task.task_id)).items}
    assert runs == {previous.run_id: RunStatus.RUNNING, run.run_id: RunStatus.SKIPPED}


async def test_start_due_answers_none_for_an_occupied_occurrence(store: TaskStore) -> None:
    task = recurring_task(T0)
    await store.save(task)
    done = Run(task_id=task.task_id, scheduled_for=T0, status=RunStatus.COMPLETED, created_at=T0)
    assert await store.add_run(done)
    [(claimed, run)] = await store.start_due(T0, a_minute_on, occurrence("p1"), skipped_reason="s")
    assert run is None and claimed.next_run_at == T0 + timedelta(minutes=1)
    assert [r.run_id for r in (await store.list_runs(task.task_id)).items] == [done.run_id]


async def test_a_fence_names_owner_and_epoch() -> None:
    run = Run(task_id="t", owner="p1", epoch=3)
    assert run.fence == Fence(run.run_id, "p1", 3)
