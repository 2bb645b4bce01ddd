"""Fixtures for engine tests: the demo agents on a real uvicorn server, an engine on SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from taskcell.agents.demo import DEMO_AGENTS, create_demo_app, demo_agent_url
from taskcell.agents.http import aclose_shared_http_clients
from taskcell.agents.registry import AgentRegistry
from taskcell.agents.remote import RemoteAgentClient
from taskcell.domain.events import Event, EventType
from taskcell.engine.engine import Engine, RetryPolicy
from taskcell.stores.sqlite import SQLiteTaskStore
from taskcell.testing import serve_app


@pytest.fixture
async def demo_url() -> AsyncIterator[str]:
    async with serve_app(app_factory=create_demo_app) as base_url:
        yield base_url
    await aclose_shared_http_clients()


@pytest.fixture
def registry(demo_url: str) -> AgentRegistry:
    registry = AgentRegistry()
    for name, _ in DEMO_AGENTS:
        registry.register(RemoteAgentClient(name, demo_agent_url(demo_url, name)))
    return registry


@pytest.fixture
async def engine(tmp_path: Path, registry: AgentRegistry) -> AsyncIterator[Engine]:
    made = Engine(
        SQLiteTaskStore(tmp_path / "engine.db"),
        registry,
        retry=RetryPolicy(base_seconds=0.01, cap_seconds=0.05),
        default_zone="UTC",
    )
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


async def read_until_done(engine: Engine, task_id: str, *, after: int = 0) -> list[Event]:
    """The task's events from ``after`` up to its ``done`` (with a time-out)."""
    events: list[Event] = []

    async def read() -> None:
        async for event in engine.subscribe(task_id, after=after):
            events.append(event)
            if event.event is EventType.DONE:
                return

    await asyncio.wait_for(read(), timeout=20)
    return events


async def wait_for_event(
    engine: Engine, task_id: str, kind: EventType, *, seconds: float = 20
) -> list[Event]:
    events: list[Event] = []

    async def read() -> None:
        async for event in engine.subscribe(task_id):
            events.append(event)
            if event.event is kind:
                return

    await asyncio.wait_for(read(), timeout=seconds)
    return events
