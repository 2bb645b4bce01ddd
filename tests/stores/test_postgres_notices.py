"""PostgreSQL only: notices travel between processes, and an event batch's notices only when
the batch commits (the single-server stores have no one to tell)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from pg import empty_tables
from taskcell.domain.events import Event, EventType, Role
from taskcell.stores.postgres import PostgresTaskStore

WAIT = 5.0


def make_event(task_id: str, seq: int) -> Event:
    return Event(
        event=EventType.MESSAGE_CHUNK,
        task_id=task_id,
        conversation_id="conv-1",
        thread_id="thread-1",
        item_id=f"item-{task_id}-{seq}",
        role=Role.AGENT,
        payload={"content": f"chunk {seq}"},
        created_at=datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
        seq=seq,
    )


@pytest.fixture
async def two_stores(postgres_database: str) -> AsyncIterator[tuple[PostgresTaskStore, ...]]:
    """Two stores on one database, as two processes of a cluster would hold them."""
    sender, listener = PostgresTaskStore(postgres_database), PostgresTaskStore(postgres_database)
    await empty_tables(sender)
    await listener.open()
    try:
        yield sender, listener
    finally:
        await sender.close()
        await listener.close()


@contextlib.asynccontextmanager
async def listening(store: PostgresTaskStore) -> AsyncIterator[asyncio.Queue[str]]:
    heard: asyncio.Queue[str] = asyncio.Queue()
    # LISTEN takes effect once listen() has its connection: probe until a notice arrives.
    listener = asyncio.create_task(store.listen(heard.put_nowait))
    try:
        async with asyncio.timeout(WAIT):
            while heard.empty():
                await store.notify("probe")
                await asyncio.sleep(0.05)
        while not heard.empty():
            heard.get_nowait()
        yield heard
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


async def test_notify_reaches_another_store(two_stores: tuple[PostgresTaskStore, ...]) -> None:
    sender, listener = two_stores
    async with listening(listener) as heard:
        await sender.notify("p1|schedule|")
        async with asyncio.timeout(WAIT):
            assert await heard.get() == "p1|schedule|"


async def test_a_batch_sends_its_notices_only_when_it_commits(
    two_stores: tuple[PostgresTaskStore, ...],
) -> None:
    sender, listener = two_stores
    async with listening(listener) as heard:
        notices = ["p1|events|t1", "p1|events|t2"]
        await sender.append_events([make_event("t1", 1)], [], notices=notices)
        async with asyncio.timeout(WAIT):
            assert [await heard.get(), await heard.get()] == notices
        with pytest.raises(ValueError, match="already stored"):
            await sender.append_events([make_event("t1", 1)], [], notices=["p1|events|lost"])
        await sender.notify("p1|marker|")
        async with asyncio.timeout(WAIT):
            # Notices arrive in commit order: the marker comes first, nothing of the failure.
            assert await heard.get() == "p1|marker|"
        assert heard.empty()
