"""A task cancelled while it waits for a run slot ends its stream (``task_cancelled``, ``done``).

An in-process agent blocks until the test releases it, so it holds the only run slot (or its
agent's only slot); the next task waits for one, is cancelled while it waits, and its stream
must still end. The slot it never got is not lost: the blocked task and a later one finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from taskcell import Task, TaskPattern, TaskStatus
from taskcell.agents.local import AgentRequest
from taskcell.agents.registry import AgentRegistry
from taskcell.domain.events import Event, EventType
from taskcell.domain.models import RunStatus
from taskcell.engine.engine import Engine, RetryPolicy
from taskcell.stores.sqlite import SQLiteTaskStore

from .conftest import read_until_done


class Gate:
    """The blocking agent's state: ``entered`` once a call runs, ``released`` lets it end."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.released = asyncio.Event()

    async def agent(self, request: AgentRequest) -> str:
        self.entered.set()
        await self.released.wait()
        return f"released: {request.query}"


async def quick(request: AgentRequest) -> str:
    return f"quick: {request.query}"


async def make_engine(tmp_path: Path, gate: Gate, *, slots: int, agent_limit: int | None) -> Engine:
    registry = AgentRegistry()
    registry.register_local("gated", gate.agent, max_concurrent_runs=agent_limit)
    registry.register_local("quick", quick)
    engine = Engine(
        SQLiteTaskStore(tmp_path / "slots.db"),
        registry,
        retry=RetryPolicy(base_seconds=0.01, cap_seconds=0.05),
        default_zone="UTC",
        max_concurrent_runs=slots,
    )
    await engine.start(schedule=False)
    return engine


@pytest.fixture(params=["engine slots", "agent limit"])
async def busy(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Engine, Gate]]:
    """An engine whose one slot for the gated agent is held by a blocked call: either the
    engine has one run slot, or the agent may run one task at a time of four slots."""
    gate = Gate()
    if request.param == "engine slots":
        engine = await make_engine(tmp_path, gate, slots=1, agent_limit=None)
    else:
        engine = await make_engine(tmp_path, gate, slots=4, agent_limit=1)
    try:
        yield engine, gate
    finally:
        gate.released.set()
        await engine.stop()


def kinds(events: list[Event]) -> list[EventType]:
    return [e.event for e in events]


async def block_the_slot(engine: Engine, gate: Gate) -> Task:
    holder = await engine.submit(Task(query="hold", agent_name="gated"))
    await asyncio.wait_for(gate.entered.wait(), timeout=20)
    return holder


async def test_a_once_task_cancelled_while_it_waits_for_a_slot_ends_its_stream(
    busy: tuple[Engine, Gate],
) -> None:
    engine, gate = busy
    holder = await block_the_slot(engine, gate)
    waiting = await engine.submit(Task(query="wait", agent_name="gated"))
    stored = await engine.store.load(waiting.task_id)
    assert stored is not None and stored.status is TaskStatus.PENDING, stored
    assert engine.is_running_here(waiting.task_id), "its runner waits for a slot"

    await engine.cancel(waiting.task_id)

    events = await read_until_done(engine, waiting.task_id)
    assert kinds(events)[-2:] == [EventType.TASK_CANCELLED, EventType.DONE], kinds(events)
    assert kinds(events).count(EventType.DONE) == 1, kinds(events)
    stored = await engine.store.load(waiting.task_id)
    assert stored is not None and stored.status is TaskStatus.CANCELLED, stored
    runs = (await engine.store.list_runs(waiting.task_id)).items
    assert runs == [], f"a task cancelled before it ran has no run, found {runs}"

    gate.released.set()  # the slot it never got is not lost: the holder and a later task end
    held = await read_until_done(engine, holder.task_id)
    assert EventType.TASK_COMPLETED in kinds(held), kinds(held)
    later = await engine.submit(Task(query="after", agent_name="gated"))
    after = await read_until_done(engine, later.task_id)
    assert EventType.TASK_COMPLETED in kinds(after), kinds(after)


async def test_an_occurrence_cancelled_while_it_waits_for_a_slot_closes_its_run(
    busy: tuple[Engine, Gate],
) -> None:
    engine, gate = busy
    await block_the_slot(engine, gate)
    recurring = await engine.submit(
        Task(
            query="tick",
            agent_name="gated",
            pattern=TaskPattern.RECURRING,
            schedule_config={"interval_minutes": 60},  # type: ignore[arg-type]
        ),
        run_immediately=False,
    )
    opened = await engine.store.last_seq(recurring.task_id)  # after the controller's done
    run = await engine.run_now(recurring.task_id)  # stored running; it waits for a slot

    await engine.cancel(recurring.task_id)

    events = await read_until_done(engine, recurring.task_id, after=opened)
    assert EventType.TASK_CANCELLED in kinds(events), kinds(events)
    assert kinds(events)[-1] is EventType.DONE, kinds(events)
    closed = await engine.store.load_run(run.run_id)
    assert closed is not None and closed.status is RunStatus.CANCELLED, closed
    stored = await engine.store.load(recurring.task_id)
    assert stored is not None and stored.status is TaskStatus.CANCELLED, stored
