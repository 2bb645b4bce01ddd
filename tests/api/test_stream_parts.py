"""A long log read in parts: ``?from=latest_run`` / ``?from=run:<id>`` and ``?before=N``."""

from __future__ import annotations

import json
from typing import Any

import httpx

from .conftest import read_sse

CLOCK = {
    "query": "what time is it",
    "agent_name": "clock",
    "pattern": "recurring",
    "schedule_config": {"interval_minutes": 600, "timezone": "UTC"},
    "run_immediately": True,
}


async def results_until(client: httpx.AsyncClient, path: str, count: int) -> int:
    """Reads the live stream until ``count`` run results were sent; answers the last seq."""
    results, last = 0, 0
    async with client.stream("GET", path) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            event: dict[str, Any] = json.loads(line[5:])
            last = event["seq"]
            payload = event["data"]["payload"] or {}
            if payload.get("component_type") == "scheduled_task_result":
                results += 1
                if results == count:
                    return last
    raise AssertionError(f"the stream ended after {results} results (seq {last})")


async def test_a_recurring_stream_starts_at_its_latest_run_and_ends_before_a_seq(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/api/v1/tasks", json=CLOCK)
    assert created.status_code == 201, created.text
    task_id = created.json()["data"]["task_id"]
    path = f"/api/v1/tasks/{task_id}/events"
    await results_until(client, path, 1)
    ran = await client.post(f"/api/v1/tasks/{task_id}/run", json={})
    assert ran.status_code in (200, 201, 202), ran.text
    last = await results_until(client, path, 2)

    everything = await read_sse(client, f"{path}?before={last + 1}")
    assert [e["seq"] for e in everything] == list(range(1, last + 1))
    runs = (await client.get(f"/api/v1/tasks/{task_id}/runs")).json()["data"]["items"]
    newest, older = runs[0]["run_id"], runs[1]["run_id"]

    latest = await read_sse(client, f"{path}?from=latest_run&before={last + 1}")
    assert latest, "from=latest_run sent nothing"
    assert latest[0]["data"]["run_id"] == newest, f"it starts with {latest[0]}"
    start = latest[0]["seq"]
    assert latest == everything[start - 1 :]
    assert all(e["data"]["run_id"] != newest for e in everything[: start - 1])

    # The run before it, alone: from its first event to the latest run's first.
    previous = await read_sse(client, f"{path}?from=run:{older}&before={start}")
    assert previous and previous[0]["data"]["run_id"] == older, f"it starts with {previous[:1]}"
    assert previous == everything[previous[0]["seq"] - 1 : start - 1]
    assert {e["data"]["run_id"] for e in previous} <= {older, None}
    # The task's opening events, before its first run.
    opening = await read_sse(client, f"{path}?before={previous[0]['seq']}")
    assert opening == everything[: previous[0]["seq"] - 1]
    assert opening[0]["event"] in ("conversation_started", "thread_started")

    # A resume point wins over `from`: a reconnecting reader gets what follows what it saw.
    resumed = await read_sse(
        client, f"{path}?from=latest_run&before={last + 1}", headers={"Last-Event-ID": "3"}
    )
    assert resumed == everything[3:]


async def test_a_bad_from_is_refused_with_its_field(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/v1/tasks", json=CLOCK)
    task_id = created.json()["data"]["task_id"]
    path = f"/api/v1/tasks/{task_id}/events"
    for value, status in (("yesterday", 400), ("run:nope", 404), ("run:", 400)):
        answer = await client.get(path, params={"from": value})
        assert answer.status_code == status, f"from={value!r}: {answer.status_code} {answer.text}"
        fields = [e["field"] for e in answer.json()["data"]]
        assert fields == ["query.from"], f"from={value!r}: {answer.text}"
    answer = await client.get(path, params={"before": 0})
    assert answer.status_code == 422, answer.text
