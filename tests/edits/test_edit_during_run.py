"""An edit while a run of the task is in progress: the run finishes under the version it
started with, and what it records when it ends (its remote task, in ``remote_task_ids`` and
metadata) does not undo the edit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

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


async def test_a_resume_racing_a_schedule_edit_arms_the_new_schedule(
    gate_engine: tuple[Engine, Gate],
) -> None:
    """A resume reads the task, then writes its next time; an edit of the schedule that lands
    between the two must not be undone by the old schedule's time. The edit is made (through
    the real store) as the resume's write is about to go."""
    engine, _ = gate_engine
    task = await engine.submit(
        Task(
            query="report",
            agent_name="gate",
            pattern=TaskPattern.RECURRING,
            schedule_config=ScheduleConfig(interval_minutes=5),
        ),
        run_immediately=False,
    )
    await engine.pause(task.task_id)
    store = engine.store
    real_update = store.update
    raced: list[int | None] = []

    async def update_after_an_edit(*args: Any, **kwargs: Any) -> bool:
        if not raced:
            raced.append(kwargs.get("version"))
            await engine.edit(task.task_id, {"schedule_config": {"interval_minutes": 600}})
        return await real_update(*args, **kwargs)

    store.update = update_after_an_edit  # type: ignore[method-assign]
    try:
        resumed = await engine.resume(task.task_id)
    finally:
        store.update = real_update  # type: ignore[method-assign]
    assert not resumed.paused and resumed.version == 2
    assert resumed.schedule_config is not None
    assert resumed.schedule_config.interval_minutes == 600
    # The edit armed the new schedule (600 minutes from the edit); the resume kept it, not
    # the old schedule's next time (5 minutes).
    assert resumed.next_run_at is not None and resumed.updated_at is not None
    assert resumed.next_run_at - resumed.updated_at > timedelta(minutes=500)
    assert raced == [1], "the resume's write was guarded by the version it read"
