"""An A2A artifact streamed in pieces (``append=false``, then ``append=true``) is one message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from a2a.server.agent_execution import AgentExecutor
from a2a.types import Part
from starlette.applications import Starlette

from taskcell import Task, TaskStatus
from taskcell.agents.demo.common import DemoAgentSpec, Reporter, agent_routes, cancel_task
from taskcell.agents.http import aclose_shared_http_clients
from taskcell.agents.registry import AgentRegistry
from taskcell.agents.remote import RemoteAgentClient
from taskcell.domain.events import EventType
from taskcell.engine.engine import Engine, RetryPolicy
from taskcell.stores.sqlite import SQLiteTaskStore
from taskcell.testing import serve_app

from .conftest import read_until_done

PIECES = ["The answer ", "comes in ", "three pieces."]


class PiecesExecutor(AgentExecutor):
    """Answers with one artifact sent as a first piece and two appended pieces."""

    async def execute(self, context: Any, event_queue: Any) -> None:
        report = await Reporter.start(context, event_queue)
        for index, piece in enumerate(PIECES):
            await report.updater.add_artifact(
                [Part(text=piece)],
                artifact_id="the-answer",
                append=index > 0,
                last_chunk=index == len(PIECES) - 1,
            )
        await report.updater.complete()

    async def cancel(self, context: Any, event_queue: Any) -> None:
        await cancel_task(context, event_queue)


SPEC = DemoAgentSpec(
    name="pieces",
    description="Answers with one artifact in three pieces.",
    skill="Pieces",
    examples=("go",),
    executor=PiecesExecutor,
)


@pytest.fixture
async def pieces_engine(tmp_path: Path) -> AsyncIterator[Engine]:
    def app(base_url: str) -> Starlette:
        return Starlette(routes=agent_routes(SPEC, base_url, "/a2a/pieces"))

    async with serve_app(app_factory=app) as base_url:
        registry = AgentRegistry()
        registry.register(RemoteAgentClient("pieces", f"{base_url}/a2a/pieces"))
        engine = Engine(
            SQLiteTaskStore(tmp_path / "pieces.db"),
            registry,
            retry=RetryPolicy(base_seconds=0.01, cap_seconds=0.05),
            default_zone="UTC",
        )
        await engine.start()
        try:
            yield engine
        finally:
            await engine.stop()
    await aclose_shared_http_clients()


async def test_an_artifact_sent_in_pieces_is_one_message_in_the_history(
    pieces_engine: Engine,
) -> None:
    engine = pieces_engine
    task = await engine.submit(Task(query="go", agent_name="pieces"))
    events = await read_until_done(engine, task.task_id)
    stored = await engine.service.require_task(task.task_id)
    assert stored.status is TaskStatus.COMPLETED, stored.status
    said = [
        (e.event.value, e.item_id, (e.payload or {}).get("content"))
        for e in events
        if e.event in (EventType.MESSAGE, EventType.MESSAGE_CHUNK) and e.role.value == "agent"
    ]
    assert len({item for _, item, _ in said}) == 1, said  # one item id for the whole artifact
    assert "".join(str(text) for _, _, text in said) == "".join(PIECES), said
    items = await engine.store.task_items(task.task_id)
    messages = [
        (i.item_id, i.payload)
        for i in items
        if i.event is EventType.MESSAGE and i.role.value == "agent"
    ]
    assert messages == [(said[0][1], {"content": "".join(PIECES)})], messages
