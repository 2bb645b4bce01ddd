"""Lifecycle and list benchmarks for the stores (run by ``make bench``).

Prints ops/s for create -> start -> complete of 5,000 tasks (one at a time, and from 50
coroutines) on an SQLite file and in memory, beside a baseline in the same process: the raw
``sqlite3`` module doing the same three committed statements. Then list_tasks pages filtered by
user and status, first page and 90,000 deep, with 100,000 tasks stored (median of 20).

Targets: >= 3,000 lifecycles/s one at a time on the SQLite file; more with 50 coroutines than one;
every list page under 5 ms at any depth.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from taskcell import InMemoryTaskStore, SQLiteTaskStore, Task, TaskService, TaskStatus
from taskcell.abc import TaskFilter, TaskStore


def raw_sqlite_baseline(path: Path, count: int) -> float:
    """create -> start -> complete as three committed statements with the sqlite3 module."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE t (id TEXT PRIMARY KEY, query TEXT, status TEXT, created_at TEXT,"
        " updated_at TEXT)"
    )
    start = time.perf_counter()
    for _ in range(count):
        task_id = uuid.uuid4().hex
        now = datetime.now(UTC).isoformat()
        conn.execute("INSERT INTO t VALUES (?, 'q', 'pending', ?, ?)", (task_id, now, now))
        conn.execute(
            "UPDATE t SET status = 'running', updated_at = ? WHERE id = ? AND status = 'pending'",
            (now, task_id),
        )
        conn.execute(
            "UPDATE t SET status = 'completed', updated_at = ? WHERE id = ? AND status = 'running'",
            (now, task_id),
        )
    elapsed = time.perf_counter() - start
    conn.close()
    return count / elapsed


async def lifecycles(service: TaskService, count: int, concurrency: int) -> float:
    async def one() -> None:
        task = await service.create_task(Task(query="benchmark", agent_name="echo"))
        assert await service.start_task(task.task_id)
        assert await service.complete_task(task.task_id)

    start = time.perf_counter()
    if concurrency == 1:
        for _ in range(count):
            await one()
    else:
        per_worker = count // concurrency

        async def worker() -> None:
            for _ in range(per_worker):
                await one()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - start)


async def fill(store: TaskStore, count: int) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    batch: list[Task] = []
    for i in range(count):
        user = "alice" if i % 50 else "bob"
        status = TaskStatus.COMPLETED if i % 25 else TaskStatus.FAILED
        batch.append(
            Task(
                query="stored",
                agent_name="echo",
                user_id=user,
                status=status,
                created_at=base + timedelta(milliseconds=i),
            )
        )
        if len(batch) == 2000:
            await asyncio.gather(*(store.save(t) for t in batch))
            batch = []
    await asyncio.gather(*(store.save(t) for t in batch))


async def median_ms(call: Callable[[], object], repeats: int = 20) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        if asyncio.iscoroutine(result):
            await result
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def list_pages(store: TaskStore, stored: int, depth: int) -> tuple[float, float, int]:
    await fill(store, stored)
    flt = TaskFilter(user_id="alice", status=TaskStatus.COMPLETED)
    cursor: str | None = None
    walked = 0
    while walked < depth:
        page = await store.list_tasks(flt, limit=500, cursor=cursor)
        walked += len(page.items)
        cursor = page.next_cursor
        assert cursor is not None
    first = await median_ms(lambda: store.list_tasks(flt, limit=50))
    deep = await median_ms(lambda: store.list_tasks(flt, limit=50, cursor=cursor))
    return first, deep, walked


async def main(count: int, stored: int, depth: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="taskcell-bench-"))
    baseline = raw_sqlite_baseline(folder / "raw.db", count)
    print(f"baseline raw sqlite3, one at a time:      {baseline:9,.0f} lifecycles/s")
    for label, make in (
        ("SQLite file", lambda n: SQLiteTaskStore(folder / f"bench-{n}.db")),
        ("in memory  ", lambda n: InMemoryTaskStore()),
    ):
        for concurrency in (1, 50):
            store: TaskStore = make(concurrency)
            rate = await lifecycles(TaskService(store), count, concurrency)
            await store.close()
            print(
                f"taskcell {label}, {concurrency:2d} coroutine(s): {rate:9,.0f} lifecycles/s"
                f"   ratio to raw sqlite3: {rate / baseline:.2f}"
            )
    for label, list_store in (
        ("SQLite file", SQLiteTaskStore(folder / "list.db")),
        ("in memory  ", InMemoryTaskStore()),
    ):
        first, deep, walked = await list_pages(list_store, stored, depth)
        await list_store.close()
        print(
            f"list_tasks {label} (user+status, {stored:,} stored): first page {first:.2f} ms,"
            f" page {walked:,} deep {deep:.2f} ms (median of 20)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--depth", type=int, default=90_000)
    args = parser.parse_args()
    asyncio.run(main(args.count, args.stored, args.depth))
