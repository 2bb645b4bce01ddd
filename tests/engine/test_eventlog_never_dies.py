"""The event log's writer never dies, on every store: an unreachable store is waited out, a
storm of conflicts is renumbered past any retry cap, an event the store cannot encode is
replaced by a ``system_failed`` saying why, and refused events (a lost lease, a closed log)
are dropped alone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from taskcell.abc import Store, TaskStore
from taskcell.domain.events import ConversationItem, Event
from taskcell.domain.models import Run, Task
from taskcell.domain.state_machine import TaskStatus
from taskcell.engine import eventlog
from taskcell.engine.eventlog import EventLog
from taskcell.engine.responses import ResponseFactory

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


@contextlib.asynccontextmanager
async def running(log: EventLog) -> AsyncIterator[EventLog]:
    writer = asyncio.create_task(log.run())
    try:
        yield log
    finally:
        await asyncio.wait_for(log.flush(), 30)
        assert not writer.done(), "the writer died"
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer


async def contents(store: TaskStore, task_id: str) -> list[tuple[int, str, str]]:
    events = await store.read_events(task_id)  # type: ignore[attr-defined]
    return [(e.seq, e.event.value, str((e.payload or {}).get("content", ""))) for e in events]


class Unreachable:
    """The store, unreachable for its first ``outage`` appends (more than any old cap)."""

    def __init__(self, store: Store, outage: int) -> None:
        self._store = store
        self.failures = outage

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def append_events(
        self,
        events: Sequence[Event],
        items: Sequence[ConversationItem],
        *,
        notices: Sequence[str] = (),
    ) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("the database is down")
        await self._store.append_events(events, items, notices=notices)


async def test_an_unreachable_store_is_waited_out(
    store: TaskStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eventlog, "OUTAGE_MAX_WAIT", 0.02)
    task = Task(query="q", agent_name="echo")
    await store.save(task)
    down = Unreachable(store, outage=12)  # type: ignore[arg-type]
    async with running(EventLog(down)) as log:  # type: ignore[arg-type]
        log.new_task(task.task_id)
        factory = ResponseFactory(task)
        for text in ("kept", "queued", "meanwhile"):
            await log.emit(factory.system_message(text))
    assert down.failures == 0
    assert [c[2] for c in await contents(store, task.task_id)] == ["kept", "queued", "meanwhile"]


class Crowded:
    """The store, where another writer appends to the task before each of our first
    ``times`` appends (so each conflicts)."""

    def __init__(self, store: Store, task: Task, times: int) -> None:
        self._store = store
        self._task = task
        self.left = times

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def append_events(
        self,
        events: Sequence[Event],
        items: Sequence[ConversationItem],
        *,
        notices: Sequence[str] = (),
    ) -> None:
        if self.left:
            self.left -= 1
            other = ResponseFactory(self._task).system_message("other")
            other.seq = await self._store.last_seq(self._task.task_id) + 1
            await self._store.append_events([other], [])
        await self._store.append_events(events, items, notices=notices)


async def test_conflicts_never_kill_the_writer(
    store: TaskStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eventlog, "_CONFLICT_MAX_WAIT", 0.001)
    task = Task(query="q", agent_name="echo")
    await store.save(task)
    crowded = Crowded(store, task, times=60)  # type: ignore[arg-type]  # the old cap was 50
    async with running(EventLog(crowded)) as log:  # type: ignore[arg-type]
        log.new_task(task.task_id)
        await log.emit(ResponseFactory(task).system_message("mine"))
    stored = await contents(store, task.task_id)
    assert [c[0] for c in stored] == list(range(1, 62)), stored
    assert [c[2] for c in stored].count("mine") == 1 and stored[-1][2] == "mine"


async def test_an_event_the_store_cannot_encode_is_replaced(store: TaskStore) -> None:
    task = Task(query="q", agent_name="echo")
    await store.save(task)
    factory = ResponseFactory(task)
    async with running(EventLog(store)) as log:  # type: ignore[arg-type]
        log.new_task(task.task_id)
        await log.emit(factory.system_message("before"))
        await log.emit(factory.message("a lone surrogate: \ud800"))
        await log.emit(factory.system_message("after"))
    stored = await contents(store, task.task_id)
    assert [c[:2] for c in stored] == [(1, "message"), (2, "system_failed"), (3, "message")], stored
    assert "could not be stored" in stored[1][2] and "\ud800" not in stored[1][2]


async def test_a_lost_lease_drops_only_that_runs_events(store: TaskStore) -> None:
    full: Store = store  # type: ignore[assignment]
    task = Task(query="q", agent_name="echo")
    await store.save(task)
    run = Run(task_id=task.task_id, owner="p1", lease_expires_at=T0, started_at=T0 + SECOND)
    assert await store.start_run(run)  # its lease ran out at once
    told: list[frozenset[str]] = []
    log = EventLog(full)
    log.on_lease_lost = told.append
    log.hold(run.fence)
    assert len(await full.interrupt_expired("taken over", by="p2")) == 1
    async with running(log):
        log.new_task(task.task_id)
        await log.emit(ResponseFactory(task).user_message("the user's"))
        await log.emit(ResponseFactory(task, run.run_id).message_chunk("stale", item_id="i1"))
        await log.emit(ResponseFactory(task).system_message("a control's"))
        await log.flush()
        late = await log.emit(ResponseFactory(task, run.run_id).message_chunk("more", item_id="i1"))
    assert late.seq == 0  # dropped at once: the run is known lost
    # Told when the store refused it, and again when the run emitted after that (a run still
    # emitting was not stopped: a cancel lost on its way), so it is stopped again.
    assert told == [frozenset({run.run_id})] * 2
    assert await contents(store, task.task_id) == [
        (1, "message", "the user's"),
        (2, "message", "a control's"),
    ]
    assert log.dropped_total == 1


async def test_events_after_a_closed_log_are_dropped(store: TaskStore) -> None:
    task = Task(query="q", agent_name="echo", status=TaskStatus.COMPLETED)
    await store.save(task)
    factory = ResponseFactory(task)
    async with running(EventLog(store)) as log:  # type: ignore[arg-type]
        log.new_task(task.task_id)
        await log.emit(factory.task_completed())
        await log.emit(factory.done())
        await log.flush()
        await log.emit(factory.task_completed())
        await log.emit(factory.done())
    assert [c[1] for c in await contents(store, task.task_id)] == ["task_completed", "done"]
    other = Task(query="q", agent_name="echo")
    await store.save(other)
    async with running(EventLog(store)) as log:  # type: ignore[arg-type]
        await log.emit(ResponseFactory(other).system_message("still written"))  # alive
    assert await contents(store, other.task_id) == [(1, "message", "still written")]


async def taken_over(store: Store) -> tuple[Task, Run]:
    """A task whose run (owner p1) was taken over by p2 after its lease ran out."""
    task = Task(query="q", agent_name="echo")
    await store.save(task)
    run = Run(task_id=task.task_id, owner="p1", lease_expires_at=T0, started_at=T0 + SECOND)
    assert await store.start_run(run)
    assert len(await store.interrupt_expired("taken over", by="p2")) == 1
    return task, run


class HeldFirst:
    """The store, whose first append waits until ``gate`` is set (so events queue meanwhile)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def append_events(
        self,
        events: Sequence[Event],
        items: Sequence[ConversationItem],
        *,
        notices: Sequence[str] = (),
    ) -> None:
        if not self.entered.is_set():
            self.entered.set()
            await self.gate.wait()
        await self._store.append_events(events, items, notices=notices)


