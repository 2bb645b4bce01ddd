"""overlap cancel_other across two engines on one PostgreSQL database: the engine that stores
the newer occurrence tells the one that runs the older (a ``stop-runs`` notice), which stops
it at once, even while its agent says nothing (no write of its own would find out)."""

from __future__ import annotations

import asyncio

from pg import empty_tables
from taskcell import Task, TaskPattern
from taskcell.agents.local import AgentRequest
from taskcell.agents.registry import AgentRegistry
from taskcell.domain.models import RunStatus
from taskcell.domain.policies import CANCELLED_BY_NEWER
from taskcell.engine.engine import Engine
from taskcell.stores.postgres import PostgresTaskStore

from .conftest import Gate


async def engine_with(url: str, agent: object, owner: str) -> Engine:
    registry = AgentRegistry()
    registry.register_local("work", agent)  # type: ignore[arg-type]
    store = PostgresTaskStore(url)
    await store.open()
    if owner.startswith("a:"):
        await empty_tables(store)
    engine = Engine(store, registry, default_zone="UTC", owner=owner)
    await engine.start(schedule=False)
    return engine


async def test_a_replaced_run_in_another_process_stops_at_once(postgres_database: str) -> None:
    gate = Gate()

    async def quick(request: AgentRequest) -> str:
        return "newer"

    first = await engine_with(postgres_database, gate, "a:1:aaaaaa")
    second = await engine_with(postgres_database, quick, "b:2:bbbbbb")
    try:
        task = await first.submit(
            Task(
                query="q",
                agent_name="work",
                pattern=TaskPattern.RECURRING,
                schedule_config={"interval_minutes": 60},
                overlap="cancel_other",
            )
        )
        assert await first.scheduler.fire_due() == 1
        await asyncio.wait_for(gate.entered.wait(), 20)  # silent at the gate, in A
        newer = await second.run_now(task.task_id)  # through B: replaces A's run
        assert newer.status is RunStatus.RUNNING
        await asyncio.wait_for(gate.stopped.wait(), 20)  # A heard it and stopped the call
        await asyncio.wait_for(first.wait_idle(), 20)
        await asyncio.wait_for(second.wait_idle(), 20)
        runs = (await first.store.list_runs(task.task_id)).items
        by_id = {r.run_id: r for r in runs}
        assert by_id[newer.run_id].status is RunStatus.COMPLETED
        [older] = [r for r in runs if r.run_id != newer.run_id]
        assert (older.status, older.error) == (RunStatus.CANCELLED, CANCELLED_BY_NEWER)
        assert older.owner == "a:1:aaaaaa"
    finally:
        gate.open.set()
        await first.stop()
        await second.stop()
