"""The stores' side of the overlap policy, on every store (memory, SQLite, PostgreSQL): a
claim's runs stored as the policy decides in the claiming write, queued occurrences started
once, occurrences added outside the schedule (run now, backfill)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskcell.abc import LeaseLost, Store, TaskStore
from taskcell.domain.models import (
    Run,
    RunStatus,
    ScheduleConfig,
    Task,
    TaskPattern,
    utcnow,
)
from taskcell.domain.policies import (
    CANCELLED_BY_NEWER,
    SKIPPED_BUFFER_FULL,
    SKIPPED_RUNNING,
)
from taskcell.domain.state_machine import TaskStatus

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
MINUTE = timedelta(minutes=1)


def recurring(overlap: str = "skip", due: datetime | None = T0, **fields: Any) -> Task:
    values: dict[str, Any] = {
        "query": "q",
        "agent_name": "echo",
        "pattern": TaskPattern.RECURRING,
        "schedule_config": ScheduleConfig(interval_minutes=1),
        "status": TaskStatus.RUNNING,
        "next_run_at": due,
        "created_at": T0 - timedelta(days=1),
        "overlap": overlap,
    }
    return Task(**{**values, **fields})


def occurrence(task_id: str, at: datetime, owner: str = "p1") -> Run:
    now = utcnow()
    return Run(
        task_id=task_id,
        scheduled_for=at,
        owner=owner,
        started_at=now,
        created_at=now,
        lease_expires_at=now + LEASE,
    )


def one(owner: str = "p1") -> Any:
    def make(task: Task, due: datetime) -> Run:
        return occurrence(task.task_id, due, owner)

    return make


def several(*offsets: int, owner: str = "p1") -> Any:
    """A catch-up's runs: one per offset (minutes after the due time), in order."""

    def make(task: Task, due: datetime) -> list[Run]:
        return [occurrence(task.task_id, due + k * MINUTE, owner) for k in offsets]

    return make


def a_minute_on(task: Task) -> datetime:
    assert task.next_run_at is not None
    return task.next_run_at + MINUTE


async def with_running_run(store: TaskStore, overlap: str) -> tuple[Task, Run]:
    task = recurring(overlap)
    await store.save(task)  # type: ignore[attr-defined]
    previous = occurrence(task.task_id, T0 - MINUTE, owner="p0")
    assert await store.add_run(previous)
    return task, previous


async def statuses(store: TaskStore, task_id: str) -> dict[datetime | None, RunStatus]:
    runs = (await store.list_runs(task_id, limit=500)).items
    return {r.scheduled_for: r.status for r in runs}


@pytest.mark.parametrize(
    ("overlap", "stored"),
    [
        ("skip", RunStatus.SKIPPED),
        ("buffer_one", RunStatus.QUEUED),
        ("buffer_all", RunStatus.QUEUED),
        ("cancel_other", RunStatus.RUNNING),
        ("allow_all", RunStatus.RUNNING),
    ],
)
async def test_a_due_occurrence_beside_a_running_run_follows_the_overlap_policy(
    store: TaskStore, overlap: str, stored: RunStatus
) -> None:
    task, previous = await with_running_run(store, overlap)
    answered = await store.start_due(T0, a_minute_on, one("p1"), skipped_reason=SKIPPED_RUNNING)
    runs = [run for _, run in answered]
    assert runs[0] is not None and runs[0].status is stored
    assert runs[0].scheduled_for == T0
    now = await statuses(store, task.task_id)
    assert now[T0] is stored
    if overlap == "skip":
        assert runs[0].error == SKIPPED_RUNNING
    if stored is RunStatus.QUEUED:
        waiting = await store.load_run(runs[0].run_id)
        assert waiting is not None and waiting.owner is None and waiting.lease_expires_at is None
        assert waiting.started_at is None
    if overlap == "cancel_other":
        # The run in progress is closed as replaced in the same write, its fence void.
        assert len(runs) == 2
        assert runs[1] is not None and runs[1].run_id == previous.run_id
        assert runs[1].status is RunStatus.CANCELLED
        assert now[T0 - MINUTE] is RunStatus.CANCELLED
        closed = await store.load_run(previous.run_id)
        assert closed is not None and closed.error == CANCELLED_BY_NEWER
        assert closed.epoch == previous.epoch + 1
        with pytest.raises(LeaseLost):
            await store.update_run(previous.run_id, {"result": "late"}, fence=previous.fence)
    else:
        assert now[T0 - MINUTE] is RunStatus.RUNNING
        assert len(runs) == 1


