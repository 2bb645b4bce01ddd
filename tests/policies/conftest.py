"""Fixtures for policy tests: engines on one SQLite file with in-process agents, one of which
holds each run until the test lets it go."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from taskcell.agents.local import AgentRequest
from taskcell.agents.registry import AgentRegistry
from taskcell.engine.engine import Engine, RetryPolicy
from taskcell.stores.sqlite import SQLiteTaskStore

#: Leases far longer than any clock move of these tests: a run in progress keeps its lease
#: while time-machine jumps hours ahead (the store decides overlap by leases).
LONG_LEASE_SECONDS = 90 * 24 * 3600.0


class Gate:
    """An agent whose runs each wait until the test opens the gate; counts its calls."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.calls = 0
        self.entered = asyncio.Event()
        self.cancelled = 0
        self.stopped = asyncio.Event()  # set when a call is cancelled

    async def __call__(self, request: AgentRequest) -> str:
        self.calls += 1
        self.entered.set()
        try:
            await self.open.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            self.stopped.set()
            raise
        return "done"


async def quick(request: AgentRequest) -> str:
    return "tick"


EngineFactory = Callable[[], Awaitable[Engine]]


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
async def engines(tmp_path: Path, gate: Gate) -> AsyncIterator[EngineFactory]:
    """Engines on one SQLite file (one after another: a restart); all stopped at the end. The
    tests drive the scheduler with ``fire_due``."""
    made: list[Engine] = []

    async def start() -> Engine:
        registry = AgentRegistry()
        registry.register_local("gate", gate)
        registry.register_local("quick", quick)
        engine = Engine(
            SQLiteTaskStore(tmp_path / "policies.db"),
            registry,
            retry=RetryPolicy(0.01, 0.02),
            default_zone="UTC",
            lease_seconds=LONG_LEASE_SECONDS,
        )
        await engine.start(schedule=False)
        made.append(engine)
        return engine

    yield start
    gate.open.set()
    for engine in made:
        if engine.supervisor.alive("event-log-writer"):
            await engine.stop()
