"""PostgreSQL for the tests: a template database with the schema, a fresh database per module.

- Once per session, ``taskcell_template_<hash>`` is (re)built: created empty, then opened with
  :class:`PostgresTaskStore`, which applies every schema version the way a server does. The
  hash is of the schema files, so sessions of trees with different schemas (branches, say) on
  one server never copy each other's template.
- Each test module that uses PostgreSQL gets ``CREATE DATABASE taskcell_t_<random> TEMPLATE
  taskcell_template`` (a file copy, much faster than applying the schema) and drops it after.
- Each test starts from empty tables (:func:`empty_tables`), in the module's database.

Template builds and copies hold a session advisory lock on the server, so several pytest
sessions at once (CI shards, colleagues) never copy a template while another rebuilds it.

The server is ``TASKCELL_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``,
used only to create and drop databases). If nothing answers there within two seconds, the
PostgreSQL tests are skipped with a message saying so; any other failure (a refused login, say)
fails them.

The fixtures here run their set-up on a private event loop in a worker thread, so they never
touch the event loop of the test that asks for them (pytest-asyncio's loops are per function).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from taskcell.stores.postgres import PostgresTaskStore, migration_files

T = TypeVar("T")

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
TEMPLATE = (
    "taskcell_template_"
    + hashlib.sha256("".join(sql for _, _, sql in migration_files()).encode()).hexdigest()[:12]
)
DATABASE_PREFIX = "taskcell_t_"
#: Session advisory lock held while the template is rebuilt or copied ("tcl-tmpl").
TEMPLATE_LOCK_KEY = 0x74636C2D746D706C
CONNECT_TIMEOUT_S = 2.0


def server_url() -> str:
    return os.environ.get("TASKCELL_TEST_POSTGRES_URL", DEFAULT_URL)


def database_url(url: str, database: str) -> str:
    """``url`` naming another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine ``factory()`` makes on a fresh event loop in a worker thread."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-fixture") as worker:
        return worker.submit(lambda: asyncio.run(factory())).result()


async def unreachable_reason(url: str) -> str | None:
    """Why no PostgreSQL answers at ``url`` (refused, timed out), or None if one does."""
    parts = urlsplit(url)
    where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    try:
        conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        return (
            f"PostgreSQL not reachable at {where} ({type(exc).__name__}: {exc}); "
            "start it to run these tests (or set TASKCELL_TEST_POSTGRES_URL)"
        )
    await conn.close()
    return None


async def _locked(url: str, body: Callable[[asyncpg.Connection[Any]], Coroutine[Any, Any, T]]) -> T:
    conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", TEMPLATE_LOCK_KEY)
        try:
            return await body(conn)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", TEMPLATE_LOCK_KEY)
    finally:
        await conn.close()


async def build_template(url: str) -> None:
    """(Re)create the template with the current schema, applied by the store itself."""

    async def body(conn: asyncpg.Connection[Any]) -> None:
        await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {TEMPLATE}")
        store = PostgresTaskStore(database_url(url, TEMPLATE), min_size=1, max_size=1)
        try:
            await store.open()
        finally:
            await store.close()

    await _locked(url, body)


async def create_database(url: str) -> str:
    """A new database copied from the template; answers its name."""
    name = f"{DATABASE_PREFIX}{uuid.uuid4().hex[:12]}"

    async def body(conn: asyncpg.Connection[Any]) -> None:
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        # Throw-away data: a commit need not wait for the disk (helps on slow CI disks).
        await conn.execute(f"ALTER DATABASE {name} SET synchronous_commit = off")

    await _locked(url, body)
    return name


async def drop_database(url: str, name: str) -> None:
    conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


#: Deletes every row of every taskcell table (schema and version stay).
EMPTY_ALL = (
    "DELETE FROM runs; DELETE FROM tasks; DELETE FROM events;"
    " DELETE FROM conversation_items; DELETE FROM conversations; DELETE FROM processes;"
    " DELETE FROM webhook_deliveries; DELETE FROM webhooks"
)


async def empty_tables(store: PostgresTaskStore) -> None:
    """Delete every row of every table through the store's own pool (schema and version stay).

    DELETE, not TRUNCATE: on tables this small it takes about a millisecond, where TRUNCATE
    (new files for every table and index) takes about 60 ms here.
    """
    await (await store.pool()).execute(EMPTY_ALL)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The server's URL, once the template is built; skips if no PostgreSQL answers."""
    url = server_url()
    reason = run_sync(lambda: unreachable_reason(url))
    if reason is not None:
        pytest.skip(reason)
    run_sync(lambda: build_template(url))
    return url


@pytest.fixture(scope="module")
def postgres_database(postgres_server: str) -> Iterator[str]:
    """The URL of this module's own database, copied from the template, dropped after."""
    name = run_sync(lambda: create_database(postgres_server))
    try:
        yield database_url(postgres_server, name)
    finally:
        run_sync(lambda: drop_database(postgres_server, name))
