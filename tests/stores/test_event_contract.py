"""The event store contract (taskcell.abc.EventStore), and ``claim_occurrence``, on every store.

Every test runs on the memory, SQLite and PostgreSQL stores through the ``store`` fixture of
``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from taskcell.abc import EventConflict, InvalidCursor, Store, TaskStore
from taskcell.domain.events import ConversationItem, Event, EventType, Role
from taskcell.domain.models import Run, Task, TaskPattern
from taskcell.domain.state_machine import TaskStatus

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

#: What a duplicate (task_id, seq) raises: each store's own integrity error (the contract
#: names none); PostgreSQL's store answers ValueError, like the memory store.
DUPLICATE_ERRORS = EventConflict


def as_store(store: TaskStore) -> Store:
    """The fixture's store as a complete :class:`Store` (every store under test is one)."""
    return cast(Store, store)


def make_event(task_id: str, seq: int, **fields: Any) -> Event:
    values: dict[str, Any] = {
        "event": EventType.MESSAGE_CHUNK,
        "task_id": task_id,
        "conversation_id": "conv-1",
        "thread_id": "thread-1",
        "item_id": f"item-{task_id}-{seq}",
        "role": Role.AGENT,
        "payload": {"content": f"chunk {seq} ✓", "n": [seq, 2.5, None, True]},
        "created_at": T0 + timedelta(milliseconds=seq),
        "run_id": "run-1",
        "agent_name": "echo",
        "metadata": {"k": seq},
        "seq": seq,
    }
    values.update(fields)
    return Event(**values)


def make_item(item_id: str, **fields: Any) -> ConversationItem:
    values: dict[str, Any] = {
        "item_id": item_id,
        "conversation_id": "conv-1",
        "thread_id": "thread-1",
        "task_id": "task-1",
        "run_id": "run-1",
        "role": Role.AGENT,
        "event": EventType.MESSAGE,
        "payload": {"content": f"text of {item_id}"},
        "created_at": T0,
        "updated_at": T0,
        "agent_name": "echo",
        "component_type": None,
        "metadata": {"source": "test"},
    }
    values.update(fields)
    return ConversationItem(**values)


def recurring_task(**fields: object) -> Task:
    values: dict[str, object] = {
        "query": "check the clock",
        "agent_name": "clock",
        "pattern": TaskPattern.RECURRING,
        "schedule_config": {"interval_minutes": 1},
        "status": TaskStatus.RUNNING,
        "next_run_at": T0,
    }
    values.update(fields)
    return Task(**values)  # type: ignore[arg-type]


# -- events --------------------------------------------------------------------------------


async def test_events_come_back_in_order_with_after_and_limit(store: TaskStore) -> None:
    events = as_store(store)
    first = [make_event("task-1", seq) for seq in range(1, 6)]
    other = [make_event("task-2", seq) for seq in range(1, 3)]
    await events.append_events(first[:2] + other, [])
    await events.append_events(first[2:], [])

    assert await events.read_events("task-1") == first
    assert await events.read_events("task-1", after=2) == first[2:]
    assert await events.read_events("task-1", after=1, limit=2) == first[1:3]
    assert await events.read_events("task-1", after=5) == []
    assert await events.read_events("task-2") == other
    assert await events.read_events("no-such-task") == []


async def test_last_seq(store: TaskStore) -> None:
    events = as_store(store)
    assert await events.last_seq("task-1") == 0
    await events.append_events([make_event("task-1", seq) for seq in (1, 2, 3)], [])
    await events.append_events([make_event("task-2", 1)], [])
    assert await events.last_seq("task-1") == 3
    assert await events.last_seq("task-2") == 1


async def test_a_duplicate_seq_raises_and_stores_nothing_of_its_batch(store: TaskStore) -> None:
    events = as_store(store)
    stored = [make_event("task-1", 1), make_event("task-1", 2)]
    await events.append_events(stored, [make_item("item-a")])

    batch = [make_event("task-2", 1), make_event("task-1", 3), make_event("task-1", 2)]
    with pytest.raises(DUPLICATE_ERRORS):
        await events.append_events(batch, [make_item("item-b"), make_item("item-a", payload={})])

    assert await events.read_events("task-1") == stored
    assert await events.read_events("task-2") == []
    assert await events.last_seq("task-1") == 2
    assert await events.task_items("task-1") == [make_item("item-a")]
    # The store still takes the next batch.
    await events.append_events([make_event("task-1", 3)], [])
    assert await events.last_seq("task-1") == 3


