"""Queries whose cost must not grow with history (``bench/scale.py`` found each): SQLite answers
them by searching an index, never by scanning every run. Plans are SQLite's own answer
(``EXPLAIN QUERY PLAN``) for the store's statements with their values bound, as it runs them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from taskcell.domain.models import Task
from taskcell.domain.state_machine import TaskStatus
from taskcell.stores import sqlite as store_sql
from taskcell.stores.sqlite import SQLiteTaskStore


@pytest.fixture
def store(tmp_path: Path) -> SQLiteTaskStore:
    return SQLiteTaskStore(tmp_path / "plans.db")


def plan(store: SQLiteTaskStore, sql: str, args: tuple[object, ...]) -> list[str]:
    return [str(row[3]) for row in store.conn.execute(f"EXPLAIN QUERY PLAN {sql}", args)]


def test_start_up_recovery_searches_open_runs_only(store: SQLiteTaskStore) -> None:
    sql = store_sql.runs_in_status_sql(2, active=True)
    steps = plan(store, sql, ("running", "queued"))
    assert any("USING INDEX runs_active" in step for step in steps), steps
    assert not any(step.startswith("SCAN runs") for step in steps), steps


def test_the_runs_a_dead_process_ended_are_searched_by_owner_and_closer(
    store: SQLiteTaskStore,
) -> None:
    steps = plan(store, store_sql._RUNS_FINISHED_BY, ("host:1:dead", "2026-01-01"))
    assert any("USING INDEX runs_by_owner_finished (owner=?" in step for step in steps), steps
    assert any("USING INDEX runs_by_closer (closed_by=?" in step for step in steps), steps
    assert not any(step.startswith("SCAN") for step in steps), steps


def test_a_claimed_occurrence_looks_for_a_live_run_among_open_runs_only(
    store: SQLiteTaskStore,
) -> None:
    steps = plan(store, store_sql._LIVE_RUN, ("task", "2026-01-01"))
    assert steps == ["SEARCH runs USING INDEX runs_open_by_task (task_id=?)"], steps


def test_the_scheduler_reads_the_armed_schedules_in_time_order(store: SQLiteTaskStore) -> None:
    steps = plan(store, store_sql._NEXT_DUE, ())
    assert steps == ["SEARCH tasks USING INDEX tasks_due"], steps
    steps = plan(store, store_sql._DUE, ("2026-01-01", 500))
    assert steps[0] == "SEARCH tasks USING INDEX tasks_due (next_run_at<?)", steps


def test_retention_reads_a_recurring_tasks_cut_from_run_indexes_only(
    store: SQLiteTaskStore,
) -> None:
    """A round over 10,000 recurring tasks with a year of runs each: per task, a few index
    entries (its kept run, its oldest unfinished run, its oldest run), never its runs or
    events in full; removing reads only the runs made before the cut-off."""
    steps = plan(store, store_sql._LOG_CUTS, (99, 100, "", 200))
    assert steps[0] == "SEARCH t USING INDEX tasks_recurring (task_id>?)", steps
    runs = [step for step in steps if " runs " in f" {step} " or step.startswith("SEARCH runs")]
    assert runs and all("(task_id=?)" in step for step in runs), steps
    assert any("runs_unfinished_by_task" in step for step in runs), steps
    assert not any(step.startswith("SCAN") for step in steps), steps
    steps = plan(store, store_sql._PRUNE_RUNS, ("task", "2026-01-01", 10))
    assert "SEARCH runs USING INDEX runs_by_task (task_id=? AND created_at<?)" in steps, steps
    steps = plan(store, store_sql._PRUNE_EVENTS_BETWEEN, ("task", 1, 5))
    assert steps == ["SEARCH events USING PRIMARY KEY (task_id=? AND seq>? AND seq<?)"], steps


async def test_tasks_by_status_are_kept_by_the_file_and_counted_once_at_upgrade(
    tmp_path: Path,
) -> None:
    db = tmp_path / "counts.db"
    store = SQLiteTaskStore(db)
    tasks = [Task(query="q", agent_name="echo") for _ in range(3)]
    for task in tasks:
        await store.save(task)
    assert await store.transition(tasks[0].task_id, TaskStatus.CANCELLED)
    await store.close()
    # A file from before schema version 10: its tasks are counted when the version is applied.
    with sqlite3.connect(db) as conn:
        for trigger in ("insert", "update", "delete"):
            conn.execute(f"DROP TRIGGER task_counts_{trigger}")
        conn.execute("DROP TABLE task_counts")
        conn.execute("DROP INDEX runs_open_by_task")
        conn.execute("DELETE FROM schema_version WHERE version = 10")
        conn.execute("UPDATE tasks SET status = 'failed' WHERE task_id = ?", (tasks[1].task_id,))
    store = SQLiteTaskStore(db)
    try:
        assert await store.count_by_status() == {"pending": 1, "cancelled": 1, "failed": 1}
        # Another process's write (the CLI, a script) is counted too: the file keeps the counts.
        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM tasks WHERE task_id = ?", (tasks[2].task_id,))
        assert await store.count_by_status() == {"cancelled": 1, "failed": 1}
        assert plan(store, "SELECT status, tasks FROM task_counts WHERE tasks > 0", ()) == [
            "SCAN task_counts"
        ]
    finally:
        await store.close()
