"""taskcell's MCP tools through the ``mcp`` SDK's own client, over streamable HTTP (``/mcp`` on
``taskcell serve``) and over stdio (``taskcell mcp``)."""

from __future__ import annotations

import json

import httpx
import pytest
from mcp import MCPError

from live_server import ALICE, BOB, LiveServer
from taskcell.client import AsyncClient

from .conftest import Session, call, http_session, refusal

TOOLS = {
    "create_task",
    "list_tasks",
    "get_task",
    "get_task_result",
    "wait_for_task",
    "cancel_task",
    "pause_task",
    "resume_task",
    "run_task_now",
    "upcoming_runs",
    "answer_task",
    "list_agents",
}


async def test_the_tools_are_listed_with_schemas_a_model_can_use(session: Session) -> None:
    async with session(ALICE) as client:
        listed = (await client.list_tools()).tools
    assert {tool.name for tool in listed} == TOOLS
    for tool in listed:
        assert tool.description and len(tool.description) > 30, tool
        assert tool.input_schema["type"] == "object"
    create = next(tool for tool in listed if tool.name == "create_task")
    properties = create.input_schema["properties"]
    assert create.input_schema["required"] == ["query", "agent"]
    assert properties["pattern"]["enum"] == ["once", "interval", "daily", "cron"]
    assert "0 9 * * MON-FRI" in properties["cron"]["examples"]
    assert "minutes" in properties["interval_minutes"]["description"]
    assert "HH:MM" in properties["daily_time"]["description"]
    assert "Europe/Berlin" in properties["timezone"]["examples"]
    overlap = properties["overlap"]["anyOf"][0]["enum"]
    assert overlap == ["skip", "buffer_one", "buffer_all", "cancel_other", "allow_all"]
    assert properties["catchup"]["anyOf"][0]["enum"] == ["coalesce", "skip", "all"]
    assert "seconds" in properties["run_timeout_seconds"]["description"]


async def asked(url: str, task_id: str) -> None:
    """Wait for the task's question (read with taskcell's own client)."""
    async with AsyncClient(url, ALICE) as reader:
        async for event in reader.watch(task_id):
            if event.event == "plan_require_user_input":
                return


async def test_every_tool_and_the_task_resource(session: Session, server: LiveServer) -> None:
    server_url = server.url
    async with session(ALICE) as client:
        agents = await call(client, "list_agents")
        assert {"echo", "clock", "asker"} <= {agent["name"] for agent in agents["agents"]}

        reported: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            reported.append(progress)

        once = await client.call_tool(
            "create_task",
            {"query": "hello there world", "agent": "echo", "wait": True},
            progress_callback=on_progress,
        )
        assert not once.is_error, once.content
        answer = once.structured_content or {}
        assert (answer["status"], answer["result"]) == ("completed", "hello there world")
        assert reported and reported == sorted(reported), reported
        task_id = answer["task_id"]

        assert (await call(client, "get_task", {"task_id": task_id}))["user_id"] == "alice"
        result = await call(client, "get_task_result", {"task_id": task_id})
        assert (result["status"], result["result"]) == ("completed", "hello there world")
        listed = await call(client, "list_tasks", {"status": "completed", "limit": 500})
        assert task_id in {task["task_id"] for task in listed["tasks"]}

        resource = await client.read_resource(f"task://{task_id}")
        body = json.loads(resource.contents[0].text)  # type: ignore[union-attr]
        assert body["task"]["task_id"] == task_id
        assert any(item["event"] == "message" for item in body["recent"]), body["recent"]

        daily = await call(
            client,
            "create_task",
            {
                "query": "what time is it?",
                "agent": "clock",
                "pattern": "daily",
                "daily_time": "08:15",
                "timezone": "America/New_York",
                "run_immediately": False,
            },
        )
        recurring = daily["task_id"]
        assert daily["schedule"] == {"daily_time": "08:15", "timezone": "America/New_York"}
        buffered = await call(
            client,
            "create_task",
            {
                "query": "what time is it?",
                "agent": "clock",
                "pattern": "interval",
                "interval_minutes": 30,
                "run_immediately": False,
                "overlap": "buffer_one",
                "catchup": "all",
                "run_timeout_seconds": 600,
            },
        )
        stored = await call(client, "get_task", {"task_id": buffered["task_id"]})
        assert (stored["overlap"], stored["catchup"], stored["run_timeout_seconds"]) == (
            "buffer_one",
            "all",
            600,
        )
        await call(client, "cancel_task", {"task_id": buffered["task_id"]})
        assert (await call(client, "pause_task", {"task_id": recurring}))["paused"] is True
        noted = await call(client, "pause_task", {"task_id": recurring, "note": "on holiday"})
        assert noted["pause_note"] == "on holiday"
        assert (await call(client, "resume_task", {"task_id": recurring}))["paused"] is False
        ran = await call(client, "run_task_now", {"task_id": recurring})
        assert ran["status"] == "running"
        waited = await call(client, "wait_for_task", {"task_id": recurring, "results": 1})
        assert "America/New_York" in waited["results"][0], waited
        cancelled = await call(client, "cancel_task", {"task_id": recurring})
        assert cancelled == {"task_id": recurring, "cancelled": True}

        weekdays = await call(
            client,
            "create_task",
            {
                "query": "what time is it?",
                "agent": "clock",
                "pattern": "cron",
                "cron": "0 9 * * MON-FRI",
                "timezone": "Europe/Berlin",
                "run_immediately": False,
            },
        )
        upcoming = await call(client, "upcoming_runs", {"task_id": weekdays["task_id"], "count": 3})
        assert upcoming["timezone"] == "Europe/Berlin", upcoming
        assert len(upcoming["items"]) == 3, upcoming
        for fire in upcoming["items"]:
            assert fire["local"][11:16] == "09:00", fire  # 09:00 on the wall clock in Berlin
        await call(client, "cancel_task", {"task_id": weekdays["task_id"]})

        asking = await call(client, "create_task", {"query": "hi", "agent": "asker"})
        await asked(server_url, asking["task_id"])
        answered = await call(client, "answer_task", {"task_id": asking["task_id"], "text": "Ada"})
        assert answered["status"] in ("running", "completed")
        final = await call(client, "wait_for_task", {"task_id": asking["task_id"]})
        assert (final["status"], final["results"]) == ("completed", ["Hello, Ada."]), final


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"pattern": "daily", "daily_time": "25:00"}, "daily_time"),
        ({"pattern": "daily", "daily_time": "09:00", "timezone": "Mars/Base"}, "timezone"),
        ({"pattern": "interval", "interval_minutes": 0}, "interval_minutes"),
        ({"pattern": "interval", "interval_minutes": "soon"}, "interval_minutes"),
        ({"pattern": "interval"}, "interval_minutes"),
        ({"pattern": "weekly"}, "pattern"),
        ({"pattern": "cron", "cron": "0 9 * * MON-FRX"}, "cron"),
        ({"pattern": "cron"}, "cron"),
        ({"pattern": "daily", "daily_time": "09:00", "cron": "@daily"}, "cron"),
        ({"agent": "nobody"}, "agent"),
        ({"pattern": "interval", "interval_minutes": 5, "overlap": "queue"}, "overlap"),
        ({"pattern": "interval", "interval_minutes": 5, "run_timeout_seconds": 0}, "timeout"),
    ],
)
async def test_a_bad_argument_is_a_tool_error_naming_it(
    session: Session, arguments: dict[str, object], field: str
) -> None:
    async with session(ALICE) as client:
        text = await refusal(client, "create_task", {"query": "x", "agent": "clock", **arguments})
        assert field in text, text
        # The session goes on.
        assert (await call(client, "list_agents"))["agents"]


