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


def store_from_url(url: str) -> Store:
    """``sqlite:///PATH``, a plain file path, or ``postgresql://...``."""
    url = normalise_url(url)
    if url.startswith(("postgresql://", "postgres://")):
        from taskcell.stores.postgres import PostgresTaskStore

        return PostgresTaskStore(url)
    return SQLiteTaskStore(url)
