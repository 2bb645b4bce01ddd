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


def store_from_url(url: str, *, pool_size: int | None = None) -> Store:
    """``sqlite:///PATH``, a plain file path, or ``postgresql://...`` (a pool of at most
    ``pool_size`` connections; None: the PostgreSQL store's own default).

    The caller passes what it was configured with (``Settings.database_pool_size``): stores
    never read settings, so settings never load a store."""
    url = normalise_url(url)
    if url.startswith(("postgresql://", "postgres://")):
        from taskcell.stores.postgres import PostgresTaskStore

        if pool_size is None:
            return PostgresTaskStore(url)
        return PostgresTaskStore(url, max_size=pool_size)
    return SQLiteTaskStore(url)
