"""``taskcell db ...``: database maintenance."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING, Annotated

import typer

from taskcell.cli.common import console, err_console
from taskcell.cli.serve import DbOption, resolve_db_url
from taskcell.settings import Settings, SettingsError, load_settings, redact_url

if TYPE_CHECKING:
    from taskcell.abc import TaskStore
    from taskcell.engine.pruner import Progress, PruneReport, RetentionPolicy

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


def settings_or_exit() -> Settings:
    """The settings; bad ones are printed (which setting, why) and the command exits 2."""
    try:
        return load_settings()
    except SettingsError as exc:
        err_console.print(str(exc), style="red", markup=False)
        raise typer.Exit(2) from None


async def prune_database(
    url: str, policy: RetentionPolicy, *, dry_run: bool, progress: Progress | None = None
) -> PruneReport:
    """One retention round on the database at ``url`` (see taskcell.engine.pruner)."""
    from taskcell.engine.pruner import prune as prune_store
    from taskcell.stores.factory import store_from_url

    store = store_from_url(url)
    await store.open()
    try:
        # A server may be writing to the same file: after each write, leave it the writer for
        # as long again, as the server's own pruner does (its writes wait on this one's lock).
        return await prune_store(store, policy, dry_run=dry_run, progress=progress, pause_ratio=1.0)
    finally:
        await store.close()


@app.command()
def prune(
    db: DbOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be removed; change nothing.")
    ] = False,
) -> None:
    """Remove what retention removes (old events, items and runs; see README, Retention) now,
    and print it. A server prunes by itself too (retention_enabled)."""
    from rich.progress import Progress as Bar
    from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from taskcell.engine.pruner import RetentionPolicy

    settings = settings_or_exit()
    url = resolve_db_url(db) if db else settings.database_url
    policy = RetentionPolicy(
        days=settings.retention_days,
        runs=settings.retention_runs,
        batch_rows=settings.retention_batch_rows,
    )
    verb = "would remove" if dry_run else "removed"
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    try:
        with Bar(*columns, console=err_console, transient=True) as bar:
            job = bar.add_task("looking for old history", total=None)

            def show(report: PruneReport) -> None:
                bar.update(
                    job,
                    description=f"{report.tasks} tasks looked at; {verb} {report.events} events,"
                    f" {report.items} items, {report.runs} runs",
                )

            report = asyncio.run(prune_database(url, policy, dry_run=dry_run, progress=show))
    except (OSError, sqlite3.Error, ValueError) as exc:
        err_console.print(f"cannot prune {redact_url(url)}: {exc}", style="red", markup=False)
        raise typer.Exit(1) from None
    if report.skipped:
        console.print("another process is pruning this database now; nothing done")
        return
    console.print(f"{redact_url(url)}: {verb}", markup=False)
    table = Table()
    table.add_column("kind")
    table.add_column("rows", justify="right")
    for kind, rows in report.removed.items():
        table.add_row(kind, str(rows))
    console.print(table)
    notes = [
        f"{report.tasks} tasks looked at in {report.seconds:.2f} s",
        f"kept {settings.retention_days:g} days, the last {settings.retention_runs} runs"
        " of a recurring task",
    ]
    if report.batches:
        notes.append(f"longest write {report.longest_batch_seconds * 1000:.1f} ms")
    if report.pages:
        notes.append(f"{report.pages} free pages given back")
    if report.conversations_kept:
        notes.append(f"{report.conversations_kept} tasks keep their items (newer conversation)")
    if report.failed:
        notes.append(f"{report.failed} tasks skipped for errors (see the log)")
    console.print("; ".join(notes), markup=False)


@app.command()
def vacuum(db: DbOption = None) -> None:
    """SQLite: rewrite the file to give its free space back, and switch it to incremental
    vacuum, so that retention gives space back from then on (files made before retention
    existed need this once). Stop the server first: the rewrite locks the whole file."""
    from taskcell.stores.sqlite import ServerAlreadyRunning, ServerLock, sqlite_path

    url = resolve_db_url(db) if db else settings_or_exit().database_url
    if not url.startswith("sqlite"):
        console.print("PostgreSQL reclaims space by itself (autovacuum): nothing to do")
        return
    path = sqlite_path(url)
    if not path.exists():
        err_console.print(f"no database file at {path}", style="red", markup=False)
        raise typer.Exit(1)
    try:
        lock = ServerLock.acquire(path)
    except ServerAlreadyRunning as exc:
        err_console.print(str(exc), style="red", markup=False)
        raise typer.Exit(1) from None
    try:
        before = path.stat().st_size
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        err_console.print(f"cannot vacuum {path}: {exc}", style="red", markup=False)
        raise typer.Exit(1) from None
    finally:
        lock.release()
    after = path.stat().st_size
    console.print(
        f"{path}: {before:,} bytes before, {after:,} after; incremental vacuum on", markup=False
    )
