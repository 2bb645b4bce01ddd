"""Queries whose cost must not grow with history (``bench/scale.py`` found each): SQLite answers
them by searching an index, never by scanning every run. Plans are SQLite's own answer
(``EXPLAIN QUERY PLAN``) for the store's statements with their values bound, as it runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

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
