"""Fixtures for the controls tests: engines on one SQLite file with a hanging in-process agent
and the demo A2A agents on a real uvicorn server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from taskcell.agents.base import AgentUpdate
from taskcell.agents.demo import DEMO_AGENTS, create_demo_app, demo_agent_url
from taskcell.agents.http import aclose_shared_http_clients
from taskcell.agents.local import AgentRequest, ask
from taskcell.agents.registry import AgentRegistry
from taskcell.agents.remote import RemoteAgentClient
from taskcell.domain.events import Event, EventType
from taskcell.engine.engine import Engine, RetryPolicy
from taskcell.stores.sqlite import SQLiteTaskStore
from taskcell.testing import serve_app

EngineFactory = Callable[[], Awaitable[Engine]]


class Hang:
    """An in-process agent that never answers: it counts its calls and its cancellations."""

    def __init__(self) -> None:
        self.calls = 0
        self.cancelled = 0
        self.started = asyncio.Event()

    async def __call__(self, request: AgentRequest) -> str:
        self.calls += 1
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        raise AssertionError("unreachable")

    async def next_call(self) -> None:
        await asyncio.wait_for(self.started.wait(), 20)
        self.started.clear()


async def asks_then_hangs(request: AgentRequest) -> AsyncIterator[str | AgentUpdate]:
    """Asks a question; given the reply, hangs (until cancelled)."""
    if request.input_text is None:
        yield ask("Which report?")
        return
    yield f"working on {request.input_text} "
    await asyncio.Event().wait()


@pytest.fixture
def hang() -> Hang:
    return Hang()


@pytest.fixture
async def demo_url() -> AsyncIterator[str]:
    async with serve_app(app_factory=create_demo_app) as base_url:
        yield base_url
    await aclose_shared_http_clients()


@pytest.fixture
async def engines(tmp_path: Path, hang: Hang, demo_url: str) -> AsyncIterator[EngineFactory]:
    """Start engines on one SQLite file (one after another: a restart); all stopped at the
    end. The scheduler is driven by the tests (``fire_due``)."""
    made: list[Engine] = []

    async def start() -> Engine:
        registry = AgentRegistry()
        registry.register_local("hang", hang)
        registry.register_local("asks", asks_then_hangs)
        for name, _ in DEMO_AGENTS:
            registry.register(RemoteAgentClient(name, demo_agent_url(demo_url, name)))
        engine = Engine(
            SQLiteTaskStore(tmp_path / "controls.db"),
            registry,
            retry=RetryPolicy(0.01, 0.02),
            default_zone="UTC",
        )
        await engine.start(schedule=False)
        made.append(engine)
        return engine

    yield start
    for engine in made:
        if engine.supervisor.alive("event-log-writer"):
            await engine.stop()


async def wait_for_event(
    engine: Engine, task_id: str, kind: EventType, *, after: int = 0, seconds: float = 20
) -> list[Event]:
    """The task's events from ``after`` up to the first of ``kind`` (with a time-out)."""
    events: list[Event] = []

    async def read() -> None:
        async for event in engine.subscribe(task_id, after=after):
            events.append(event)
            if event.event is kind:
                return

    await asyncio.wait_for(read(), timeout=seconds)
    return events


# The API tests' real server on loopback (a real taskcell app on the test's SQLite file).
from api.conftest import ServerFactory, base_url, client, db_path, server_factory  # noqa: E402

__all__ = ["ServerFactory", "base_url", "client", "db_path", "server_factory"]
