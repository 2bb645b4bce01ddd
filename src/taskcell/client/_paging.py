"""Keyset iteration shared by both clients: walk page after page until a page has no cursor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar

from pydantic import BaseModel

from taskcell.client.models import Page

T = TypeVar("T", bound=BaseModel)


def every_item(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
    """Every item of the pages ``fetch(cursor)`` answers, from ``fetch(None)`` on.

    Each page is fetched only when the previous one has been iterated, so a caller that stops
    early asks for no more pages.
    """
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from page.items
        cursor = page.next_cursor
        if not cursor:
            return


async def every_item_async(
    fetch: Callable[[str | None], Awaitable[Page[T]]],
) -> AsyncIterator[T]:
    """:func:`every_item` for a client whose calls are awaited."""
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        for item in page.items:
            yield item
        cursor = page.next_cursor
        if not cursor:
            return
