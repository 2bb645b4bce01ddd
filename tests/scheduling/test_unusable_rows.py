"""A stored schedule the scheduler cannot use pauses its task; the scheduler goes on.

Rows are broken the way a hand edit or an older version could leave them (a daily time with a
trailing newline, a zone this machine does not know), straight in the SQLite file, and a real
engine with its scheduler loop is started on it, then started again (a restart).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from taskcell import Task, TaskPattern, TaskStatus
from taskcell.domain.events import Event, EventType, Role
from taskcell.engine.engine import Engine, RetryPolicy
from taskcell.engine.recurring import UnusableSchedule
from taskcell.engine.responses import RESULT
from taskcell.engine.scheduler import UNUSABLE_PREFIX
from taskcell.stores.sqlite import SQLiteTaskStore

from .conftest import make_registry
from .test_scheduler import controller

BROKEN = {
    "newline": {"daily_time": "09:05\n", "timezone": "UTC"},
    "zone": {"daily_time": "09:05", "timezone": "Mars/Olympus_Mons"},
    "nothing": {},
}


def recurring(**schedule: object) -> Task:
    return Task(
        query="tick",
        agent_name="quick",
        pattern=TaskPattern.RECURRING,
        schedule_config=schedule,
    )


def make_engine(path: Path) -> Engine:
    return Engine(
        SQLiteTaskStore(path), make_registry(), retry=RetryPolicy(0.01, 0.02), default_zone="UTC"
    )


async def first(engine: Engine, task_id: str, wanted: object) -> Event:
    """The task's first event that ``wanted(event)`` accepts (a time-out fails the test)."""

    async def read() -> Event:
        async for event in engine.subscribe(task_id):
            if wanted(event):  # type: ignore[operator]
                return event
        raise AssertionError("the event stream ended")

    return await asyncio.wait_for(read(), timeout=30)


@pytest.fixture
async def broken_db(tmp_path: Path) -> AsyncIterator[tuple[Path, dict[str, str], str]]:
    """A database with one good interval task and one broken row per kind in :data:`BROKEN`."""
    path = tmp_path / "broken.db"
    engine = make_engine(path)
    await engine.start(schedule=False)
    good = await engine.submit(recurring(interval_minutes=60))
    bad = {name: (await engine.submit(recurring(interval_minutes=60))).task_id for name in BROKEN}
    await engine.stop()
    with sqlite3.connect(path) as conn:
        for name, task_id in bad.items():
            conn.execute(
                "UPDATE tasks SET schedule_config = ? WHERE task_id = ?",
                (json.dumps(BROKEN[name]), task_id),
            )
    yield path, bad, good.task_id


@pytest.mark.timeout(120)
async def test_unusable_rows_pause_their_task_and_the_scheduler_goes_on(
    broken_db: tuple[Path, dict[str, str], str],
) -> None:
    path, bad, good_id = broken_db
    engine = make_engine(path)
    await engine.start()
    try:
        for name, task_id in bad.items():
            note = await first(
                engine,
                task_id,
                lambda e: e.event is EventType.MESSAGE and e.role is Role.SYSTEM,
            )
            assert note.payload is not None
            reason = str(note.payload["content"])
            assert reason.startswith(UNUSABLE_PREFIX), (name, reason)
            stored = await engine.service.require_task(task_id)
            assert (stored.status, stored.paused, stored.next_run_at) == (
                TaskStatus.RUNNING,
                True,
                None,
            ), name
            assert stored.error_message == reason
            content = await controller(engine, stored)
            assert (content["paused"], content["last_error"]) == (True, reason), content
            with pytest.raises(UnusableSchedule):
                await engine.resume(task_id)
        errors = {n: (await engine.service.require_task(t)).error_message for n, t in bad.items()}
        assert "daily_time must be HH:MM" in str(errors["newline"]), errors
        assert "Mars/Olympus_Mons" in str(errors["zone"]), errors
        result = await first(
            engine,
            good_id,
            lambda e: e.payload is not None and e.payload.get("component_type") == RESULT,
        )
        assert "tick for UTC" in str(result.payload), result.payload
        assert engine.supervisor.alive("scheduler"), engine.supervisor.failure
    finally:
        await engine.stop()

    restarted = make_engine(path)
    await restarted.start()
    try:
        await restarted.scheduler.fire_due()
        assert restarted.supervisor.alive("scheduler"), restarted.supervisor.failure
        for task_id in bad.values():
            assert (await restarted.service.require_task(task_id)).paused
    finally:
        await restarted.stop()
