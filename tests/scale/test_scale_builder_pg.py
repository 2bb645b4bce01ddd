"""The PostgreSQL builder of ``bench/scale.py --postgres`` at a very small size, in a database of
its own on the test server: the counts it promises, rows the store reads back exactly as its
codec writes them (``dialect="postgres"``), runs that say where their events begin, and a
manifest (the database's comment) that a rerun reuses."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from pg import database_url
from taskcell.abc import TaskFilter
from taskcell.stores import codec
from taskcell.stores.postgres import PostgresTaskStore

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import scale_build  # bench/ is not a package: its folder is on the path above
import scale_build_pg

pytestmark = pytest.mark.timeout(120)

TINY = scale_build.Scale(tasks=60, recurring=6, runs=174, events=696, stream_events=400)
#: Task columns PostgreSQL keeps as JSONB: read back in its own spelling, compared decoded.
JSONB = {"schedule_config", "remote_task_ids", "metadata"}


@pytest.fixture
async def built(postgres_server: str) -> AsyncIterator[tuple[str, scale_build.Manifest]]:
    """A throw-away database holding the TINY history, and its manifest; dropped after."""
    url = database_url(postgres_server, f"taskcell_t_scale_{uuid.uuid4().hex[:12]}")
    try:
        manifest = await asyncio.to_thread(scale_build_pg.build_postgres, url, TINY)
        yield url, manifest
    finally:
        admin = await asyncpg.connect(postgres_server)
        try:
            await admin.execute(
                f"DROP DATABASE IF EXISTS {scale_build_pg.database_name(url)} WITH (FORCE)"
            )
        finally:
            await admin.close()


def decoded(name: str, value: Any) -> Any:
    return json.loads(value) if name in JSONB and isinstance(value, str) else value


async def test_the_builder_writes_the_scale_it_is_asked_for(
    built: tuple[str, scale_build.Manifest],
) -> None:
    url, manifest = built
    conn = await asyncpg.connect(url)
    try:
        counts = {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")
            for table in ("tasks", "runs", "events", "conversations", "conversation_items")
        }
        by_pattern = {
            row["pattern"]: row["count"]
            for row in await conn.fetch("SELECT pattern, count(*) FROM tasks GROUP BY pattern")
        }
        armed = await conn.fetchval(
            "SELECT count(*) FROM tasks WHERE pattern = 'recurring' AND status = 'running'"
            " AND NOT paused AND next_run_at IS NOT NULL"
        )
        unfinished = await conn.fetchval(
            "SELECT count(*) FROM tasks WHERE pattern = 'once'"
            " AND status NOT IN ('completed', 'failed', 'cancelled')"
        )
        stream = await conn.fetchrow(
            "SELECT count(*), min(seq), max(seq) FROM events WHERE task_id = $1",
            manifest.stream_task_id,
        )
    finally:
        await conn.close()
    assert counts == {
        "tasks": 60,
        "runs": 174,
        "events": 696,
        "conversations": 60,
        "conversation_items": 60,
    }
    assert by_pattern == {"once": 54, "recurring": 6}
    assert armed == 6, "every recurring task is armed"
    assert unfinished == 0, "a server starting on the database has nothing to resume"
    assert stream is not None and tuple(stream) == (400, 1, 400)
    assert len(manifest.recurring_ids) == 6 and manifest.recurring_ids[0] == manifest.stream_task_id
    assert await asyncio.to_thread(scale_build_pg.built, url, TINY) == manifest, "reused"
    assert await asyncio.to_thread(scale_build_pg.built, url, scale_build.SMALL) is None


async def test_every_row_is_what_the_store_writes_and_reads(
    built: tuple[str, scale_build.Manifest],
) -> None:
    url, manifest = built
    conn = await asyncpg.connect(url)
    try:
        for row in await conn.fetch("SELECT * FROM runs"):
            stored = tuple(row[name] for name in codec.RUN_COLUMNS)
            assert codec.run_values(codec.run_from_row(row), dialect="postgres") == stored
        for row in await conn.fetch("SELECT task_id, seq, body FROM events"):
            event = codec.event_from_body(row["body"])
            assert (event.task_id, event.seq) == (row["task_id"], row["seq"])
            assert codec.event_body(event) == row["body"]
        for row in await conn.fetch("SELECT * FROM tasks"):
            values = codec.task_values(codec.task_from_row(row), dialect="postgres")
            assert [decoded(n, v) for n, v in zip(codec.TASK_COLUMNS, values, strict=True)] == [
                decoded(name, row[name]) for name in codec.TASK_COLUMNS
            ]
            assert row["log_closed"] is (row["pattern"] == "once")
        for row in await conn.fetch("SELECT * FROM conversation_items"):
            stored = tuple(row[name] for name in codec.ITEM_COLUMNS)
            assert codec.item_values(codec.item_from_row(row), dialect="postgres") == stored
    finally:
        await conn.close()
    store = PostgresTaskStore(url, min_size=1, max_size=2)
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


async def test_each_run_records_where_its_events_begin(
    built: tuple[str, scale_build.Manifest],
) -> None:
    """``runs.log_from`` is what the store's trigger would write: the task's last seq when the
    run was made, so each run's events come right after it."""
    url, _ = built
    conn = await asyncpg.connect(url)
    try:
        first_seq: dict[str, int] = {}
        for row in await conn.fetch("SELECT body, seq FROM events"):
            run_id = codec.event_from_body(row["body"]).run_id
            assert run_id is not None
            first_seq[run_id] = min(row["seq"], first_seq.get(run_id, row["seq"]))
        runs = await conn.fetch("SELECT run_id, log_from FROM runs")
    finally:
        await conn.close()
    assert len(runs) == TINY.runs
    assert all(row["log_from"] == first_seq[row["run_id"]] - 1 for row in runs)


def test_a_database_name_is_a_plain_identifier() -> None:
    assert scale_build_pg.database_name("postgresql://u@h:5432/taskcell_scale") == "taskcell_scale"
    with pytest.raises(ValueError, match="identifier"):
        scale_build_pg.database_name("postgresql://u@h/bad-name; DROP")
