"""PATCH /api/v1/tasks/{id} over HTTP: edits, versions, If-Match and ETag, the controller in the
stream, and every bad input answered with its field named and nothing stored."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

RECURRING: dict[str, Any] = {
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


async def patch(
    client: httpx.AsyncClient, task_id: str, body: Any, **headers: str
) -> httpx.Response:
    return await client.patch(f"/api/v1/tasks/{task_id}", json=body, headers=headers)


async def read_until(
    client: httpx.AsyncClient, path: str, found: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """A task's events, read until one ``found`` accepts (then the stream is dropped)."""
    events: list[dict[str, Any]] = []
    async with client.stream("GET", path) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if found(events[-1]):
                    return events
    raise AssertionError(f"the stream ended before the awaited event: {events}")


def controller_of(event: dict[str, Any]) -> dict[str, Any] | None:
    payload = event["data"].get("payload") or {}
    if payload.get("component_type") != "scheduled_task_controller":
        return None
    content: dict[str, Any] = json.loads(payload["content"])
    return content


async def test_an_edit_changes_only_the_fields_given(client: httpx.AsyncClient) -> None:
    task = await create(client, title="old", metadata={"keep": 1})
    assert task["version"] == 1
    got = await client.get(f"/api/v1/tasks/{task['task_id']}")
    assert got.headers["etag"] == '"1"'
    before = datetime.now(UTC)
    body = {
        "title": "new title",
        "query": "new query",
        "schedule_config": {"cron": "*/10 * * * *", "timezone": "Europe/Berlin"},
        "max_attempts": 5,
        "metadata": {"team": "ops"},
    }
    response = await patch(client, task["task_id"], body)
    assert response.status_code == 200, response.json()
    assert response.headers["etag"] == '"2"'
    edited = response.json()["data"]
    for name, value in body.items():
        if name == "schedule_config":
            value = {"interval_minutes": None, "daily_time": None, **value}
        assert edited[name] == value, (name, edited[name])
    assert edited["version"] == 2
    for name in ("agent_name", "conversation_id", "status", "pattern", "created_at", "paused"):
        assert edited[name] == task[name], name
    # The new schedule fires from the edit on: the first ten-minute mark after it.
    next_run = datetime.fromisoformat(edited["next_run_at"])
    assert before < next_run <= before + timedelta(minutes=10, seconds=5), next_run
    assert next_run.minute % 10 == 0 and next_run.second == 0, next_run
    again = await client.get(f"/api/v1/tasks/{task['task_id']}")
    assert again.json()["data"] == edited and again.headers["etag"] == '"2"'
    # Only the title: nothing else moves, the version grows.
    response = await patch(client, task["task_id"], {"title": "third"})
    third = response.json()["data"]
    assert third["version"] == 3 and third["next_run_at"] == edited["next_run_at"]
    assert {k: v for k, v in third.items() if k not in ("title", "version", "updated_at")} == {
        k: v for k, v in edited.items() if k not in ("title", "version", "updated_at")
    }


async def test_a_wall_clock_schedule_without_a_zone_takes_the_servers(
    client: httpx.AsyncClient,
) -> None:
    task = await create(client)
    response = await patch(client, task["task_id"], {"schedule_config": {"daily_time": "09:30"}})
    assert response.status_code == 200, response.json()
    schedule = response.json()["data"]["schedule_config"]
    assert schedule["daily_time"] == "09:30" and schedule["timezone"], schedule


@pytest.mark.parametrize("header", ["1", '"1"', "*"])
async def test_if_match_takes_the_version_bare_or_quoted(
    client: httpx.AsyncClient, header: str
) -> None:
    task = await create(client)
    response = await patch(client, task["task_id"], {"title": "mine"}, **{"If-Match": header})
    assert response.status_code == 200, response.json()
    assert response.json()["data"]["version"] == 2


async def test_if_match_with_an_old_version_is_a_conflict(client: httpx.AsyncClient) -> None:
    task = await create(client)
    first = await patch(client, task["task_id"], {"title": "first"}, **{"If-Match": '"1"'})
    assert first.status_code == 200
    late = await patch(client, task["task_id"], {"title": "late"}, **{"If-Match": '"1"'})
    assert late.status_code == 409, late.json()
    assert late.json()["code"] == 409 and "version 2, not 1" in late.json()["msg"]
    stored = (await client.get(f"/api/v1/tasks/{task['task_id']}")).json()["data"]
    assert (stored["title"], stored["version"]) == ("first", 2)


