"""Hostile input, one request at a time: the documented status, the field named, nothing stored,
and the server healthy afterwards (issue 12).

One real server (uvicorn on 127.0.0.1, a SQLite file) serves the whole table. Bodies are sent as
bytes made by ``json.dumps`` (ASCII escapes), so a lone surrogate travels as ``"\\ud800"``
exactly as an attacker would send it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from taskcell.api.app import create_app
from taskcell.testing import serve_app_in_thread

from .conftest import settings_for

SURROGATE = "Ada \ud800"
NUL = "Ada \x00"
BAD_TEXT = {"surrogate": SURROGATE, "nul": NUL}
MAX_SEQ = 2**63 - 1


@dataclass
class World:
    """The server and what was made before the table runs."""

    client: httpx.Client
    task_id: str
    conversation_id: str
    tasks_cursor: str
    stored: int


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    db = tmp_path_factory.mktemp("hostile") / "hostile.db"
    with (
        serve_app_in_thread(
            app_factory=lambda url: create_app(settings_for(db, public_url=url))
        ) as base_url,
        httpx.Client(base_url=base_url, timeout=30) as client,
    ):
        made = [
            client.post("/api/v1/tasks", json={"query": f"hello {i}", "agent_name": "echo"})
            for i in range(2)
        ]
        assert [m.status_code for m in made] == [201, 201], [m.text for m in made]
        task = made[0].json()["data"]
        with client.stream("GET", f"/api/v1/tasks/{task['task_id']}/events") as stream:
            for _ in stream.iter_lines():  # to done: the task is finished, its items written
                pass
        page = client.get("/api/v1/tasks", params={"limit": 1}).json()["data"]
        assert page["next_cursor"], page
        yield World(client, task["task_id"], task["conversation_id"], page["next_cursor"], 2)


@dataclass
class Case:
    name: str
    method: str
    path: str
    status: int
    field: str
    body: Any = None
    raw: bytes | None = None
    params: dict[str, str] = dataclasses.field(default_factory=dict)
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


CREATE = {"query": "hello", "agent_name": "echo"}
RECURRING = {**CREATE, "pattern": "recurring"}


def daily(value: str, zone: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"daily_time": value}
    if zone is not None:
        config["timezone"] = zone
    return {**RECURRING, "schedule_config": config}


def text_cases() -> list[Case]:
    cases: list[Case] = []
    for kind, bad in BAD_TEXT.items():
        cases.extend(
            Case(f"create {name} {kind}", "POST", "/tasks", 400, name, {**CREATE, name: bad})
            for name in ("query", "title", "agent_name", "conversation_id", "thread_id")
        )
        for name, metadata in (
            ("value", {"k": bad}),
            ("key", {bad: 1}),
            ("deep value", {"a": [{"b": [bad]}]}),
            ("deep key", {"a": {"b": {bad: True}}}),
        ):
            body = {**CREATE, "metadata": metadata}
            cases.append(Case(f"metadata {name} {kind}", "POST", "/tasks", 400, "metadata", body))
        cases.append(
            Case(
                f"timezone {kind}",
                "POST",
                "/tasks",
                400,
                "schedule_config.timezone",
                daily("09:00", bad),
            )
        )
        cases.append(
            Case(
                f"daily_time {kind}",
                "POST",
                "/tasks",
                400,
                "schedule_config.daily_time",
                daily(f"09:00{bad}"),
            )
        )
        cases.extend(
            Case(
                f"stream {name} {kind}", "POST", "/agents/stream", 400, name, {**CREATE, name: bad}
            )
            for name in ("query", "agent_name", "conversation_id", "title")
        )
        stream_zone = {**daily("09:00", bad), "agent_name": "clock"}
        cases.append(
            Case(
                f"stream timezone {kind}",
                "POST",
                "/agents/stream",
                400,
                "schedule_config.timezone",
                stream_zone,
            )
        )
        cases.append(
            Case(f"input text {kind}", "POST", "/tasks/{task}/input", 400, "text", {"text": bad})
        )
    return cases


def time_cases() -> list[Case]:
    cases: list[Case] = []
    for label, value in (
        ("trailing newline", "09:05\n"),
        ("leading newline", "\n09:05"),
        ("full-width digit", "0\uff19:30"),
        ("all full-width", "\uff10\uff19:\uff13\uff10"),
        ("arabic-indic digits", "\u0660\u0669:\u0663\u0660"),
        ("trailing space", "09:05 "),
        ("seconds", "09:05:00"),
        ("24:00", "24:00"),
        ("9:5", "9:5"),
    ):
        for endpoint in ("/tasks", "/agents/stream"):
            body = daily(value) if endpoint == "/tasks" else {**daily(value), "agent_name": "clock"}
            cases.append(
                Case(
                    f"{endpoint} daily_time {label}",
                    "POST",
                    endpoint,
                    400,
                    "schedule_config.daily_time",
                    body,
                )
            )
    return cases


def type_cases() -> list[Case]:
    interval = "schedule_config.interval_minutes"
    return [
        Case(
            "interval true",
            "POST",
            "/tasks",
            422,
            interval,
            {**RECURRING, "schedule_config": {"interval_minutes": True}},
        ),
        Case(
            "interval '5'",
            "POST",
            "/tasks",
            422,
            interval,
            {**RECURRING, "schedule_config": {"interval_minutes": "5"}},
        ),
        Case(
            "interval 5.0",
            "POST",
            "/tasks",
            422,
            interval,
            {**RECURRING, "schedule_config": {"interval_minutes": 5.0}},
        ),
        Case(
            "interval 2**64",
            "POST",
            "/tasks",
            400,
            interval,
            {**RECURRING, "schedule_config": {"interval_minutes": 2**64}},
        ),
        Case(
            "max_attempts true",
            "POST",
            "/tasks",
            422,
            "max_attempts",
            {**CREATE, "max_attempts": True},
        ),
        Case(
            "max_attempts '3'",
            "POST",
            "/tasks",
            422,
            "max_attempts",
            {**CREATE, "max_attempts": "3"},
        ),
        Case(
            "run_immediately 'yes'",
            "POST",
            "/tasks",
            422,
            "run_immediately",
            {**RECURRING, "run_immediately": "yes"},
        ),
        Case(
            "run_immediately 1",
            "POST",
            "/tasks",
            422,
            "run_immediately",
            {**RECURRING, "run_immediately": 1},
        ),
        Case("metadata a list", "POST", "/tasks", 422, "metadata", {**CREATE, "metadata": [1]}),
        Case("query a number", "POST", "/tasks", 422, "query", {**CREATE, "query": 5}),
        Case("input text a list", "POST", "/tasks/{task}/input", 422, "text", {"text": ["a"]}),
        Case(
            "surrogate key in schedule",
            "POST",
            "/tasks",
            400,
            "schedule_config",
            {**RECURRING, "schedule_config": {SURROGATE: 1}},
        ),
    ]


def body_cases() -> list[Case]:
    deep_metadata: Any = "leaf"
    for _ in range(40):
        deep_metadata = {"a": deep_metadata}
    metadata_33: Any = "leaf"  # within the body's limit (34), over metadata's (32): a value
    for _ in range(33):
        metadata_33 = {"a": metadata_33}
    return [
        Case(
            "metadata 33 deep",
            "POST",
            "/tasks",
            400,
            "metadata",
            {**CREATE, "metadata": metadata_33},
        ),
        Case(
            "invalid UTF-8",
            "POST",
            "/tasks",
            422,
            "body",
            raw=b'{"query": "\xff\xfe", "agent_name": "echo"}',
        ),
        Case(
            "truncated UTF-8",
            "POST",
            "/tasks",
            422,
            "body",
            raw=b'{"query": "\xe2\x82", "agent_name": "echo"}',
        ),
        Case("not JSON", "POST", "/tasks", 422, "body", raw=b"{not json"),
        Case("deep arrays", "POST", "/tasks", 422, "body", raw=b"[" * 100_000 + b"]" * 100_000),
        Case(
            "deep objects",
            "POST",
            "/tasks",
            422,
            "body",
            raw=b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        ),
        Case(
            "deep metadata",
            "POST",
            "/tasks",
            422,
            "metadata",
            {**CREATE, "metadata": deep_metadata},
        ),
        Case(
            "NaN",
            "POST",
            "/tasks",
            422,
            "body",
            raw=b'{"query": "q", "agent_name": "echo", "metadata": {"x": NaN}}',
        ),
        Case(
            "Infinity",
            "POST",
            "/tasks",
            422,
            "body",
            raw=b'{"query": "q", "agent_name": "echo", "max_attempts": Infinity}',
        ),
        Case(
            "5000-digit integer",
            "POST",
            "/tasks",
            422,
            "body",
            raw=b'{"query": "q", "agent_name": "echo", "max_attempts": ' + b"9" * 5000 + b"}",
        ),
        Case(
            "stream invalid UTF-8",
            "POST",
            "/agents/stream",
            422,
            "body",
            raw=b'{"query": "\xc0\xaf", "agent_name": "echo"}',
        ),
        Case(
            "input invalid UTF-8",
            "POST",
            "/tasks/{task}/input",
            422,
            "body",
            raw=b'{"text": "\xff"}',
        ),
    ]


def forged(cursor: str, position: list[Any]) -> str:
    """``cursor`` (a real one) with its position replaced: its binding kept, its values not."""
    binding, _, _ = cursor.partition(".")
    inner = base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")
    return f"{binding}.{inner}"


POSITIONS: dict[str, list[Any]] = {
    "year 1 at +01:00": ["0001-01-01T00:00:00+01:00", "a"],
    "year 9999 at -01:00": ["9999-12-31T23:59:59-01:00", "a"],
    "naive time": ["2026-01-01T00:00:00", "a"],
    "surrogate id": ["2026-01-01T00:00:00+00:00", "\ud800"],
    "NUL id": ["2026-01-01T00:00:00+00:00", "a\x00"],
    "number id": ["2026-01-01T00:00:00+00:00", 5],
    "huge id": ["2026-01-01T00:00:00+00:00", "x" * 5000],
    "three values": ["2026-01-01T00:00:00+00:00", "a", "b"],
}


def cursor_cases() -> list[Case]:
    cases = [
        Case(
            f"/tasks cursor {name}",
            "GET",
            "/tasks",
            400,
            "cursor",
            params={"cursor": f"forge:{name}"},
        )
        for name in POSITIONS
    ]
    for path in ("/tasks/{task}/runs", "/conversations/{conversation}/items"):
        cases.append(
            Case(
                f"{path} takes no /tasks cursor",
                "GET",
                path,
                400,
                "cursor",
                params={"cursor": "tasks"},
            )
        )
        cases.append(
            Case(f"{path} garbage cursor", "GET", path, 400, "cursor", params={"cursor": "garbage"})
        )
    cases.append(
        Case(
            "/tasks cursor of other filters",
            "GET",
            "/tasks",
            400,
            "cursor",
            params={"cursor": "tasks", "status": "completed"},
        )
    )
    cases.append(
        Case("/tasks cursor NUL", "GET", "/tasks", 400, "query.cursor", params={"cursor": "a\x00"})
    )
    return cases


def stream_cases() -> list[Case]:
    events = "/tasks/{task}/events"
    return [
        Case(
            "Last-Event-ID 2**63",
            "GET",
            events,
            400,
            "Last-Event-ID",
            headers={"Last-Event-ID": str(MAX_SEQ + 1)},
        ),
        Case(
            "Last-Event-ID 10**30",
            "GET",
            events,
            400,
            "Last-Event-ID",
            headers={"Last-Event-ID": "1" + "0" * 30},
        ),
        Case(
            "Last-Event-ID -1", "GET", events, 400, "Last-Event-ID", headers={"Last-Event-ID": "-1"}
        ),
        Case(
            "Last-Event-ID +5", "GET", events, 400, "Last-Event-ID", headers={"Last-Event-ID": "+5"}
        ),
        Case(
            "Last-Event-ID 1_000",
            "GET",
            events,
            400,
            "Last-Event-ID",
            headers={"Last-Event-ID": "1_000"},
        ),
        Case(
            "Last-Event-ID word",
            "GET",
            events,
            400,
            "Last-Event-ID",
            headers={"Last-Event-ID": "abc"},
        ),
        Case("after 2**63", "GET", events, 422, "query.after", params={"after": str(MAX_SEQ + 1)}),
        Case("after -1", "GET", events, 422, "query.after", params={"after": "-1"}),
        Case("after 1e3", "GET", events, 422, "query.after", params={"after": "1e3"}),
    ]


def path_cases() -> list[Case]:
    return [
        Case("task id NUL", "GET", "/tasks/a%00b", 400, "path.task_id"),
        Case("cancel task id NUL", "POST", "/tasks/a%00b/cancel", 400, "path.task_id"),
        Case("events task id NUL", "GET", "/tasks/a%00b/events", 400, "path.task_id"),
        Case(
            "conversation id NUL", "GET", "/conversations/a%00b/items", 400, "path.conversation_id"
        ),
        Case(
            "filter NUL", "GET", "/tasks", 400, "query.agent_name", params={"agent_name": "a\x00"}
        ),
        Case(
            "conversation filter NUL",
            "GET",
            "/tasks",
            400,
            "query.conversation_id",
            params={"conversation_id": "\x00"},
        ),
    ]


CASES = (
    text_cases()
    + time_cases()
    + type_cases()
    + body_cases()
    + cursor_cases()
    + stream_cases()
    + path_cases()
)


def resolve(case: Case, world: World) -> tuple[str, dict[str, str]]:
    path = "/api/v1" + case.path.format(task=world.task_id, conversation=world.conversation_id)
    params = dict(case.params)
    cursor = params.get("cursor", "")
    if cursor == "tasks":
        params["cursor"] = world.tasks_cursor
    elif cursor.startswith("forge:"):
        params["cursor"] = forged(world.tasks_cursor, POSITIONS[cursor.removeprefix("forge:")])
    return path, params


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_is_refused_naming_the_field(world: World, case: Case) -> None:
    path, params = resolve(case, world)
    content = case.raw if case.raw is not None else None
    if case.body is not None:
        content = json.dumps(case.body).encode()
    headers = {**case.headers}
    if content is not None:
        headers["content-type"] = "application/json"
    response = world.client.request(
        case.method, path, content=content, params=params, headers=headers
    )
    assert response.status_code == case.status, response.text
    answer = response.json()
    assert answer["code"] == case.status, answer
    fields = {f["field"]: f["message"] for f in answer["data"] or []}
    assert case.field in fields, answer
    assert case.field in answer["msg"], answer
    assert "\ud800" not in response.text and "\x00" not in response.text

    health = world.client.get("/api/v1/health")
    assert health.status_code == 200, health.text
    listed = world.client.get("/api/v1/tasks", params={"limit": 500}).json()["data"]["items"]
    assert len(listed) == world.stored, [t["query"] for t in listed]


def test_the_edges_of_the_ranges_are_accepted(world: World) -> None:
    """What is refused above just past an edge is answered at the edge."""
    events = f"/api/v1/tasks/{world.task_id}/events"
    for headers, params in (
        ({"Last-Event-ID": str(MAX_SEQ)}, {}),
        ({}, {"after": str(MAX_SEQ)}),
        ({"Last-Event-ID": "0"}, {}),
    ):
        with world.client.stream("GET", events, headers=headers, params=params) as stream:
            assert stream.status_code == 200
            frames = [line for line in stream.iter_lines() if line.startswith("id:")]
        expected_any = headers.get("Last-Event-ID") == "0"
        assert bool(frames) == expected_any, (headers, params, frames[:3])
    second = world.client.get("/api/v1/tasks", params={"limit": 1, "cursor": world.tasks_cursor})
    assert second.status_code == 200, second.text
    assert second.json()["data"]["next_cursor"] is None


def test_a_wrong_method_answers_405_with_allow(world: World) -> None:
    for method, path, allowed in (
        ("DELETE", "/api/v1/tasks", {"GET", "POST"}),
        ("PUT", f"/api/v1/tasks/{world.task_id}", {"GET", "DELETE"}),
        ("GET", f"/api/v1/tasks/{world.task_id}/cancel", {"POST"}),
    ):
        response = world.client.request(method, path)
        assert response.status_code == 405, (method, path, response.text)
        assert response.json()["code"] == 405
        allow = {m.strip() for m in response.headers.get("allow", "").split(",")}
        assert allowed <= allow, (method, path, response.headers)


def test_keep_alive_survives_a_run_of_bad_requests(world: World) -> None:
    """No refusal above closes the connection (each 500 used to), so a client's next
    keep-alive request never meets a closed socket."""
    for case in CASES:
        path, params = resolve(case, world)
        body = json.dumps(case.body).encode() if case.body is not None else case.raw
        headers = {"content-type": "application/json", **case.headers}
        response = world.client.request(
            case.method, path, params=params, content=body, headers=headers
        )
        assert response.status_code == case.status, (case.name, response.text)
        assert response.headers.get("connection") != "close", (case.name, response.headers)
