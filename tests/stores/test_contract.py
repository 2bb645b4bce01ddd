"""The store contract (taskcell.abc.TaskStore), run against every store."""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from taskcell.abc import DuplicateTask, InvalidCursor, TaskFilter, TaskStore
from taskcell.domain.models import Run, RunStatus, ScheduleConfig, Task, TaskPattern
from taskcell.domain.state_machine import FINAL_STATUSES, TRANSITIONS, TaskStatus, enter
from taskcell.testing import claim_due

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def make_task(**fields: object) -> Task:
    values: dict[str, object] = {"query": "summarise today's filings", "agent_name": "echo"}
    values.update(fields)
    return Task(**values)  # type: ignore[arg-type]


async def test_round_trip_keeps_every_field(store: TaskStore) -> None:
    task = Task(
        task_id="t-all-fields",
        title="Filings",
        query="summarise today's filings for AAPL ✓",
        conversation_id="conv-1",
        thread_id="thread-1",
        user_id="alice",
        agent_name="clock",
        status=TaskStatus.RUNNING,
        pattern=TaskPattern.RECURRING,
        schedule_config=ScheduleConfig(daily_time="09:30", timezone="Europe/Berlin"),
        paused=True,
        next_run_at=datetime(2026, 11, 28, 8, 30, tzinfo=UTC),
        attempt=2,
        max_attempts=5,
        remote_task_ids=["r1", "r2"],
        handoff_from_super_agent=True,
        created_at=T0,
        started_at=T0 + timedelta(seconds=1),
        completed_at=None,
        updated_at=T0 + timedelta(seconds=2),
        error_message="last run failed: boom",
        metadata={"language": "de", "nested": {"k": [1, 2.5, None, True]}},
    )
    await store.save(task)
    loaded = await store.load(task.task_id)
    assert loaded == task
    assert loaded is not None and loaded.next_run_at is not None
    assert loaded.next_run_at.tzinfo is not None
    assert loaded.next_run_at.utcoffset() == timedelta(0)


async def test_a_cron_schedule_round_trips(store: TaskStore) -> None:
    schedule = ScheduleConfig(cron="*/15 8-18 * * MON-FRI", timezone="Australia/Lord_Howe")
    task = Task(
        task_id="t-cron",
        query="standup",
        agent_name="clock",
        status=TaskStatus.RUNNING,
        pattern=TaskPattern.RECURRING,
        schedule_config=schedule,
        next_run_at=datetime(2026, 11, 30, 21, 15, tzinfo=UTC),
    )
    await store.save(task)
    loaded = await store.load(task.task_id)
    assert loaded is not None and loaded.schedule_config == schedule, loaded


