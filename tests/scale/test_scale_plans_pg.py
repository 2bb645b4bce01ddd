"""PostgreSQL statements whose cost must not grow with history (``bench/scale.py --postgres``
found each): tasks by status are summed from the changes task writes append (schema version
15), never counted over every task, and stay exact while writers and folds race."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pg import empty_tables
from taskcell.domain.models import Task
from taskcell.domain.state_machine import TaskStatus
from taskcell.stores import postgres as store_sql
from taskcell.stores.postgres import PostgresTaskStore

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def store(postgres_database: str) -> AsyncIterator[PostgresTaskStore]:
    made = PostgresTaskStore(postgres_database, min_size=1, max_size=8)
    await empty_tables(made)
    try:
        yield made
    finally:
        await made.close()


def relations(plan: Any) -> set[str]:
    """Every relation a JSON plan reads or writes."""
    found: set[str] = set()
    if isinstance(plan, dict):
        if "Relation Name" in plan:
            found.add(plan["Relation Name"])
        for value in plan.values():
            found |= relations(value)
    elif isinstance(plan, list):
        for value in plan:
            found |= relations(value)
    return found


async def grouped(store: PostgresTaskStore) -> dict[str, int]:
    """Tasks by status counted over every task: what the sums must equal."""
    rows = await (await store.pool()).fetch("SELECT status, count(*) FROM tasks GROUP BY status")
    return {row["status"]: row["count"] for row in rows}


async def change_rows(store: PostgresTaskStore) -> int:
    return int(await (await store.pool()).fetchval("SELECT count(*) FROM task_count_changes"))


async def test_tasks_by_status_are_summed_without_reading_the_tasks(
    store: PostgresTaskStore,
) -> None:
    for _ in range(3):
        await store.save(Task(query="q", agent_name="echo"))
    text = await (await store.pool()).fetchval(
        f"EXPLAIN (FORMAT JSON) {store_sql._COUNT_BY_STATUS}"
    )
    read = relations(json.loads(text))
    assert "tasks" not in read, read
    assert read == {"task_count_changes"}, read
    assert await store.count_by_status() == {"pending": 3}


async def test_a_count_and_a_heartbeat_fold_the_changes_to_a_row_a_status(
    store: PostgresTaskStore,
) -> None:
    tasks = [Task(query="q", agent_name="echo") for _ in range(20)]
    for task in tasks:
        await store.save(task)
    for task in tasks[:5]:
        assert await store.transition(task.task_id, TaskStatus.CANCELLED)
    assert await store.delete(tasks[5].task_id)
    assert await change_rows(store) > 2
    assert await store.count_by_status() == {"pending": 14, "cancelled": 5}
    assert await change_rows(store) == 2, "one row a status with tasks"
    assert await store.transition(tasks[6].task_id, TaskStatus.CANCELLED)
    await store.heartbeat("host:1:test")
    assert await change_rows(store) == 2
    assert await store.count_by_status() == {"pending": 13, "cancelled": 6} == await grouped(store)


async def test_counts_stay_exact_while_writers_counts_and_heartbeats_race(
    store: PostgresTaskStore,
) -> None:
    async def writer(index: int) -> None:
        for round_ in range(15):
            task = Task(query=f"{index}-{round_}", agent_name="echo")
            await store.save(task)
            if round_ % 3 == 1:
                await store.transition(task.task_id, TaskStatus.CANCELLED)
            elif round_ % 3 == 2:
                await store.delete(task.task_id)

    async def reader(index: int) -> None:
        for _ in range(30):
            if index % 2:
                await store.heartbeat(f"host:{index}:test")
            else:
                await store.count_by_status()

    await asyncio.gather(*(writer(k) for k in range(4)), *(reader(k) for k in range(4)))
    assert await store.count_by_status() == await grouped(store) == {"pending": 20, "cancelled": 20}
    assert await change_rows(store) == 2


async def test_a_database_from_before_version_15_counts_its_tasks_once_at_upgrade(
    postgres_database: str, store: PostgresTaskStore
) -> None:
    tasks = [Task(query="q", agent_name="echo") for _ in range(3)]
    for task in tasks:
        await store.save(task)
    assert await store.transition(tasks[0].task_id, TaskStatus.FAILED)
    await (await store.pool()).execute(
        "DROP TABLE task_count_changes; DROP FUNCTION task_count_changes() CASCADE;"
        " DELETE FROM schema_version WHERE version = 15"
    )
    await store.close()
    again = PostgresTaskStore(postgres_database, min_size=1, max_size=2)
    try:
        assert await again.count_by_status() == {"pending": 2, "failed": 1}
        await again.save(Task(query="q", agent_name="echo"))
        assert await again.count_by_status() == {"pending": 3, "failed": 1}
    finally:
        await again.close()
