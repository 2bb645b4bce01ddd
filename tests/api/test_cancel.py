"""Cancel: idempotent, 409 when finished, and every controller of that task (only) updated."""

from __future__ import annotations

import json

import httpx

from .conftest import read_sse


async def recurring(client: httpx.AsyncClient, conversation: str) -> str:
    body = {
        "query": "what time is it",
        "agent_name": "clock",
        "pattern": "recurring",
        "conversation_id": conversation,
        "run_immediately": False,
        "schedule_config": {"interval_minutes": 30, "timezone": "Asia/Tokyo"},
    }
    response = await client.post("/api/v1/tasks", json=body)
    assert response.status_code == 201, response.text
    task_id: str = response.json()["data"]["task_id"]
    return task_id


async def controllers(client: httpx.AsyncClient, conversation: str) -> dict[str, dict[str, object]]:
    items = (await client.get(f"/api/v1/conversations/{conversation}/items")).json()["data"][
        "items"
    ]
    return {
        i["item_id"]: json.loads(i["payload"]["content"])
        for i in items
        if i["component_type"] == "scheduled_task_controller"
    }


async def test_cancel_updates_every_controller_of_that_task_and_no_other(
    client: httpx.AsyncClient,
) -> None:
    target = await recurring(client, "conv-a")
    other = await recurring(client, "conv-a")
    elsewhere = await recurring(client, "conv-b")
    answer = await client.post(f"/api/v1/tasks/{target}/cancel")
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert data["task_id"] == target and data["success"] is True
    assert data["updated_component_ids"] == [f"{target}:controller"]
    shown = await controllers(client, "conv-a")
    assert shown[f"{target}:controller"]["task_status"] == "cancelled"
    assert shown[f"{other}:controller"]["task_status"] == "running"
    assert (await controllers(client, "conv-b"))[f"{elsewhere}:controller"][
        "task_status"
    ] == "running"
    again = await client.post(f"/api/v1/tasks/{target}/cancel")
    assert again.status_code == 200 and again.json()["data"]["success"] is True
    task = (await client.get(f"/api/v1/tasks/{target}")).json()["data"]
    assert task["status"] == "cancelled"
    events = await read_sse(client, f"/api/v1/tasks/{target}/events")
    assert [e["event"] for e in events][-2:] == ["task_cancelled", "done"]


async def test_cancelling_a_finished_task_is_409_and_unknown_is_404(
    client: httpx.AsyncClient,
) -> None:
    made = await client.post("/api/v1/tasks", json={"query": "quick", "agent_name": "echo"})
    task_id = made.json()["data"]["task_id"]
    await read_sse(client, f"/api/v1/tasks/{task_id}/events")
    refused = await client.post(f"/api/v1/tasks/{task_id}/cancel")
    assert refused.status_code == 409
    assert refused.json()["msg"] == f"task {task_id} cannot become cancelled: it is completed"
    assert (await client.post("/api/v1/tasks/nope/cancel")).status_code == 404
    deleted = await client.delete(f"/api/v1/tasks/{task_id}")
    assert deleted.json()["data"] == {"task_id": task_id, "deleted": True}
    assert (await client.get(f"/api/v1/tasks/{task_id}")).status_code == 404
