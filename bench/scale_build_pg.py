"""The PostgreSQL database of ``bench/scale.py --postgres``: the history of ``scale_build``.

:func:`build_postgres` drops and creates the database its URL names (on a server where the
URL's user may create databases), has :class:`PostgresTaskStore` apply its schema to it, and
writes the rows ``scale_build.write_history`` makes (the same tasks, runs, events, conversations
and items as the SQLite builder, ``runs.log_from`` given, so the store's trigger leaves it) with
``COPY`` (asyncpg's ``copy_records_to_table``), a transaction per batch. Values are turned from
SQLite's encoding to PostgreSQL's by the type of their column as the schema declares it
(``timestamptz``: an aware datetime; ``boolean``: a bool; the rest as they are), so the rows are
what ``codec`` writes with ``dialect="postgres"`` (``tests/scale`` reads them back).

The manifest is the database's comment (``COMMENT ON DATABASE``), written last: a build cut
short has none and is built anew, and dropping the database drops it too.

After the rows, ``VACUUM (ANALYZE)``: in production, autovacuum visits a table after that
many inserts (PostgreSQL 13 and later) and leaves its statistics and visibility map behind; a
database COPY has just filled has neither, which no served database lacks for long (and the
benchmark server here runs with autovacuum off).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from scale_build import Manifest, Rows, Scale, write_history
from taskcell.domain.models import utcnow
from taskcell.stores import codec
from taskcell.stores.postgres import PostgresTaskStore

#: The database of the tenth scale, on the system server.
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/taskcell_scale"
#: A database name this module puts in SQL as it is.
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

#: Each table and the columns its rows hold (``scale_build``'s order).
COLUMNS: dict[str, tuple[str, ...]] = {
    "tasks": (*codec.TASK_COLUMNS, "log_closed"),
    "conversations": ("conversation_id", "title", "user_id", "created_at"),
    "conversation_items": codec.ITEM_COLUMNS,
    "runs": (*codec.RUN_COLUMNS, "log_from"),
    "events": ("task_id", "seq", "body"),
}

Convert = Callable[[Any], Any]


def _moment(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _truth(value: int | bool | None) -> bool | None:
    return None if value is None else bool(value)


#: SQLite's value of a column of this type, as asyncpg sends it.
_CONVERTERS: dict[str, Convert] = {
    "timestamp with time zone": _moment,
    "boolean": _truth,
}


def database_name(url: str) -> str:
    """The database ``url`` names (a plain identifier, else ``ValueError``)."""
    name = urlsplit(url).path.lstrip("/")
    if not _NAME.fullmatch(name):
        raise ValueError(f"the database name {name!r} is not a plain lower-case identifier")
    return name


def with_database(url: str, name: str) -> str:
    """``url`` naming the database ``name`` on the same server."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


class _Table:
    """One table's COPY: its columns and the conversion of each row's values."""

    def __init__(self, name: str, types: dict[str, str]) -> None:
        self.name = name
        self.columns = COLUMNS[name]
        missing = [column for column in self.columns if column not in types]
        if missing:
            raise RuntimeError(f"{name} has no column {missing}: update the builder")
        self._convert = [
            (index, _CONVERTERS[types[column]])
            for index, column in enumerate(self.columns)
            if types[column] in _CONVERTERS
        ]

    def records(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        if not self._convert:
            return rows
        out = []
        for row in rows:
            values = list(row)
            for index, convert in self._convert:
                values[index] = convert(values[index])
            out.append(tuple(values))
        return out


async def _tables(conn: asyncpg.Connection[Any]) -> list[_Table]:
    found = await conn.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ANY($1::text[])",
        list(COLUMNS),
    )
    types: dict[str, dict[str, str]] = {name: {} for name in COLUMNS}
    for row in found:
        types[row["table_name"]][row["column_name"]] = row["data_type"]
    return [_Table(name, types[name]) for name in COLUMNS]