async def test_one_user_never_sees_anothers_tasks(session: Session) -> None:
    async with session(ALICE) as alice:
        made = await call(
            alice,
            "create_task",
            {"query": "mine", "agent": "clock", "pattern": "interval", "interval_minutes": 60},
        )
    task_id = made["task_id"]
    async with session(BOB) as bob:
        listed = await call(bob, "list_tasks", {"limit": 500})
        assert task_id not in {task["task_id"] for task in listed["tasks"]}
        for tool in ("get_task", "get_task_result", "cancel_task", "pause_task"):
            assert "404" in await refusal(bob, tool, {"task_id": task_id})
        with pytest.raises(Exception, match="not found"):
            await bob.read_resource(f"task://{task_id}")
    async with session(ALICE) as alice:
        await call(alice, "cancel_task", {"task_id": task_id})


async def test_a_wrong_key_is_refused_over_stdio(server: LiveServer) -> None:
    from .conftest import stdio_session

    async with stdio_session(server.url)("wrong-key") as client:
        text = await refusal(client, "list_tasks", {})
    assert "401" in text and "unknown API key" in text, text


async def test_a_wrong_key_is_refused_over_http(server: LiveServer) -> None:
    async with httpx.AsyncClient() as plain:
        answer = await plain.post(
            f"{server.url}/mcp",
            headers={"Authorization": "Bearer wrong-key", "Accept": "application/json"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
    assert answer.status_code == 401, answer.text
    assert answer.json()["msg"] == "unknown API key"
    assert answer.headers["www-authenticate"] == "Bearer"
    with pytest.raises(ExceptionGroup) as refused:
        async with http_session(server.url)("wrong-key") as client:
            await client.list_tools()
    assert refused.group_contains(MCPError, match="error response", depth=None)


async def test_a_wait_that_runs_out_answers_what_it_has(session: Session) -> None:
    async with session(ALICE) as client:
        made = await call(
            client,
            "create_task",
            {
                "query": "later",
                "agent": "clock",
                "pattern": "daily",
                "daily_time": "04:00",
                "run_immediately": False,
            },
        )
        waited = await call(
            client, "wait_for_task", {"task_id": made["task_id"], "timeout_seconds": 1}
        )
        assert waited == {
            "task_id": made["task_id"],
            "status": "running",
            "results": [],
            "timed_out": True,
        }
        too_long = await refusal(
            client, "wait_for_task", {"task_id": made["task_id"], "timeout_seconds": 86400}
        )
        assert "timeout_seconds" in too_long, too_long
        await call(client, "cancel_task", {"task_id": made["task_id"]})
