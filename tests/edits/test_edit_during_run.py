"""An edit while a run of the task is in progress: the run finishes under the version it
started with, and what it records when it ends (its remote task, in ``remote_task_ids`` and
metadata) does not undo the edit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from taskcell.agents.local import AgentRequest
from taskcell.agents.registry import AgentRegistry
from taskcell.domain.models import RunStatus, ScheduleConfig, Task, TaskPattern
from taskcell.engine.engine import Engine, RetryPolicy
from taskcell.engine.executor import CONTEXT_KEY
from taskcell.stores.sqlite import SQLiteTaskStore

pytestmark = pytest.mark.timeout(60)


class Gate:
    """An in-process agent that answers with the query it was given once let through."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.queries: list[str] = []

    async def __call__(self, request: AgentRequest) -> str:
        self.queries.append(request.query)
        self.entered.set()
        await self.release.wait()
        return f"answered {request.query}"


@pytest.fixture
async def gate_engine(tmp_path: Path) -> AsyncIterator[tuple[Engine, Gate]]:
    gate = Gate()
    registry = AgentRegistry()
    registry.register_local("gate", gate)
    engine = Engine(
        SQLiteTaskStore(tmp_path / "tasks.db"),
        registry,
        retry=RetryPolicy(0.01, 0.02),
        default_zone="UTC",
    )
    await engine.start(schedule=False)
    try:
        yield engine, gate
    finally:
        await engine.stop()


async def test_a_run_in_progress_finishes_under_its_version_and_keeps_the_edit(
    gate_engine: tuple[Engine, Gate],
) -> None:
    engine, gate = gate_engine
    task = await engine.submit(
        Task(
            query="first question",
            agent_name="gate",
            pattern=TaskPattern.RECURRING,
            schedule_config=ScheduleConfig(interval_minutes=60),
            metadata={"team": "a"},
        ),
        run_immediately=False,
    )
    run = await engine.run_now(task.task_id)
    await gate.entered.wait()
    edited = await engine.edit(
        task.task_id, {"query": "second question", "metadata": {"team": "b"}, "title": "v2"}
    )
    assert edited.version == 2
    gate.release.set()
    await engine.wait_idle()

    ran = await engine.store.load_run(run.run_id)
    assert ran is not None and ran.status is RunStatus.COMPLETED and ran.version == 1
    assert gate.queries == ["first question"]  # the old version's query
    stored = await engine.store.load(task.task_id)
    assert stored is not None
    assert (stored.version, stored.query, stored.title) == (2, "second question", "v2")
    assert stored.metadata["team"] == "b", stored.metadata  # the edit is not undone
    assert stored.metadata.get(CONTEXT_KEY), stored.metadata  # the run's record is kept
    assert stored.remote_task_ids, stored

    # The next run runs the new version.
    gate.entered.clear()
    second = await engine.run_now(task.task_id)
    await engine.wait_idle()
    assert gate.queries == ["first question", "second question"]
    assert (await engine.store.load_run(second.run_id)).version == 2  # type: ignore[union-attr]
