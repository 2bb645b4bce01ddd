"""The store contract of the controls' fields (memory, SQLite, PostgreSQL): a task's pause note
and run time-out, and a run's deadline, kept by every write that stores or changes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskcell.abc import TaskStore
from taskcell.domain.models import Run, RunStatus, ScheduleConfig, Task, TaskPattern
from taskcell.domain.state_machine import TaskStatus

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def recurring(**fields: object) -> Task:
    values: dict[str, object] = {
        "query": "report",
        "agent_name": "clock",
        "status": TaskStatus.RUNNING,
        "pattern": TaskPattern.RECURRING,
        "schedule_config": ScheduleConfig(interval_minutes=5),
        "next_run_at": T0,
    }
    values.update(fields)
    return Task(**values)


async def test_note_and_time_out_round_trip(store: TaskStore) -> None:
    task = recurring(paused=True, pause_note="holiday until Monday ✓", run_timeout_seconds=90)
    await store.save(task)  # type: ignore[attr-defined]
    loaded = await store.load(task.task_id)
    assert loaded == task
    assert loaded is not None and loaded.pause_note == "holiday until Monday ✓"
    assert loaded.run_timeout_seconds == 90


async def test_a_task_without_them_reads_none(store: TaskStore) -> None:
    task = recurring()
    await store.save(task)  # type: ignore[attr-defined]
    loaded = await store.load(task.task_id)
    assert loaded is not None and loaded.pause_note is None and loaded.run_timeout_seconds is None


async def test_update_sets_and_clears_the_note_guarded(store: TaskStore) -> None:
    task = recurring()
    await store.save(task)  # type: ignore[attr-defined]
    changes = {"paused": True, "pause_note": "db migration"}
    assert await store.update(task.task_id, changes, expected=[TaskStatus.RUNNING])
    loaded = await store.load(task.task_id)
    assert loaded is not None and loaded.paused and loaded.pause_note == "db migration"
    # Refused by its guard: nothing written.
    refused = {"paused": False, "pause_note": None}
    assert not await store.update(task.task_id, refused, expected=[TaskStatus.CANCELLED])
    loaded = await store.load(task.task_id)
    assert loaded is not None and loaded.pause_note == "db migration"
    assert await store.update(task.task_id, refused, expected=[TaskStatus.RUNNING])
    loaded = await store.load(task.task_id)
    assert loaded is not None and not loaded.paused and loaded.pause_note is None
    assert await store.update(task.task_id, {"run_timeout_seconds": 30})
    loaded = await store.load(task.task_id)
    assert loaded is not None and loaded.run_timeout_seconds == 30


async def test_a_runs_deadline_round_trips(store: TaskStore) -> None:
    task = recurring()
    await store.save(task)  # type: ignore[attr-defined]
    deadline = T0 + timedelta(seconds=90)
    run = Run(
        task_id=task.task_id,
        scheduled_for=T0,
        started_at=T0,
        created_at=T0,
        owner="me",
        lease_expires_at=T0 + timedelta(seconds=30),
        deadline_at=deadline,
    )
    assert await store.add_run(run)
    loaded = await store.load_run(run.run_id)
    assert loaded is not None and loaded.deadline_at == deadline
    assert loaded.deadline_at.utcoffset() == timedelta(0)
    later = deadline + timedelta(seconds=5)
    assert await store.update_run(run.run_id, {"deadline_at": later}, fence=run.fence)
    loaded = await store.load_run(run.run_id)
    assert loaded is not None and loaded.deadline_at == later


async def test_a_once_runs_deadline_is_stored_with_its_start(store: TaskStore) -> None:
    task = Task(query="q", agent_name="echo", run_timeout_seconds=60)
    await store.save(task)  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    deadline = now + timedelta(seconds=60)
    run = Run(
        task_id=task.task_id,
        started_at=now,
        created_at=now,
        owner="me",
        lease_expires_at=now + timedelta(seconds=30),
        deadline_at=deadline,
    )
    assert await store.start_run(run, now=now)
    loaded = await store.load_run(run.run_id)
    assert loaded is not None and loaded.deadline_at == deadline
    assert loaded.status is RunStatus.RUNNING
