"""What the database holds at the end: tasks, runs and event logs, from PostgreSQL or SQLite.

Datetimes come back aware (UTC) from both; JSON columns and event bodies come back parsed.
``now`` is the database's clock on PostgreSQL and this process's on SQLite (one machine).
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

_TASKS = (
    "SELECT task_id, pattern, status, agent_name, paused, schedule_config, started_at,"
    " updated_at, error_message FROM tasks"
)
_RUNS = (
    "SELECT run_id, task_id, attempt, scheduled_for, started_at, finished_at, status, error,"
    " owner, lease_expires_at FROM runs"
)
_EVENTS = "SELECT task_id, seq, body FROM events ORDER BY task_id, seq"
_TIMES = ("started_at", "updated_at", "scheduled_for", "finished_at", "lease_expires_at")


@dataclass
class Snapshot:
    now: datetime
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    events: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def runs_of(self, task_id: str) -> list[dict[str, Any]]:
        return sorted(self.runs.get(task_id, []), key=lambda r: (r["attempt"], r["run_id"]))

    def log_of(self, task_id: str) -> list[dict[str, Any]]:
        return self.events.get(task_id, [])


def _normal(row: dict[str, Any]) -> dict[str, Any]:
    for key in _TIMES:
        value = row.get(key)
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if key in row:
            row[key] = value
    if isinstance(row.get("schedule_config"), str):
        row["schedule_config"] = json.loads(row["schedule_config"])
    return row


def _fill(
    snapshot: Snapshot,
    tasks: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    events: list[tuple[str, int, str]],
) -> Snapshot:
    for task in tasks:
        snapshot.tasks[task["task_id"]] = _normal(task)
    for run in runs:
        snapshot.runs[run["task_id"]].append(_normal(run))
    for task_id, seq, body in events:
        parsed = json.loads(body)
        parsed["_stored_seq"] = seq
        snapshot.events[task_id].append(parsed)
    return snapshot


async def from_postgres(url: str) -> Snapshot:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            now = await conn.fetchval("SELECT now()")
            tasks = [dict(r) for r in await conn.fetch(_TASKS)]
            runs = [dict(r) for r in await conn.fetch(_RUNS)]
            events = [(r["task_id"], r["seq"], r["body"]) for r in await conn.fetch(_EVENTS)]
    finally:
        await conn.close()
    return _fill(Snapshot(now), tasks, runs, events)


def from_sqlite(path: Path) -> Snapshot:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("BEGIN")
        now = datetime.now(UTC)
        tasks = [dict(r) for r in conn.execute(_TASKS)]
        runs = [dict(r) for r in conn.execute(_RUNS)]
        events = [(r["task_id"], r["seq"], r["body"]) for r in conn.execute(_EVENTS)]
        conn.execute("COMMIT")
    finally:
        conn.close()
    for task in tasks:
        task["paused"] = bool(task["paused"])
    return _fill(Snapshot(now), tasks, runs, events)
