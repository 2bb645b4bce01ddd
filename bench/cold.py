"""Cold pages of a large SQLite file: a claim of many occurrences, and the pruner's writes.

On a copy of ``bench/scale.py``'s large database (1,000,000 tasks; build it with ``make
bench-scale`` first), in this process, without a server:

- **claims**: ``--probes`` recurring tasks made due at one instant, claimed by the store's
  ``start_due`` on a freshly opened store, first without a read-ahead (tasks whose pages nothing
  has read since the copy), then other tasks after ``read_ahead`` (what the scheduler does 2 s
  before they fall due). Printed: the milliseconds until the last run's ``started_at`` was
  stamped (what lateness counts) and the whole claim.
- **pruner**: :func:`taskcell.engine.pruner.prune` with the default policy for ``--seconds``,
  every write timed apart: its statements (the write lock held for them) and its commit.
  Printed: rows/s and the distribution of each.

With ``--drop-caches`` (root only) the file system's cache is emptied first, so every page of
the copy comes from the disk. Usage::

    python bench/cold.py [--db test-output/scale/scale-full.db] [--probes 50] [--seconds 40]
        [--drop-caches]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from retention import Holds
from taskcell.domain.models import Run, Task, utcnow
from taskcell.engine.pruner import PruneReport, RetentionPolicy, prune
from taskcell.engine.recurring import occurrence_run
from taskcell.stores import codec
from taskcell.stores.sqlite import SQLiteTaskStore


def arm(db: Path, count: int, offset: int) -> str:
    """Arm ``count`` recurring tasks (from ``offset`` in id order) due a second from now, every
    other schedule a day ahead; answers the due time."""
    due = codec.ts(utcnow() + timedelta(seconds=1)) or ""
    with sqlite3.connect(db) as conn:
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT task_id FROM tasks WHERE pattern = 'recurring' ORDER BY task_id"
                " LIMIT ? OFFSET ?",
                (count, offset),
            )
        ]
        later = codec.ts(utcnow() + timedelta(days=1))
        conn.execute("UPDATE tasks SET next_run_at = ? WHERE pattern = 'recurring'", (later,))
        conn.executemany(
            "UPDATE tasks SET next_run_at = ?, status = 'running', paused = 0 WHERE task_id = ?",
            [(due, task_id) for task_id in ids],
        )
    return due


async def claim(db: Path, count: int, offset: int, read_ahead: bool) -> tuple[float, float]:
    """Milliseconds until the last run was stamped, and for the whole claim."""
    due = codec.from_ts(arm(db, count, offset))
    assert due is not None
    store = SQLiteTaskStore(db)
    await store.open()
    try:
        if read_ahead:
            await store.read_ahead(due + timedelta(seconds=2))
        await asyncio.sleep(max(0.0, (due - utcnow()).total_seconds()))
        now = utcnow()
        stamps: list[float] = []

        def make_run(task: Task, at: Any) -> Run:
            stamps.append(time.perf_counter())
            return occurrence_run(task, at, "bench", timedelta(seconds=30))

        began = time.perf_counter()
        claimed = await store.start_due(
            now, lambda task: now + timedelta(days=1), make_run, skipped_reason="-", limit=500
        )
        took = time.perf_counter() - began
        assert len(claimed) == count, (len(claimed), count)
        return (stamps[-1] - began) * 1000, took * 1000
    finally:
        await store.close()


def spread(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    over = sum(value > 0.05 for value in ordered)
    return (
        f"{name}: {len(ordered)}, median {statistics.median(ordered) * 1000:.1f} ms,"
        f" p99 {p99 * 1000:.1f} ms, longest {ordered[-1] * 1000:.1f} ms, {over} over 50 ms"
    )


async def pruning(db: Path, seconds: float) -> None:
    store = SQLiteTaskStore(db)
    await store.open()
    holds = Holds(store)
    seen: list[PruneReport] = []
    began = time.monotonic()
    round_ = asyncio.create_task(
        prune(store, RetentionPolicy(), pause_ratio=1.0, progress=seen.append)
    )
    try:
        await asyncio.wait_for(asyncio.shield(round_), seconds)
    except TimeoutError:
        round_.cancel()
        try:
            await round_
        except asyncio.CancelledError:
            pass
    elapsed = time.monotonic() - began
    await store.close()
    rows = seen[-1].rows if seen else 0
    print(f"pruner, default policy, {elapsed:.0f} s: {rows:,} rows ({rows / elapsed:,.0f} rows/s)")
    print("  " + spread("writes' statements (the write lock held)", holds.statements))
    print("  " + spread("commits", holds.commits))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, default=Path("test-output/scale/scale-full.db"))
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--drop-caches", action="store_true")
    args = parser.parse_args()
    if not args.db.exists():
        raise SystemExit(f"no database at {args.db}: build it with make bench-scale")
    copy = args.db.with_name(f"{args.db.stem}-cold.db")
    began = time.monotonic()
    shutil.copyfile(args.db, copy)
    print(f"copied {args.db} in {time.monotonic() - began:.0f} s; load {os.getloadavg()[0]:.2f}")
    try:
        if args.drop_caches:
            subprocess.run(["sync"], check=True)
            Path("/proc/sys/vm/drop_caches").write_text("3\n", encoding="ascii")
            print("the file system's cache was emptied")
        for read_ahead, offset in ((False, 1000), (True, 3000)):
            stamped, whole = asyncio.run(claim(copy, args.probes, offset, read_ahead))
            print(
                f"claim of {args.probes} due at once, {'after' if read_ahead else 'without'}"
                f" a read-ahead: last run stamped at {stamped:.1f} ms, claim {whole:.1f} ms"
            )
        asyncio.run(pruning(copy, args.seconds))
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
