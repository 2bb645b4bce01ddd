"""The event log and bus: every event is numbered, appended durably, then published.

``emit`` gives an event its task's next sequence number and queues it; one writer loop appends
whatever has queued since its last write in one transaction (so a fast agent is not slowed by a
commit per event), merges message chunks into conversation items, and only then publishes the
batch to live subscribers. ``subscribe(task_id, after=N)`` replays the log after N and then
goes live, with no gap and no duplicate: it registers for live events *before* reading the log
and drops live events it has already replayed (by sequence number). A subscriber that falls too
far behind, or is told that another process appended events, reads the log again from where it
is.

The writer never dies (see :meth:`EventLog._write_batch`): conflicts with another writer are
renumbered for as long as they last; events a store refuses because their run lost its lease
(:class:`~taskcell.abc.LeaseLost`) or their task's log is closed (:class:`~taskcell.abc.LogClosed`)
are dropped, and only those; an event the store cannot encode is replaced by a
``system_failed`` event saying why; an unreachable store is retried with capped exponential
back-off and jitter (tenacity) for as long as it lasts, the events kept queued meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import random
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from taskcell.abc import EventConflict, EventStore, LeaseLost, LogClosed
from taskcell.domain.events import ConversationItem, Event, EventType, Role
from taskcell.domain.models import Fence
from taskcell.engine.weather import weather

logger = logging.getLogger(__name__)

T = TypeVar("T")

_READ_PAGE = 500
#: Back-off while the store is unreachable: exponential from this, with jitter, ...
OUTAGE_FIRST_WAIT = 0.05
#: ... capped at this many seconds between attempts; it goes on for as long as the outage.
OUTAGE_MAX_WAIT = 5.0
#: Back-off between renumberings of a batch that another writer's events conflict with.
_CONFLICT_MAX_WAIT = 0.2

#: Events that become (or update) an item of the conversation's history.
_ITEM_EVENTS = frozenset(
    {
        EventType.MESSAGE_CHUNK,
        EventType.MESSAGE,
        EventType.REASONING,
        EventType.TOOL_CALL_STARTED,
        EventType.TOOL_CALL_COMPLETED,
        EventType.COMPONENT_GENERATOR,
        EventType.PLAN_REQUIRE_USER_INPUT,
        EventType.TASK_FAILED,
        EventType.PLAN_FAILED,
        EventType.SYSTEM_FAILED,
    }
)
#: Events whose item grows by appending text (chunks are kept as a list, joined when written).
_GROWING = {EventType.MESSAGE_CHUNK: EventType.MESSAGE, EventType.REASONING: EventType.REASONING}


#: While a message grows, its history item is rewritten at most this often (it is written at
#: once when the message ends: any other event of the task, or a flush).
GROWING_WRITE_SECONDS = 1.0
#: When fewer events than this are queued, the writer waits a moment for more to batch.
LINGER_BELOW = 64
LINGER_SECONDS = 0.001


@dataclass(slots=True)
class _Merged:
    item: ConversationItem
    chunks: list[str] = field(default_factory=list)
    written_at: float | None = None  # loop time of the last write, None if never written

    def render(self) -> ConversationItem:
        if self.chunks:
            self.item.payload = {"content": "".join(self.chunks)}
        return self.item


class _Subscriber:
    __slots__ = ("ended", "lagging", "limit", "position", "queue", "ready")

    def __init__(self, limit: int, position: int = 0) -> None:
        #: The seq of the last event this reader was given (retention keeps what follows).
        self.position = position
        self.queue: deque[Event] = deque()
        self.ready = asyncio.Event()
        self.lagging = False
        self.ended = False
        self.limit = limit

    def push(self, events: Iterable[Event]) -> None:
        if not self.lagging:
            self.queue.extend(events)
            if len(self.queue) > self.limit:
                self.queue.clear()
                self.lagging = True  # read the log again instead of holding a long queue
        self.ready.set()


class EventLog:
    """See the module docstring. ``run()`` is the writer loop; the engine supervises it."""

    def __init__(
        self,
        store: EventStore,
        *,
        max_pending: int = 5_000,
        subscriber_queue: int = 10_000,
        poll_seconds: float | None = None,
        notices_for: Callable[[set[str]], list[str]] | None = None,
        on_lease_lost: Callable[[frozenset[str]], None] | None = None,
    ) -> None:
        self._store = store
        self._max_pending = max_pending
        self._subscriber_queue = subscriber_queue
        self._seqs: dict[str, int] = {}
        self._seq_lock = asyncio.Lock()
        self._pending: list[Event] = []
        self._merged: dict[str, _Merged] = {}
        self._dirty: set[str] = set()
        self._growing: dict[str, str] = {}  # item id -> task id, grown since last written
        self._ended_runs: set[str] = set()  # their merge state goes once it is written
        self._wakeup = asyncio.Event()
        self._emitted = 0
        self._persisted = 0
        self._flush_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._subscribers: dict[str, set[_Subscriber]] = {}
        self.appended_total = 0
        #: In a cluster, how often an idle reader reads the log anyway (a lost notification).
        self.poll_seconds = poll_seconds
        #: The notices to send with a batch, from its task ids (a cluster tells the others).
        self.notices_for = notices_for
        #: Told the runs whose events the store refused for a lost lease (they must stop).
        self.on_lease_lost = on_lease_lost
        self._fences: dict[str, Fence] = {}
        self._lost_runs: set[str] = set()
        self.dropped_total = 0
        self._outcome_unknown = False
        #: Told of each batch once it is appended (the webhook dispatcher wakes on some).
        self.on_appended: Callable[[list[Event]], None] | None = None

    # -- writing --------------------------------------------------------------------------

    def hold(self, fence: Fence) -> None:
        """Events of ``fence``'s run emitted from now on are appended under its fence."""
        self._fences[fence.run_id] = fence

    def release(self, fence: Fence) -> None:
        """The run ended here: its events are no longer fenced (those queued keep theirs).

        Only ``fence`` itself is let go: a run continued after a reply holds the same run id
        under the next epoch, and the earlier holder's release must not drop the later one's.
        """
        if self._fences.get(fence.run_id) != fence:
            return
        del self._fences[fence.run_id]
        self._lost_runs.discard(fence.run_id)

    async def emit(self, event: Event, *, fence: Fence | None = None) -> Event:
        """Number ``event`` and queue it for the log; answers it with its ``seq`` set.

        The event is appended under ``fence`` (default: the fence held for its run, if any);
        an event of a run whose lease was lost is dropped (its ``seq`` stays 0).
        """
        if fence is None and event.run_id is not None:
            fence = self._fences.get(event.run_id)
        if fence is not None:
            if fence.run_id in self._lost_runs:
                # Still emitting: the run was not stopped (a cancel lost on its way); stop it
                # again, so a stale attempt never runs on writing nothing.
                if self.on_lease_lost is not None:
                    self.on_lease_lost(frozenset({fence.run_id}))
                return event
            event.fence = fence
        seq = self._seqs.get(event.task_id)
        if seq is None:
            seq = await self._load_seq(event.task_id)
        event.seq = seq + 1
        self._seqs[event.task_id] = event.seq
        self._pending.append(event)
        self._emitted += 1
        if event.event in _ITEM_EVENTS:
            self._merge(event)
        self._wakeup.set()
        if len(self._pending) >= self._max_pending:
            await self.flush()
        return event

    def new_task(self, task_id: str) -> None:
        """A task created just now has no events yet: its numbering starts at 1."""
        self._seqs.setdefault(task_id, 0)

    def run_ended(self, run_id: str) -> None:
        """Run ``run_id`` emitted its last event here: its merge state (the items of its
        messages, tool calls, components) is dropped once written, so a task that runs for
        ever (a recurring one) keeps none per run."""
        self._ended_runs.add(run_id)
        self._forget_ended_runs()
        if self._ended_runs:
            self._wakeup.set()

    def appended_elsewhere(self, task_id: str) -> None:
        """Another process appended to ``task_id``'s log: number its next event after the log's
        end as stored (unless events of it are still queued here, which keep their order)."""
        if task_id in self._seqs and not any(e.task_id == task_id for e in self._pending):
            del self._seqs[task_id]

    async def _load_seq(self, task_id: str) -> int:
        async with self._seq_lock:
            seq = self._seqs.get(task_id)
            if seq is None:
                seq = await self._store.last_seq(task_id)
                self._seqs[task_id] = seq
            return seq

    def _merge(self, event: Event) -> None:
        merged = self._merged.get(event.item_id)
        kind = _GROWING.get(event.event, event.event)
        payload = event.payload
        if merged is None:
            component = payload.get("component_type") if payload else None
            item = ConversationItem(
                item_id=event.item_id,
                conversation_id=event.conversation_id,
                thread_id=event.thread_id,
                task_id=event.task_id,
                run_id=event.run_id,
                role=event.role,
                event=kind,
                payload=None,
                created_at=event.created_at,
                updated_at=event.created_at,
                agent_name=event.agent_name,
                component_type=component if isinstance(component, str) else None,
                metadata=event.metadata,
            )
            merged = self._merged[event.item_id] = _Merged(item)
        merged.item.updated_at = event.created_at
        if event.event in _GROWING:
            if not merged.chunks and merged.item.payload:
                # A whole message that grows on (an artifact's appended pieces).
                merged.chunks.append(str(merged.item.payload.get("content", "")))
            merged.chunks.append(str((payload or {}).get("content", "")))
            if merged.written_at is None:
                self._dirty.add(event.item_id)  # a new message shows at once
            else:
                self._growing[event.item_id] = event.task_id
            return
        merged.item.event = kind
        merged.item.payload = payload
        self._dirty.add(event.item_id)

    async def flush(self) -> None:
        """Wait until every event emitted so far is durable and published."""
        if self._persisted >= self._emitted:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flush_waiters.append((self._emitted, waiter))
        self._wakeup.set()
        await waiter

    async def run(self) -> None:
        """The writer loop: append what queued, then publish it. Runs until cancelled."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if len(self._pending) < LINGER_BELOW and not self._flush_waiters:
                await asyncio.sleep(LINGER_SECONDS)  # let a trickle of events share a commit
            while self._pending:
                await self._write_batch()
            self._forget_ended_runs()

    def _items_to_write(self, batch: list[Event]) -> list[ConversationItem]:
        """Changed items; a growing message only when it ended, on a flush, or once a second."""
        now = asyncio.get_running_loop().time()
        moved_on = {e.task_id for e in batch if e.event not in _GROWING}
        for item_id, task_id in list(self._growing.items()):
            merged = self._merged.get(item_id)
            if merged is None:
                del self._growing[item_id]
                continue
            stale = merged.written_at is None or now - merged.written_at >= GROWING_WRITE_SECONDS
            if task_id in moved_on or self._flush_waiters or stale:
                self._dirty.add(item_id)
                del self._growing[item_id]
        items = []
        for item_id in self._dirty:
            merged = self._merged.get(item_id)
            if merged is None:
                continue  # its run's events were dropped (a lost lease, a closed log)
            merged.written_at = now
            items.append(merged.render())
        self._dirty.clear()
        return items

    async def _write_batch(self) -> None:
        """Append one batch; it ends appended, or with exactly the refused events dropped.

        Nothing here raises but cancellation: a conflict is renumbered, a refusal drops the
        refused events, an event that cannot be encoded is replaced, and an unreachable store
        is waited out (the events stay queued meanwhile).
        """
        batch, self._pending = self._pending, []
        settled = len(batch)
        items = self._items_to_write(batch)
        self._outcome_unknown = False  # an attempt failed: the batch may have been stored
        conflicts = 0
        renumber: set[str] = set()
        while batch or items:
            if renumber:
                await self._durably("renumber", functools.partial(self._renumber, batch, renumber))
                renumber = set()
            task_ids = {e.task_id for e in batch}
            notices = self.notices_for(task_ids) if self.notices_for is not None else []
            try:
                await self._append(batch, items, notices)
                break
            except asyncio.CancelledError:
                raise
            except EventConflict:
                check = functools.partial(self._stored_already, batch)
                if self._outcome_unknown and await self._durably("check", check):
                    break  # an attempt whose answer was lost had been committed after all
                # Another process appended to one of these tasks first: number the batch after
                # the log's end and try again. Each retry follows someone else's progress.
                conflicts += 1
                logger.info(
                    "events renumbered after another writer's",
                    extra={"events": len(batch), "conflicts": conflicts},
                )
                wait = min(_CONFLICT_MAX_WAIT, 0.002 * 2 ** min(conflicts, 16))
                await asyncio.sleep(wait * (0.5 + random.random() / 2))
                renumber = task_ids
            except LeaseLost as exc:
                # The tasks that lost events are numbered again from the log's end (their
                # events still queued here too), so their logs stay without a gap.
                batch, items, renumber = self._drop(batch, items, runs=exc.run_ids)
                self._lost_runs |= exc.run_ids
                logger.warning(
                    "events of runs that lost their lease dropped",
                    extra={"runs": sorted(exc.run_ids)},
                )
                if self.on_lease_lost is not None:
                    self.on_lease_lost(exc.run_ids)
            except LogClosed as exc:
                batch, items, renumber = self._drop(batch, items, tasks=exc.task_ids)
                logger.warning(
                    "events after a closed log dropped", extra={"tasks": sorted(exc.task_ids)}
                )
            except UnicodeError as exc:
                if not self._isolate(batch, items, exc):
                    await self._outage_wait(conflicts + 1, exc)
        if renumber:  # every event of the batch was dropped: those queued follow the log's end
            await self._durably("renumber", functools.partial(self._renumber, batch, renumber))
        self._persisted += settled
        self.appended_total += len(batch)
        self._publish(batch)
        if self.on_appended is not None and batch:
            self.on_appended(batch)
        self._forget_finished(batch)
        self._release_flush_waiters()

    async def _append(
        self, batch: list[Event], items: list[ConversationItem], notices: list[str]
    ) -> None:
        """Append, retrying for as long as the store is unreachable (after such a failure the
        outcome is unknown: the answer may have been lost after the commit)."""

        async def once() -> None:
            try:
                await self._store.append_events(batch, items, notices=notices)
            except Exception as exc:
                if _is_outage(exc):
                    self._outcome_unknown = True
                raise

        await self._durably("append", once)

    async def _durably(self, step: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, retried with capped exponential back-off and jitter while it fails
        with an outage (any error but a conflict, a refusal or an encoding error)."""
        retrying = AsyncRetrying(
            retry=retry_if_exception(_is_outage),
            wait=wait_exponential_jitter(multiplier=OUTAGE_FIRST_WAIT, max=OUTAGE_MAX_WAIT),
            before_sleep=_outage_logger(step),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await call()
        raise AssertionError("unreachable: tenacity re-raises or returns")

    async def _outage_wait(self, attempt: int, exc: BaseException) -> None:
        logger.error("event append failed; trying again", extra={"error": repr(exc)})
        wait = min(OUTAGE_MAX_WAIT, OUTAGE_FIRST_WAIT * 2 ** min(attempt, 16))
        await asyncio.sleep(wait * (0.5 + random.random() / 2))

    def _drop(
        self,
        batch: list[Event],
        items: list[ConversationItem],
        *,
        runs: frozenset[str] = frozenset(),
        tasks: frozenset[str] = frozenset(),
    ) -> tuple[list[Event], list[ConversationItem], set[str]]:
        """Drop the events (queued ones too) and items of refused runs or closed logs; answers
        what is kept and the tasks that lost events (to number again from the log's end)."""

        def refused(event: Event) -> bool:
            return event.task_id in tasks or (
                event.fence is not None and event.fence.run_id in runs
            )

        kept = [e for e in batch if not refused(e)]
        queued = [e for e in self._pending if not refused(e)]
        affected = {e.task_id for e in [*batch, *self._pending] if refused(e)}
        dropped_queued = len(self._pending) - len(queued)
        self._pending = queued
        self._persisted += dropped_queued  # settled: a flush does not wait for them
        self.dropped_total += len(batch) - len(kept) + dropped_queued
        kept_items = [
            i
            for i in items
            if i.task_id not in tasks and (i.run_id is None or i.run_id not in runs)
        ]
        # Forget the merge state of every item of the refused runs and logs, written in this
        # batch or only marked for the next one (a queued event dropped above marked it).
        gone = [
            item_id
            for item_id, merged in self._merged.items()
            if merged.item.task_id in tasks or (merged.item.run_id or "") in runs
        ]
        gone.extend(item.item_id for item in items if item not in kept_items)
        for item_id in gone:
            self._merged.pop(item_id, None)
            self._dirty.discard(item_id)
            self._growing.pop(item_id, None)
        return kept, kept_items, affected

    def _isolate(
        self, batch: list[Event], items: list[ConversationItem], exc: UnicodeError
    ) -> bool:
        """Replace each event (and item) the store cannot encode by a ``system_failed`` saying
        why; answers whether any was found (else the error came from elsewhere)."""
        found = False
        for index, event in enumerate(batch):
            if not _encodable(event.to_json()):
                reason = f"an event ({event.event.value}) could not be stored: {_why(exc)}"
                batch[index] = _failed_in_place(event, reason)
                logger.error(
                    "unencodable event replaced", extra={"task_id": event.task_id, "seq": event.seq}
                )
                found = True
        for item in items:
            if not _encodable(json.dumps(item.to_dict(), ensure_ascii=False, default=str)):
                merged = self._merged.get(item.item_id)
                if merged is not None:
                    merged.chunks = []  # the text it grew from is what could not be stored
                item.event = EventType.SYSTEM_FAILED
                item.payload = {"content": f"this entry could not be stored: {_why(exc)}"}
                found = True
        return found

    async def _stored_already(self, batch: list[Event]) -> bool:
        """Whether the log holds exactly this batch's events (first and last of each task)."""
        by_task: dict[str, list[Event]] = {}
        for event in batch:
            by_task.setdefault(event.task_id, []).append(event)
        for task_id, events in by_task.items():
            for event in {events[0].seq: events[0], events[-1].seq: events[-1]}.values():
                found = await self._store.read_events(task_id, after=event.seq - 1, limit=1)
                if not found or found[0].to_dict() != event.to_dict():
                    return False
        return True

    async def _renumber(self, batch: list[Event], task_ids: set[str] | None = None) -> None:
        """Give a batch's events (and those queued after it) numbers after what the log holds
        now, and number the task's next event after them.

        Another process may have appended to the same task's log (in a cluster, a cancel or a
        controller update comes from the process that took the request), or refused events
        were dropped. The batch was not published yet, so nobody saw the old numbers.
        """
        for task_id in task_ids if task_ids is not None else {e.task_id for e in batch}:
            seq = await self._store.last_seq(task_id)
            for event in [*batch, *self._pending]:
                if event.task_id == task_id:
                    seq += 1
                    event.renumber(seq)
            self._seqs[task_id] = seq

    def _publish(self, batch: list[Event]) -> None:
        if not self._subscribers:
            return
        by_task: dict[str, list[Event]] = {}
        for event in batch:
            if event.task_id in self._subscribers:
                by_task.setdefault(event.task_id, []).append(event)
        for task_id, events in by_task.items():
            for subscriber in self._subscribers.get(task_id, ()):
                subscriber.push(events)

    def _forget_ended_runs(self) -> None:
        """Drop the merge state of ended runs (:meth:`run_ended`) whose items are written."""
        runs = self._ended_runs - {e.run_id for e in self._pending}
        if not runs:
            return
        unwritten: set[str | None] = set()
        stale = []
        for item_id, merged in self._merged.items():
            run_id = merged.item.run_id
            if run_id in runs:
                if item_id in self._dirty or item_id in self._growing:
                    unwritten.add(run_id)
                else:
                    stale.append(item_id)
        for item_id in stale:
            del self._merged[item_id]
        self._ended_runs -= runs - unwritten

    def _forget_finished(self, batch: list[Event]) -> None:
        """Drop merge state of tasks whose run ended (``done``) with nothing queued after."""
        self._forget_ended_runs()
        ended = {e.task_id for e in batch if e.event is EventType.DONE}
        if not ended:
            return
        still_pending = {e.task_id for e in self._pending}
        for task_id in ended - still_pending:
            self._seqs.pop(task_id, None)
        stale = [
            item_id
            for item_id, merged in self._merged.items()
            if merged.item.task_id in ended
            and item_id not in self._dirty
            and item_id not in self._growing
        ]
        for item_id in stale:
            del self._merged[item_id]

    def _release_flush_waiters(self) -> None:
        keep = []
        for target, waiter in self._flush_waiters:
            if target <= self._persisted:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                keep.append((target, waiter))
        self._flush_waiters = keep

    # -- reading ----------------------------------------------------------------------------

    def wake_readers(self, task_id: str) -> None:
        """Another process appended events for ``task_id``: readers re-read the log."""
        for subscriber in self._subscribers.get(task_id, ()):
            subscriber.lagging = True
            subscriber.ready.set()

    def wake_all_readers(self) -> None:
        """Readers may have missed notices (a lost connection): each re-reads the log."""
        for task_id in list(self._subscribers):
            self.wake_readers(task_id)

    def reader_floor(self, task_id: str) -> int | None:
        """The lowest position (seq last given) of this process's live readers of
        ``task_id``, or None with none: retention removes nothing after it."""
        subscribers = self._subscribers.get(task_id)
        return min((s.position for s in subscribers), default=None) if subscribers else None

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    def end_subscriptions(self) -> None:
        """End every live subscription once it has passed on what it holds (the server stops:
        its streams end cleanly, and their readers resume elsewhere or after the restart)."""
        for subscribers in self._subscribers.values():
            for subscriber in subscribers:
                subscriber.ended = True
                subscriber.ready.set()

    async def subscribe(self, task_id: str, *, after: int = 0) -> AsyncIterator[Event]:
        """The task's events with ``seq > after``: the log, then live, each exactly once."""
        async with contextlib.aclosing(self.subscribe_batches(task_id, after=after)) as batches:
            async for batch in batches:
                for event in batch:
                    yield event

    async def subscribe_batches(
        self, task_id: str, *, after: int = 0
    ) -> AsyncGenerator[list[Event], None]:
        """Like :meth:`subscribe`, in runs of consecutive events (a page of the log, or what
        queued for a live reader since it last looked), so a reader can send them at once."""
        subscriber = _Subscriber(self._subscriber_queue, after)
        self._subscribers.setdefault(task_id, set()).add(subscriber)
        last = after
        try:
            while True:
                # Listen before reading, so nothing published during the read is missed.
                subscriber.lagging = False
                subscriber.queue.clear()
                replayed = False
                while True:
                    # A reader waits an outage out (the stream stays open) and goes on after.
                    page = await weather(
                        "stream",
                        functools.partial(
                            self._store.read_events, task_id, after=last, limit=_READ_PAGE
                        ),
                    )
                    if page:
                        yield page
                        last = subscriber.position = page[-1].seq
                        replayed = True
                    if len(page) < _READ_PAGE:
                        break
                async for batch in self._live(subscriber, last, trust_gaps=not replayed):
                    yield batch
                    last = subscriber.position = batch[-1].seq
                if subscriber.ended:
                    return
        finally:
            subscribers = self._subscribers.get(task_id)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    del self._subscribers[task_id]

    async def _live(
        self, subscriber: _Subscriber, last: int, *, trust_gaps: bool
    ) -> AsyncIterator[list[Event]]:
        """Live events after ``last``; returns when the log must be read again."""
        while True:
            if subscriber.lagging:
                return
            if not subscriber.queue and subscriber.ended:
                return
            if not subscriber.queue:
                subscriber.ready.clear()
                if self.poll_seconds is None:
                    await subscriber.ready.wait()
                    continue
                try:
                    async with asyncio.timeout(self.poll_seconds):
                        await subscriber.ready.wait()
                except TimeoutError:
                    return  # the slow poll: read the log in case a notification was lost
                continue
            batch: list[Event] = []
            gap = False
            while subscriber.queue:
                event = subscriber.queue.popleft()
                if event.seq <= last:
                    continue
                if event.seq > last + 1 and not trust_gaps:
                    # Events between were appended by someone else: read them from the log.
                    subscriber.queue.appendleft(event)
                    gap = True
                    break
                batch.append(event)
                last = event.seq
                trust_gaps = False
            if batch:
                yield batch
            if gap:
                return


def _is_outage(exc: BaseException) -> bool:
    """Whether an append failed for a reason that passes (the store unreachable, say)."""
    refused = (EventConflict, LeaseLost, LogClosed, UnicodeError)
    return isinstance(exc, Exception) and not isinstance(exc, refused)


def _outage_logger(step: str) -> Callable[[RetryCallState], None]:
    def log(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        logger.warning(
            "event log store unreachable; trying again",
            extra={"step": step, "attempt": state.attempt_number, "error": repr(error)},
        )

    return log


def _why(exc: UnicodeError) -> str:
    reason = exc.reason if isinstance(exc, UnicodeEncodeError) else type(exc).__name__
    return f"its text is not valid Unicode ({reason})"


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _failed_in_place(event: Event, reason: str) -> Event:
    """A ``system_failed`` event in ``event``'s place (same task, run, seq and fence)."""
    return dataclasses.replace(
        event,
        event=EventType.SYSTEM_FAILED,
        role=Role.SYSTEM,
        payload={"content": reason},
        metadata={},
        _wire=None,
        _frame=None,
    )
