"""Shared fixtures: every store the contract suite runs against, and a test's own user folders."""

from __future__ import annotations

import os
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

#: Settings of the test run itself, not of taskcell: kept.
KEPT_SETTINGS = {"TASKCELL_TEST_POSTGRES_URL"}


@pytest.fixture(autouse=True)
def own_user_folders(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Every test runs with its own home, data and config folders and no TASKCELL_* setting.

    A developer's ``make run`` (its SQLite file and lock in the user data directory), their
    taskcell.toml and their environment never meet a test: the default database of a test is
    a file in a temporary folder, and subprocesses inherit the same environment.
    """
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith("TASKCELL_") and name not in KEPT_SETTINGS:
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    for variable, folder in (
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_STATE_HOME", ".local/state"),
    ):
        monkeypatch.setenv(variable, str(home / folder))
    monkeypatch.setenv("TASKCELL_CONFIG", str(home / "taskcell.toml"))  # absent
    monkeypatch.setenv("TASKCELL_DATABASE_URL", f"sqlite:///{home / 'taskcell.db'}")
    return home


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
