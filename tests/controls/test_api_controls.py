"""The controls over HTTP: run_timeout_seconds at creation, pause with a note, and bad input
for each (400/422 naming the field, nothing stored or changed)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

RECURRING = {
    "query": "hello",
    "agent_name": "echo",
    "pattern": "recurring",
    "schedule_config": {"interval_minutes": 60},
    "run_immediately": False,
}


async def create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/tasks", json={**RECURRING, **fields})
    assert response.status_code == 201, response.json()
    task: dict[str, Any] = response.json()["data"]
    return task


async def controller(client: httpx.AsyncClient, task: dict[str, Any]) -> dict[str, Any]:
    path = f"/api/v1/conversations/{task['conversation_id']}/items"
    items = (await client.get(path)).json()["data"]["items"]
    (found,) = [i for i in items if i["component_type"] == "scheduled_task_controller"]
    content: dict[str, Any] = json.loads(found["payload"]["content"])
    return content


def assert_names(response: httpx.Response, status: int, field: str) -> None:
    assert response.status_code == status, response.json()
    body = response.json()
    assert body["code"] == status and field in body["msg"], body
    assert any(field in f["field"] for f in body["data"] or []), body


async def test_run_timeout_is_accepted_and_shown(client: httpx.AsyncClient) -> None:
    task = await create(client, run_timeout_seconds=90)
    assert task["run_timeout_seconds"] == 90
    once = await client.post(
        "/api/v1/tasks", json={"query": "hi", "agent_name": "echo", "run_timeout_seconds": 5}
    )
    assert once.status_code == 201 and once.json()["data"]["run_timeout_seconds"] == 5
    plain = await create(client)
    assert plain["run_timeout_seconds"] is None and plain["pause_note"] is None
    fetched = (await client.get(f"/api/v1/tasks/{task['task_id']}")).json()["data"]
    assert fetched["run_timeout_seconds"] == 90
    assert (await controller(client, task))["run_timeout_seconds"] == 90


@pytest.mark.parametrize(
    ("value", "status"),
    [(0, 400), (-5, 400), (7 * 24 * 3600 + 1, 400), ("60", 422), (True, 422), (1.5, 422)],
)
async def test_a_bad_run_timeout_is_refused_naming_it(
    client: httpx.AsyncClient, value: object, status: int
) -> None:
    response = await client.post("/api/v1/tasks", json={**RECURRING, "run_timeout_seconds": value})
    assert_names(response, status, "run_timeout_seconds")
    assert (await client.get("/api/v1/tasks")).json()["data"]["items"] == []  # nothing stored


async def test_pause_with_a_note_then_resume_clears_it(client: httpx.AsyncClient) -> None:
    task = await create(client)
    path = f"/api/v1/tasks/{task['task_id']}"
    paused = await client.post(f"{path}/pause", json={"note": "  holiday until Monday ✓ "})
    assert paused.status_code == 200, paused.json()
    data = paused.json()["data"]
    assert data["paused"] is True and data["pause_note"] == "holiday until Monday ✓"
    shown = await controller(client, task)
    assert shown["paused"] is True and shown["pause_note"] == "holiday until Monday ✓"
    resumed = (await client.post(f"{path}/resume")).json()["data"]
    assert resumed["paused"] is False and resumed["pause_note"] is None
    assert (await controller(client, task))["pause_note"] is None


@pytest.mark.parametrize("body", [None, {}, {"note": None}, {"note": "   "}])
async def test_a_pause_without_a_note(client: httpx.AsyncClient, body: object) -> None:
    task = await create(client)
    path = f"/api/v1/tasks/{task['task_id']}/pause"
    response = await client.post(path) if body is None else await client.post(path, json=body)
    assert response.status_code == 200, response.json()
    assert response.json()["data"]["paused"] is True
    assert response.json()["data"]["pause_note"] is None


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"note": "x" * 501}, 400),
        ({"note": "two\nlines"}, 400),
        ({"note": "bell\u0007"}, 400),
        ({"note": "nul\u0000"}, 400),
        ({"note": 5}, 422),
        ({"note": ["a"]}, 422),
        ({"reason": "typo"}, 422),
    ],
)
async def test_a_bad_note_is_refused_naming_it_and_nothing_changes(
    client: httpx.AsyncClient, body: dict[str, Any], status: int
) -> None:
    task = await create(client)
    response = await client.post(f"/api/v1/tasks/{task['task_id']}/pause", json=body)
    assert_names(response, status, "reason" if "reason" in body else "note")
    current = (await client.get(f"/api/v1/tasks/{task['task_id']}")).json()["data"]
    assert current["paused"] is False and current["pause_note"] is None


async def test_a_once_task_cannot_be_paused_with_a_note(client: httpx.AsyncClient) -> None:
    made = await client.post("/api/v1/tasks", json={"query": "hi", "agent_name": "echo"})
    task_id = made.json()["data"]["task_id"]
    response = await client.post(f"/api/v1/tasks/{task_id}/pause", json={"note": "no"})
    assert response.status_code == 409, response.json()
    assert (await client.get(f"/api/v1/tasks/{task_id}")).json()["data"]["pause_note"] is None


async def test_run_timeout_is_editable_by_patch(client: httpx.AsyncClient) -> None:
    task = await create(client, run_timeout_seconds=90)
    path = f"/api/v1/tasks/{task['task_id']}"
    edited = await client.patch(path, json={"run_timeout_seconds": 30})
    assert edited.status_code == 200, edited.json()
    data = edited.json()["data"]
    assert data["run_timeout_seconds"] == 30 and data["version"] == 2
    assert (await controller(client, task))["run_timeout_seconds"] == 30
    for bad, status in ((0, 400), (7 * 24 * 3600 + 1, 400), ("30", 422)):
        refused = await client.patch(path, json={"run_timeout_seconds": bad})
        assert_names(refused, status, "run_timeout_seconds")
    current = (await client.get(path)).json()["data"]
    assert current["run_timeout_seconds"] == 30 and current["version"] == 2  # nothing changed
    cleared = (await client.patch(path, json={"run_timeout_seconds": None})).json()["data"]
    assert cleared["run_timeout_seconds"] is None and cleared["version"] == 3
