"""Agents that misbehave end their own run with a reason; the engine and other tasks go on.

Remote cases use real A2A servers on loopback: the hostile agents below serve a real agent card
and a JSON-RPC stream whose second event is something the SDK's protobuf parser refuses (NaN in
metadata, an unpaired surrogate in text), after which they hold the stream open, so only the
bad event can end the run. In-process agents yield a non-string, raise, hang, or say text no
store can hold.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from a2a.server.routes import create_agent_card_routes
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from taskcell import Task, TaskStatus
from taskcell.agents.base import AgentUpdate
from taskcell.agents.demo import create_demo_app, demo_agent_url
from taskcell.agents.http import aclose_shared_http_clients
from taskcell.agents.local import AgentRequest, event
from taskcell.agents.registry import AgentRegistry
from taskcell.agents.remote import RemoteAgentClient
from taskcell.domain.events import Event, EventType
from taskcell.domain.models import RunStatus
from taskcell.domain.text import REPLACEMENT
from taskcell.engine.engine import Engine, RetryPolicy
from taskcell.engine.router import SANITIZED, SANITIZED_NOTE
from taskcell.stores.sqlite import SQLiteTaskStore
from taskcell.testing import serve_app

from .conftest import read_until_done

#: The event each hostile agent sends after its task (raw JSON: json.dumps cannot write these).
BAD_EVENTS = {
    "nan": '{"messageId": "m2", "role": "ROLE_AGENT", "parts": [{"text": "hi"}],'
    ' "metadata": {"response_event": "message_chunk", "score": NaN}}',
    "surrogate": '{"messageId": "m2", "role": "ROLE_AGENT", "parts": [{"text": "bad \\ud800"}]}',
}

#: What the run's error says in each case (from the SDK's parser, or from reading the message).
WHY = {"nan": "Fail to serialize NaN", "surrogate": "ParseError"}


def _sse(request_id: object, result: str) -> bytes:
    envelope = f'{{"jsonrpc": "2.0", "id": {json.dumps(request_id)}, "result": {result}}}'
    return f"data: {envelope}\n\n".encode()


def _stream_endpoint(bad_message: str) -> Any:
    async def endpoint(request: Request) -> Response:
        request_id = json.loads(await request.body()).get("id")

        async def body() -> AsyncIterator[bytes]:
            task = '{"id": "t1", "contextId": "c1", "status": {"state": "TASK_STATE_SUBMITTED"}}'
            yield _sse(request_id, f'{{"task": {task}}}')
            update = (
                '{"statusUpdate": {"taskId": "t1", "contextId": "c1", "status":'
                f' {{"state": "TASK_STATE_WORKING", "message": {bad_message}}}}}}}'
            )
            yield _sse(request_id, update)
            await asyncio.sleep(3600)  # held open: only the bad event can end the run

        return StreamingResponse(body(), media_type="text/event-stream")

    return endpoint


def hostile_app(base_url: str) -> Starlette:
    routes: list[BaseRoute] = []
    for name, bad in BAD_EVENTS.items():
        path = f"/hostile/{name}"
        card = AgentCard(
            name=name,
            description="sends an event the SDK cannot parse",
            version="1.0.0",
            supported_interfaces=[
                AgentInterface(
                    url=f"{base_url}{path}", protocol_binding="JSONRPC", protocol_version="1.0"
                )
            ],
            capabilities=AgentCapabilities(streaming=True),
            default_input_modes=["text/plain"],
            default_output_modes=["text/plain"],
            skills=[AgentSkill(id=name, name=name, description="misbehaves", tags=["test"])],
        )
        routes.extend(
            create_agent_card_routes(card, card_url=f"{path}/.well-known/agent-card.json")
        )
        routes.append(Route(path, endpoint=_stream_endpoint(bad), methods=["POST"]))
    return Starlette(routes=routes)


# -- in-process agents -------------------------------------------------------------------------


class Hangs:
    """Where ``hangs`` says it started (a queue made by the test, in its event loop)."""

    started: asyncio.Queue[str] | None = None


async def yields_a_number(request: AgentRequest) -> AsyncIterator[object]:
    yield "fine so far"
    yield 42


async def raises(request: AgentRequest) -> str:
    raise RuntimeError("the model provider is down")


async def hangs(request: AgentRequest) -> AsyncIterator[str]:
    if Hangs.started is not None:
        Hangs.started.put_nowait(request.query)
    yield "working on it"
    await asyncio.Event().wait()  # never set


async def hangs_briefly(request: AgentRequest) -> AsyncIterator[str]:
    yield "working on it"
    await asyncio.Event().wait()  # never set


async def says_bad_text(request: AgentRequest) -> AsyncIterator[str | AgentUpdate]:
    yield "Ada \ud800 and a NUL \x00 here"
    yield event("tool_call_completed", tool_call_id="t", tool_name="measure", tool_result=math.nan)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with (
        serve_app(app_factory=create_demo_app) as demo_url,
        serve_app(app_factory=hostile_app) as hostile_url,
    ):
        registry = AgentRegistry()
        registry.register(RemoteAgentClient("echo", demo_agent_url(demo_url, "echo")))
        for name in BAD_EVENTS:
            registry.register(RemoteAgentClient(name, f"{hostile_url}/hostile/{name}"))
        registry.register_local("yields_a_number", yields_a_number)  # type: ignore[arg-type]
        registry.register_local("raises", raises)
        registry.register_local("hangs", hangs)  # 3/4 of 4 slots at most: 3
        registry.register_local("hangs_briefly", hangs_briefly, run_timeout_seconds=1)
        registry.register_local("says_bad_text", says_bad_text)
        made = Engine(
            SQLiteTaskStore(tmp_path / "engine.db"),
            registry,
            retry=RetryPolicy(base_seconds=0.01, cap_seconds=0.05),
            default_zone="UTC",
            max_concurrent_runs=4,
        )
        await made.start()
        try:
            yield made
        finally:
            await made.stop()
            await aclose_shared_http_clients()


async def _failed_with(engine: Engine, agent: str, *, max_attempts: int = 1) -> tuple[str, str]:
    """Run a task of ``agent`` to its end: (the task's error_message, the task_failed text)."""
    task = await engine.submit(Task(query="go", agent_name=agent, max_attempts=max_attempts))
    events = await read_until_done(engine, task.task_id)
    stored = await engine.service.require_task(task.task_id)
    assert stored.status is TaskStatus.FAILED, (stored.status, [e.event for e in events])
    failed = [e for e in events if e.event is EventType.TASK_FAILED]
    assert len(failed) == 1, [e.event for e in events]
    assert failed[0].payload is not None
    runs = (await engine.store.list_runs(task.task_id)).items
    assert [r.status for r in runs] == [RunStatus.FAILED] * len(runs), runs
    return stored.error_message or "", str(failed[0].payload["content"])


@pytest.mark.parametrize("agent", sorted(BAD_EVENTS))
async def test_a_remote_agent_sending_what_protobuf_refuses_fails_its_run(
    engine: Engine, agent: str
) -> None:
    error, said = await _failed_with(engine, agent)
    assert f"agent {agent!r} sent an update taskcell cannot use" in error, error
    assert WHY[agent] in error, error
    assert said == error
    echo = await engine.submit(Task(query="still here", agent_name="echo"))
    await read_until_done(engine, echo.task_id)
    assert (await engine.service.require_task(echo.task_id)).status is TaskStatus.COMPLETED


async def test_an_agent_yielding_a_non_string_fails_with_the_reason(engine: Engine) -> None:
    error, _ = await _failed_with(engine, "yields_a_number")
    assert error == "local agent 'yields_a_number' yielded int; an agent yields str or AgentUpdate"


async def test_an_agent_raising_fails_with_its_message(engine: Engine) -> None:
    error, _ = await _failed_with(engine, "raises")
    assert error == "the model provider is down"


async def test_a_hung_agent_is_stopped_after_its_run_timeout(engine: Engine) -> None:
    error, _ = await _failed_with(engine, "hangs_briefly")
    assert error == "local agent 'hangs_briefly' did not finish within 1 s", error


@pytest.mark.timeout(90)
async def test_hung_agents_leave_run_slots_for_other_agents(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    started_queue: asyncio.Queue[str] = asyncio.Queue()
    monkeypatch.setattr(Hangs, "started", started_queue)
    hung = [await engine.submit(Task(query=f"hang {i}", agent_name="hangs")) for i in range(4)]
    started = {await asyncio.wait_for(started_queue.get(), 20) for _ in range(3)}
    echo = await engine.submit(Task(query="other agents still run", agent_name="echo"))
    events = await read_until_done(engine, echo.task_id)
    assert events[-2].event is EventType.TASK_COMPLETED, [e.event for e in events]
    statuses = [(await engine.service.require_task(t.task_id)).status for t in hung]
    assert sorted(statuses) == sorted([TaskStatus.RUNNING] * 3 + [TaskStatus.PENDING]), (
        statuses,
        started,
    )
    for task in hung:
        await engine.cancel(task.task_id)


async def test_text_no_store_can_hold_is_replaced_with_a_note(engine: Engine) -> None:
    task = await engine.submit(Task(query="go", agent_name="says_bad_text"))
    events = await read_until_done(engine, task.task_id)
    stored = await engine.service.require_task(task.task_id)
    assert stored.status is TaskStatus.COMPLETED, (stored.error_message, events)
    chunk = _one(events, EventType.MESSAGE_CHUNK)
    assert chunk.payload == {"content": f"Ada {REPLACEMENT} and a NUL {REPLACEMENT} here"}
    assert chunk.metadata[SANITIZED] == SANITIZED_NOTE, chunk.metadata
    tool = _one(events, EventType.TOOL_CALL_COMPLETED, after=chunk)
    assert tool.payload is not None and tool.payload["tool_result"] == "null", tool.payload
    assert SANITIZED in tool.metadata, tool.metadata
    logged = await engine.store.read_events(task.task_id)
    assert [e.to_dict() for e in logged] == [e.to_dict() for e in events]
    runs = (await engine.store.list_runs(task.task_id)).items
    assert runs[0].result == f"Ada {REPLACEMENT} and a NUL {REPLACEMENT} here"


def _one(events: list[Event], kind: EventType, *, after: Event | None = None) -> Event:
    found = [e for e in events if e.event is kind and (after is None or e.seq > after.seq)]
    assert found, [e.event for e in events]
    return found[0]
