"""Cron tasks over HTTP, and GET /api/v1/tasks/{id}/upcoming for every kind of schedule."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest


async def create(client: httpx.AsyncClient, schedule: dict[str, Any]) -> dict[str, Any]:
    body = {
        "query": "hello",
        "agent_name": "echo",
        "pattern": "recurring",
        "schedule_config": schedule,
        "run_immediately": False,
    }
    response = await client.post("/api/v1/tasks", json=body)
    assert response.status_code == 201, response.json()
    task: dict[str, Any] = response.json()["data"]
    return task


async def upcoming(client: httpx.AsyncClient, task_id: str, **params: Any) -> httpx.Response:
    return await client.get(f"/api/v1/tasks/{task_id}/upcoming", params=params)


async def test_a_cron_task_lists_its_weekday_mornings(client: httpx.AsyncClient) -> None:
    task = await create(client, {"cron": "0 9 * * MON-FRI", "timezone": "Europe/Berlin"})
    assert task["schedule_config"]["cron"] == "0 9 * * MON-FRI"
    response = await upcoming(client, task["task_id"], count=7)
    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    assert data["timezone"] == "Europe/Berlin"
    assert data["schedule"] == "at 09:00 on Monday through Friday (Europe/Berlin)"
    assert data["paused"] is False
    times = [datetime.fromisoformat(item["at"]) for item in data["items"]]
    assert len(times) == 7
    assert times[0] == datetime.fromisoformat(task["next_run_at"]), (times, task["next_run_at"])
    assert times == sorted(set(times)), times
    berlin = ZoneInfo("Europe/Berlin")
    for item, at in zip(data["items"], times, strict=True):
        local = datetime.fromisoformat(item["local"])
        assert local == at and local.utcoffset() == at.astimezone(berlin).utcoffset(), item
        assert (local.hour, local.minute) == (9, 0) and local.isoweekday() <= 5, item


async def test_a_cron_without_a_zone_takes_the_servers(client: httpx.AsyncClient) -> None:
    task = await create(client, {"cron": "@hourly"})
    zone = task["schedule_config"]["timezone"]
    assert zone, task["schedule_config"]
    data = (await upcoming(client, task["task_id"])).json()["data"]
    assert data["timezone"] == zone
    times = [datetime.fromisoformat(item["at"]) for item in data["items"]]
    assert len(times) == 5  # the default count
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(times)), times


async def test_interval_and_daily_tasks_list_theirs(client: httpx.AsyncClient) -> None:
    every = await create(client, {"interval_minutes": 90})
    data = (await upcoming(client, every["task_id"], count=3)).json()["data"]
    times = [datetime.fromisoformat(item["at"]) for item in data["items"]]
    assert data["schedule"] == "every 90 minutes"
    assert [b - a for a, b in pairwise(times)] == [timedelta(minutes=90)] * 2

    daily = await create(client, {"daily_time": "07:30", "timezone": "Asia/Tokyo"})
    data = (await upcoming(client, daily["task_id"], count=4)).json()["data"]
    locals_ = [datetime.fromisoformat(item["local"]) for item in data["items"]]
    assert {(t.hour, t.minute) for t in locals_} == {(7, 30)}, locals_
    assert len({t.date() for t in locals_}) == 4, locals_


async def test_a_paused_task_lists_what_a_resume_would_arm(client: httpx.AsyncClient) -> None:
    task = await create(client, {"cron": "*/30 * * * *", "timezone": "UTC"})
    paused = await client.post(f"/api/v1/tasks/{task['task_id']}/pause")
    assert paused.status_code == 200, paused.json()
    data = (await upcoming(client, task["task_id"], count=2)).json()["data"]
    assert data["paused"] is True
    assert all(datetime.fromisoformat(i["at"]).minute in (0, 30) for i in data["items"]), data


async def test_a_cancelled_task_has_no_upcoming_fire(client: httpx.AsyncClient) -> None:
    task = await create(client, {"cron": "0 9 * * *", "timezone": "UTC"})
    cancelled = await client.post(f"/api/v1/tasks/{task['task_id']}/cancel")
    assert cancelled.status_code == 200, cancelled.json()
    data = (await upcoming(client, task["task_id"])).json()["data"]
    assert data["items"] == []


@pytest.mark.parametrize("count", ["0", "101", "-1", "five", "1.5"])
async def test_a_bad_count_is_422_naming_it(client: httpx.AsyncClient, count: str) -> None:
    task = await create(client, {"cron": "0 9 * * *", "timezone": "UTC"})
    response = await upcoming(client, task["task_id"], count=count)
    answer = response.json()
    assert response.status_code == 422, answer
    assert [f["field"] for f in answer["data"]] == ["query.count"], answer


async def test_upcoming_of_a_once_task_is_409(client: httpx.AsyncClient) -> None:
    made = await client.post("/api/v1/tasks", json={"query": "hi", "agent_name": "echo"})
    response = await upcoming(client, made.json()["data"]["task_id"])
    assert response.status_code == 409, response.json()
    assert "once task" in response.json()["msg"]


async def test_upcoming_of_an_unknown_task_is_404(client: httpx.AsyncClient) -> None:
    assert (await upcoming(client, "nope")).status_code == 404
