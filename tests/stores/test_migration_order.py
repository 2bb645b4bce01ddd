"""A schema version is applied when its own number is missing, even below the highest applied.

Versions are written on branches and can land on ``main`` out of number order: a database
opened between the two landings holds a higher version without a lower one, and must get the
lower one the next time it is opened.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from pg import database_url
from taskcell.stores import postgres, sqlite
from taskcell.stores.sqlite import SQLiteTaskStore

pytestmark = pytest.mark.timeout(120)


async def test_sqlite_applies_a_version_that_landed_below_the_highest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    every_version = sqlite._migration_files()
    late = every_version[-2][0]  # a version that "lands" after the newest one
    path = tmp_path / "out_of_order.db"
    with monkeypatch.context() as patch:
        patch.setattr(
            sqlite, "_migration_files", lambda: [v for v in every_version if v[0] != late]
        )
        early = SQLiteTaskStore(path)
        await early.open()
        await early.close()
    store = SQLiteTaskStore(path)
    await store.open()
    try:
        rows = store.conn.execute("SELECT version FROM schema_version ORDER BY version")
        assert [row[0] for row in rows] == [number for number, _, _ in every_version]
    finally:
        await store.close()


async def test_postgres_applies_a_version_that_landed_below_the_highest(
    postgres_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    every_version = postgres.migration_files()
    late = every_version[-2][0]
    name = f"taskcell_t_order_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres_server)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        conn: asyncpg.Connection[Any] = await asyncpg.connect(database_url(postgres_server, name))
        try:
            with monkeypatch.context() as patch:
                patch.setattr(
                    postgres,
                    "migration_files",
                    lambda: [v for v in every_version if v[0] != late],
                )
                assert await postgres.apply_migrations(conn) == every_version[-1][0]
            assert not await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM schema_version WHERE version = $1)", late
            )
            assert await postgres.apply_migrations(conn) == every_version[-1][0]
            versions = [
                r["version"] for r in await conn.fetch("SELECT version FROM schema_version")
            ]
            assert sorted(versions) == [number for number, _, _ in every_version]
        finally:
            await conn.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
