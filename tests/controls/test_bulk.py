"""POST /api/v1/tasks:bulk over a real server: per-task results, filters paged by the store's
keyset with a cap and a cursor, users kept to their own tasks, and bad bodies refused naming
the field with nothing changed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from controls.conftest import ServerFactory

BULK = "/api/v1/tasks:bulk"
KEYS = "alice-key:alice:user,bob-key:bob:user,root-key:root:admin"


async def recurring(client: httpx.AsyncClient, agent: str = "echo") -> str:
    body = {
        "query": "hello",
        "agent_name": agent,
        "pattern": "recurring",
        "schedule_config": {"interval_minutes": 60},
        "run_immediately": False,
    }
    response = await client.post("/api/v1/tasks", json=body)
    assert response.status_code == 201, response.json()
    task_id: str = response.json()["data"]["task_id"]
    return task_id


async def task(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    found: dict[str, Any] = (await client.get(f"/api/v1/tasks/{task_id}")).json()["data"]
    return found


async def bulk(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post(BULK, json=body)
    assert response.status_code == 200, response.json()
    data: dict[str, Any] = response.json()["data"]
    return data


async def test_pause_by_ids_answers_each_task(client: httpx.AsyncClient) -> None:
    first, second = await recurring(client), await recurring(client)
    once = (await client.post("/api/v1/tasks", json={"query": "q", "agent_name": "echo"})).json()
    once_id = once["data"]["task_id"]
    ids = [first, "no-such-task", once_id, second, first]  # a repeat is acted on once
    data = await bulk(client, action="pause", ids=ids, note="maintenance window")
    assert data["action"] == "pause" and data["next_cursor"] is None
    results = {r["task_id"]: r for r in data["results"]}
    assert [r["task_id"] for r in data["results"]] == [first, "no-such-task", once_id, second]
    assert results[first] == {"task_id": first, "ok": True, "code": 0, "message": "ok"}
    assert results["no-such-task"]["code"] == 404 and not results["no-such-task"]["ok"]
    assert results[once_id]["code"] == 409 and "once task" in results[once_id]["message"]
    assert (data["succeeded"], data["failed"]) == (2, 2)
    for task_id in (first, second):
        current = await task(client, task_id)
        assert current["paused"] and current["pause_note"] == "maintenance window"
    data = await bulk(client, action="resume", ids=[first, second])
    assert data["succeeded"] == 2
    assert not (await task(client, first))["paused"]


async def test_a_filter_pages_through_with_a_cap_and_a_cursor(client: httpx.AsyncClient) -> None:
    made = [await recurring(client) for _ in range(5)]
    other = await recurring(client, agent="clock")
    flt = {"status": "running", "agent_name": "echo"}
    acted: list[str] = []
    cursor = None
    pages = 0
    while True:
        body: dict[str, Any] = {"action": "cancel", "filter": flt, "limit": 2}
        if cursor is not None:
            body["cursor"] = cursor
        data = await bulk(client, **body)
        pages += 1
        assert all(r["ok"] for r in data["results"]), data
        acted += [r["task_id"] for r in data["results"]]
        cursor = data["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert acted == list(reversed(made))  # newest first, each once
    for task_id in made:
        assert (await task(client, task_id))["status"] == "cancelled"
    assert (await task(client, other))["status"] == "running"  # not in the filter
    # Cancelled tasks can be deleted in bulk; running ones answer 409 each.
    data = await bulk(client, action="delete", ids=[made[0], other])
    assert [r["code"] for r in data["results"]] == [0, 409]
    assert (await client.get(f"/api/v1/tasks/{made[0]}")).status_code == 404


async def test_users_act_on_their_own_tasks_and_an_admin_on_anyones(
    server_factory: ServerFactory,
) -> None:
    async with server_factory(api_keys=KEYS) as url:
        alice = httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer alice-key"})
        bob = httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer bob-key"})
        root = httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer root-key"})
        async with alice, bob, root:
            alices, bobs = await recurring(alice), await recurring(bob)
            data = await bulk(bob, action="pause", ids=[alices, bobs])
            assert [r["code"] for r in data["results"]] == [404, 0]  # alice's is not bob's
            assert not (await task(alice, alices))["paused"]
            data = await bulk(bob, action="pause", filter={})  # all of bob's, none of alice's
            assert [r["task_id"] for r in data["results"]] == [bobs]
            refused = await bob.post(BULK, json={"action": "pause", "filter": {"user_id": "alice"}})
            assert refused.status_code == 403 and "filter.user_id" in refused.json()["msg"]
            data = await bulk(root, action="cancel", filter={"user_id": "alice"})
            assert [r["task_id"] for r in data["results"]] == [alices]
            data = await bulk(root, action="cancel", ids=[bobs])
            assert data["succeeded"] == 1
            assert (await task(bob, bobs))["status"] == "cancelled"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"action": "pause"}, 400, "ids"),
        ({"action": "pause", "ids": ["a"], "filter": {}}, 400, "ids"),
        ({"action": "pause", "ids": []}, 400, "ids"),
        ({"action": "pause", "ids": [f"t{i}" for i in range(1001)]}, 400, "ids"),
        ({"action": "explode", "ids": ["a"]}, 422, "action"),
        ({"ids": ["a"]}, 422, "action"),
        ({"action": "pause", "ids": "a"}, 422, "ids"),
        ({"action": "pause", "ids": [5]}, 422, "ids"),
        ({"action": "cancel", "ids": ["a"], "note": "why"}, 400, "note"),
        ({"action": "pause", "ids": ["a"], "note": "two\nlines"}, 400, "note"),
        ({"action": "pause", "ids": ["a"], "limit": 5}, 400, "limit"),
        ({"action": "pause", "filter": {}, "limit": 0}, 400, "limit"),
        ({"action": "pause", "filter": {}, "limit": 1001}, 400, "limit"),
        ({"action": "pause", "filter": {}, "limit": "5"}, 422, "limit"),
        ({"action": "pause", "filter": {"status": "sleeping"}}, 422, "status"),
        ({"action": "pause", "filter": {"paused": True}}, 422, "paused"),
        ({"action": "pause", "filter": {}, "cursor": "nonsense"}, 400, "cursor"),
        ({"action": "pause", "ids": ["a"], "extra": 1}, 422, "extra"),
    ],
)
async def test_a_bad_bulk_body_is_refused_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, field: str
) -> None:
    task_id = await recurring(client)
    if body.get("ids") == ["a"]:
        body = {**body, "ids": [task_id]}
    response = await client.post(BULK, json=body)
    assert response.status_code == status, response.json()
    answer = response.json()
    assert answer["code"] == status and field in answer["msg"], answer
    current = await task(client, task_id)
    assert current["paused"] is False and current["status"] == "running"  # nothing changed


async def test_a_cursor_is_bound_to_its_filter(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await recurring(client)
    data = await bulk(client, action="pause", filter={"agent_name": "echo"}, limit=1)
    assert data["next_cursor"]
    other = await client.post(
        BULK,
        json={"action": "pause", "filter": {"status": "running"}, "cursor": data["next_cursor"]},
    )
    assert other.status_code == 400 and "cursor" in other.json()["msg"]


async def test_the_colon_path_is_its_own_route(client: httpx.AsyncClient) -> None:
    task_id = await recurring(client)
    encoded = await client.post("/api/v1/tasks%3Abulk", json={"action": "pause", "ids": [task_id]})
    assert encoded.status_code == 200, encoded.json()
    assert (await task(client, task_id))["paused"]
    wrong = await client.get(BULK)
    assert wrong.status_code == 405, wrong.text
    assert (await client.post("/api/v1/tasks:bulky", json={})).status_code == 404
    # Not taken for a task id either.
    assert (await client.get("/api/v1/tasks/tasks:bulk")).status_code == 404
