"""Which failures are outages (I/O: the store unreachable or unwritable), not bugs.

Used by the background loops (``taskcell.engine.weather`` waits outages out), the API (503,
not 500) and the SQLite store (to remember why writes fail, for ``/health``).
"""

from __future__ import annotations

import sqlite3

import asyncpg

from taskcell.abc import StoreUnavailable

#: SQLite primary result codes of an I/O kind: busy, locked, no memory, read-only, I/O error,
#: corrupt (a replaced file), disk full, cannot open, locking protocol, not a database.
_SQLITE_IO_CODES = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 15, 26})
#: The PostgreSQL error classes of an outage: 08 connection exception, 53 insufficient
#: resources (disk full, out of memory, too many connections), 57 operator intervention
#: (shutting down, starting up, statement time-out), 25006 read-only transaction (a fail-over).
_POSTGRES_IO = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
)


#: Every exception type an outage may raise (:func:`is_outage` tells which of them are).
OUTAGE_TYPES: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.exceptions.InterfaceError,
    sqlite3.Error,
)


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` is an I/O failure of the store (see the module docstring)."""
    if isinstance(exc, (StoreUnavailable, OSError, TimeoutError, *_POSTGRES_IO)):
        return True
    if isinstance(exc, asyncpg.exceptions.InterfaceError):
        # "connection is closed", "pool is closing": the connection went, not a misuse.
        text = str(exc)
        return "closed" in text or "closing" in text
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        # "cannot switch to state N; another operation is in progress": a connection whose
        # server went away in the middle of a statement (seen at a PostgreSQL restart).
        text = str(exc)
        return "another operation" in text and "in progress" in text
    if isinstance(exc, sqlite3.DatabaseError):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and code & 0xFF in _SQLITE_IO_CODES
    return False


def describe(exc: BaseException) -> str:
    """A short reason for logs and health: the error's type and message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
