"""``taskcell db ...``: database maintenance."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING

import typer

from taskcell.cli.common import console, err_console
from taskcell.cli.serve import DbOption, resolve_db_url
from taskcell.settings import Settings, redact_url

if TYPE_CHECKING:
    from taskcell.abc import TaskStore

app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


async def schema_version(store: TaskStore) -> int | None:
    """The schema version in force in an opened ``store``, if it keeps one."""
    from taskcell.stores.sqlite import SQLiteTaskStore

    if isinstance(store, SQLiteTaskStore):
        row = store.conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else None
    from taskcell.stores.postgres import PostgresTaskStore

    if isinstance(store, PostgresTaskStore):
        pool = await store.pool()
        value = await pool.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        return int(value)
    return None


async def upgrade_database(url: str) -> int | None:
    """Open the store at ``url`` (which applies every pending schema version); its version."""
    from taskcell.stores.factory import store_from_url

    store = store_from_url(url)
    await store.open()
    try:
        return await schema_version(store)
    finally:
        await store.close()


@app.command()
def upgrade(db: DbOption = None) -> None:
    """Bring the database's schema up to date."""
    url = resolve_db_url(db) if db else Settings().database_url
    try:
        version = asyncio.run(upgrade_database(url))
    except (OSError, sqlite3.Error, ValueError) as exc:
        err_console.print(f"cannot upgrade {redact_url(url)}: {exc}", style="red", markup=False)
        raise typer.Exit(1) from None
    shown = "unknown" if version is None else str(version)
    console.print(f"{redact_url(url)}: schema version {shown}", markup=False)
