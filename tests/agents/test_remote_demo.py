"""The demo agents driven through RemoteAgentClient over JSON-RPC and HTTP+JSON."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import time_machine

from taskcell.agents.base import AgentClient, AgentUpdate, TransientAgentError, UpdateKind
from taskcell.agents.demo import DEMO_AGENTS, create_demo_app, demo_agent_url, echo, flaky, slow
from taskcell.agents.remote import RemoteAgentClient
from taskcell.testing import serve_app, serve_app_in_thread

MakeClient = Callable[[str], RemoteAgentClient]


async def collect(
    client: AgentClient, query: str, metadata: dict[str, Any] | None = None, **kwargs: Any
) -> list[AgentUpdate]:
    return [u async for u in client.send(query, metadata=metadata or {}, **kwargs)]


def kinds(updates: list[AgentUpdate]) -> list[str]:
    return [str(u.kind) for u in updates]


async def test_echo_exact_sequence(demo_client: MakeClient) -> None:
    client = demo_client("echo")
    updates = await collect(client, "hello big  world", {"task_id": "t-echo"})

    accepted = updates[0]
    assert accepted.kind is UpdateKind.ACCEPTED
    assert accepted.remote_task_id and accepted.context_id
    assert all(u.remote_task_id == accepted.remote_task_id for u in updates), [
        u.remote_task_id for u in updates
    ]
    call_id = f"call-{accepted.remote_task_id}"
    seen = [(u.kind, u.text, u.metadata) for u in updates[1:]]
    assert seen == [
        (UpdateKind.WORKING, "", {"response_event": "reasoning_started"}),
        (UpdateKind.WORKING, echo.REASONING, {"response_event": "reasoning"}),
        (UpdateKind.WORKING, "", {"response_event": "reasoning_completed"}),
        (
            UpdateKind.WORKING,
            "",
            {
                "response_event": "tool_call_started",
                "tool_call_id": call_id,
                "tool_name": "count_words",
                "tool_args": {"text": "hello big  world"},
            },
        ),
        (
            UpdateKind.WORKING,
            "",
            {
                "response_event": "tool_call_completed",
                "tool_call_id": call_id,
                "tool_name": "count_words",
                "tool_result": "3 words",
            },
        ),
        (UpdateKind.WORKING, "hello", {"response_event": "message_chunk"}),
        (UpdateKind.WORKING, " big", {"response_event": "message_chunk"}),
        (UpdateKind.WORKING, "  world", {"response_event": "message_chunk"}),
        (
            UpdateKind.ARTIFACT,
            "hello big  world",
            {"response_event": "final_result", "artifact_name": "answer"},
        ),
        (UpdateKind.COMPLETED, "", {}),
    ]
    assert updates[-2].artifact_id


async def test_info_from_card(demo_client: MakeClient) -> None:
    info = await demo_client("echo").info()
    assert info.reachable
    assert info.name == "echo"
    assert info.description == dict(DEMO_AGENTS)["echo"]
    assert info.skills == ["Echo"]
    assert info.url.endswith("/a2a/echo")


async def test_clock_uses_task_time_zone(demo_client: MakeClient) -> None:
    client = demo_client("clock")
    with time_machine.travel(datetime(2026, 11, 27, 13, 5, tzinfo=UTC), tick=True):
        berlin = await collect(client, "what time is it?", {"timezone": "Europe/Berlin"})
        utc = await collect(client, "what time is it?", {})
    expected = "It is 14:05 on Friday 27 November 2026 in Europe/Berlin."
    assert kinds(berlin) == ["accepted", "working", "artifact", "completed"]
    assert berlin[1].text == expected
    assert berlin[2].text == expected
    assert utc[1].text == "It is 13:05 on Friday 27 November 2026 in UTC."


async def test_clock_unknown_zone_fails(demo_client: MakeClient) -> None:
    updates = await collect(demo_client("clock"), "time", {"timezone": "Mars/Olympus"})
    assert kinds(updates) == ["accepted", "failed"]
    assert updates[-1].text == "unknown time zone 'Mars/Olympus'"


async def test_flaky_fails_transiently_then_answers(demo_client: MakeClient) -> None:
    client = demo_client("flaky")
    task_id = str(uuid.uuid4())
    for _ in range(2):
        with pytest.raises(TransientAgentError, match=r"agent 'flaky' at http://.* HTTP 503"):
            await collect(client, "fail 2 times", {"task_id": task_id})
    updates = await collect(client, "fail 2 times", {"task_id": task_id})
    assert kinds(updates) == ["accepted", "working", "artifact", "completed"]
    assert updates[1].text == "Succeeded after 2 failures."
    assert flaky.FAILURES[task_id] == 2


async def test_asker_input_required_then_continue(demo_client: MakeClient) -> None:
    client = demo_client("asker")
    first = await collect(client, "say hello", {"task_id": "t-ask"})
    assert kinds(first) == ["accepted", "input_required"]
    assert first[-1].text == "What is your name?"
    remote_id, context_id = first[0].remote_task_id, first[0].context_id

    second = await collect(
        client, "Ada", {"task_id": "t-ask"}, remote_task_id=remote_id, context_id=context_id
    )
    assert kinds(second) == ["accepted", "working", "artifact", "completed"]
    assert second[0].remote_task_id == remote_id
    assert second[1].text == "Hello, Ada."


async def test_slow_cancel_mid_stream(demo_client: MakeClient) -> None:
    client = demo_client("slow")
    updates: list[AgentUpdate] = []
    cancelled_at: float | None = None
    async for update in client.send("stream for 30 seconds", metadata={}):
        updates.append(update)
        if len(updates) == 4:
            assert update.remote_task_id is not None
            await client.cancel(update.remote_task_id)
            cancelled_at = time.monotonic()
    assert cancelled_at is not None
    # The stream ends on the cancel (tens of ms when idle), not after its 30 seconds; the
    # bounds, far above that, only catch a stream that ran on.
    ended_after = time.monotonic() - cancelled_at
    assert ended_after < 10, f"the stream ended {ended_after:.1f} s after the cancel"
    assert updates[-1].kind is UpdateKind.CANCELED, [u.kind for u in updates]
    assert updates[0].remote_task_id in slow.CANCELLED
    chunks = [u for u in updates if u.kind is UpdateKind.WORKING]
    assert 3 <= len(chunks) < 100, [u.text for u in chunks]


async def test_slow_emit_updates(demo_client: MakeClient) -> None:
    updates = await collect(demo_client("slow"), "emit 300 updates")
    assert kinds(updates) == ["accepted"] + ["working"] * 300 + ["artifact", "completed"]
    assert updates[300].text == "tick 300 "
    assert updates[-2].text == "Streamed 300 chunks."


async def test_cancel_of_finished_task_is_quiet(demo_client: MakeClient) -> None:
    client = demo_client("echo")
    updates = await collect(client, "hi")
    assert updates[0].remote_task_id is not None
    await client.cancel(updates[0].remote_task_id)


async def test_unreachable_agent(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/a2a/echo"
    client = RemoteAgentClient("echo", url)
    info = await client.info()
    assert not info.reachable
    assert info.name == "echo"
    with pytest.raises(TransientAgentError) as caught:
        await collect(client, "hi")
    assert str(caught.value) == f"agent 'echo' unreachable at {url}: connection refused"
    with pytest.raises(TransientAgentError, match="unreachable"):
        await client.cancel("some-task")


async def test_stream_cut_is_transient() -> None:
    async def consume(client: RemoteAgentClient, started: asyncio.Event) -> None:
        async for update in client.send("stream for 30 seconds", metadata={}):
            if update.kind is UpdateKind.WORKING:
                started.set()

    started = asyncio.Event()
    async with serve_app(app_factory=create_demo_app, shutdown_grace=1) as base_url:
        client = RemoteAgentClient("slow", demo_agent_url(base_url, "slow"))
        consumer = asyncio.create_task(consume(client, started))
        await asyncio.wait_for(started.wait(), 5)
    with pytest.raises(TransientAgentError, match=r"agent 'slow'"):
        await asyncio.wait_for(consumer, 10)


def test_serve_in_thread() -> None:
    with serve_app_in_thread(app_factory=create_demo_app) as base_url:
        card_url = f"{demo_agent_url(base_url, 'clock')}/.well-known/agent-card.json"
        card = httpx.get(card_url, timeout=5).json()
    assert card["name"] == "clock"
    assert card["supportedInterfaces"][0]["url"] == demo_agent_url(base_url, "clock")


async def test_echo_empty_query(demo_client: MakeClient) -> None:
    updates = await collect(demo_client("echo"), "")
    assert updates[-1].kind is UpdateKind.COMPLETED
    assert updates[-2].kind is UpdateKind.ARTIFACT
    assert updates[-2].text == ""
