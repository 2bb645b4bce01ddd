"""LocalAgentClient: in-process agents give the same update stream as remote ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from taskcell.agents.base import (
    AgentClient,
    AgentError,
    AgentUpdate,
    TransientAgentError,
    UpdateKind,
)
from taskcell.agents.local import AgentRequest, LocalAgentClient, ask, entry_point_agent, event


async def collect(client: AgentClient, query: str, **kwargs: Any) -> list[AgentUpdate]:
    metadata = kwargs.pop("metadata", {})
    return [u async for u in client.send(query, metadata=metadata, **kwargs)]


async def words(request: AgentRequest) -> AsyncIterator[str | AgentUpdate]:
    """Streams the query word by word."""
    yield event("reasoning", "splitting", step=1)
    first, *rest = request.query.split()
    yield first
    for word in rest:
        yield " " + word


async def whole(request: AgentRequest) -> str:
    return f"{request.query.upper()} in {request.metadata['timezone']}"


async def test_generator_chunks_and_updates() -> None:
    client = LocalAgentClient("words", words)
    assert isinstance(client, AgentClient)
    updates = await collect(client, "hello local world")

    assert [u.kind for u in updates] == [
        UpdateKind.ACCEPTED,
        UpdateKind.WORKING,
        UpdateKind.WORKING,
        UpdateKind.WORKING,
        UpdateKind.WORKING,
        UpdateKind.ARTIFACT,
        UpdateKind.COMPLETED,
    ]
    remote_id = updates[0].remote_task_id
    assert remote_id and updates[0].context_id
    assert {u.remote_task_id for u in updates} == {remote_id}
    assert updates[1].metadata == {"response_event": "reasoning", "step": 1}
    assert [u.text for u in updates[2:5]] == ["hello", " local", " world"]
    assert all(u.metadata == {"response_event": "message_chunk"} for u in updates[2:5]), [
        u.metadata for u in updates
    ]
    assert updates[5].text == "hello local world"
    assert updates[5].metadata["response_event"] == "final_result"
    assert updates[6].text == ""


async def test_plain_return() -> None:
    client = LocalAgentClient("whole", whole)
    updates = await collect(client, "hi", metadata={"timezone": "UTC"})
    assert [(u.kind, u.text) for u in updates[1:]] == [
        (UpdateKind.WORKING, "HI in UTC"),
        (UpdateKind.ARTIFACT, "HI in UTC"),
        (UpdateKind.COMPLETED, ""),
    ]


async def test_info() -> None:
    info = await LocalAgentClient("words", words, skills=["split"]).info()
    assert info.name == "words"
    assert info.description == "Streams the query word by word."
    assert info.skills == ["split"]
    assert info.url == "local"
    assert info.reachable


async def test_exception_becomes_failed() -> None:
    async def broken(request: AgentRequest) -> AsyncIterator[str]:
        yield "partial"
        raise ValueError("the model said no")

    updates = await collect(LocalAgentClient("broken", broken), "q")
    assert [u.kind for u in updates] == [
        UpdateKind.ACCEPTED,
        UpdateKind.WORKING,
        UpdateKind.FAILED,
    ]
    assert updates[-1].text == "the model said no"


async def test_plain_exception_becomes_failed() -> None:
    async def broken(request: AgentRequest) -> str:
        raise KeyError("x")

    updates = await collect(LocalAgentClient("broken", broken), "q")
    assert updates[-1].kind is UpdateKind.FAILED
    assert updates[-1].text == "'x'"


async def test_transient_error_propagates() -> None:
    async def flaky(request: AgentRequest) -> str:
        raise TransientAgentError("backend busy")

    with pytest.raises(TransientAgentError, match="backend busy"):
        await collect(LocalAgentClient("flaky", flaky), "q")


async def test_cancel_stops_generator_at_once() -> None:
    state: dict[str, Any] = {"ticks": 0, "closed": False}

    async def forever(request: AgentRequest) -> AsyncIterator[str]:
        try:
            while True:
                state["ticks"] += 1
                yield "tick "
                await asyncio.sleep(0.05)
        finally:
            state["closed"] = True

    client = LocalAgentClient("forever", forever)
    updates: list[AgentUpdate] = []
    async for update in client.send("go", metadata={}):
        updates.append(update)
        if len(updates) == 3:
            assert update.remote_task_id is not None
            await client.cancel(update.remote_task_id)
            assert state["closed"]
            ticks = state["ticks"]
    assert updates[-1].kind is UpdateKind.CANCELED
    assert state["ticks"] == ticks
    assert not client._running


async def test_breaking_off_stops_the_callable() -> None:
    closed = asyncio.Event()

    async def forever(request: AgentRequest) -> AsyncIterator[str]:
        try:
            while True:
                yield "tick "
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    client = LocalAgentClient("forever", forever)
    stream = client.send("go", metadata={})
    async for update in stream:
        if update.kind is UpdateKind.WORKING:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    await asyncio.wait_for(closed.wait(), 2)


async def test_ask_then_continue() -> None:
    async def greeter(request: AgentRequest) -> AsyncIterator[str | AgentUpdate]:
        if request.input_text is None:
            yield ask("What is your name?")
            return
        yield f"Hello, {request.input_text}. You asked: {request.query}"

    client = LocalAgentClient("greeter", greeter)
    first = await collect(client, "greet me")
    assert [u.kind for u in first] == [UpdateKind.ACCEPTED, UpdateKind.INPUT_REQUIRED]
    assert first[-1].text == "What is your name?"
    rid, ctx = first[0].remote_task_id, first[0].context_id

    second = await collect(client, "Ada", remote_task_id=rid, context_id=ctx)
    assert second[0].remote_task_id == rid
    assert second[1].text == "Hello, Ada. You asked: greet me"
    assert second[-1].kind is UpdateKind.COMPLETED

    with pytest.raises(AgentError, match="no task"):
        await collect(client, "again", remote_task_id=rid, context_id=ctx)


def test_entry_point_agent() -> None:
    fn = entry_point_agent("taskcell.agents.local:ask")
    assert fn is cast(object, ask)
    client = LocalAgentClient.from_entry_point("x", "taskcell.agents.local:ask")
    assert client.fn is cast(object, ask)
    with pytest.raises(AgentError, match="not of the form"):
        entry_point_agent("no_colon")
    with pytest.raises(AgentError, match="cannot import"):
        entry_point_agent("taskcell.no_such_module:fn")
    with pytest.raises(AgentError, match="has no"):
        entry_point_agent("taskcell.agents.local:no_such_fn")
    with pytest.raises(AgentError, match="not callable"):
        entry_point_agent("taskcell.agents.local:MESSAGE_CHUNK")