async def test_events_queued_behind_a_refused_batch_keep_the_log_contiguous(
    store: TaskStore,
) -> None:
    """A stale run's batch is refused while the task's next attempt has events queued: those
    are numbered from the log's end, with no gap where the refused events were."""
    full: Store = store  # type: ignore[assignment]
    task, run = await taken_over(full)
    held = HeldFirst(full)
    log = EventLog(held)  # type: ignore[arg-type]
    log.hold(run.fence)
    async with running(log):
        log.new_task(task.task_id)
        await log.emit(ResponseFactory(task, run.run_id).message_chunk("stale", item_id="i1"))
        await asyncio.wait_for(held.entered.wait(), 10)  # that batch is being written
        await log.emit(ResponseFactory(task).system_message("next attempt"))  # queued: seq 2
        held.gate.set()
        await asyncio.wait_for(log.flush(), 10)
        await log.emit(ResponseFactory(task).system_message("and on"))
    assert await contents(store, task.task_id) == [
        (1, "message", "next attempt"),
        (2, "message", "and on"),
    ]


async def test_a_lost_lease_with_more_of_its_message_queued_keeps_the_writer(
    store: TaskStore,
) -> None:
    """A run's tool call and chunk are refused (its lease was taken over) while their next
    updates wait behind them: the writer drops them all and goes on (it once died on the item
    it had forgotten)."""
    full: Store = store  # type: ignore[assignment]
    task, run = await taken_over(full)
    gated = HeldFirst(full)
    log = EventLog(gated)  # type: ignore[arg-type]
    log.hold(run.fence)
    async with running(log):
        log.new_task(task.task_id)
        factory = ResponseFactory(task, run.run_id)
        await log.emit(factory.tool_call_started("c1", "search"))
        await log.emit(factory.message_chunk("stale", item_id="i1"))
        await asyncio.wait_for(gated.entered.wait(), 30)  # the writer holds that batch
        await log.emit(factory.tool_call_completed("c1", "search", "found"))
        await log.emit(factory.message_chunk(" and more", item_id="i1"))
        gated.gate.set()
        await asyncio.wait_for(log.flush(), 30)
        after = await log.emit(ResponseFactory(task).system_message("a control's"))
    assert after.seq == 1, after
    assert await contents(store, task.task_id) == [(1, "message", "a control's")]