@pytest.mark.parametrize("header", ["abc", '"x"', "0", "-1", "W/", '"1', "1.0"])
async def test_a_bad_if_match_is_400_naming_it(client: httpx.AsyncClient, header: str) -> None:
    task = await create(client)
    response = await patch(client, task["task_id"], {"title": "x"}, **{"If-Match": header})
    assert response.status_code == 400, response.json()
    assert response.json()["data"][0]["field"] == "If-Match"
    stored = (await client.get(f"/api/v1/tasks/{task['task_id']}")).json()["data"]
    assert stored["version"] == 1 and stored["title"] == ""


HUGE_METADATA = {"blob": "x" * 70_000}
BAD: list[tuple[str, Any, int, str, str]] = [
    ("empty patch", {}, 400, "body", "at least one field"),
    ("unknown field", {"colour": "red"}, 422, "colour", "Extra inputs"),
    ("read-only status", {"status": "completed"}, 422, "status", "Extra inputs"),
    ("read-only version", {"version": 7}, 422, "version", "Extra inputs"),
    ("read-only next_run_at", {"next_run_at": "2030-01-01T00:00:00Z"}, 422, "next_run_at", ""),
    ("not an object", ["title"], 422, "body", ""),
    ("title not text", {"title": 5}, 422, "title", "string"),
    ("title too long", {"title": "t" * 501}, 400, "title", "500"),
    ("title null", {"title": None}, 400, "title", "string"),
    ("query empty", {"query": ""}, 400, "query", "must not be empty"),
    ("query blank", {"query": "   "}, 400, "query", "must not be empty"),
    ("query too long", {"query": "q" * 40_000}, 400, "query", "limit is 32000"),
    ("query null", {"query": None}, 400, "query", "string"),
    ("query NUL", {"query": "a\x00b"}, 400, "query", ""),
    ("schedule two kinds", {"schedule_config": {"interval_minutes": 5, "cron": "@daily"}}, 400,
     "schedule_config", "exactly one"),
    ("schedule none", {"schedule_config": {}}, 400, "schedule_config", "exactly one"),
    ("schedule null", {"schedule_config": None}, 400, "schedule_config", "needs a schedule"),
    ("interval zero", {"schedule_config": {"interval_minutes": 0}}, 400,
     "schedule_config.interval_minutes", "from 1 to 525600"),
    ("interval text", {"schedule_config": {"interval_minutes": "5"}}, 422,
     "schedule_config.interval_minutes", "integer"),
    ("daily 24:00", {"schedule_config": {"daily_time": "24:00"}}, 400,
     "schedule_config.daily_time", "HH:MM"),
    ("bad cron", {"schedule_config": {"cron": "0 25 * * *"}}, 400, "schedule_config.cron",
     "hour"),
    ("bad zone", {"schedule_config": {"daily_time": "09:00", "timezone": "Mars/Base"}}, 400,
     "schedule_config.timezone", "unknown time zone"),
    ("schedule extra", {"schedule_config": {"every": 5}}, 422, "schedule_config.every", ""),
    ("max_attempts 0", {"max_attempts": 0}, 400, "max_attempts", "greater than or equal to 1"),
    ("max_attempts 21", {"max_attempts": 21}, 400, "max_attempts", "less than or equal to 20"),
    ("max_attempts text", {"max_attempts": "5"}, 422, "max_attempts", "integer"),
    ("max_attempts bool", {"max_attempts": True}, 422, "max_attempts", "integer"),
    ("max_attempts null", {"max_attempts": None}, 400, "max_attempts", "integer"),
    ("metadata list", {"metadata": [1]}, 422, "metadata", "dictionary"),
    ("metadata null", {"metadata": None}, 400, "metadata", "dictionary"),
    ("metadata huge", {"metadata": HUGE_METADATA}, 400, "metadata", "64000"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body", "status", "field", "words"), BAD, ids=[c[0] for c in BAD])
async def test_bad_input_names_the_field_and_stores_nothing(
    client: httpx.AsyncClient, case: str, body: Any, status: int, field: str, words: str
) -> None:
    task = await create(client, title="kept", metadata={"kept": True})
    response = await patch(client, task["task_id"], body)
    assert response.status_code == status, (case, response.json())
    answer = response.json()
    assert answer["code"] == status
    fields = {f["field"]: f["message"] for f in answer["data"]}
    assert field in fields, (case, answer)
    assert words in fields[field], (case, fields)
    stored = (await client.get(f"/api/v1/tasks/{task['task_id']}")).json()["data"]
    assert stored == task, (case, stored)


async def test_a_once_task_edits_only_its_title_and_metadata(client: httpx.AsyncClient) -> None:
    body = {"query": "hello", "agent_name": "asker"}  # waits for an answer: not finished
    task = (await client.post("/api/v1/tasks", json=body)).json()["data"]
    response = await patch(client, task["task_id"], {"title": "renamed", "metadata": {"a": 1}})
    assert response.status_code == 200, response.json()
    assert response.json()["data"]["version"] == 2
    for body, field, words in [
        ({"query": "other"}, "query", "a once task's query cannot be edited"),
        ({"max_attempts": 2}, "max_attempts", "may change title, metadata"),
        ({"schedule_config": {"interval_minutes": 5}}, "schedule_config", "has no schedule"),
    ]:
        refused = await patch(client, task["task_id"], body)
        assert refused.status_code == 400, refused.json()
        [named] = refused.json()["data"]
        assert named["field"] == field and words in named["message"], named
    stored = (await client.get(f"/api/v1/tasks/{task['task_id']}")).json()["data"]
    assert stored["version"] == 2 and stored["query"] == "hello"


async def test_a_finished_task_is_not_edited(client: httpx.AsyncClient) -> None:
    task = await create(client)
    assert (await client.post(f"/api/v1/tasks/{task['task_id']}/cancel")).status_code == 200
    response = await patch(client, task["task_id"], {"title": "late"})
    assert response.status_code == 409, response.json()
    assert "cancelled; a finished task cannot be edited" in response.json()["msg"]
    missing = await patch(client, "no-such-task", {"title": "x"})
    assert missing.status_code == 404, missing.json()


async def test_watchers_see_the_edit_in_the_controller(client: httpx.AsyncClient) -> None:
    task = await create(client)
    path = f"/api/v1/tasks/{task['task_id']}/events"
    opening = await read_until(client, path, lambda e: e["event"] == "done")
    [first] = [c for c in map(controller_of, opening) if c is not None]
    assert first["version"] == 1 and first["schedule"] == "every hour"
    last_seq = opening[-1]["seq"]
    response = await patch(client, task["task_id"], {"schedule_config": {"interval_minutes": 5}})
    edited = response.json()["data"]
    later = await read_until(
        client, f"{path}?after={last_seq}", lambda e: controller_of(e) is not None
    )
    content = controller_of(later[-1])
    assert content is not None
    assert content["version"] == 2 and content["schedule"] == "every 5 minutes", content
    assert datetime.fromisoformat(content["next_run_at"]) == datetime.fromisoformat(
        edited["next_run_at"]
    )
    # In place: the same item as the controller made at creation.
    assert later[-1]["data"]["item_id"] == f"{task['task_id']}:controller"


async def test_runs_record_the_version_they_ran(client: httpx.AsyncClient) -> None:
    task = await create(client)
    base = f"/api/v1/tasks/{task['task_id']}"
    first = (await client.post(f"{base}/run")).json()["data"]
    assert first["version"] == 1
    path = f"{base}/events"
    await read_until(client, path, lambda e: (controller_of(e) or {}).get("last_run_at"))
    await patch(client, task["task_id"], {"query": "second question"})
    # The first run has ended: the next one runs version 2.
    for _ in range(200):
        second = await client.post(f"{base}/run")
        if second.status_code == 200:
            break
        assert second.status_code == 409, second.json()
        await read_until(client, path, lambda e: e["event"] == "component_generator")
    assert second.json()["data"]["version"] == 2
    runs = (await client.get(f"{base}/runs")).json()["data"]["items"]
    assert sorted(r["version"] for r in runs) == [1, 2], runs


async def test_a_merge_patch_body_is_taken(client: httpx.AsyncClient) -> None:
    task = await create(client)
    response = await client.patch(
        f"/api/v1/tasks/{task['task_id']}",
        content=b'{"title": "merge-patch"}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.json()
    assert response.json()["data"]["title"] == "merge-patch"