async def test_buffer_one_keeps_one_waiting_and_skips_the_next_with_the_reason(
    store: TaskStore,
) -> None:
    _, _ = await with_running_run(store, "buffer_one")
    answered = await store.start_due(
        T0 + 2 * MINUTE, a_minute_on, several(0, 1, 2), skipped_reason=SKIPPED_RUNNING
    )
    assert [(r.scheduled_for, r.status) for _, r in answered if r] == [
        (T0, RunStatus.QUEUED),
        (T0 + MINUTE, RunStatus.SKIPPED),
        (T0 + 2 * MINUTE, RunStatus.SKIPPED),
    ]
    skipped = [r for _, r in answered if r and r.status is RunStatus.SKIPPED]
    assert {r.error for r in skipped} == {SKIPPED_BUFFER_FULL}


async def test_buffer_all_queues_in_order_and_starts_one_at_a_time(store: TaskStore) -> None:
    task, previous = await with_running_run(store, "buffer_all")
    answered = await store.start_due(
        T0 + 2 * MINUTE, a_minute_on, several(0, 1, 2), skipped_reason=SKIPPED_RUNNING
    )
    assert [r.status for _, r in answered if r] == [RunStatus.QUEUED] * 3
    assert await store.start_queued("p2", LEASE) == []  # the run in progress holds its lease
    await store.update_run(
        previous.run_id, {"status": RunStatus.COMPLETED, "finished_at": utcnow()}
    )
    order = []
    for _ in range(3):
        [(started_task, run)] = await store.start_queued("p2", LEASE)
        assert started_task.task_id == task.task_id
        assert run.status is RunStatus.RUNNING and run.owner == "p2"
        assert run.lease_expires_at is not None and run.lease_expires_at > utcnow()
        assert await store.start_queued("p2", LEASE) == []  # one at a time
        order.append(run.scheduled_for)
        await store.update_run(run.run_id, {"status": RunStatus.COMPLETED}, fence=run.fence)
    assert order == [T0, T0 + MINUTE, T0 + 2 * MINUTE]
    assert await store.start_queued("p2", LEASE) == []


async def test_a_queued_occurrence_is_started_once_by_concurrent_claimers(
    store: TaskStore,
) -> None:
    tasks = []
    for _ in range(5):
        task, previous = await with_running_run(store, "buffer_all")
        tasks.append(task)
        await store.update_run(previous.run_id, {"status": RunStatus.COMPLETED})
        waiting = occurrence(task.task_id, T0).model_copy(
            update={"status": RunStatus.QUEUED, "owner": None, "lease_expires_at": None}
        )
        assert await store.add_run(waiting)
        later = waiting.model_copy(
            update={"run_id": waiting.run_id + "b", "scheduled_for": T0 + MINUTE}
        )
        assert await store.add_run(later)
    results = await asyncio.gather(*(store.start_queued(f"p{i}", LEASE) for i in range(3)))
    started = [(t.task_id, r.scheduled_for) for batch in results for t, r in batch]
    assert sorted(started) == sorted((t.task_id, T0) for t in tasks)


async def test_queued_occurrences_of_a_paused_or_cancelled_task_wait(store: TaskStore) -> None:
    paused = recurring("buffer_all", paused=True)
    cancelled = recurring("buffer_all", None, status=TaskStatus.CANCELLED)
    for task in (paused, cancelled):
        await store.save(task)  # type: ignore[attr-defined]
        waiting = occurrence(task.task_id, T0).model_copy(
            update={"status": RunStatus.QUEUED, "owner": None, "lease_expires_at": None}
        )
        assert await store.add_run(waiting)
    assert await store.start_queued("p1", LEASE) == []
    await store.update(paused.task_id, {"paused": False})
    [(task, _)] = await store.start_queued("p1", LEASE)
    assert task.task_id == paused.task_id