async def test_items_are_upserted_by_id_keeping_created_at(store: TaskStore) -> None:
    events = as_store(store)
    await events.append_events([make_event("task-1", 1)], [make_item("item-a")])
    later = T0 + timedelta(seconds=30)
    newer = make_item(
        "item-a",
        payload={"content": "text of item-a, merged"},
        metadata={"chunks": 2},
        run_id="run-2",
        created_at=later,
        updated_at=later,
    )
    await events.append_events([make_event("task-1", 2)], [newer])

    items = await events.task_items("task-1")
    assert len(items) == 1
    assert items[0].created_at == T0
    assert items[0].updated_at == later
    assert items[0].payload == {"content": "text of item-a, merged"}
    assert items[0].metadata == {"chunks": 2}
    assert items[0].run_id == "run-2"


async def test_an_item_repeated_in_one_batch_ends_as_the_last_one(store: TaskStore) -> None:
    events = as_store(store)
    later = T0 + timedelta(seconds=1)
    batch = [
        make_item("item-a", payload={"content": "a"}),
        make_item("item-a", payload={"content": "ab"}, created_at=later, updated_at=later),
    ]
    await events.append_events([make_event("task-1", 1)], batch)
    (item,) = await events.task_items("task-1")
    assert (item.created_at, item.updated_at, item.payload) == (T0, later, {"content": "ab"})


