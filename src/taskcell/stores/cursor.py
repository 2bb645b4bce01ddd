"""Keyset paging shared by every store, and its opaque cursors: (created_at, id) of the last
item seen.

Every list (tasks, a task's runs, a conversation's items) is ordered by ``(created_at, id)``,
one way or the other (:class:`Keyset`); a page is the next ``limit`` items after the cursor's
position, found by comparing that pair (an index seek: a page costs the same at any depth), and
:func:`keyset_page` cuts what a store fetched (``limit + 1`` rows) into the page and the next
cursor. Stores make and read the *position* (:func:`encode_cursor`, :func:`decode_cursor`); the API
*binds* each position to the list that issued it (:func:`bind_cursor`, :func:`unbind_cursor`),
so a cursor from ``GET /tasks`` is refused by ``/runs``, by ``/items`` and by ``/tasks`` with
other filters. Every value a cursor carries is checked before a store sees it: a cursor is
client input.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from taskcell.abc import InvalidCursor, Page
from taskcell.domain.clock import as_utc
from taskcell.domain.text import is_safe_text

#: The longest item id a cursor may name (ids are at most 200 characters in every store).
MAX_CURSOR_ID_CHARS = 200
#: The longest cursor the API reads; the ones it makes are under 200 characters.
MAX_CURSOR_CHARS = 1000
_NOT_OURS = "cursor is not one this server handed out"
_DIGEST_BYTES = 9  # 12 base64 characters: a scope mismatch is never a coincidence


R = TypeVar("R")
T = TypeVar("T")
Position = tuple[datetime, str]


@dataclass(frozen=True, slots=True)
class Keyset:
    """The order of one list: ``(created_at, id_column)``, newest first when ``descending``."""

    id_column: str
    descending: bool

    @property
    def order_sql(self) -> str:
        """The list's ``ORDER BY`` clause."""
        way = " DESC" if self.descending else ""
        return f"ORDER BY created_at{way}, {self.id_column}{way}"

    def after_sql(self, created_at: str, item_id: str) -> str:
        """The SQL condition of the rows after a position (its two values' placeholders)."""
        op = "<" if self.descending else ">"
        return f"(created_at, {self.id_column}) {op} ({created_at}, {item_id})"

    def follows(self, key: Position, position: Position) -> bool:
        """Whether an item whose key is ``key`` comes after ``position`` (stores in memory)."""
        return key < position if self.descending else key > position


#: ``GET /tasks``: newest first.
TASKS = Keyset("task_id", descending=True)
#: A task's runs: newest first.
RUNS = Keyset("run_id", descending=True)
#: A conversation's items: oldest first.
ITEMS = Keyset("item_id", descending=False)


def position(cursor: str | None) -> Position | None:
    """Where the page a cursor asks for starts (None: the first page); :class:`InvalidCursor`
    for a cursor that no store made."""
    return None if cursor is None else decode_cursor(cursor)


def keyset_page(
    fetched: Sequence[R],
    limit: int,
    *,
    decode: Callable[[Sequence[R]], list[T]],
    key: Callable[[R], Position | None],
) -> Page[T]:
    """The page of ``fetched`` (the list's rows after the position, in order, at most
    ``limit + 1``: one more than a page tells whether another follows).

    ``decode`` turns the page's rows into items (it may leave out rows it cannot decode);
    ``key`` answers a row's position, or None for a row whose position does not decode, in
    which case the next page starts after the last row before it that has one.
    """
    rows = fetched[:limit]
    items = decode(rows)
    if len(fetched) <= limit:
        return Page(items, None)
    for row in reversed(rows):
        last = key(row)
        if last is not None:
            return Page(items, encode_cursor(*last))
    return Page(items, None)


def encode_cursor(created_at: datetime, item_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), item_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names, its time in UTC; :class:`InvalidCursor` for anything a
    store did not make, including times that do not fit in UTC (year 1 at +01:00) and ids
    that are not safe text or are too long."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidCursor(_NOT_OURS)
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, item_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        moment = as_utc(datetime.fromisoformat(created))
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor(_NOT_OURS) from exc
    if (
        not isinstance(item_id, str)
        or not item_id
        or len(item_id) > MAX_CURSOR_ID_CHARS
        or not is_safe_text(item_id)
    ):
        raise InvalidCursor(_NOT_OURS)
    return moment, item_id


def _scope_digest(scope: str) -> str:
    digest = hashlib.blake2b(scope.encode("utf-8", "backslashreplace"), digest_size=_DIGEST_BYTES)
    return base64.urlsafe_b64encode(digest.digest()).decode()


def bind_cursor(cursor: str | None, scope: str) -> str | None:
    """``cursor`` (a store's) bound to ``scope``: the endpoint and filter that issued it."""
    if cursor is None:
        return None
    return f"{_scope_digest(scope)}.{cursor}"


def unbind_cursor(token: str | None, scope: str) -> str | None:
    """The store cursor inside ``token``, checked to be bound to ``scope`` and to decode to a
    valid position; :class:`InvalidCursor` otherwise."""
    if token is None:
        return None
    digest, dot, cursor = token.partition(".")
    if not dot or len(token) > MAX_CURSOR_CHARS:
        raise InvalidCursor(_NOT_OURS)
    if not hmac.compare_digest(
        digest.encode("utf-8", "backslashreplace"), _scope_digest(scope).encode()
    ):
        raise InvalidCursor(
            "cursor belongs to another list (another endpoint or other filters); "
            "start again without a cursor"
        )
    decode_cursor(cursor)
    return cursor
