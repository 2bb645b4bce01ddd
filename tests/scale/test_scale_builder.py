"""The database builder of ``bench/scale.py`` at a very small size: the counts it promises, rows
the store reads back exactly as its codec writes them, and a manifest that a rerun reuses."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from taskcell.abc import TaskFilter
from taskcell.stores import codec
from taskcell.stores.sqlite import SQLiteTaskStore

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import scale_build  # bench/ is not a package: its folder is on the path above

TINY = scale_build.Scale(tasks=60, recurring=6, runs=174, events=696, stream_events=400)


def counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {
            table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("tasks", "runs", "events", "conversations", "conversation_items")
        }


def test_the_builder_writes_the_scale_it_is_asked_for(tmp_path: Path) -> None:
    db = tmp_path / "scale.db"
    manifest = scale_build.build_sqlite(db, TINY)
    assert counts(db) == {
        "tasks": 60,
        "runs": 174,
        "events": 696,
        "conversations": 60,
        "conversation_items": 60,
    }
    with sqlite3.connect(db) as conn:
        by_pattern = dict(conn.execute("SELECT pattern, COUNT(*) FROM tasks GROUP BY pattern"))
        armed = conn.execute(
            "SELECT COUNT(*) FROM tasks WHERE pattern = 'recurring' AND status = 'running'"
            " AND paused = 0 AND next_run_at IS NOT NULL"
        ).fetchone()[0]
        unfinished = conn.execute(
            "SELECT COUNT(*) FROM tasks WHERE pattern = 'once'"
            " AND status NOT IN ('completed', 'failed', 'cancelled')"
        ).fetchone()[0]
        stream = conn.execute(
            "SELECT COUNT(*), MIN(seq), MAX(seq) FROM events WHERE task_id = ?",
            (manifest.stream_task_id,),
        ).fetchone()
    assert by_pattern == {"once": 54, "recurring": 6}
    assert armed == 6, "every recurring task is armed"
    assert unfinished == 0, "a server starting on the file has nothing to resume"
    assert stream == (400, 1, 400)
    assert len(manifest.recurring_ids) == 6 and manifest.recurring_ids[0] == manifest.stream_task_id
    assert scale_build.built(db, TINY) == manifest, "a rerun reuses the database"
    assert scale_build.built(db, scale_build.SMALL) is None, "another scale is built anew"


async def test_every_row_is_what_the_store_writes_and_reads(tmp_path: Path) -> None:
    db = tmp_path / "scale.db"
    manifest = scale_build.build_sqlite(db, TINY)
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        for row in conn.execute("SELECT * FROM runs"):
            stored = tuple(row[name] for name in codec.RUN_COLUMNS)
            assert codec.run_values(codec.run_from_row(row)) == stored
        for row in conn.execute("SELECT task_id, seq, body FROM events"):
            event = codec.event_from_body(row["body"])
            assert (event.task_id, event.seq) == (row["task_id"], row["seq"])
            assert codec.event_body(event) == row["body"]
        for row in conn.execute("SELECT * FROM tasks"):
            assert codec.task_values(codec.task_from_row(row)) == tuple(
                row[name] for name in codec.TASK_COLUMNS
            )
    store = SQLiteTaskStore(db)
    try:
        page = await store.list_tasks(TaskFilter(user_id=scale_build.USER), limit=100)
        assert len(page.items) == 60
        runs = await store.list_runs(manifest.stream_task_id, limit=500)
        assert len(runs.items) == 100
        events = await store.read_events(manifest.stream_task_id, after=0, limit=500)
        assert [e.seq for e in events] == list(range(1, 401))
        assert {e.run_id for e in events} == {run.run_id for run in runs.items}
        assert await store.last_seq(manifest.stream_task_id) == 400
    finally:
        await store.close()


def test_each_run_records_where_its_events_begin(tmp_path: Path) -> None:
    """``runs.log_from`` is what the store's own trigger writes: the task's last seq when the
    run was made, so each run's events come right after it."""
    db = tmp_path / "scale.db"
    scale_build.build_sqlite(db, TINY)
    with sqlite3.connect(db) as conn:
        first_seq: dict[str, int] = {}
        for body, seq in conn.execute("SELECT body, seq FROM events"):
            run_id = codec.event_from_body(body).run_id
            assert run_id is not None
            first_seq[run_id] = min(seq, first_seq.get(run_id, seq))
        runs = conn.execute("SELECT run_id, log_from FROM runs").fetchall()
    assert len(runs) == TINY.runs
    assert all(log_from == first_seq[run_id] - 1 for run_id, log_from in runs)


def test_a_scale_that_does_not_divide_is_refused() -> None:
    with pytest.raises(ValueError, match="4 a run"):
        scale_build.Scale(tasks=10, recurring=2, runs=20, events=70, stream_events=8).check()