async def test_list_items_pages_oldest_first_over_120_items(store: TaskStore) -> None:
    events = as_store(store)
    # Groups of three share a created_at, so the item id must break the ties.
    items = [
        make_item(f"item-{n:03d}", created_at=T0 + timedelta(seconds=n // 3))
        for n in reversed(range(120))
    ]
    await events.append_events([], items[:60])
    await events.append_events([], items[60:])
    await events.append_events([], [make_item("other", conversation_id="conv-2")])

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await events.list_items("conv-1", limit=25, cursor=cursor)
        pages += 1
        seen += [i.item_id for i in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"item-{n:03d}" for n in range(120)]
    assert pages == 5
    first = await events.list_items("conv-1", limit=120)
    assert first.next_cursor is None and len(first.items) == 120
    assert first.items[0] == make_item("item-000")
    assert (await events.list_items("conv-2")).items == [
        make_item("other", conversation_id="conv-2")
    ]
    with pytest.raises(InvalidCursor):
        await events.list_items("conv-1", cursor="not-a-cursor")


async def test_task_items_filter_by_component_type(store: TaskStore) -> None:
    events = as_store(store)
    chart = make_item("item-1", component_type="chart", event=EventType.COMPONENT_GENERATOR)
    table = make_item(
        "item-2",
        component_type="table",
        event=EventType.COMPONENT_GENERATOR,
        created_at=T0 + timedelta(seconds=1),
    )
    message = make_item("item-3", created_at=T0 + timedelta(seconds=2))
    elsewhere = make_item("item-4", task_id="task-2", component_type="chart")
    await events.append_events([], [chart, table, message, elsewhere])

    assert await events.task_items("task-1") == [chart, table, message]
    assert await events.task_items("task-1", component_type="chart") == [chart]
    assert await events.task_items("task-1", component_type="map") == []
    assert await events.task_items("task-2", component_type="chart") == [elsewhere]


async def test_ensure_conversation_creates_once_per_user(store: TaskStore) -> None:
    events = as_store(store)
    assert not await events.has_conversation("conv-1")
    assert await events.ensure_conversation("conv-1", title="Filings", user_id="alice")
    assert not await events.ensure_conversation("conv-1", title="Again", user_id="alice")
    assert await events.has_conversation("conv-1", user_id="alice")
    assert not await events.has_conversation("conv-1", user_id="bob")
    # Ids are per user: bob's conversation of the same id is another one.
    assert await events.ensure_conversation("conv-1", title="Other", user_id="bob")
    assert await events.has_conversation("conv-1", user_id="bob")
    assert await events.has_conversation("conv-1")
    assert await events.ensure_conversation("conv-2", title="Filings", user_id="alice")


async def test_list_items_of_one_user_shows_only_their_tasks_items(store: TaskStore) -> None:
    events = as_store(store)
    alice = Task(query="a", agent_name="echo", user_id="alice", conversation_id="conv-1")
    bob = Task(query="b", agent_name="echo", user_id="bob", conversation_id="conv-1")
    for task in (alice, bob):
        await store.create(task, conversation_title=task.query)
    items = [
        make_item(f"item-{n:02d}", task_id=(alice, bob)[n % 2].task_id, created_at=T0)
        for n in range(30)
    ]
    await events.append_events([], items)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await events.list_items("conv-1", user_id="alice", limit=4, cursor=cursor)
        seen += [i.item_id for i in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"item-{n:02d}" for n in range(0, 30, 2)]
    bobs = await events.list_items("conv-1", user_id="bob", limit=100)
    assert [i.item_id for i in bobs.items] == [f"item-{n:02d}" for n in range(1, 30, 2)]
    everyone = await events.list_items("conv-1", limit=100)
    assert len(everyone.items) == 30
    assert (await events.list_items("conv-1", user_id="carol")).items == []


async def test_deleting_a_task_removes_its_events_and_items(store: TaskStore) -> None:
    events = as_store(store)
    task = Task(query="summarise", agent_name="echo")
    kept = Task(query="summarise", agent_name="echo")
    for each in (task, kept):
        await store.save(each)
    await store.add_run(Run(task_id=task.task_id))
    await events.append_events(
        [make_event(task.task_id, 1), make_event(task.task_id, 2), make_event(kept.task_id, 1)],
        [make_item("item-a", task_id=task.task_id), make_item("item-b", task_id=kept.task_id)],
    )

    assert await store.delete(task.task_id)
    assert await events.read_events(task.task_id) == []
    assert await events.last_seq(task.task_id) == 0
    assert await events.task_items(task.task_id) == []
    assert [i.item_id for i in (await events.list_items("conv-1")).items] == ["item-b"]
    assert await events.last_seq(kept.task_id) == 1
    assert [i.item_id for i in await events.task_items(kept.task_id)] == ["item-b"]


# -- claim_occurrence ----------------------------------------------------------------------


async def test_claim_occurrence_is_won_once_by_concurrent_claimers(store: TaskStore) -> None:
    task = recurring_task()
    await store.save(task)
    upcoming = T0 + timedelta(minutes=1)
    results = await asyncio.gather(
        *(store.claim_occurrence(task.task_id, due=T0, next_run_at=upcoming) for _ in range(2))
    )
    assert sorted(results) == [False, True]
    loaded = await store.load(task.task_id)
    assert loaded is not None and loaded.next_run_at == upcoming
    # The claimed time is gone: claiming it again fails, claiming the new one wins.
    assert not await store.claim_occurrence(task.task_id, due=T0, next_run_at=upcoming)
    assert await store.claim_occurrence(task.task_id, due=upcoming, next_run_at=None)
    loaded = await store.load(task.task_id)
    assert loaded is not None and loaded.next_run_at is None


@pytest.mark.parametrize(
    "fields",
    [{"paused": True}, {"status": TaskStatus.CANCELLED}, {"pattern": TaskPattern.ONCE}],
    ids=["paused", "cancelled", "once"],
)
async def test_claim_occurrence_refuses_an_unarmed_task(
    store: TaskStore, fields: dict[str, object]
) -> None:
    if fields.get("pattern") is TaskPattern.ONCE:
        fields = {**fields, "schedule_config": None}
    task = recurring_task(**fields)
    await store.save(task)
    assert not await store.claim_occurrence(
        task.task_id, due=T0, next_run_at=T0 + timedelta(minutes=1)
    )
    loaded = await store.load(task.task_id)
    assert loaded is not None and loaded.next_run_at == T0
    assert not await store.claim_occurrence("no-such-task", due=T0, next_run_at=None)
