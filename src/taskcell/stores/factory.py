"""Pick a store from a database URL."""

from __future__ import annotations

from taskcell.abc import Store
from taskcell.stores.sqlite import SQLiteTaskStore


def normalise_url(url: str) -> str:
    """Drop driver suffixes (``+aiosqlite``, ``+asyncpg``): taskcell picks its own driver."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    return f"{scheme.split('+', 1)[0]}://{rest}"


#: PostgreSQL connections per process, at most: three processes stay well inside the default
#: ``max_connections`` (100), and one process has enough for 64 runs at once.
DEFAULT_POOL_SIZE = 20


def store_from_url(url: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> Store:
    """``sqlite:///PATH``, a plain file path, or ``postgresql://...`` (a pool of at most
    ``pool_size`` connections)."""
    url = normalise_url(url)
    if url.startswith(("postgresql://", "postgres://")):
        from taskcell.stores.postgres import PostgresTaskStore

        return PostgresTaskStore(url, max_size=pool_size)
    return SQLiteTaskStore(url)
