"""Retention on SQLite: the pruner's rows/s and its longest write (the write lock held).

Builds an SQLite file with a history to prune (``--once`` finished once tasks of ``--events``
events and two items each, finished 40 days ago; ``--recurring`` recurring tasks with ``--runs``
runs of 10 events each, one a day), copies it, then removes what retention removes (30 days,
the last 100 runs of a recurring task):

- taskcell: :func:`taskcell.engine.pruner.prune` (small batches that shrink to stay short);
- baseline: the same rows removed by one ``DELETE`` per kind in a single transaction, the
  obvious way, which holds the write lock for the whole of it.

Both files end with the same rows (checked). It prints rows/s and the longest write-lock hold
of each, with their ratios. A pruning write's hold is its statements' time plus its
``COMMIT``'s (wall clock, and the thread's CPU time beside it: on a loaded machine the wall
clock's tail is the scheduler's, not SQLite's); the machine's load average is printed too.
Usage::

    python bench/retention.py [--once 2000] [--events 50] [--recurring 50] [--runs 300]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from results import Row, write_rows
from taskcell.domain.events import ConversationItem, Event, EventType, Role
from taskcell.domain.models import Run, RunStatus, ScheduleConfig, Task, TaskPattern
from taskcell.domain.state_machine import TaskStatus
from taskcell.engine.pruner import RetentionPolicy, prune
from taskcell.stores import codec
from taskcell.stores.sqlite import SQLiteTaskStore

NOW = datetime.now(UTC)
DAY = timedelta(days=1)
POLICY = RetentionPolicy(days=30, runs=100)
TARGET_HOLD_MS = 50.0


def _event(task: Task, seq: int, at: datetime, run_id: str | None) -> Event:
    return Event(
        event=EventType.MESSAGE,
        task_id=task.task_id,
        conversation_id=task.conversation_id,
        thread_id=task.thread_id,
        item_id=f"{task.task_id}-{seq}",
        role=Role.AGENT,
        payload={"content": f"event {seq} " + "x" * 120},
        created_at=at,
        run_id=run_id,
        seq=seq,
    )


async def build(path: Path, once: int, events: int, recurring: int, runs: int) -> None:
    store = SQLiteTaskStore(path)
    await store.open()
    finished = NOW - 40 * DAY
    for number in range(once):
        task = Task(
            task_id=f"once-{number:07d}",
            query="summarise",
            agent_name="echo",
            status=TaskStatus.COMPLETED,
            created_at=finished - DAY,
            updated_at=finished,
            completed_at=finished,
        )
        await store.save(task)
        run = Run(task_id=task.task_id, finished_at=finished, status=RunStatus.COMPLETED)
        await store.add_run(run)
        items = [
            ConversationItem(
                item_id=f"{task.task_id}-item-{n}",
                conversation_id=task.conversation_id,
                thread_id=task.thread_id,
                task_id=task.task_id,
                run_id=run.run_id,
                role=Role.AGENT,
                event=EventType.MESSAGE,
                payload={"content": "answer"},
                created_at=finished,
                updated_at=finished,
            )
            for n in range(2)
        ]
        batch = [_event(task, s, finished - DAY, run.run_id) for s in range(1, events + 1)]
        await store.append_events(batch, items)
    for number in range(recurring):
        start = NOW - runs * DAY
        task = Task(
            task_id=f"rec-{number:05d}",
            query="report",
            agent_name="clock",
            pattern=TaskPattern.RECURRING,
            schedule_config=ScheduleConfig(interval_minutes=1440),
            status=TaskStatus.RUNNING,
            created_at=start,
            updated_at=start,
            next_run_at=NOW + DAY,
        )
        await store.save(task)
        for index in range(runs):  # as the engine does: each run, then its events
            at = start + index * DAY
            run = Run(
                task_id=task.task_id,
                scheduled_for=at,
                created_at=at,
                started_at=at,
                finished_at=at + timedelta(minutes=1),
                status=RunStatus.COMPLETED,
            )
            await store.add_run(run)
            batch = [
                _event(task, index * 10 + k, at + timedelta(seconds=k), run.run_id)
                for k in range(1, 11)
            ]
            await store.append_events(batch, [])
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    await store.close()


def counts(path: Path) -> tuple[int, ...]:
    with sqlite3.connect(path) as conn:
        return tuple(
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("tasks", "runs", "events", "conversation_items")
        )


class Holds:
    """Times each write of ``store``: its operation and its commit (wall and CPU), and, wall
    clock, each operation's statements and each commit apart."""

    def __init__(self, store: SQLiteTaskStore) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.statements: list[float] = []
        self.commits: list[float] = []
        self._op = (0.0, 0.0)
        write, commit = store.write, store._commit

        async def timed_write(operation: Any, *, atomic: bool = False) -> Any:
            def timed(conn: sqlite3.Connection) -> Any:
                wall, cpu = time.perf_counter(), time.thread_time()
                try:
                    return operation(conn)
                finally:
                    self._op = (time.perf_counter() - wall, time.thread_time() - cpu)
                    self.statements.append(self._op[0])

            return await write(timed, atomic=atomic)

        def timed_commit() -> None:
            wall, cpu = time.perf_counter(), time.thread_time()
            commit()
            self.commits.append(time.perf_counter() - wall)
            self.wall.append(self._op[0] + time.perf_counter() - wall)
            self.cpu.append(self._op[1] + time.thread_time() - cpu)
            self._op = (0.0, 0.0)

        store.write = timed_write  # type: ignore[method-assign]
        store._commit = timed_commit  # type: ignore[method-assign]


