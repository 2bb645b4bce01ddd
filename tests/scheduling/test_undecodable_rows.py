"""A stored row the store cannot decode never stops the scheduler, nor any listing.

Rows are damaged straight in the SQLite file (JSON that does not parse, a datetime that does
not): a real engine with its scheduler loop runs on it, pauses each damaged task with the
reason, and goes on firing the good one; listings leave the damaged rows out and reading one
answers it with the failed field cleared and why.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from taskcell.abc import TaskFilter
from taskcell.engine.recurring import UnusableSchedule
from taskcell.engine.responses import RESULT
from taskcell.stores.codec import UNDECODABLE_PREFIX

from .test_unusable_rows import first, make_engine, recurring

#: Column → the damage written into it.
DAMAGED = {
    "schedule_config": '{"interval_minutes": 60',
    "metadata": "{not json",
    "remote_task_ids": "[",
    "next_run_at": "2026-01-99T00:00:00+00:00",  # due by text order, not a date
}


@pytest.mark.timeout(120)
async def test_undecodable_rows_are_paused_and_the_scheduler_serves_the_others(
    tmp_path: Path,
) -> None:
    path = tmp_path / "damaged.db"
    engine = make_engine(path)
    await engine.start(schedule=False)
    bad: dict[str, str] = {}
    for column in DAMAGED:
        bad[column] = (await engine.submit(recurring(interval_minutes=60))).task_id
    good = await engine.submit(recurring(interval_minutes=60))
    await engine.stop()
    with sqlite3.connect(path) as conn:
        for column, task_id in bad.items():
            conn.execute(
                f"UPDATE tasks SET {column} = ? WHERE task_id = ?", (DAMAGED[column], task_id)
            )
        # Every task due now: the damaged ones are claimed first.
        conn.execute(
            "UPDATE tasks SET next_run_at = '2026-01-01T00:00:00.000000+00:00' WHERE task_id = ?",
            (good.task_id,),
        )

    engine = make_engine(path)
    await engine.start()
    try:
        result = await first(
            engine,
            good.task_id,
            lambda e: e.payload is not None and e.payload.get("component_type") == RESULT,
        )
        assert "tick for UTC" in str(result.payload), result.payload
        assert engine.supervisor.alive("scheduler"), engine.supervisor.failure
        await engine.scheduler.fire_due()  # again: nothing damaged comes up a second time
        assert engine.supervisor.alive("scheduler"), engine.supervisor.failure
        for column, task_id in bad.items():
            shown = await engine.service.require_task(task_id)
            message = shown.error_message or ""
            assert message.startswith(UNDECODABLE_PREFIX) and column in message, (column, message)
        with pytest.raises(UnusableSchedule):  # a 409 saying why, not a 500
            await engine.resume(bad["schedule_config"])
        listed = await engine.store.list_tasks(TaskFilter())
        # The disarm cleared the unreadable next_run_at, so that task reads again (paused).
        readable = {good.task_id, bad["next_run_at"]}
        assert {t.task_id for t in listed.items} == readable, listed
    finally:
        await engine.stop()
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT task_id, paused, next_run_at, error_message FROM tasks WHERE task_id != ?",
            (good.task_id,),
        ).fetchall()
    for task_id, paused, next_run_at, reason in rows:
        column = next(c for c, t in bad.items() if t == task_id)
        assert (paused, next_run_at) == (1, None), (column, paused, next_run_at)
        assert reason.startswith(UNDECODABLE_PREFIX) and "paused" in reason, (column, reason)
