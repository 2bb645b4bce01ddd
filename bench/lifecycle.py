"""Lifecycle and list benchmarks for the stores (run by ``make bench``).

A lifecycle is what ``TaskService`` does for one task: ``create_task`` (one transaction: the
task row, 22 columns, and its conversation row), ``start_task`` (a guarded UPDATE to running)
and ``complete_task`` (a guarded UPDATE to completed): three committed transactions, no events
(the engine's events are measured by bench/events.py). 5,000 lifecycles one at a time, and from
50 coroutines, on an SQLite file and in memory.

The baseline, the raw ``sqlite3`` module, does the same work as well as a hand-written program
can: the same file settings (WAL, ``synchronous=NORMAL``, the store's cache and checkpoint
pragmas), the same schema (taskcell's migrations: the same tables and indexes), and per lifecycle
the same three committed transactions (``BEGIN IMMEDIATE``; INSERT the task row and the
conversation row; ``COMMIT``, then each UPDATE in its own autocommit), one at a time, with
values built inline. An extra line, for context only, repeats the old baseline: a 5-column
table with no secondary index (far less to write per commit, so not the same work).

The machine is shared, so the measures are interleaved: in each round every measure has its own
new file and runs 250 lifecycles in turn (the order rotating) until each has run 5,000, so the
machine's other work weighs on all alike. Ratios are taken within a round; the median of the
rounds (3) is reported with its spread (min - max). Ids are made the same way on both sides
(``taskcell.domain.models.new_id``).

Then list_tasks pages filtered by user and status, first page and 90,000 deep, with 100,000
tasks stored (median of 20).

Targets: on the SQLite file, one coroutine >= 0.5x the baseline and 50 coroutines >= 0.8x;
in memory, one coroutine >= 20,000 lifecycles/s; every list page under 5 ms at any depth.
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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from results import Row, write_rows
from taskcell import InMemoryTaskStore, SQLiteTaskStore, Task, TaskService, TaskStatus
from taskcell.abc import TaskFilter, TaskStore
from taskcell.domain.models import new_id
from taskcell.stores.sqlite import apply_migrations

_TASK_INSERT = (
    "INSERT INTO tasks (task_id, title, query, conversation_id, thread_id, user_id, agent_name,"
    " status, pattern, schedule_config, paused, next_run_at, attempt, max_attempts,"
    " remote_task_ids, handoff_from_super_agent, created_at, started_at, completed_at,"
    " updated_at, error_message, metadata)"
    " VALUES (?, '', ?, ?, ?, 'default_user', 'echo', 'pending', 'once', NULL, 0, NULL, 0, 3,"
    " '[]', 0, ?, NULL, NULL, ?, NULL, '{}')"
)
_CONVERSATION_INSERT = (
    "INSERT INTO conversations VALUES (?, ?, 'default_user', ?) ON CONFLICT DO NOTHING"
)
_START = (
    "UPDATE tasks SET status = 'running', updated_at = ?, started_at = COALESCE(started_at, ?)"
    " WHERE task_id = ? AND status = 'pending'"
)
_COMPLETE = (
    "UPDATE tasks SET status = 'completed', updated_at = ?, completed_at = ?"
    " WHERE task_id = ? AND status = 'running'"
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


class Lifecycles(Protocol):
    """One measure: runs ``count`` lifecycles when asked, answers the seconds they took."""

    async def run(self, count: int) -> float: ...

    async def close(self) -> None: ...


class RawSQLite:
    """The baseline: the same three committed transactions per lifecycle, on the same schema
    and settings, with the sqlite3 module (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.conn = _connect(path)
        self.conn.execute("PRAGMA temp_store = MEMORY")
        self.conn.execute("PRAGMA cache_size = -65536")
        self.conn.execute("PRAGMA wal_autocheckpoint = 4000")
        apply_migrations(self.conn)

    async def run(self, count: int) -> float:
        execute = self.conn.execute
        start = time.perf_counter()
        for _ in range(count):
            task_id, conversation_id = new_id(), new_id()
            now = _now()
            execute("BEGIN IMMEDIATE")
            execute(_TASK_INSERT, (task_id, "benchmark", conversation_id, new_id(), now, now))
            execute(_CONVERSATION_INSERT, (conversation_id, "benchmark", now))
            execute("COMMIT")
            now = _now()
            execute(_START, (now, now, task_id))
            now = _now()
            execute(_COMPLETE, (now, now, task_id))
        return time.perf_counter() - start

    async def close(self) -> None:
        self.conn.close()


class MinimalTable:
    """The old baseline, for context: a 5-column table with only its primary key."""

    def __init__(self, path: Path) -> None:
        self.conn = _connect(path)
        self.conn.execute(
            "CREATE TABLE t (id TEXT PRIMARY KEY, query TEXT, status TEXT, created_at TEXT,"
            " updated_at TEXT)"
        )

    async def run(self, count: int) -> float:
        execute = self.conn.execute
        start = time.perf_counter()
        for _ in range(count):
            task_id = new_id()
            now = _now()
            execute("INSERT INTO t VALUES (?, 'q', 'pending', ?, ?)", (task_id, now, now))
            execute(
                "UPDATE t SET status = 'running', updated_at = ? WHERE id = ?"
                " AND status = 'pending'",
                (now, task_id),
            )
            execute(
                "UPDATE t SET status = 'completed', updated_at = ? WHERE id = ?"
                " AND status = 'running'",
                (now, task_id),
            )
        return time.perf_counter() - start

    async def close(self) -> None:
        self.conn.close()


class Taskcell:
    """``TaskService`` lifecycles on a store, from ``concurrency`` coroutines."""

    def __init__(self, store: TaskStore, concurrency: int) -> None:
        self.store = store
        self.service = TaskService(store)
        self.concurrency = concurrency

    async def one(self) -> None:
        task = await self.service.create_task(Task(query="benchmark", agent_name="echo"))
        assert await self.service.start_task(task.task_id)
        assert await self.service.complete_task(task.task_id)

    async def run(self, count: int) -> float:
        start = time.perf_counter()
        if self.concurrency == 1:
            for _ in range(count):
                await self.one()
        else:
            per_worker, extra = divmod(count, self.concurrency)

            async def worker(index: int) -> None:
                for _ in range(per_worker + (index < extra)):
                    await self.one()

            await asyncio.gather(*(worker(i) for i in range(self.concurrency)))
        return time.perf_counter() - start

    async def close(self) -> None:
        await self.store.close()


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


@dataclass
class Series:
    """One measure's rates over the rounds, and its ratios to the baseline of each round."""

    rates: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)

    def line(self, label: str, values: list[float], unit: str, digits: int) -> str:
        middle = statistics.median(values)
        return (
            f"{label}: {middle:10,.{digits}f} {unit} (median of {len(values)};"
            f" {min(values):,.{digits}f} - {max(values):,.{digits}f})"
        )


