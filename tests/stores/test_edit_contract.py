"""The edit contract (TaskStore.edit, task and run versions), run against every store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskcell.abc import TaskStore
from taskcell.domain.models import Run, RunStatus, ScheduleConfig, Task, TaskPattern
from taskcell.domain.state_machine import TaskStatus


def recurring(**fields: Any) -> Task:
    values: dict[str, Any] = {
        "query": "report",
        "agent_name": "echo",
        "pattern": TaskPattern.RECURRING,
        "status": TaskStatus.RUNNING,
        "schedule_config": ScheduleConfig(interval_minutes=5),
        "next_run_at": datetime.now(UTC) - timedelta(seconds=1),
    }
    values.update(fields)
    return Task(**values)


async def test_a_new_task_is_version_1_and_an_edit_adds_one(store: TaskStore) -> None:
    task = recurring()
    await store.save(task)  # type: ignore[attr-defined]
    assert (await store.load(task.task_id)).version == 1  # type: ignore[union-attr]
    seen: list[tuple[Task, datetime]] = []
    new_schedule = ScheduleConfig(cron="*/10 * * * *", timezone="UTC")

    def change(held: Task, now: datetime) -> dict[str, Any]:
        seen.append((held, now))
        return {"title": "renamed", "schedule_config": new_schedule, "metadata": {"k": [1]}}

    before = await store.clock()  # type: ignore[attr-defined]
    edited = await store.edit(task.task_id, change)
    assert edited is not None
    [(held, now)] = seen
    assert held.version == 1 and held.title == ""
    assert now.utcoffset() == timedelta(0) and now >= before - timedelta(seconds=1)
    assert (edited.version, edited.title, edited.updated_at) == (2, "renamed", now)
    assert edited.schedule_config == new_schedule and edited.metadata == {"k": [1]}
    loaded = await store.load(task.task_id)
    assert loaded == edited, (loaded, edited)


async def test_an_edit_of_an_unknown_task_answers_none(store: TaskStore) -> None:
    def change(held: Task, now: datetime) -> dict[str, Any]:
        raise AssertionError("not called for an unknown task")

    assert await store.edit("nobody", change) is None


async def test_a_refused_change_stores_nothing(store: TaskStore) -> None:
    task = recurring()
    await store.save(task)  # type: ignore[attr-defined]

    def refuse(held: Task, now: datetime) -> dict[str, Any]:
        raise LookupError("refused by the caller")

    with pytest.raises(LookupError):
        await store.edit(task.task_id, refuse)
    with pytest.raises(ValueError, match="status"):
        await store.edit(task.task_id, lambda held, now: {"status": TaskStatus.CANCELLED})
    loaded = await store.load(task.task_id)
    assert loaded == task, loaded
    # The store goes on: the next edit is written.
    edited = await store.edit(task.task_id, lambda held, now: {"query": "next"})
    assert edited is not None and (edited.version, edited.query) == (2, "next")


async def test_concurrent_edits_each_see_the_one_before(store: TaskStore) -> None:
    """Each edit reads and writes under one hold: twenty at once give versions 2..21 in
    some order, each change made on the task as the previous edit left it."""
    task = recurring(metadata={"count": 0})
    await store.save(task)  # type: ignore[attr-defined]

    def bump(held: Task, now: datetime) -> dict[str, Any]:
        return {"metadata": {"count": held.metadata["count"] + 1}}

    results = await asyncio.gather(*(store.edit(task.task_id, bump) for _ in range(20)))
    versions = sorted(r.version for r in results if r is not None)
    assert versions == list(range(2, 22)), versions
    loaded = await store.load(task.task_id)
    assert loaded is not None and loaded.version == 21 and loaded.metadata == {"count": 20}


async def test_runs_keep_the_version_they_ran(store: TaskStore) -> None:
    task = recurring()
    await store.save(task)  # type: ignore[attr-defined]
    await store.edit(task.task_id, lambda held, now: {"title": "v2"})
    due = task.next_run_at
    assert due is not None

    def make_run(claimed: Task, at: datetime) -> Run:
        return Run(task_id=claimed.task_id, scheduled_for=at, version=claimed.version, owner="p")

    [(claimed, run)] = await store.start_due(
        datetime.now(UTC), lambda t: due + timedelta(minutes=5), make_run, skipped_reason="x"
    )
    assert claimed.version == 2 and run is not None and run.version == 2
    stored = await store.load_run(run.run_id)
    assert stored is not None and stored.version == 2
    await store.update_run(run.run_id, {"status": RunStatus.COMPLETED})
    page = await store.list_runs(task.task_id)
    assert [r.version for r in page.items] == [2]


async def test_a_runs_metadata_keys_merge_into_an_edited_metadata(store: TaskStore) -> None:
    """``metadata_keys`` (what a run records) sets its keys and keeps the others: an edit of
    the metadata made while the run went on is not undone, in update, transition and
    finish_run alike; a None value removes its key."""
    task = recurring(metadata={"team": "a"})
    await store.save(task)  # type: ignore[attr-defined]
    await store.edit(task.task_id, lambda held, now: {"metadata": {"team": "b", "n": [1]}})
    keys = {"remote_context_id": "ctx", "resumable_remote_task_id": "r1"}
    assert await store.update(task.task_id, {"metadata_keys": keys, "remote_task_ids": ["r1"]})
    loaded = await store.load(task.task_id)
    assert loaded is not None and loaded.metadata == {"team": "b", "n": [1], **keys}
    gone = {"resumable_remote_task_id": None}
    assert await store.transition(
        task.task_id, TaskStatus.WAITING_INPUT, changes={"metadata_keys": gone}
    )
    loaded = await store.load(task.task_id)
    assert loaded is not None
    assert loaded.metadata == {"team": "b", "n": [1], "remote_context_id": "ctx"}
    run = Run(task_id=task.task_id, scheduled_for=datetime.now(UTC), owner="p")
    assert await store.add_run(run)
    closed, moved = await store.finish_run(
        run.run_id,
        {"status": RunStatus.COMPLETED},
        task_id=task.task_id,
        target=TaskStatus.CANCELLED,
        task_changes={"metadata_keys": {"remote_context_id": "ctx2"}},
    )
    assert closed and moved
    loaded = await store.load(task.task_id)
    assert loaded is not None
    assert loaded.metadata == {"team": "b", "n": [1], "remote_context_id": "ctx2"}


async def test_an_update_guarded_by_a_stale_version_changes_nothing(store: TaskStore) -> None:
    """``update(version=)``: a write computed from a task read before an edit is refused
    (resume uses it), one from the version in force goes through."""
    task = recurring(paused=True)
    await store.save(task)  # type: ignore[attr-defined]
    await store.edit(task.task_id, lambda held, now: {"title": "edited"})
    changes = {"paused": False}
    assert not await store.update(task.task_id, changes, version=1)
    assert (await store.load(task.task_id)).paused  # type: ignore[union-attr]
    assert await store.update(task.task_id, changes, expected=[TaskStatus.RUNNING], version=2)
    loaded = await store.load(task.task_id)
    assert loaded is not None and not loaded.paused and loaded.version == 2
