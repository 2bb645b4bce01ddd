"""The client commands against a small real Starlette app on loopback that speaks the envelope.

The app stands in for the taskcell server: it answers what docs/api.md fixes (envelopes, error
statuses, cursors, the SSE event stream with ``Last-Event-ID``), so these tests pin the client's
side of the contract without the real server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from typer.testing import CliRunner

from serving import closed_port
from taskcell.cli import app
from taskcell.testing import serve_app_in_thread

TASK_A = "a1" * 16
TASK_B = "b2" * 16


def envelope(data: Any, status: int = 200, msg: str = "ok") -> JSONResponse:
    return JSONResponse({"code": 0 if status < 400 else status, "msg": msg, "data": data}, status)


def task(task_id: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "task_id": task_id,
        "title": "",
        "query": "say hello",
        "agent_name": "echo",
        "status": "completed",
        "pattern": "once",
        "schedule_config": None,
        "paused": False,
        "next_run_at": None,
        "attempt": 1,
        "max_attempts": 3,
        "created_at": "2025-01-01T10:00:00+00:00",
        "conversation_id": "c1",
        "error_message": None,
        "metadata": {},
    }
    return base | fields


def sse(event: dict[str, Any]) -> str:
    return f"id: {event['seq']}\ndata: {json.dumps(event)}\n\n"


def event(seq: int, name: str, item: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    data = {
        "conversation_id": "c1",
        "thread_id": "t1",
        "task_id": TASK_A,
        "item_id": item,
        "role": "agent",
        "agent_name": "echo",
        "payload": payload,
    }
    return {"seq": seq, "event": name, "data": data, "created_at": "2025-01-01T10:00:00+00:00"}


EVENTS = [
    event(1, "task_started", "s"),
    event(2, "message_chunk", "m", {"content": "hello"}),
    event(3, "message_chunk", "m", {"content": " wide"}),
    event(4, "message_chunk", "m", {"content": " world"}),
    event(5, "task_completed", "c"),
    event(6, "done", "d"),
]


@dataclass
class FakeServer:
    """What the fake server was asked, and how it streams (the first stream drops after 3)."""

    bodies: list[Any] = field(default_factory=list)
    resumes: list[tuple[str | None, str | None]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)

    async def tasks(self, request: Request) -> Response:
        self.auth.append(request.headers.get("authorization"))
        if request.method == "POST":
            body = await request.json()
            self.bodies.append(body)
            if not body.get("query"):
                fields = [{"field": "query", "message": "must have 1 to 32000 characters"}]
                return envelope(fields, 422, "the request body is not valid")
            if body["agent_name"] != "echo":
                return envelope(None, 400, "agent_name: unknown agent [nope]; known: echo")
            return envelope(task(TASK_A, status="pending", **body), 201)
        if request.query_params.get("cursor") == "page2":
            return envelope({"items": [task(TASK_B, title="second page")], "next_cursor": None})
        items = [task(TASK_A, title="first page", status="failed")]
        return envelope({"items": items, "next_cursor": "page2"})

    async def one(self, request: Request) -> Response:
        task_id = request.path_params["task_id"]
        if task_id not in (TASK_A, TASK_B):
            return envelope(None, 404, f"no task {task_id}")
        status = "completed" if len(self.resumes) > 1 else "running"
        return envelope(task(task_id, status=status))

    async def runs(self, request: Request) -> Response:
        run = {"run_id": "r" * 32, "attempt": 1, "status": "completed", "result": "hello"}
        return envelope({"items": [run], "next_cursor": None})

    async def cancel(self, request: Request) -> Response:
        return envelope(None, 409, "task is already completed: nothing to cancel")

    async def agents(self, request: Request) -> Response:
        echo = {
            "name": "echo",
            "description": "Streams the query back",
            "skills": [{"id": "echo", "name": "echo words"}],
            "url": "local",
            "reachable": True,
        }
        far = {
            "name": "far",
            "description": "",
            "skills": [],
            "url": "http://x",
            "reachable": False,
        }
        return envelope([echo, far])

    async def answer(self, request: Request) -> Response:
        self.bodies.append(await request.json())
        return envelope(task(request.path_params["task_id"], status="running"))

    async def delete(self, request: Request) -> Response:
        self.bodies.append("deleted")
        return envelope({"task_id": request.path_params["task_id"], "deleted": True})

    async def events(self, request: Request) -> Response:
        resume = (request.headers.get("last-event-id"), request.query_params.get("after"))
        self.resumes.append(resume)
        first = len(self.resumes) == 1
        start = int(resume[0] or resume[1] or 0)

        async def stream() -> AsyncIterator[str]:
            yield ": hello\n\n"
            for item in EVENTS[start:]:
                if first and item["seq"] > 3:
                    return  # the connection ends before the task does
                yield sse(item)

        return StreamingResponse(stream(), media_type="text/event-stream")


@pytest.fixture
def fake() -> Iterator[tuple[FakeServer, str]]:
    server = FakeServer()
    routes = [
        Route("/api/v1/tasks", server.tasks, methods=["GET", "POST"]),
        Route("/api/v1/tasks/{task_id}", server.one, methods=["GET"]),
        Route("/api/v1/tasks/{task_id}", server.delete, methods=["DELETE"]),
        Route("/api/v1/tasks/{task_id}/input", server.answer, methods=["POST"]),
        Route("/api/v1/agents", server.agents),
        Route("/api/v1/tasks/{task_id}/runs", server.runs),
        Route("/api/v1/tasks/{task_id}/cancel", server.cancel, methods=["POST"]),
        Route("/api/v1/tasks/{task_id}/events", server.events),
    ]
    with serve_app_in_thread(Starlette(routes=routes)) as base_url:
        yield server, base_url


def flat(text: str) -> str:
    return " ".join(text.split())


def test_a_400_prints_the_servers_message_in_words(
    runner: CliRunner, fake: tuple[FakeServer, str]
) -> None:
    server, url = fake
    result = runner.invoke(app, ["tasks", "create", "hi", "--agent", "nope", "--url", url])
    assert result.exit_code == 1
    assert "error 400: agent_name: unknown agent [nope]; known: echo" in result.output
    assert server.bodies == [{"query": "hi", "agent_name": "nope"}]


def test_a_422_prints_each_field(runner: CliRunner, fake: tuple[FakeServer, str]) -> None:
    _, url = fake
    result = runner.invoke(app, ["tasks", "create", "", "--agent", "echo", "--url", url])
    assert result.exit_code == 1
    assert "error 422: the request body is not valid" in result.output
    assert "• query: must have 1 to 32000 characters" in result.output


def test_a_409_on_cancel(runner: CliRunner, fake: tuple[FakeServer, str]) -> None:
    _, url = fake
    result = runner.invoke(app, ["tasks", "cancel", TASK_A, "--url", url])
    assert result.exit_code == 1
    assert "error 409: task is already completed: nothing to cancel" in result.output


def test_an_unknown_short_id_is_a_404(runner: CliRunner, fake: tuple[FakeServer, str]) -> None:
    _, url = fake
    result = runner.invoke(app, ["tasks", "show", "zzz", "--url", url])
    assert result.exit_code == 1
    assert "error 404: no task 'zzz'" in result.output


def test_create_sends_the_schedule_and_the_key(
    runner: CliRunner, fake: tuple[FakeServer, str]
) -> None:
    server, url = fake
    args = [
        "tasks",
        "create",
        "news",
        "--agent",
        "echo",
        "--daily",
        "09:00",
        "--tz",
        "Europe/Paris",
    ]
    result = runner.invoke(app, [*args, "--no-run-now", "--url", url, "--key", "k1"])
    assert result.exit_code == 0, result.output
    assert server.bodies == [
        {
            "query": "news",
            "agent_name": "echo",
            "pattern": "recurring",
            "schedule_config": {"daily_time": "09:00", "timezone": "Europe/Paris"},
            "run_immediately": False,
        }
    ]
    assert server.auth == ["Bearer k1"]
    assert f"created task {TASK_A}" in result.output


def test_create_refuses_every_and_daily_together(runner: CliRunner) -> None:
    args = ["tasks", "create", "x", "--agent", "echo", "--every", "5", "--daily", "09:00"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "give only one of --every, --daily and --cron" in result.output


def test_list_shows_a_table_and_follows_the_cursor_with_all(
    runner: CliRunner, fake: tuple[FakeServer, str]
) -> None:
    _, url = fake
    first = runner.invoke(app, ["tasks", "list", "--url", url])
    assert first.exit_code == 0, first.output
    assert TASK_A[:12] in first.output
    assert "first page" in first.output
    assert "failed" in first.output
    assert "second page" not in first.output
    assert "--all" in first.output

    every = runner.invoke(app, ["tasks", "list", "--all", "--url", url])
    assert every.exit_code == 0, every.output
    assert "first page" in every.output
    assert "second page" in every.output


def test_show_prints_the_task_and_its_runs(runner: CliRunner, fake: tuple[FakeServer, str]) -> None:
    _, url = fake
    result = runner.invoke(app, ["tasks", "show", TASK_A[:6], "--url", url])
    assert result.exit_code == 0, result.output
    assert TASK_A in result.output
    assert "say hello" in result.output
    assert "runs" in result.output
    assert "r" * 12 in result.output


def test_watch_reconnects_with_the_last_event_id(
    runner: CliRunner, fake: tuple[FakeServer, str]
) -> None:
    server, url = fake
    result = runner.invoke(app, ["tasks", "watch", TASK_A, "--url", url])
    assert result.exit_code == 0, result.output
    assert server.resumes == [(None, None), ("3", None)]
    assert "reconnecting…" in result.output
    assert "echo: hello wide world" in result.output
    assert "status: completed" in result.output


def test_watch_after_sends_the_after_parameter(
    runner: CliRunner, fake: tuple[FakeServer, str]
) -> None:
    server, url = fake
    result = runner.invoke(app, ["tasks", "watch", TASK_A, "--after", "1", "--url", url])
    assert result.exit_code == 0, result.output
    assert server.resumes[0] == (None, "1")
    assert server.resumes[1] == ("3", None)
    assert "echo: hello wide world" in result.output


def test_a_server_that_is_not_running(runner: CliRunner) -> None:
    with closed_port() as port:
        url = f"http://127.0.0.1:{port}"
        result = runner.invoke(app, ["tasks", "list", "--url", url])
    assert result.exit_code == 1
    assert f"cannot reach taskcell at {url}: is `taskcell serve` running?" in flat(result.output)


def test_agents_table(
    runner: CliRunner, fake: tuple[FakeServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = fake
    monkeypatch.setenv("TASKCELL_URL", url)
    result = runner.invoke(app, ["agents"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    echo = next(line for line in lines if line.startswith("echo"))
    far = next(line for line in lines if line.startswith("far"))
    assert "Streams the query back" in echo
    assert "echo words" in echo
    assert "local" in echo
    assert echo.rstrip().endswith("yes")
    assert far.rstrip().endswith("no")


def test_answer_posts_the_text(runner: CliRunner, fake: tuple[FakeServer, str]) -> None:
    server, url = fake
    result = runner.invoke(app, ["tasks", "answer", TASK_A, "Paris", "--url", url])
    assert result.exit_code == 0, result.output
    assert server.bodies == [{"text": "Paris"}]
    assert f"answered task {TASK_A} · running" in result.output


def test_delete_asks_first_unless_yes(runner: CliRunner, fake: tuple[FakeServer, str]) -> None:
    server, url = fake
    declined = runner.invoke(app, ["tasks", "delete", TASK_A, "--url", url], input="n\n")
    assert declined.exit_code == 1
    assert server.bodies == []
    result = runner.invoke(app, ["tasks", "delete", TASK_A, "--yes", "--url", url])
    assert result.exit_code == 0, result.output
    assert server.bodies == ["deleted"]
    assert f"deleted task {TASK_A}" in result.output