MEASURES = ("raw", "old", "sqlite-1", "sqlite-50", "memory-1", "memory-50")
LABELS = {
    "raw": "baseline raw sqlite3, same schema, one at a time",
    "old": "old baseline: 5-column table, no index (context) ",
    "sqlite-1": "taskcell SQLite file,  1 coroutine              ",
    "sqlite-50": "taskcell SQLite file, 50 coroutines             ",
    "memory-1": "taskcell in memory,     1 coroutine              ",
    "memory-50": "taskcell in memory,    50 coroutines             ",
}


async def open_measure(name: str, folder: Path) -> Lifecycles:
    path = folder / f"{name}-{uuid.uuid4().hex[:8]}.db"
    if name == "raw":
        return RawSQLite(path)
    if name == "old":
        return MinimalTable(path)
    kind, concurrency = name.split("-")
    store: TaskStore = SQLiteTaskStore(path) if kind == "sqlite" else InMemoryTaskStore()
    await store.open()
    return Taskcell(store, int(concurrency))


async def one_round(folder: Path, count: int, chunk: int) -> dict[str, float]:
    """Every measure on a new file, ``count`` lifecycles each, interleaved by ``chunk``
    (in a rotating order), so that the machine's other work weighs on all alike."""
    measures = {name: await open_measure(name, folder) for name in MEASURES}
    seconds = dict.fromkeys(MEASURES, 0.0)
    done = 0
    while done < count:
        step = min(chunk, count - done)
        shift = (done // chunk) % len(MEASURES)
        for name in MEASURES[shift:] + MEASURES[:shift]:
            seconds[name] += await measures[name].run(step)
        done += step
    for measure_ in measures.values():
        await measure_.close()
    return {name: count / seconds[name] for name in MEASURES}


async def main(
    count: int, chunk: int, stored: int, depth: int, rounds: int, json_path: Path | None
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="taskcell-bench-"))
    series = {name: Series() for name in MEASURES}
    print(
        f"{count:,} lifecycles per measure and round, {rounds} rounds, the measures interleaved"
        f" {chunk:,} lifecycles at a time:"
    )
    for round_ in range(rounds):
        rates = await one_round(folder, count, chunk)
        for name, rate in rates.items():
            series[name].rates.append(rate)
            series[name].ratios.append(rate / rates["raw"])
        print(
            f"  round {round_ + 1}: "
            + ", ".join(f"{name} {rates[name]:,.0f}" for name in MEASURES)
            + " lifecycles/s"
        )
    for name in MEASURES:
        entry = series[name]
        text = entry.line(LABELS[name], entry.rates, "lifecycles/s", 0)
        if name != "raw":
            ratios = entry.ratios
            text += (
                f"   ratio to the baseline {statistics.median(ratios):.2f}"
                f" ({min(ratios):.2f} - {max(ratios):.2f})"
            )
        print(text)
    rows: list[Row] = []
    raw = statistics.median(series["raw"].rates)
    for name, target in (("sqlite-1", 0.5), ("sqlite-50", 0.8)):
        ratio = statistics.median(series[name].ratios)
        rows.append(
            Row(
                measure=f"lifecycle, SQLite file, {name.split('-')[1]} coroutine(s)",
                taskcell=statistics.median(series[name].rates),
                unit="lifecycles/s",
                baseline=raw,
                baseline_name="raw sqlite3, same schema",
                ratio=ratio,
                target=f"ratio >= {target}",
                met=ratio >= target,
            )
        )
    memory = statistics.median(series["memory-1"].rates)
    rows.append(
        Row(
            measure="lifecycle, in memory, 1 coroutine",
            taskcell=memory,
            unit="lifecycles/s",
            target=">= 20,000/s",
            met=memory >= 20_000,
        )
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
        rows.append(
            Row(
                measure=f"list_tasks {label.strip()}, page {walked:,} deep",
                taskcell=deep,
                unit="ms",
                target="< 5 ms",
                met=max(first, deep) < 5,
            )
        )
    write_rows(json_path, rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=250, help="lifecycles per interleaved turn")
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--depth", type=int, default=90_000)
    parser.add_argument("--json", type=Path, help="write the summary rows to this file")
    args = parser.parse_args()
    asyncio.run(main(args.count, args.chunk, args.stored, args.depth, args.rounds, args.json))
