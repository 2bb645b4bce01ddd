"""The own-PostgreSQL helper: it starts, keeps its data across a stop, and refuses while down."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from pg_instance import PgInstance, own_postgres

__all__ = ["own_postgres"]


@pytest.mark.timeout(180)
def test_data_survives_a_stop_and_connections_are_refused_while_down(
    own_postgres: PgInstance,
) -> None:
    url = own_postgres.create_database("kept")
    own_postgres.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (7)", database="kept")
    own_postgres.stop()

    async def connect() -> str:
        try:
            conn = await asyncpg.connect(url, timeout=5)
        except (OSError, asyncpg.PostgresError) as exc:
            return type(exc).__name__
        await conn.close()
        return "connected"

    seen = asyncio.run(connect())
    assert seen != "connected", "a stopped instance still accepted a connection"

    own_postgres.start()

    async def read() -> int:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            value: int = await conn.fetchval("SELECT x FROM t")
            return value
        finally:
            await conn.close()

    assert asyncio.run(read()) == 7, "the row written before the stop is gone"
