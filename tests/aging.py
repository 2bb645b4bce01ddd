"""Making a process look silent for a while, on any store (tests only).

Every lease and heartbeat decision uses the store's clock, which a test cannot move on
PostgreSQL; so a test that needs "a process last heard from ten minutes ago" moves that
process's record back instead, in the store's own table.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from taskcell.abc import Store
from taskcell.stores import codec
from taskcell.stores.memory import InMemoryTaskStore
from taskcell.stores.postgres import PostgresTaskStore
from taskcell.stores.sqlite import SQLiteTaskStore


async def backdate_process(store: Store, process_id: str, by: timedelta) -> None:
    """Move ``process_id``'s ``started_at`` and ``heartbeat_at`` back by ``by``."""
    if isinstance(store, InMemoryTaskStore):
        known = store._processes[process_id]
        store._processes[process_id] = dataclasses.replace(
            known, started_at=known.started_at - by, heartbeat_at=known.heartbeat_at - by
        )
    elif isinstance(store, SQLiteTaskStore):
        row = store.conn.execute(
            "SELECT started_at, heartbeat_at FROM processes WHERE process_id = ?", (process_id,)
        ).fetchone()
        assert row is not None, f"no process {process_id}"
        started, beat = (codec.from_ts(v) for v in row)
        assert started is not None and beat is not None
        await store.write(
            lambda conn: conn.execute(
                "UPDATE processes SET started_at = ?, heartbeat_at = ? WHERE process_id = ?",
                (codec.ts(started - by), codec.ts(beat - by), process_id),
            )
        )
    elif isinstance(store, PostgresTaskStore):
        await (await store.pool()).execute(
            "UPDATE processes SET started_at = started_at - $2::interval,"
            " heartbeat_at = heartbeat_at - $2::interval"
            " WHERE process_id = $1",
            process_id,
            by,
        )
    else:
        raise TypeError(f"unknown store {type(store).__name__}")
