"""Every bad input of the create body: the documented status, the field named, nothing made."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

GOOD: dict[str, Any] = {"query": "hello", "agent_name": "echo"}
RECURRING: dict[str, Any] = {**GOOD, "pattern": "recurring"}

CASES: list[tuple[str, dict[str, Any], int | None, str, str]] = [
    ("missing query", {"agent_name": "echo"}, 422, "query", "Field required"),
    ("missing agent", {"query": "hi"}, 422, "agent_name", "Field required"),
    ("query not text", {**GOOD, "query": 5}, 422, "query", "string"),
    ("empty query", {**GOOD, "query": ""}, 400, "query", "query must not be empty"),
    ("blank query", {**GOOD, "query": "   "}, 400, "query", "query must not be empty"),
    ("huge query", {**GOOD, "query": "x" * 40_000}, 400, "query", "limit is 32000"),
    (
        "unknown agent",
        {**GOOD, "agent_name": "nobody"},
        400,
        "agent_name",
        "registered agents: asker, clock, echo, flaky, slow",
    ),
    ("bad pattern", {**GOOD, "pattern": "sometimes"}, 422, "pattern", "'once' or 'recurring'"),
    (
        "24:00",
        {**RECURRING, "schedule_config": {"daily_time": "24:00"}},
        400,
        "schedule_config.daily_time",
        "HH:MM",
    ),
    (
        "9:5",
        {**RECURRING, "schedule_config": {"daily_time": "9:5"}},
        400,
        "schedule_config.daily_time",
        "HH:MM",
    ),
    (
        "zero interval",
        {**RECURRING, "schedule_config": {"interval_minutes": 0}},
        400,
        "schedule_config.interval_minutes",
        "from 1 to 525600",
    ),
    (
        "negative interval",
        {**RECURRING, "schedule_config": {"interval_minutes": -5}},
        400,
        "schedule_config.interval_minutes",
        "from 1 to 525600",
    ),
    (
        "both fields",
        {**RECURRING, "schedule_config": {"interval_minutes": 5, "daily_time": "09:00"}},
        400,
        "schedule_config",
        "exactly one of",
    ),
    (
        "neither field",
        {**RECURRING, "schedule_config": {"timezone": "UTC"}},
        400,
        "schedule_config",
        "exactly one of",
    ),
    (
        "cron and interval",
        {**RECURRING, "schedule_config": {"interval_minutes": 5, "cron": "0 9 * * *"}},
        400,
        "schedule_config",
        "exactly one of interval_minutes, daily_time and cron",
    ),
    (
        "bad cron field",
        {**RECURRING, "schedule_config": {"cron": "0 9 * * MON-FRX"}},
        400,
        "schedule_config.cron",
        "cron field 5 (day-of-week) 'MON-FRX' is not valid",
    ),
    (
        "cron of 6 fields",
        {**RECURRING, "schedule_config": {"cron": "0 0 9 * * *"}},
        400,
        "schedule_config.cron",
        "cron needs 5 fields",
    ),
    (
        "cron that never fires",
        {**RECURRING, "schedule_config": {"cron": "0 0 30 2 *"}},
        400,
        "schedule_config.cron",
        "cron field 3 (day-of-month) '30' falls in none of the months",
    ),
    (
        "unknown cron alias",
        {**RECURRING, "schedule_config": {"cron": "@often"}},
        400,
        "schedule_config.cron",
        "unknown cron alias",
    ),
    (
        "cron not text",
        {**RECURRING, "schedule_config": {"cron": 5}},
        422,
        "schedule_config.cron",
        "string",
    ),
    ("no schedule", RECURRING, 400, "schedule_config", "needs a schedule_config"),
    (
        "unknown zone",
        {**RECURRING, "schedule_config": {"daily_time": "09:00", "timezone": "Mars/Base"}},
        400,
        "schedule_config.timezone",
        "unknown time zone 'Mars/Base'",
    ),
    ("attempts 0", {**GOOD, "max_attempts": 0}, 400, "max_attempts", "greater than or equal to 1"),
    ("attempts 21", {**GOOD, "max_attempts": 21}, 400, "max_attempts", "less than or equal to 20"),
    ("metadata NaN", {**GOOD, "metadata": {"x": "NaN"}}, None, "", ""),  # a string: fine
    ("unknown field", {**GOOD, "colour": "red"}, 422, "colour", "Extra inputs"),
]


@pytest.mark.parametrize(
    ("name", "body", "status", "field", "words"), CASES, ids=[c[0] for c in CASES]
)
async def test_bad_create_bodies(
    client: httpx.AsyncClient,
    name: str,
    body: dict[str, Any],
    status: int | None,
    field: str,
    words: str,
) -> None:
    response = await client.post("/api/v1/tasks", json=body)
    if status is None:
        assert response.status_code == 201
        return
    answer = response.json()
    assert response.status_code == status, answer
    assert answer["code"] == status
    fields = {f["field"]: f["message"] for f in answer["data"]}
    assert field in fields, answer
    assert words in fields[field], answer
    assert field in answer["msg"] or words in answer["msg"]
    listed = (await client.get("/api/v1/tasks")).json()["data"]["items"]
    assert listed == []


async def test_a_body_that_is_not_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/tasks", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and response.json()["code"] == 422


async def test_other_bad_requests(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/tasks", params={"limit": 0})).status_code == 422
    assert (await client.get("/api/v1/tasks", params={"status": "sleeping"})).status_code == 422
    bad_cursor = await client.get("/api/v1/tasks", params={"cursor": "garbage"})
    assert bad_cursor.status_code == 400 and bad_cursor.json()["data"][0]["field"] == "cursor"
    assert (await client.get("/api/v1/tasks/nope")).status_code == 404
    made = await client.post("/api/v1/tasks", json=GOOD)
    task_id = made.json()["data"]["task_id"]
    empty = await client.post(f"/api/v1/tasks/{task_id}/input", json={"text": ""})
    assert empty.status_code == 400
    not_waiting = await client.post(f"/api/v1/tasks/{task_id}/input", json={"text": "hi"})
    assert not_waiting.status_code == 409
    bad_resume = await client.get(
        f"/api/v1/tasks/{task_id}/events", headers={"Last-Event-ID": "abc"}
    )
    assert bad_resume.status_code == 400
    once_pause = await client.post(f"/api/v1/tasks/{task_id}/pause")
    assert once_pause.status_code == 409
