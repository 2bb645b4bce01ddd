"""Per-run caches are evicted when the run ends; the demo agents forget finished A2A tasks.

The long run (30,000 recurring runs, 12,000 demo-agent tasks, resident memory) is
``bench/memory.py``; these tests prove the mechanisms on a small scale.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from a2a.auth.user import User
from a2a.server.context import ServerCallContext
from a2a.types import Task as A2ATask
from a2a.types import TaskState, TaskStatus

from taskcell import Task, TaskPattern
from taskcell.agents.demo.task_store import ForgetfulTaskStore
from taskcell.agents.local import AgentRequest, event
from taskcell.agents.registry import AgentRegistry
from taskcell.engine.controllers import controller_item_id
from taskcell.engine.engine import Engine, RetryPolicy
from taskcell.stores.sqlite import SQLiteTaskStore


async def chatty(request: AgentRequest) -> AsyncIterator[object]:
    yield event("tool_call_started", tool_call_id="t1", tool_name="lookup")
    yield event("tool_call_completed", tool_call_id="t1", tool_name="lookup", tool_result="ok")
    yield "part one, "
    yield "part two"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    registry = AgentRegistry()
    registry.register_local("chatty", chatty)  # type: ignore[arg-type]
    made = Engine(
        SQLiteTaskStore(tmp_path / "caches.db"),
        registry,
        retry=RetryPolicy(0.01, 0.02),
        default_zone="UTC",
    )
    await made.start(schedule=False)  # runs are started with run_now
    try:
        yield made
    finally:
        await made.stop()


async def test_recurring_runs_leave_nothing_in_the_event_log_caches(engine: Engine) -> None:
    task = await engine.submit(
        Task(
            query="tick",
            agent_name="chatty",
            pattern=TaskPattern.RECURRING,
            schedule_config={"interval_minutes": 60},
        ),
        run_immediately=False,
    )
    for _ in range(30):
        await engine.run_now(task.task_id)
        await engine.wait_idle()
    cached = set(engine.log._merged)
    # Only the task's controller (one per task, updated in place by every run) stays.
    assert cached <= {controller_item_id(task)}, f"{len(cached)} items still cached: {cached}"
    assert engine.log._ended_runs == set()
    runs = (await engine.store.list_runs(task.task_id, limit=100)).items
    assert len(runs) == 30 and all(r.result == "part one, part two" for r in runs), runs[:2]
    items = await engine.store.task_items(task.task_id, component_type="scheduled_task_result")
    assert len(items) == 30, "every run's result is in the history even though not cached"


async def test_once_tasks_leave_nothing_in_the_event_log_caches(engine: Engine) -> None:
    for index in range(10):
        await engine.submit(Task(query=f"once {index}", agent_name="chatty"))
    await engine.wait_idle()
    assert engine.log._merged == {}
    assert engine.log._seqs == {}


class Owner(User):
    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def user_name(self) -> str:
        return self.name


def a2a_task(task_id: str, state: int) -> A2ATask:
    return A2ATask(id=task_id, context_id="c", status=TaskStatus(state=state))  # type: ignore[arg-type]


async def test_the_demo_task_store_forgets_finished_tasks() -> None:
    now = [0.0]
    store = ForgetfulTaskStore(keep_seconds=60, keep_finished=3, clock=lambda: now[0])
    alice = ServerCallContext(user=Owner("alice"))
    bob = ServerCallContext(user=Owner("bob"))
    await store.save(a2a_task("waiting", TaskState.TASK_STATE_INPUT_REQUIRED), alice)
    for index in range(5):
        await store.save(a2a_task(f"done-{index}", TaskState.TASK_STATE_COMPLETED), alice)
    kept = [f"done-{i}" for i in range(5) if await store.get(f"done-{i}", alice) is not None]
    assert kept == ["done-2", "done-3", "done-4"], kept
    assert await store.get("done-4", bob) is None, "another owner's task was visible"

    now[0] = 61.0
    await store.save(a2a_task("late", TaskState.TASK_STATE_FAILED), bob)
    kept = [f"done-{i}" for i in range(5) if await store.get(f"done-{i}", alice) is not None]
    assert kept == [], kept
    assert await store.get("late", bob) is not None
    assert await store.get("waiting", alice) is not None, "an unfinished task was forgotten"
    assert store.finished_count == 1
