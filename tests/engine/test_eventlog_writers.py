"""Two writers of one task's log (two processes of a cluster) on every store: each event is
stored once, numbered without a gap, and a writer that lost an answer does not write twice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

import pytest

from taskcell.abc import EventStore, Store, TaskStore
from taskcell.domain.events import ConversationItem, Event
from taskcell.domain.models import Task
from taskcell.engine.eventlog import EventLog
from taskcell.engine.responses import ResponseFactory

TASK = Task(task_id="t-shared", query="q", agent_name="echo")


@contextlib.asynccontextmanager
async def running(log: EventLog) -> AsyncIterator[EventLog]:
    writer = asyncio.create_task(log.run())
    try:
        yield log
    finally:
        await asyncio.wait_for(log.flush(), 10)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer


async def say(log: EventLog, *texts: str) -> None:
    factory = ResponseFactory(TASK)
    for text in texts:
        await log.emit(factory.system_message(text))
    await asyncio.wait_for(log.flush(), 10)


async def stored(store: TaskStore) -> list[tuple[int, str]]:
    events = await store.read_events(TASK.task_id)  # type: ignore[attr-defined]
    return [(e.seq, str(e.payload["content"]) if e.payload else "") for e in events]


async def test_a_writer_behind_another_renumbers_after_it(
    store: TaskStore, caplog: pytest.LogCaptureFixture
) -> None:
    events: EventStore = store  # type: ignore[assignment]  # every store under test is one
    async with running(EventLog(events)) as first, running(EventLog(events)) as second:
        await say(first, "a1", "a2")
        await say(second, "b1")  # second reads the log's end: 3
        with caplog.at_level(logging.INFO, logger="taskcell.engine.eventlog"):
            await say(first, "a3")  # first still counts from 2: a conflict, then seq 4
        assert "events renumbered after another writer's" in caplog.text
        await say(second, "b2")  # second counts from 3 too: renumbered to 5
        first.appended_elsewhere(TASK.task_id)  # told (a notice, in a cluster): no conflict
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="taskcell.engine.eventlog"):
            await say(first, "a4")
        assert "renumbered" not in caplog.text
    assert await stored(store) == [(1, "a1"), (2, "a2"), (3, "b1"), (4, "a3"), (5, "b2"), (6, "a4")]


class AnswerLost:
    """The store, except that the first append's answer is lost after it committed (as when a
    connection drops at the wrong moment): what a writer must not turn into a duplicate."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.lost = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def append_events(
        self,
        events: Sequence[Event],
        items: Sequence[ConversationItem],
        *,
        notices: Sequence[str] = (),
    ) -> None:
        await self._store.append_events(events, items, notices=notices)
        if not self.lost:
            self.lost += 1
            raise ConnectionResetError("connection lost before the answer")


async def test_an_append_whose_answer_was_lost_is_not_stored_twice(store: TaskStore) -> None:
    flaky = AnswerLost(store)  # type: ignore[arg-type]
    async with running(EventLog(flaky)) as log:  # type: ignore[arg-type]
        await say(log, "once", "only")
    assert flaky.lost == 1
    assert await stored(store) == [(1, "once"), (2, "only")]
