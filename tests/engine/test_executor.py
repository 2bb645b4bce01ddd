"""The executor against the demo agents over real A2A on loopback."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from serving import closed_port
from taskcell import Task, TaskStatus
from taskcell.agents.demo import slow
from taskcell.agents.registry import AgentRegistry
from taskcell.agents.remote import RemoteAgentClient
from taskcell.domain.events import EventType, Role
from taskcell.domain.models import RunStatus
from taskcell.engine.engine import Engine, RetryPolicy
from taskcell.stores.sqlite import SQLiteTaskStore

from .conftest import read_until_done, wait_for_event


async def test_echo_streams_the_exact_sequence_and_logs_it(engine: Engine) -> None:
    task = await engine.submit(Task(query="hello brave new world", agent_name="echo"))
    events = await read_until_done(engine, task.task_id)
    kinds = [e.event for e in events]
    assert kinds == [
        EventType.CONVERSATION_STARTED,
        EventType.THREAD_STARTED,
        EventType.MESSAGE,  # the user's query
        EventType.TOOL_CALL_STARTED,  # connect_agent
        EventType.TOOL_CALL_COMPLETED,  # connected
        EventType.TASK_STARTED,
        EventType.REASONING_STARTED,
        EventType.REASONING,
        EventType.REASONING_COMPLETED,
        EventType.TOOL_CALL_STARTED,
        EventType.TOOL_CALL_COMPLETED,
        *[EventType.MESSAGE_CHUNK] * 4,
        EventType.TASK_COMPLETED,
        EventType.DONE,
    ]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[2].role is Role.USER
    assert events[2].payload == {"content": "hello brave new world"}
    assert events[4].payload is not None and events[4].payload["tool_result"] == "connected"
    chunks = "".join(
        str(e.payload["content"])
        for e in events
        if e.payload and e.event is EventType.MESSAGE_CHUNK
    )
    assert chunks == "hello brave new world"
    assert events[10].payload is not None and events[10].payload["tool_result"] == "4 words"

    logged = await engine.store.read_events(task.task_id)
    assert [e.to_dict() for e in logged] == [e.to_dict() for e in events]
    stored = await engine.service.require_task(task.task_id)
    assert stored.status is TaskStatus.COMPLETED
    assert len(stored.remote_task_ids) == 1
    runs = (await engine.store.list_runs(task.task_id)).items
    assert [(r.status, r.result) for r in runs] == [(RunStatus.COMPLETED, "hello brave new world")]
    history = (await engine.store.list_items(task.conversation_id)).items
    messages = [i.payload for i in history if i.event is EventType.MESSAGE]
    assert messages == [{"content": "hello brave new world"}, {"content": "hello brave new world"}]


async def test_flaky_is_retried_to_success_with_each_attempt_a_run(engine: Engine) -> None:
    task = await engine.submit(Task(query="fail 2 times", agent_name="flaky", max_attempts=3))
    events = await read_until_done(engine, task.task_id)
    assert events[-2].event is EventType.TASK_COMPLETED
    runs = sorted((await engine.store.list_runs(task.task_id)).items, key=lambda r: r.attempt)
    assert [(r.attempt, r.status) for r in runs] == [
        (1, RunStatus.FAILED),
        (2, RunStatus.FAILED),
        (3, RunStatus.COMPLETED),
    ]
    assert all(
        "503" in (r.error or "") or "unavailable" in (r.error or "").lower() for r in runs[:2]
    ), [r.error for r in runs]
    stored = await engine.service.require_task(task.task_id)
    assert (stored.status, stored.attempt) == (TaskStatus.COMPLETED, 3)


async def test_flaky_with_too_few_attempts_fails_with_the_last_error(engine: Engine) -> None:
    task = await engine.submit(Task(query="fail 5 times", agent_name="flaky", max_attempts=2))
    events = await read_until_done(engine, task.task_id)
    assert events[-2].event is EventType.TASK_FAILED
    stored = await engine.service.require_task(task.task_id)
    assert stored.status is TaskStatus.FAILED
    runs = sorted((await engine.store.list_runs(task.task_id)).items, key=lambda r: r.attempt)
    assert [r.status for r in runs] == [RunStatus.FAILED, RunStatus.FAILED]
    assert stored.error_message == f"{runs[-1].error} (gave up after 2 attempts)"
    assert events[-2].payload == {"content": stored.error_message}


async def test_asker_waits_for_input_then_answers_with_the_reply(engine: Engine) -> None:
    task = await engine.submit(Task(query="greet me", agent_name="asker"))
    events = await wait_for_event(engine, task.task_id, EventType.PLAN_REQUIRE_USER_INPUT)
    assert events[-1].payload == {"content": "What is your name?"}
    deadline = time.monotonic() + 20
    stored = await engine.service.require_task(task.task_id)
    while stored.status is not TaskStatus.WAITING_INPUT and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        stored = await engine.service.require_task(task.task_id)
    assert stored.status is TaskStatus.WAITING_INPUT, stored.status
    await engine.provide_input(task.task_id, "Ada")
    rest = await read_until_done(engine, task.task_id, after=events[-1].seq)
    said = "".join(
        str(e.payload["content"])
        for e in rest
        if e.payload
        and e.event in (EventType.MESSAGE_CHUNK, EventType.MESSAGE)
        and e.role is Role.AGENT
    )
    assert "Hello, Ada." in said
    assert rest[-2].event is EventType.TASK_COMPLETED
    stored = await engine.service.require_task(task.task_id)
    assert stored.status is TaskStatus.COMPLETED
    assert len(stored.remote_task_ids) == 1  # the same remote task went on
    runs = (await engine.store.list_runs(task.task_id)).items
    assert [r.status for r in runs] == [RunStatus.COMPLETED]


async def test_cancelling_slow_mid_stream_cancels_the_remote_task(engine: Engine) -> None:
    task = await engine.submit(Task(query="stream for 30 seconds", agent_name="slow"))
    seen = await wait_for_event(engine, task.task_id, EventType.MESSAGE_CHUNK)
    # A cancel that waited for the 30-second stream would run into this time-out (how fast a
    # cancel is belongs to bench/schedule.py).
    result = await asyncio.wait_for(engine.cancel(task.task_id), 15)
    assert result.success, result
    stored = await engine.service.require_task(task.task_id)
    assert stored.status is TaskStatus.CANCELLED, stored.status
    assert stored.remote_task_ids[-1] in slow.CANCELLED, (stored.remote_task_ids, slow.CANCELLED)
    rest = await read_until_done(engine, task.task_id, after=seen[-1].seq)
    assert [e.event for e in rest[-2:]] == [EventType.TASK_CANCELLED, EventType.DONE]
    runs = (await engine.store.list_runs(task.task_id)).items
    assert [r.status for r in runs] == [RunStatus.CANCELLED]


async def test_an_unreachable_agent_fails_after_retries_with_a_readable_reason(
    tmp_path: Path,
) -> None:
    with closed_port() as port:
        registry = AgentRegistry()
        registry.register(RemoteAgentClient("ghost", f"http://127.0.0.1:{port}", connect_timeout=1))
        engine = Engine(
            SQLiteTaskStore(tmp_path / "e.db"),
            registry,
            retry=RetryPolicy(base_seconds=0.01, cap_seconds=0.02),
            default_zone="UTC",
        )
        await engine.start()
        try:
            task = await engine.submit(Task(query="anyone?", agent_name="ghost", max_attempts=2))
            events = await read_until_done(engine, task.task_id)
        finally:
            await engine.stop()
    connects = [
        e.payload["tool_result"]
        for e in events
        if e.event is EventType.TOOL_CALL_COMPLETED and e.payload and "tool_result" in e.payload
    ]
    assert len(connects) == 2
    assert all(r.startswith("error: ") and "unreachable" in r for r in connects), connects
    assert events[-2].event is EventType.TASK_FAILED
    reason = str((events[-2].payload or {}).get("content"))
    assert f"127.0.0.1:{port}" in reason and "gave up after 2 attempts" in reason