async def _copy(conn: asyncpg.Connection[Any], tables: Sequence[_Table], rows: Rows) -> None:
    batches = {
        "tasks": rows.tasks,
        "conversations": rows.conversations,
        "conversation_items": rows.items,
        "runs": rows.runs,
        "events": rows.events,
    }
    async with conn.transaction():
        for table in tables:
            batch = batches[table.name]
            if batch:
                await conn.copy_records_to_table(
                    table.name, records=table.records(batch), columns=table.columns
                )


async def recreate(url: str) -> None:
    """Drop the database ``url`` names (whoever is connected) and create it empty, with the
    store's schema."""
    name = database_name(url)
    admin = await asyncpg.connect(with_database(url, "postgres"))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    store = PostgresTaskStore(url, min_size=1, max_size=1)
    try:
        await store.open()  # applies every schema version
    finally:
        await store.close()


async def _finish(
    conn: asyncpg.Connection[Any],
    url: str,
    scale: Scale,
    recurring_ids: list[str],
    began: float,
    *,
    analyze: bool,
) -> Manifest:
    if analyze:  # what autovacuum would have done by the time such a history is served
        await conn.execute("VACUUM (ANALYZE)")
    middle = await conn.fetchrow(
        "SELECT created_at, task_id FROM tasks ORDER BY created_at DESC, task_id DESC"
        " LIMIT 1 OFFSET $1",
        scale.tasks // 2,
    )
    manifest = Manifest(
        scale=scale,
        stream_task_id=recurring_ids[0],
        recurring_ids=recurring_ids,
        middle=(codec.ts(middle["created_at"]) or "", middle["task_id"]) if middle else ("", ""),
        seconds=time.perf_counter() - began,
        built_at=codec.ts(utcnow()) or "",
    )
    text = manifest.to_json().replace("'", "''")
    await conn.execute(f"COMMENT ON DATABASE {database_name(url)} IS '{text}'")
    return manifest


def build_postgres(
    url: str, scale: Scale, *, seed: int = 19, progress: bool = False, analyze: bool = True
) -> Manifest:
    """Write a database of ``scale`` as the one ``url`` names (replacing any); answers its
    manifest (also the database's comment). ``analyze=False`` leaves out the closing
    ``VACUUM (ANALYZE)``: tables with neither statistics nor a visibility map."""
    scale.check()
    began = time.perf_counter()
    with asyncio.Runner() as runner:
        runner.run(recreate(url))
        conn: asyncpg.Connection[Any] = runner.run(asyncpg.connect(url))
        try:
            # A build cut short is built anew: its commits need not wait for the disk.
            runner.run(conn.execute("SET synchronous_commit = off"))
            tables = runner.run(_tables(conn))

            def flush(rows: Rows) -> None:
                runner.run(_copy(conn, tables, rows))
                rows.clear()

            recurring_ids = write_history(scale, flush, seed=seed, progress=progress)
            if progress:
                print(f"  rows written ({time.perf_counter() - began:.0f} s)", flush=True)
            return runner.run(_finish(conn, url, scale, recurring_ids, began, analyze=analyze))
        finally:
            runner.run(conn.close())


async def _manifest(url: str) -> Manifest | None:
    name = database_name(url)
    try:
        conn = await asyncpg.connect(with_database(url, "postgres"))
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        text = await conn.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            name,
        )
    finally:
        await conn.close()
    return None if text is None else Manifest.parse(text)


def built(url: str, scale: Scale) -> Manifest | None:
    """The manifest of the database ``url`` names if it was built complete at ``scale``."""
    manifest = asyncio.run(_manifest(url))
    if manifest is None or manifest.scale != scale:
        return None
    return manifest


async def _size(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        size: int = await conn.fetchval("SELECT pg_database_size(current_database())")
        return size
    finally:
        await conn.close()


def size_bytes(url: str) -> int:
    """The size on disk of the database ``url`` names."""
    return asyncio.run(_size(url))