async def test_datetimes_with_other_offsets_come_back_in_utc(store: TaskStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    task = make_task(created_at=datetime(2026, 6, 1, 14, 0, tzinfo=plus_two))
    await store.save(task)
    loaded = await store.load(task.task_id)
    assert loaded is not None
    assert loaded.created_at == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert loaded.created_at.utcoffset() == timedelta(0)


async def test_save_refuses_a_duplicate_id(store: TaskStore) -> None:
    task = make_task()
    await store.save(task)
    with pytest.raises(DuplicateTask):
        await store.save(task)
    assert (await store.list_tasks(TaskFilter())).items == [task]


async def test_delete_removes_the_task_and_its_runs(store: TaskStore) -> None:
    task = make_task()
    assert await store.load(task.task_id) is None
    await store.save(task)
    await store.add_run(Run(task_id=task.task_id))
    assert await store.load(task.task_id) is not None
    assert await store.delete(task.task_id)
    assert await store.load(task.task_id) is None
    assert (await store.list_runs(task.task_id)).items == []
    assert not await store.delete(task.task_id)


@pytest.mark.parametrize(("source", "target"), list(itertools.product(TaskStatus, TaskStatus)))
async def test_transition_follows_the_state_machine(
    store: TaskStore, source: TaskStatus, target: TaskStatus
) -> None:
    task = make_task(status=source, created_at=T0, updated_at=T0, next_run_at=T0)
    await store.save(task)
    moment = T0 + timedelta(minutes=5)
    happened = await store.transition(task.task_id, target, now=moment)
    loaded = await store.load(task.task_id)
    assert loaded is not None
    assert happened == (target in TRANSITIONS[source])
    if happened:
        assert loaded.status is target
        assert loaded.updated_at == moment
        if target is TaskStatus.RUNNING:
            assert loaded.started_at == moment
        if target in FINAL_STATUSES:
            assert (loaded.completed_at, loaded.next_run_at) == (moment, None)
        # Every store writes exactly what the state machine's table says a move writes.
        expected = task.model_copy()
        enter(expected, target, moment)
        assert loaded == expected
    else:
        assert loaded == task


async def test_transition_respects_expected_and_sets_changes(store: TaskStore) -> None:
    task = make_task()
    await store.save(task)
    assert not await store.transition(
        task.task_id, TaskStatus.RUNNING, expected=[TaskStatus.WAITING_INPUT]
    )
    assert await store.transition(
        task.task_id, TaskStatus.RUNNING, expected=[TaskStatus.PENDING], changes={"attempt": 1}
    )
    assert await store.transition(
        task.task_id, TaskStatus.FAILED, changes={"error_message": "agent said no"}
    )
    loaded = await store.load(task.task_id)
    assert loaded is not None
    assert (loaded.status, loaded.attempt, loaded.error_message) == (
        TaskStatus.FAILED,
        1,
        "agent said no",
    )


async def test_started_at_is_kept_across_restarts(store: TaskStore) -> None:
    task = make_task()
    await store.save(task)
    await store.transition(task.task_id, TaskStatus.RUNNING, now=T0)
    await store.transition(task.task_id, TaskStatus.PENDING, now=T0 + timedelta(seconds=1))
    await store.transition(task.task_id, TaskStatus.RUNNING, now=T0 + timedelta(seconds=2))
    loaded = await store.load(task.task_id)
    assert loaded is not None and loaded.started_at == T0


@pytest.mark.parametrize("how", ["transition", "transition clearing it too", "conversation"])
async def test_a_finished_recurring_task_has_no_next_run(store: TaskStore, how: str) -> None:
    task = make_task(
        pattern=TaskPattern.RECURRING,
        schedule_config={"interval_minutes": 1},
        status=TaskStatus.RUNNING,
        next_run_at=T0,
    )
    await store.save(task)
    if how == "conversation":
        assert await store.cancel_conversation(task.conversation_id) == [task.task_id]
    else:
        changes = {"next_run_at": None} if how == "transition clearing it too" else None
        assert await store.transition(task.task_id, TaskStatus.CANCELLED, changes=changes, now=T0)
    loaded = await store.load(task.task_id)
    assert loaded is not None and loaded.status is TaskStatus.CANCELLED, loaded
    assert (loaded.next_run_at, loaded.completed_at is not None) == (None, True), loaded
    assert await store.next_due_at() is None


async def test_transition_of_an_unknown_task_answers_false(store: TaskStore) -> None:
    assert not await store.transition("nope", TaskStatus.CANCELLED)


async def test_update_writes_fields_and_honours_the_guard(store: TaskStore) -> None:
    task = make_task(pattern=TaskPattern.RECURRING, schedule_config={"interval_minutes": 5})
    await store.save(task)
    when = T0 + timedelta(hours=1)
    assert await store.update(task.task_id, {"next_run_at": when, "paused": True})
    assert not await store.update(task.task_id, {"paused": False}, expected=[TaskStatus.RUNNING])
    loaded = await store.load(task.task_id)
    assert loaded is not None and (loaded.next_run_at, loaded.paused) == (when, True)
    with pytest.raises(ValueError, match="status"):
        await store.update(task.task_id, {"status": TaskStatus.COMPLETED})
    assert not await store.update("nope", {"paused": True})


async def test_cancel_conversation_cancels_only_unfinished_tasks_of_it(
    store: TaskStore,
) -> None:
    open_one = make_task(conversation_id="c1")
    waiting = make_task(conversation_id="c1", status=TaskStatus.WAITING_INPUT)
    done = make_task(conversation_id="c1", status=TaskStatus.COMPLETED)
    other = make_task(conversation_id="c2")
    for task in (open_one, waiting, done, other):
        await store.save(task)
    cancelled = await store.cancel_conversation("c1", reason="conversation closed")
    assert sorted(cancelled) == sorted([open_one.task_id, waiting.task_id])
    statuses = {t.task_id: t.status for t in (await store.list_tasks(TaskFilter())).items}
    assert statuses == {
        open_one.task_id: TaskStatus.CANCELLED,
        waiting.task_id: TaskStatus.CANCELLED,
        done.task_id: TaskStatus.COMPLETED,
        other.task_id: TaskStatus.PENDING,
    }


async def _walk(store: TaskStore, flt: TaskFilter, page_size: int) -> list[Task]:
    seen: list[Task] = []
    cursor: str | None = None
    while True:
        page = await store.list_tasks(flt, limit=page_size, cursor=cursor)
        assert len(page.items) <= page_size
        seen += page.items
        if page.next_cursor is None:
            return seen
        assert len(page.items) == page_size
        cursor = page.next_cursor


async def test_cursor_paging_over_1000_tasks_with_every_filter(store: TaskStore) -> None:
    rng = random.Random(7)
    tasks = []
    for i in range(1000):
        recurring = rng.random() < 0.3
        task = make_task(
            task_id=f"task-{i:04d}",
            user_id=rng.choice(["alice", "bob", "carol"]),
            conversation_id=rng.choice(["c1", "c2", "c3", "c4"]),
            agent_name=rng.choice(["echo", "clock", "slow"]),
            status=rng.choice(list(TaskStatus)),
            pattern=TaskPattern.RECURRING if recurring else TaskPattern.ONCE,
            schedule_config={"interval_minutes": 5} if recurring else None,
            # Many share a created_at, so the task id must break ties.
            created_at=T0 + timedelta(seconds=rng.randrange(400)),
        )
        tasks.append(task)
        await store.save(task)

    filters = [
        TaskFilter(),
        TaskFilter(user_id="alice"),
        TaskFilter(conversation_id="c2"),
        TaskFilter(status=TaskStatus.RUNNING),
        TaskFilter(pattern=TaskPattern.RECURRING),
        TaskFilter(agent_name="clock"),
        TaskFilter(user_id="bob", status=TaskStatus.PENDING),
        TaskFilter(
            user_id="carol",
            conversation_id="c1",
            status=TaskStatus.COMPLETED,
            pattern=TaskPattern.ONCE,
            agent_name="echo",
        ),
        TaskFilter(user_id="nobody"),
    ]
    for flt in filters:
        expected = sorted(
            (
                t
                for t in tasks
                if all(
                    getattr(flt, name) is None or getattr(t, name) == getattr(flt, name)
                    for name in ("user_id", "conversation_id", "status", "pattern", "agent_name")
                )
            ),
            key=lambda t: (t.created_at, t.task_id),
            reverse=True,
        )
        for page_size in (1, 37, 500):
            if page_size == 1 and len(expected) > 200:
                continue
            walked = await _walk(store, flt, page_size)
            assert [t.task_id for t in walked] == [t.task_id for t in expected], (flt, page_size)


async def test_a_forged_cursor_is_refused(store: TaskStore) -> None:
    for bad in ("not-a-cursor", "e30", "WyJ4IiwxXQ"):
        with pytest.raises(InvalidCursor):
            await store.list_tasks(TaskFilter(), cursor=bad)


async def test_runs_add_update_list(store: TaskStore) -> None:
    task = make_task(pattern=TaskPattern.RECURRING, schedule_config={"interval_minutes": 1})
    await store.save(task)
    first = Run(task_id=task.task_id, scheduled_for=T0, started_at=T0, created_at=T0)
    assert await store.add_run(first)
    duplicate = Run(task_id=task.task_id, scheduled_for=T0, created_at=T0)
    assert not await store.add_run(duplicate)
    second = Run(
        task_id=task.task_id,
        scheduled_for=T0 + timedelta(minutes=1),
        created_at=T0 + timedelta(minutes=1),
    )
    assert await store.add_run(second)
    finished = T0 + timedelta(seconds=30)
    changes = {"status": RunStatus.COMPLETED, "finished_at": finished, "result": "ok"}
    assert await store.update_run(first.run_id, changes, expected=[RunStatus.RUNNING])
    assert not await store.update_run(
        first.run_id, {"status": RunStatus.FAILED}, expected=[RunStatus.RUNNING]
    )
    loaded = await store.load_run(first.run_id)
    assert loaded is not None
    assert (loaded.status, loaded.finished_at, loaded.result) == (
        RunStatus.COMPLETED,
        finished,
        "ok",
    )
    page = await store.list_runs(task.task_id, limit=1)
    assert [r.run_id for r in page.items] == [second.run_id]
    assert page.next_cursor is not None
    rest = await store.list_runs(task.task_id, limit=1, cursor=page.next_cursor)
    assert [r.run_id for r in rest.items] == [first.run_id]
    assert rest.next_cursor is None
    active = await store.runs_in_status([RunStatus.RUNNING])
    assert [r.run_id for r in active] == [second.run_id]
    either = await store.runs_in_status([RunStatus.COMPLETED, RunStatus.RUNNING])
    assert {r.run_id for r in either} == {first.run_id, second.run_id}


async def test_tasks_are_counted_by_status_through_writes(store: TaskStore) -> None:
    first, second, third = make_task(), make_task(), make_task()
    for task in (first, second, third):
        await store.save(task)
    assert await store.count_by_status() == {"pending": 3}
    assert await store.transition(first.task_id, TaskStatus.RUNNING)
    assert await store.transition(first.task_id, TaskStatus.COMPLETED)
    assert not await store.transition(first.task_id, TaskStatus.RUNNING)
    assert await store.transition(second.task_id, TaskStatus.CANCELLED)
    assert await store.count_by_status() == {"pending": 1, "completed": 1, "cancelled": 1}
    assert await store.delete(second.task_id)
    assert await store.count_by_status() == {"pending": 1, "completed": 1}


async def test_once_runs_are_told_apart_by_attempt(store: TaskStore) -> None:
    task = make_task()
    await store.save(task)
    assert await store.add_run(Run(task_id=task.task_id, attempt=1))
    assert await store.add_run(Run(task_id=task.task_id, attempt=2))
    runs = (await store.list_runs(task.task_id)).items
    assert sorted(r.attempt for r in runs) == [1, 2]


async def test_due_claims_take_armed_recurring_tasks_in_time_order(store: TaskStore) -> None:
    def recurring(minutes: int, **fields: object) -> Task:
        values: dict[str, object] = {
            "pattern": TaskPattern.RECURRING,
            "schedule_config": {"interval_minutes": 1},
            "status": TaskStatus.RUNNING,
            "next_run_at": T0 + timedelta(minutes=minutes),
        }
        values.update(fields)
        return make_task(**values)

    late = recurring(2)
    early = recurring(-1)
    future = recurring(10)
    paused = recurring(-5, paused=True)
    cancelled = recurring(-5, status=TaskStatus.CANCELLED)
    for task in (late, early, future, paused, cancelled):
        await store.save(task)
    assert await store.next_due_at() == early.next_run_at
    due = await claim_due(store, T0 + timedelta(minutes=2), lambda task: None)
    assert [t.task_id for t, _ in due] == [early.task_id, late.task_id], due
    assert await store.next_due_at() == future.next_run_at
    assert await store.check() is None


async def test_claim_due_claims_each_occurrence_once(store: TaskStore) -> None:
    tasks = [
        make_task(
            pattern=TaskPattern.RECURRING,
            schedule_config={"interval_minutes": 1},
            status=TaskStatus.RUNNING,
            next_run_at=T0 - timedelta(seconds=i),
        )
        for i in range(20)
    ]
    for task in tasks:
        await store.save(task)
    later = T0 + timedelta(minutes=1)

    def next_time(task: Task) -> datetime:
        return later

    first, second = await asyncio.gather(
        claim_due(store, T0, next_time, limit=50), claim_due(store, T0, next_time, limit=50)
    )
    claimed = [t.task_id for t, _ in first] + [t.task_id for t, _ in second]
    assert sorted(claimed) == sorted(t.task_id for t in tasks)
    dues = {t.task_id: due for t, due in [*first, *second]}
    assert dues == {t.task_id: t.next_run_at for t in tasks}
    assert await claim_due(store, T0, next_time) == []
    assert await store.next_due_at() == later


async def test_claim_pending_takes_each_orphan_once(store: TaskStore) -> None:
    # Idle is measured on the store's clock (the database's, on PostgreSQL): "now" here.
    now = datetime.now(UTC)
    old = [
        make_task(updated_at=now - timedelta(minutes=10), created_at=T0 + timedelta(seconds=i))
        for i in range(6)
    ]
    fresh = make_task(updated_at=now)
    running = make_task(status=TaskStatus.RUNNING, updated_at=now - timedelta(minutes=10))
    for task in [*old, fresh, running]:
        await store.save(task)
    idle = timedelta(minutes=5)
    first, second = await asyncio.gather(
        store.claim_pending(idle, limit=4), store.claim_pending(idle, limit=4)
    )
    claimed = [t.task_id for t in first] + [t.task_id for t in second]
    assert sorted(claimed) == sorted(t.task_id for t in old)
    assert await store.claim_pending(idle) == []  # touched: no longer orphans


async def test_create_stores_the_task_and_its_conversation_once(store: TaskStore) -> None:
    first = make_task(conversation_id="conv-new", user_id="alice")
    assert await store.create(first, conversation_title="Filings")
    second = make_task(conversation_id="conv-new", user_id="alice")
    assert not await store.create(second, conversation_title="ignored")
    assert await store.load(first.task_id) == first
    assert await store.load(second.task_id) == second
    assert await store.has_conversation("conv-new", user_id="alice")  # type: ignore[attr-defined]
    third = make_task(conversation_id="conv-new", user_id="bob")
    assert await store.create(third, conversation_title="bob's own")  # ids are per user


async def test_create_of_a_duplicate_stores_neither(store: TaskStore) -> None:
    task = make_task(conversation_id="conv-a")
    await store.create(task, conversation_title="a")
    again = make_task(task_id=task.task_id, conversation_id="conv-b", query="other")
    with pytest.raises(DuplicateTask):
        await store.create(again, conversation_title="b")
    assert not await store.has_conversation("conv-b")  # type: ignore[attr-defined]
    assert await store.load(task.task_id) == task


async def test_start_run_moves_a_pending_task_and_stores_the_run(store: TaskStore) -> None:
    task = make_task()
    await store.save(task)
    run = Run(task_id=task.task_id, attempt=1, started_at=T0, created_at=T0, owner="p1")
    assert await store.start_run(run, now=T0)
    loaded = await store.load(task.task_id)
    assert loaded is not None
    assert (loaded.status, loaded.attempt, loaded.started_at) == (TaskStatus.RUNNING, 1, T0)
    assert await store.load_run(run.run_id) == run
    # Not pending any more: a second start changes nothing.
    again = Run(task_id=task.task_id, attempt=2, created_at=T0)
    assert not await store.start_run(again, now=T0)
    assert await store.load_run(again.run_id) is None
    assert (await store.load(task.task_id)) == loaded


async def test_start_run_of_a_taken_attempt_changes_nothing(store: TaskStore) -> None:
    task = make_task()
    await store.save(task)
    assert await store.add_run(Run(task_id=task.task_id, attempt=1, created_at=T0))
    clash = Run(task_id=task.task_id, attempt=1, created_at=T0)
    assert not await store.start_run(clash, now=T0)
    loaded = await store.load(task.task_id)
    assert loaded is not None and (loaded.status, loaded.attempt) == (TaskStatus.PENDING, 0)
    assert await store.load_run(clash.run_id) is None


async def test_start_run_of_a_cancelled_or_unknown_task_answers_false(store: TaskStore) -> None:
    task = make_task(status=TaskStatus.CANCELLED)
    await store.save(task)
    assert not await store.start_run(Run(task_id=task.task_id, attempt=1))
    assert not await store.start_run(Run(task_id="no-such-task", attempt=1))
    assert (await store.list_runs(task.task_id)).items == []
    assert (await store.list_runs("no-such-task")).items == []


async def test_finish_run_closes_the_run_and_settles_the_task(store: TaskStore) -> None:
    task = make_task()
    await store.save(task)
    run = Run(task_id=task.task_id, attempt=1, created_at=T0)
    assert await store.start_run(run, now=T0)
    done_at = T0 + timedelta(seconds=3)
    closed, moved = await store.finish_run(
        run.run_id,
        {"status": RunStatus.COMPLETED, "finished_at": done_at, "result": "42"},
        task_id=task.task_id,
        target=TaskStatus.COMPLETED,
        expected=[TaskStatus.RUNNING],
        task_changes={"remote_task_ids": ["r-1"]},
        now=done_at,
    )
    assert (closed, moved) == (True, True)
    loaded_run = await store.load_run(run.run_id)
    assert loaded_run is not None
    assert (loaded_run.status, loaded_run.finished_at, loaded_run.result) == (
        RunStatus.COMPLETED,
        done_at,
        "42",
    )
    loaded = await store.load(task.task_id)
    assert loaded is not None
    assert (loaded.status, loaded.completed_at, loaded.remote_task_ids) == (
        TaskStatus.COMPLETED,
        done_at,
        ["r-1"],
    )
    # Both guards hold on their own: a closed run stays closed, a final task stays final.
    closed, moved = await store.finish_run(
        run.run_id,
        {"status": RunStatus.FAILED, "error": "late"},
        task_id=task.task_id,
        target=TaskStatus.FAILED,
        task_changes={"error_message": "late"},
    )
    assert (closed, moved) == (False, False)
    assert (await store.load_run(run.run_id)) == loaded_run
    assert (await store.load(task.task_id)) == loaded


async def test_finish_run_closes_the_run_when_the_task_refuses(store: TaskStore) -> None:
    task = make_task()
    await store.save(task)
    run = Run(task_id=task.task_id, attempt=1, created_at=T0)
    assert await store.start_run(run, now=T0)
    assert await store.transition(task.task_id, TaskStatus.CANCELLED)
    closed, moved = await store.finish_run(
        run.run_id,
        {"status": RunStatus.COMPLETED, "result": "too late"},
        task_id=task.task_id,
        target=TaskStatus.COMPLETED,
        expected=[TaskStatus.RUNNING],
    )
    assert (closed, moved) == (True, False)
    loaded = await store.load(task.task_id)
    assert loaded is not None and loaded.status is TaskStatus.CANCELLED
    loaded_run = await store.load_run(run.run_id)
    assert loaded_run is not None and loaded_run.status is RunStatus.COMPLETED


async def test_finish_run_refuses_an_unknown_run_field(store: TaskStore) -> None:
    task = make_task()
    await store.save(task)
    run = Run(task_id=task.task_id, attempt=1, created_at=T0)
    assert await store.start_run(run, now=T0)
    with pytest.raises(ValueError, match="task_id"):
        await store.finish_run(
            run.run_id, {"task_id": "x"}, task_id=task.task_id, target=TaskStatus.FAILED
        )
    loaded = await store.load(task.task_id)
    assert loaded is not None and loaded.status is TaskStatus.RUNNING


async def test_continue_run_takes_up_a_waiting_task_and_its_run(store: TaskStore) -> None:
    task = make_task()
    await store.save(task)
    run = Run(task_id=task.task_id, attempt=1, created_at=T0, owner="p1")
    assert await store.start_run(run, now=T0)
    assert await store.update_run(run.run_id, {"status": RunStatus.WAITING_INPUT})
    assert await store.transition(task.task_id, TaskStatus.WAITING_INPUT)
    later = T0 + timedelta(minutes=3)
    lease = later + timedelta(seconds=30)
    assert await store.continue_run(
        run.run_id, task_id=task.task_id, owner="p2", lease_expires_at=lease, now=later
    )
    loaded = await store.load(task.task_id)
    assert loaded is not None
    assert (loaded.status, loaded.updated_at, loaded.started_at) == (TaskStatus.RUNNING, later, T0)
    taken = await store.load_run(run.run_id)
    assert taken is not None
    assert (taken.status, taken.owner) == (RunStatus.RUNNING, "p2")
    if getattr(store, "single_server", True):
        assert taken.lease_expires_at == lease
    else:  # one clock: the database's now plus the 30 s meant, not the caller's moment
        assert taken.lease_expires_at is not None
        left = taken.lease_expires_at - datetime.now(UTC)
        assert timedelta(seconds=20) < left <= timedelta(seconds=30), left
    # A second reply finds nothing waiting, and changes nothing.
    assert not await store.continue_run(
        run.run_id, task_id=task.task_id, owner="p3", lease_expires_at=lease, now=later
    )
    again = await store.load_run(run.run_id)
    assert again is not None and again.owner == "p2"


async def test_continue_run_changes_nothing_unless_both_wait(store: TaskStore) -> None:
    task = make_task()
    await store.save(task)
    run = Run(task_id=task.task_id, attempt=1, created_at=T0, owner="p1")
    assert await store.start_run(run, now=T0)
    assert await store.transition(task.task_id, TaskStatus.WAITING_INPUT)
    # The task waits but its run does not: neither moves.
    assert not await store.continue_run(
        run.run_id, task_id=task.task_id, owner="p2", lease_expires_at=T0, now=T0
    )
    loaded = await store.load(task.task_id)
    assert loaded is not None and loaded.status is TaskStatus.WAITING_INPUT
    kept = await store.load_run(run.run_id)
    assert kept is not None and (kept.status, kept.owner) == (RunStatus.RUNNING, "p1")
    # The run waits but the task was cancelled: neither moves.
    assert await store.update_run(run.run_id, {"status": RunStatus.WAITING_INPUT})
    assert await store.transition(task.task_id, TaskStatus.CANCELLED)
    assert not await store.continue_run(
        run.run_id, task_id=task.task_id, owner="p2", lease_expires_at=T0, now=T0
    )
    kept = await store.load_run(run.run_id)
    assert kept is not None and (kept.status, kept.owner) == (RunStatus.WAITING_INPUT, "p1")
