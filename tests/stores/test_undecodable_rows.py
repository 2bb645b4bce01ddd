"""Stored task rows the store cannot decode, against every SQL store (DESIGN: no poison pills).

Rows are damaged with raw SQL the way a hand edit, a restore or a bug could leave them. The
memory store holds task objects, not rows, so it cannot hold such a row: it has no case here.
SQLite can hold anything in any column; PostgreSQL's typed columns refuse unparsable JSON and
datetimes, so its cases are JSON of the wrong shape and unknown status or pattern text.

What the store does with such a row:
- a claim (``start_due``, and ``taskcell.testing.claim_due`` over it) skips it with an ERROR log
  naming the task and the column, and disarms the task (``next_run_at`` NULL, paused,
  ``error_message`` saying why) in the claim's own guarded write, so it never comes up again;
- ``list_tasks`` leaves it out, with the same ERROR log; a page's cursor still
  moves past it;
- ``load`` answers the task with each field that failed cleared and ``error_message`` naming
  the columns and why, so its user can see it, delete it or cancel it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pg import empty_tables
from taskcell.abc import TaskFilter, TaskStore
from taskcell.domain.models import Run, ScheduleConfig, Task, TaskPattern
from taskcell.domain.state_machine import TaskStatus
from taskcell.stores.codec import UNDECODABLE_PREFIX
from taskcell.stores.postgres import PostgresTaskStore
from taskcell.stores.sqlite import SQLiteTaskStore
from taskcell.testing import claim_due

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Damage:
    kind: str
    column: str
    value: str
    #: Whether an armed, due task with this damage is still selected by a claim's SQL.
    claimable: bool = True

    def __str__(self) -> str:
        return f"{self.kind}-{self.column}"


DAMAGES = [
    Damage("sqlite", "schedule_config", '{"interval_minutes": 5'),
    Damage("sqlite", "metadata", "not json"),
    Damage("sqlite", "remote_task_ids", "{"),
    Damage("sqlite", "started_at", "yesterday"),
    Damage("sqlite", "next_run_at", "2026-01-99T00:00:00+00:00"),  # text order: due
    Damage("sqlite", "created_at", "2026-11-27T12:00:00"),  # no UTC offset
    Damage("sqlite", "status", "exploded", claimable=False),
    Damage("sqlite", "pattern", "weekly", claimable=False),
    Damage("postgres", "schedule_config", '"every day"'),
    Damage("postgres", "metadata", "[1, 2]"),
    Damage("postgres", "remote_task_ids", '{"r": 1}'),
    Damage("postgres", "status", "exploded", claimable=False),
    Damage("postgres", "pattern", "weekly", claimable=False),
]


@pytest.fixture(params=DAMAGES, ids=str)
async def damage(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Damage, TaskStore]]:
    """A damage case with an open store of its kind."""
    case: Damage = request.param
    url = request.getfixturevalue("postgres_database") if case.kind == "postgres" else None
    store: TaskStore
    if url is None:
        store = SQLiteTaskStore(tmp_path / "tasks.db")
    else:
        store = PostgresTaskStore(url)
        await empty_tables(store)
    await store.open()
    try:
        yield case, store
    finally:
        await store.close()


async def corrupt(store: TaskStore, task_id: str, column: str, value: str) -> None:
    """Write ``value`` into one column of a stored task, bypassing every check."""
    if isinstance(store, SQLiteTaskStore):
        sql = f"UPDATE tasks SET {column} = ? WHERE task_id = ?"
        await store.write(lambda conn: conn.execute(sql, (value, task_id)))
    else:
        assert isinstance(store, PostgresTaskStore)
        pool = await store.pool()
        await pool.execute(f"UPDATE tasks SET {column} = $1 WHERE task_id = $2", value, task_id)


def armed(task_id: str, *, created: datetime) -> Task:
    return Task(
        task_id=task_id,
        query="tick",
        agent_name="clock",
        status=TaskStatus.RUNNING,
        pattern=TaskPattern.RECURRING,
        schedule_config=ScheduleConfig(interval_minutes=5),
        next_run_at=T0 - timedelta(minutes=1),
        created_at=created,
        updated_at=created,
    )


async def good_and_bad(case: Damage, store: TaskStore) -> tuple[Task, str]:
    """A good armed task and a damaged one (created later: first in lists), both due at T0."""
    good = armed("a-good", created=T0 - timedelta(hours=2))
    await store.save(good)
    await store.save(armed("b-bad", created=T0 - timedelta(hours=1)))
    await corrupt(store, "b-bad", case.column, case.value)
    return good, "b-bad"


def a_minute_on(task: Task) -> datetime:
    return T0 + timedelta(minutes=1)


def decode_errors(caplog: pytest.LogCaptureFixture, task_id: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.ERROR and getattr(r, "task_id", None) == task_id
    ]


ClaimCall = Callable[[TaskStore], object]


async def claim_with_start_due(store: TaskStore) -> list[str]:
    def make_run(task: Task, due: datetime) -> Run:
        return Run(task_id=task.task_id, scheduled_for=due, owner="p1")

    return [
        t.task_id for t, _ in await store.start_due(T0, a_minute_on, make_run, skipped_reason="s")
    ]


async def claim_with_claim_due(store: TaskStore) -> list[str]:
    return [t.task_id for t, _ in await claim_due(store, T0, a_minute_on)]


@pytest.mark.parametrize("claim", [claim_with_start_due, claim_with_claim_due])
async def test_a_claim_skips_an_undecodable_row_and_disarms_its_task(
    damage: tuple[Damage, TaskStore],
    claim: Callable[[TaskStore], object],
    caplog: pytest.LogCaptureFixture,
) -> None:
    case, store = damage
    good, bad_id = await good_and_bad(case, store)
    caplog.set_level(logging.ERROR)

    claimed = await claim(store)  # type: ignore[misc]

    assert claimed == [good.task_id], f"claimed {claimed}"
    loaded = await store.load(bad_id)
    assert loaded is not None
    if not case.claimable:
        assert decode_errors(caplog, bad_id) == [], "a row the claim does not select is not read"
        return
    [record] = decode_errors(caplog, bad_id)
    assert getattr(record, "column", None) == case.column, record.__dict__
    assert (loaded.paused, loaded.next_run_at) == (True, None), loaded
    assert await claim(store) == [], "the good task's next time is later; the bad one disarmed"  # type: ignore[misc]
    assert await store.next_due_at() == T0 + timedelta(minutes=1), "only the good task is armed"


async def test_lists_leave_an_undecodable_row_out_and_page_past_it(
    damage: tuple[Damage, TaskStore], caplog: pytest.LogCaptureFixture
) -> None:
    case, store = damage
    good, bad_id = await good_and_bad(case, store)
    caplog.set_level(logging.ERROR)

    everything = await store.list_tasks(TaskFilter())
    assert [t.task_id for t in everything.items] == [good.task_id], everything
    if case.column != "created_at":  # a page ending on an unreadable created_at ends there
        first = await store.list_tasks(TaskFilter(), limit=1)  # the bad row alone: newest
        assert first.items == [] and first.next_cursor is not None, first
        second = await store.list_tasks(TaskFilter(), limit=1, cursor=first.next_cursor)
        assert [t.task_id for t in second.items] == [good.task_id], second
    records = decode_errors(caplog, bad_id)
    assert records and all(getattr(r, "column", None) == case.column for r in records), [
        r.__dict__ for r in records
    ]
    if case.claimable:
        due = await claim_due(store, T0, a_minute_on)
        assert [t.task_id for t, _ in due] == [good.task_id], due


async def test_load_answers_the_task_with_the_failed_field_cleared_and_why(
    damage: tuple[Damage, TaskStore],
) -> None:
    case, store = damage
    _, bad_id = await good_and_bad(case, store)

    loaded = await store.load(bad_id)

    assert loaded is not None
    message = loaded.error_message or ""
    assert message.startswith(UNDECODABLE_PREFIX) and case.column in message, message
    assert (loaded.task_id, loaded.query) == (bad_id, "tick"), loaded
    cleared = getattr(loaded, case.column)
    kept = {
        "status": TaskStatus.FAILED,  # an unknown status reads as failed (final: not run)
        "pattern": TaskPattern.ONCE,
        "metadata": {},
        "remote_task_ids": [],
        "created_at": loaded.updated_at,
    }
    assert cleared == kept.get(case.column), (case.column, cleared)
    assert loaded.model_dump(mode="json"), "the task serialises for the API"
