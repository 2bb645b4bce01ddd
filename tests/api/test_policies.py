"""Overlap and catch-up policies over HTTP (fields of the task object, bad input for each), and
POST /api/v1/tasks/{id}/backfill."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest


async def create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {
        "query": "hello",
        "agent_name": "echo",
        "pattern": "recurring",
        "schedule_config": {"interval_minutes": 60},
        "run_immediately": False,
        **fields,
    }
    response = await client.post("/api/v1/tasks", json=body)
    assert response.status_code == 201, response.json()
    task: dict[str, Any] = response.json()["data"]
    return task


async def count_tasks(client: httpx.AsyncClient) -> int:
    return len((await client.get("/api/v1/tasks", params={"limit": 500})).json()["data"]["items"])


async def backfill(client: httpx.AsyncClient, task_id: str, body: Any) -> httpx.Response:
    return await client.post(f"/api/v1/tasks/{task_id}/backfill", json=body)


async def runs_of(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/tasks/{task_id}/runs", params={"limit": 500})
    items: list[dict[str, Any]] = response.json()["data"]["items"]
    return items


async def test_policies_are_taken_at_creation_and_shown(client: httpx.AsyncClient) -> None:
    task = await create(client, overlap="buffer_all", catchup="all", catchup_window_seconds=3600)
    shown = (await client.get(f"/api/v1/tasks/{task['task_id']}")).json()["data"]
    for data in (task, shown):
        assert data["overlap"] == "buffer_all"
        assert data["catchup"] == "all"
        assert data["catchup_window_seconds"] == 3600
    plain = await create(client)
    assert (plain["overlap"], plain["catchup"], plain["catchup_window_seconds"]) == (
        "skip",
        "coalesce",
        None,
    )


@pytest.mark.parametrize(
    ("fields", "status", "field"),
    [
        ({"overlap": "sometimes"}, 400, "overlap"),
        ({"overlap": ""}, 400, "overlap"),
        ({"overlap": 3}, 422, "overlap"),
        ({"catchup": "later"}, 400, "catchup"),
        ({"catchup": None, "overlap": "SKIP"}, 400, "overlap"),
        ({"catchup": ["all"]}, 422, "catchup"),
        ({"catchup_window_seconds": 5}, 400, "catchup_window_seconds"),
        ({"catchup_window_seconds": 0}, 400, "catchup_window_seconds"),
        ({"catchup_window_seconds": 10**12}, 400, "catchup_window_seconds"),
        ({"catchup_window_seconds": "3600"}, 422, "catchup_window_seconds"),
        ({"catchup_window_seconds": True}, 422, "catchup_window_seconds"),
        ({"catchup_window_seconds": 3600.5}, 422, "catchup_window_seconds"),
    ],
)
async def test_bad_policies_are_refused_naming_the_field(
    client: httpx.AsyncClient, fields: dict[str, Any], status: int, field: str
) -> None:
    before = await count_tasks(client)
    body = {
        "query": "hello",
        "agent_name": "echo",
        "pattern": "recurring",
        "schedule_config": {"interval_minutes": 60},
        **fields,
    }
    response = await client.post("/api/v1/tasks", json=body)
    assert response.status_code == status, response.json()
    answer = response.json()
    assert field in [f["field"] for f in answer["data"]], answer
    assert field in answer["msg"]
    assert await count_tasks(client) == before  # nothing stored


@pytest.mark.parametrize(
    "fields",
    [{"overlap": "allow_all"}, {"catchup": "all"}, {"catchup_window_seconds": 600}],
)
async def test_a_once_task_takes_no_policy(
    client: httpx.AsyncClient, fields: dict[str, Any]
) -> None:
    before = await count_tasks(client)
    body = {"query": "hello", "agent_name": "echo", **fields}
    response = await client.post("/api/v1/tasks", json=body)
    assert response.status_code == 400, response.json()
    [name] = fields
    assert response.json()["data"][0]["field"] == name
    assert "recurring tasks only" in response.json()["msg"]
    assert await count_tasks(client) == before


async def test_backfill_runs_the_range_in_order_and_never_twice(
    client: httpx.AsyncClient,
) -> None:
    task = await create(client, overlap="allow_all")
    armed = datetime.fromisoformat(task["next_run_at"])
    start, end = armed - timedelta(hours=5), armed - timedelta(hours=1)
    body = {"start": start.isoformat(), "end": end.isoformat()}
    response = await backfill(client, task["task_id"], body)
    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    expected = [armed - timedelta(hours=k) for k in (5, 4, 3, 2)]  # [start, end): end excluded
    assert data["queued"] == 4
    assert [datetime.fromisoformat(r["scheduled_for"]) for r in data["runs"]] == expected
    assert {r["status"] for r in data["runs"]} == {"running"}
    assert data["already_run"] == []
    again = (await backfill(client, task["task_id"], body)).json()["data"]
    assert again["queued"] == 0 and again["runs"] == []
    assert [datetime.fromisoformat(at) for at in again["already_run"]] == expected
    runs = await runs_of(client, task["task_id"])
    assert sorted(datetime.fromisoformat(r["scheduled_for"]) for r in runs) == expected


async def test_backfill_honours_the_overlap_policy(client: httpx.AsyncClient) -> None:
    end = datetime.fromisoformat((await create(client))["next_run_at"]) - timedelta(hours=1)
    for overlap, after_first in (("skip", "skipped"), ("buffer_all", "queued")):
        task = await create(client, overlap=overlap)
        body = {"start": (end - timedelta(hours=3)).isoformat(), "end": end.isoformat()}
        data = (await backfill(client, task["task_id"], body)).json()["data"]
        assert [r["status"] for r in data["runs"]] == ["running", after_first, after_first]


async def test_backfill_of_a_paused_task_is_allowed(client: httpx.AsyncClient) -> None:
    task = await create(client)
    assert (await client.post(f"/api/v1/tasks/{task['task_id']}/pause")).status_code == 200
    end = datetime.fromisoformat(task["next_run_at"]) - timedelta(hours=1)
    body = {"start": (end - timedelta(hours=1)).isoformat(), "end": end.isoformat()}
    assert (await backfill(client, task["task_id"], body)).json()["data"]["queued"] == 1


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (
            {"start": "2026-03-01T12:00:00+00:00", "end": "2026-03-01T11:00:00+00:00"},
            "end",
            "after start",
        ),
        (
            {"start": "2026-03-01T12:00:00+00:00", "end": "2026-03-01T12:00:00+00:00"},
            "end",
            "after start",
        ),
        ({"start": "2026-03-01T12:00:00", "end": "2026-03-01T13:00:00+00:00"}, "start", "offset"),
        ({"start": "2026-03-01T12:00:00Z", "end": "2026-03-01T13:00:00"}, "end", "offset"),
        (
            {"start": "2026-03-01T00:00:00Z", "end": "2026-03-01T16:41:00Z"},  # 1,001 minutes
            "end",
            "1000",
        ),
        ({"start": "yesterday", "end": "2026-03-01T13:00:00Z"}, "start", ""),
        ({"start": "0001-01-01T00:00:00+01:00", "end": "0001-01-02T00:00:00Z"}, "start", ""),
        ({"start": "0001-01-01T00:00:00Z", "end": "9999-12-31T23:59:59Z"}, "end", "1000"),
        ({"start": "2026-03-01T12:00:00Z"}, "end", ""),
        ({"start": "2026-03-01T12:00:00Z", "end": "2026-03-02T12:00:00Z", "x": 1}, "x", ""),
    ],
)
async def test_bad_backfill_ranges_are_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str, words: str
) -> None:
    task = await create(client, schedule_config={"interval_minutes": 1})
    response = await backfill(client, task["task_id"], body)
    assert response.status_code == 422, response.json()
    answer = response.json()
    assert field in [f["field"] for f in answer["data"]], answer
    assert words in answer["msg"]
    assert await runs_of(client, task["task_id"]) == []  # nothing stored


async def test_a_thousand_occurrences_is_the_most(client: httpx.AsyncClient) -> None:
    task = await create(client, schedule_config={"interval_minutes": 1})
    armed = datetime.fromisoformat(task["next_run_at"])
    body = {"start": (armed - timedelta(minutes=1000)).isoformat(), "end": armed.isoformat()}
    data = (await backfill(client, task["task_id"], body)).json()["data"]
    assert data["queued"] == 1000  # one runs, the others are skipped (overlap skip)
    assert sum(r["status"] == "skipped" for r in data["runs"]) >= 998


async def test_backfill_of_a_once_or_cancelled_task_is_a_conflict(
    client: httpx.AsyncClient,
) -> None:
    body = {"start": "2026-03-01T12:00:00Z", "end": "2026-03-01T13:00:00Z"}
    once = await client.post("/api/v1/tasks", json={"query": "hi", "agent_name": "echo"})
    once_id = once.json()["data"]["task_id"]
    assert (await backfill(client, once_id, body)).status_code == 409
    task = await create(client)
    assert (await client.post(f"/api/v1/tasks/{task['task_id']}/cancel")).status_code == 200
    response = await backfill(client, task["task_id"], body)
    assert response.status_code == 409, response.json()
    assert await runs_of(client, task["task_id"]) == []
    assert (await backfill(client, "no-such-task", body)).status_code == 404


async def test_policies_are_editable(client: httpx.AsyncClient) -> None:
    task = await create(client)
    path = f"/api/v1/tasks/{task['task_id']}"
    edit = {"overlap": "buffer_all", "catchup": "all", "catchup_window_seconds": 900}
    response = await client.patch(path, json=edit)
    assert response.status_code == 200, response.json()
    edited = (await client.get(path)).json()["data"]
    assert {k: edited[k] for k in edit} == edit
    assert edited["version"] == task["version"] + 1
    refused = await client.patch(path, json={"overlap": "sometimes"})
    assert refused.status_code == 400, refused.json()
    assert refused.json()["data"][0]["field"] == "overlap"
    assert (await client.get(path)).json()["data"]["overlap"] == "buffer_all"  # nothing stored
    once = await client.post("/api/v1/tasks", json={"query": "hi", "agent_name": "echo"})
    once_path = f"/api/v1/tasks/{once.json()['data']['task_id']}"
    response = await client.patch(once_path, json={"overlap": "allow_all"})
    assert response.status_code in (400, 409), response.json()