async def with_pruner(path: Path) -> tuple[int, float, Holds, dict[str, int]]:
    store = SQLiteTaskStore(path)
    await store.open()
    holds = Holds(store)
    try:
        report = await prune(store, POLICY)
        cuts = {
            row[0]: row[1]
            for row in store.conn.execute(
                "SELECT task_id, pruned_seq FROM tasks WHERE pattern = 'recurring'"
            )
        }
    finally:
        await store.close()
    return report.rows, report.seconds, holds, cuts


def with_one_transaction(path: Path, cuts: dict[str, int]) -> tuple[int, float]:
    """The baseline: the same rows, one DELETE per kind, in one transaction."""
    cutoff = codec.ts(NOW - timedelta(days=POLICY.days))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    once = "SELECT task_id FROM tasks WHERE pattern = 'once' AND completed_at < ?"
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    rows = conn.execute(f"DELETE FROM events WHERE task_id IN ({once})", (cutoff,)).rowcount
    rows += conn.execute(
        f"DELETE FROM conversation_items WHERE task_id IN ({once})", (cutoff,)
    ).rowcount
    conn.execute("CREATE TEMP TABLE cuts (task_id TEXT PRIMARY KEY, seq INTEGER)")
    conn.executemany("INSERT INTO cuts VALUES (?, ?)", cuts.items())
    rows += conn.execute(
        "DELETE FROM events WHERE seq <= (SELECT seq FROM cuts WHERE cuts.task_id = events.task_id)"
    ).rowcount
    rows += conn.execute(
        "DELETE FROM runs WHERE finished_at < ? AND task_id IN"
        " (SELECT task_id FROM tasks WHERE pattern = 'recurring')",
        (cutoff,),
    ).rowcount
    conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return rows, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--once", type=int, default=2000)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--recurring", type=int, default=50)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="taskcell-retention-") as tmp:
        ours, theirs = Path(tmp) / "pruned.db", Path(tmp) / "baseline.db"
        print(
            f"building: {args.once} once tasks x {args.events} events, "
            f"{args.recurring} recurring x {args.runs} runs x 10 events",
            flush=True,
        )
        asyncio.run(build(ours, args.once, args.events, args.recurring, args.runs))
        shutil.copy(ours, theirs)
        before = counts(ours)
        rows, seconds, holds, cuts = asyncio.run(with_pruner(ours))
        base_rows, base_seconds = with_one_transaction(theirs, cuts)
        if counts(ours) != counts(theirs) or rows != base_rows:
            print(f"MISMATCH: pruner {counts(ours)} {rows}, baseline {counts(theirs)} {base_rows}")
            sys.exit(1)
    rate, base_rate = rows / seconds, base_rows / base_seconds
    walls = sorted(x * 1000 for x in holds.wall)
    cpus = sorted(x * 1000 for x in holds.cpu)
    longest, p99, median = walls[-1], walls[int(len(walls) * 0.99)], statistics.median(walls)
    hold_ratio = longest / (base_seconds * 1000)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"rows before (tasks, runs, events, items): {before}; removed {rows}")
    print(
        f"pruner:   {rate:10,.0f} rows/s   {len(walls)} writes holding the lock: median"
        f" {median:.2f} ms, p99 {p99:.1f} ms, longest {longest:.1f} ms"
        f" (CPU: p99 {cpus[int(len(cpus) * 0.99)]:.1f} ms, longest {cpus[-1]:.1f} ms)"
    )
    print(
        f"baseline: {base_rate:10,.0f} rows/s   one transaction holding the lock"
        f" {base_seconds * 1000:.0f} ms"
    )
    print(f"ratio: throughput {rate / base_rate:.2f}x, longest lock hold {hold_ratio:.3f}x")
    write_rows(
        args.json,
        [
            Row(
                "pruner throughput",
                round(rate),
                "rows/s",
                round(base_rate),
                "one DELETE per kind",
                round(rate / base_rate, 3),
                "ratio >= 0.2",
                rate / base_rate >= 0.2,
            ),
            Row(
                "pruning write lock hold p99",
                round(p99, 2),
                "ms",
                round(base_seconds * 1000, 2),
                "one DELETE per kind",
                round(p99 / (base_seconds * 1000), 4),
                f"< {TARGET_HOLD_MS:g} ms",
                p99 < TARGET_HOLD_MS,
            ),
            Row("pruning write lock hold, longest", round(longest, 2), "ms"),
            Row("pruning write CPU, longest", round(cpus[-1], 2), "ms"),
        ],
    )


if __name__ == "__main__":
    main()
