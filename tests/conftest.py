"""Shared fixtures: every store the contract suite runs against."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pg import empty_tables, postgres_database, postgres_server
from taskcell.abc import TaskStore
from taskcell.stores.memory import InMemoryTaskStore
from taskcell.stores.postgres import PostgresTaskStore
from taskcell.stores.sqlite import SQLiteTaskStore

__all__ = ["postgres_database", "postgres_server"]  # fixtures from tests/pg.py

STORE_KINDS = ["memory", "sqlite", "postgres"]


async def make_store(kind: str, tmp_path: Path, *, postgres_url: str | None = None) -> TaskStore:
    if kind == "memory":
        return InMemoryTaskStore()
    if kind == "sqlite":
        return SQLiteTaskStore(tmp_path / "tasks.db")
    if kind == "postgres" and postgres_url is not None:
        made = PostgresTaskStore(postgres_url)
        await empty_tables(made)
        return made
    raise ValueError(kind)


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TaskStore]:
    # The module's PostgreSQL database is made only when a postgres test asks for it.
    url = request.getfixturevalue("postgres_database") if request.param == "postgres" else None
    made = await make_store(request.param, tmp_path, postgres_url=url)
    await made.open()
    try:
        yield made
    finally:
        await made.close()