async def test_cancel_other_in_one_claim_starts_only_the_latest(store: TaskStore) -> None:
    task, previous = await with_running_run(store, "cancel_other")
    answered = await store.start_due(
        T0 + 2 * MINUTE, a_minute_on, several(0, 1, 2), skipped_reason=SKIPPED_RUNNING
    )
    mine = [(r.scheduled_for, r.status) for _, r in answered if r and r.run_id != previous.run_id]
    assert mine == [
        (T0, RunStatus.CANCELLED),
        (T0 + MINUTE, RunStatus.CANCELLED),
        (T0 + 2 * MINUTE, RunStatus.RUNNING),
    ]
    assert (await statuses(store, task.task_id))[T0 - MINUTE] is RunStatus.CANCELLED


async def test_catch_up_records_and_overlap_together(store: TaskStore) -> None:
    """A claim's skipped records are stored as they are; its running runs as the policy says."""
    task = recurring("buffer_all")
    await store.save(task)  # type: ignore[attr-defined]

    def make(claimed: Task, due: datetime) -> list[Run]:
        skipped = Run(
            task_id=claimed.task_id,
            scheduled_for=due,
            status=RunStatus.SKIPPED,
            error="skipped: older than the catch-up window",
            finished_at=utcnow(),
        )
        return [skipped, *(occurrence(claimed.task_id, due + k * MINUTE) for k in (1, 2))]

    answered = await store.start_due(T0 + 2 * MINUTE, a_minute_on, make, skipped_reason="s")
    assert [(r.scheduled_for, r.status) for _, r in answered if r] == [
        (T0, RunStatus.SKIPPED),
        (T0 + MINUTE, RunStatus.RUNNING),
        (T0 + 2 * MINUTE, RunStatus.QUEUED),
    ]


async def test_add_occurrences_applies_the_policy_and_leaves_out_runs_already_there(
    store: TaskStore,
) -> None:
    task, _ = await with_running_run(store, "buffer_all")
    done = Run(task_id=task.task_id, scheduled_for=T0, status=RunStatus.COMPLETED)
    assert await store.add_run(done)
    wanted = [occurrence(task.task_id, T0 + k * MINUTE) for k in range(3)]
    added = await store.add_occurrences(task.task_id, wanted)
    assert added is not None and added.replaced == []
    assert [(r.scheduled_for, r.status) for r in added.runs] == [
        (T0 + MINUTE, RunStatus.QUEUED),
        (T0 + 2 * MINUTE, RunStatus.QUEUED),
    ]
    again = await store.add_occurrences(task.task_id, wanted)
    assert again is not None and again.runs == []


async def test_add_occurrences_refuses_a_task_that_is_not_a_running_recurring_task(
    store: TaskStore,
) -> None:
    once = Task(query="q", agent_name="echo")
    ended = recurring("skip", None, status=TaskStatus.CANCELLED)
    for task in (once, ended):
        await store.save(task)  # type: ignore[attr-defined]
        assert await store.add_occurrences(task.task_id, [occurrence(task.task_id, T0)]) is None
        assert (await store.list_runs(task.task_id)).items == []
    assert await store.add_occurrences("no-such-task", [occurrence("no-such-task", T0)]) is None


async def test_runs_in_status_of_one_task(store: TaskStore) -> None:
    first, _ = await with_running_run(store, "skip")
    second, _ = await with_running_run(store, "skip")
    mine = await store.runs_in_status([RunStatus.RUNNING], task_id=first.task_id)
    assert [r.task_id for r in mine] == [first.task_id]
    everyone = await store.runs_in_status([RunStatus.RUNNING])
    assert {r.task_id for r in everyone} == {first.task_id, second.task_id}


async def test_expired_queued_and_ownerless_runs_are_left_to_the_scheduler(
    store: TaskStore,
) -> None:
    """Recovery closes runs whose lease expired; a queued occurrence has none, so it waits."""
    task = recurring("buffer_all")
    await store.save(task)  # type: ignore[attr-defined]
    waiting = occurrence(task.task_id, T0).model_copy(
        update={"status": RunStatus.QUEUED, "owner": None, "lease_expires_at": None}
    )
    assert await store.add_run(waiting)
    full: Store = store  # type: ignore[assignment]
    assert await full.interrupt_expired("interrupted", by="p9") == []
    assert await full.renew_leases("p1", LEASE) == 0
    assert (await statuses(store, task.task_id))[T0] is RunStatus.QUEUED
