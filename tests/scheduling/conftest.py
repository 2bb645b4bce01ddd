"""Fixtures for scheduling tests: an engine on SQLite with an in-process agent, clocks moved."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from taskcell.agents.local import AgentRequest
from taskcell.agents.registry import AgentRegistry
from taskcell.engine.engine import Engine, RetryPolicy
from taskcell.stores.sqlite import SQLiteTaskStore

EngineFactory = Callable[[], Awaitable[Engine]]


async def quick(request: AgentRequest) -> str:
    return f"tick for {request.metadata.get('timezone')}"


async def broken(request: AgentRequest) -> str:
    raise RuntimeError("the tool is down")


def make_registry() -> AgentRegistry:
    registry = AgentRegistry()
    registry.register_local("quick", quick)
    registry.register_local("broken", broken)
    return registry


@pytest.fixture
async def engines(tmp_path: Path) -> AsyncIterator[EngineFactory]:
    """Start engines on one SQLite file (one after another: a restart); all stopped at the end."""
    made: list[Engine] = []

    async def start() -> Engine:
        engine = Engine(
            SQLiteTaskStore(tmp_path / "schedule.db"),
            make_registry(),
            retry=RetryPolicy(0.01, 0.02),
            default_zone="UTC",
        )
        await engine.start(schedule=False)  # the tests drive the scheduler with fire_due
        made.append(engine)
        return engine

    yield start
    for engine in made:
        if engine.supervisor.alive("event-log-writer"):
            await engine.stop()
