"""Webhooks end to end: a real server sends signed deliveries to a real receiver."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
import time_machine

from taskcell.domain.clock import utcnow
from taskcell.domain.webhooks import JITTER, RETRY_DELAYS
from webhooks.receiver import Receiver, kinds

EVERY = {"event_types": ["*"]}


async def subscribe(client: httpx.AsyncClient, receiver: Receiver, **fields: Any) -> dict[str, Any]:
    answer = await client.post("/api/v1/webhooks", json={"url": receiver.url, **fields})
    assert answer.status_code == 201, answer.text
    data: dict[str, Any] = answer.json()["data"]
    assert data["secret"].startswith("whsec_")
    receiver.secrets.append(data["secret"])
    return data


async def create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    answer = await client.post("/api/v1/tasks", json=fields)
    assert answer.status_code == 201, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


async def wait_status(client: httpx.AsyncClient, task_id: str, *statuses: str) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            task: dict[str, Any] = (await client.get(f"/api/v1/tasks/{task_id}")).json()["data"]
            if task["status"] in statuses:
                return task
            await asyncio.sleep(0.05)


async def deliveries(client: httpx.AsyncClient, webhook_id: str) -> list[dict[str, Any]]:
    answer = await client.get(f"/api/v1/webhooks/{webhook_id}/deliveries")
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["data"]["items"]
    return items


async def wait_delivery(
    client: httpx.AsyncClient, webhook_id: str, **expected: Any
) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            for item in await deliveries(client, webhook_id):
                if all(item[k] == v for k, v in expected.items()):
                    return item
            await asyncio.sleep(0.05)


async def test_completed_failed_input_and_recurring_results_arrive_once_in_order(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(client, receiver, **EVERY)
    done = await create(client, query="hello there", agent_name="echo")
    failed = await create(client, query="fail 5 times", agent_name="flaky", max_attempts=1)
    asked = await create(client, query="what colour?", agent_name="asker")
    await wait_status(client, asked["task_id"], "waiting_input")
    answer = await client.post(f"/api/v1/tasks/{asked['task_id']}/input", json={"text": "blue"})
    assert answer.status_code == 200, answer.text
    recurring = await create(
        client,
        query="time please",
        agent_name="clock",
        pattern="recurring",
        schedule_config={"interval_minutes": 60},
    )
    await receiver.wait_for(4)
    async with asyncio.timeout(30):
        while not kinds(receiver.bodies(), recurring["task_id"]):
            await receiver.wait_for(len(receiver.received) + 1)
    cancel = await client.post(f"/api/v1/tasks/{recurring['task_id']}/cancel")
    assert cancel.status_code == 200
    await wait_status(client, asked["task_id"], "completed")
    async with asyncio.timeout(30):
        while len(kinds(receiver.bodies(), recurring["task_id"])) < 2:
            await receiver.wait_for(len(receiver.received) + 1)
    bodies = receiver.bodies()
    assert receiver.forged == []
    assert kinds(bodies, done["task_id"]) == ["task_completed"]
    assert kinds(bodies, failed["task_id"]) == ["task_failed"]
    assert kinds(bodies, asked["task_id"]) == ["plan_require_user_input", "task_completed"]
    assert kinds(bodies, recurring["task_id"]) == ["scheduled_task_result", "task_cancelled"]
    ids = [r.webhook_id for r in receiver.received]
    assert len(ids) == len(set(ids)) == 6  # each once
    for body in bodies:
        assert set(body) == {"type", "timestamp", "data"}
        assert body["data"]["event"]["event"] in {
            "task_completed",
            "task_failed",
            "task_cancelled",
            "plan_require_user_input",
            "component_generator",
        }
    question = next(b for b in bodies if b["type"] == "plan_require_user_input")
    assert question["data"]["event"]["data"]["payload"]["content"]  # what the agent asked
    completed = next(b for b in bodies if b["data"]["task"]["task_id"] == done["task_id"])
    assert completed["data"]["task"]["status"] == "completed"


async def test_a_task_carries_its_own_webhook_url(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    task = await create(client, query="hi", agent_name="echo", webhook_url=receiver.url)
    assert task["webhook_url"] == receiver.url
    receiver.secrets.append(task["webhook_secret"])
    [got] = await receiver.wait_for(1)
    assert got.body["type"] == "task_completed"
    assert got.body["data"]["task"]["task_id"] == task["task_id"]
    listed = (await client.get(f"/api/v1/tasks/{task['task_id']}")).json()["data"]
    assert "webhook_secret" not in listed
    hooks = (await client.get("/api/v1/webhooks")).json()["data"]["items"]
    assert [h["task_id"] for h in hooks] == [task["task_id"]]
    assert all("secret" not in h for h in hooks)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def scheduled(wait: timedelta, *, attempt: int) -> bool:
    """Whether a stored retry time is the schedule's (``RETRY_DELAYS`` plus its jitter): the
    rule's data, read under time-machine, not a measured latency."""
    base = RETRY_DELAYS[attempt - 1]
    return base <= wait <= base * (1 + JITTER)


async def test_500_500_200_three_attempts_with_the_back_off(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.script = [(500, {}), (500, {})]
    hook = await subscribe(client, receiver, **EVERY)
    with time_machine.travel(datetime.now().astimezone(), tick=True) as clock:
        await create(client, query="hello", agent_name="echo")
        await receiver.wait_for(1)
        first = await wait_delivery(client, hook["webhook_id"], attempts=1, status="pending")
        wait = _at(first["next_attempt_at"]) - _at(first["last_attempt_at"])
        assert scheduled(wait, attempt=1)  # the stored retry time follows the schedule
        assert first["last_status_code"] == 500 and first["last_response"].startswith("noted")
        assert len(first["last_response"]) <= 1024  # the answer read up to a cap
        clock.shift(timedelta(seconds=6))
        await receiver.wait_for(2)
        second = await wait_delivery(client, hook["webhook_id"], attempts=2, status="pending")
        wait = _at(second["next_attempt_at"]) - _at(second["last_attempt_at"])
        assert scheduled(wait, attempt=2)
        clock.shift(timedelta(minutes=6))
        got = await receiver.wait_for(3)
        last = await wait_delivery(client, hook["webhook_id"], status="delivered")
    assert last["attempts"] == 3 and last["last_status_code"] == 200
    assert [r.status for r in got] == [500, 500, 200]
    assert len({r.webhook_id for r in got}) == 1  # the same message each time
    assert got[1].at - got[0].at >= timedelta(seconds=5)
    assert got[2].at - got[1].at >= timedelta(minutes=5)


async def test_429_honours_retry_after(client: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.script = [(429, {"Retry-After": "120"})]
    hook = await subscribe(client, receiver, **EVERY)
    with time_machine.travel(datetime.now().astimezone(), tick=True) as clock:
        await create(client, query="hello", agent_name="echo")
        first = await wait_delivery(client, hook["webhook_id"], attempts=1, status="pending")
        read_at = utcnow()
        answered_at = receiver.received[0].at
        # The answer's Retry-After, counted from the answer: due 120 s after it came (not the
        # schedule's first wait, which is shorter).
        retry_after = timedelta(seconds=120)
        assert RETRY_DELAYS[0] * (1 + JITTER) < retry_after < RETRY_DELAYS[1]  # the constants
        due = _at(first["next_attempt_at"])
        assert answered_at + retry_after <= due <= read_at + retry_after, (answered_at, due)
        assert first["last_status_code"] == 429
        clock.shift(timedelta(seconds=125))
        await wait_delivery(client, hook["webhook_id"], status="delivered", attempts=2)


async def test_a_4xx_ends_the_delivery_failed(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.script = [(410, {})]
    hook = await subscribe(client, receiver, **EVERY)
    await create(client, query="hello", agent_name="echo")
    failed = await wait_delivery(client, hook["webhook_id"], status="failed")
    assert failed["attempts"] == 1 and failed["last_status_code"] == 410
    redone = await client.post(
        f"/api/v1/webhooks/{hook['webhook_id']}/deliveries/{failed['delivery_id']}/redeliver"
    )
    assert redone.status_code == 200, redone.text
    await wait_delivery(client, hook["webhook_id"], status="delivered", attempts=1)
    assert [r.status for r in receiver.received] == [410, 200]
    assert receiver.received[0].webhook_id == receiver.received[1].webhook_id


async def test_a_hanging_receiver_slows_no_task_and_times_out(
    server_factory: Any, receiver: Receiver
) -> None:
    receiver.script = [(0, {})]  # hangs until released
    async with (
        server_factory(webhook_timeout_seconds=1.0) as url,
        httpx.AsyncClient(base_url=url, timeout=20) as client,
    ):
        hook = await subscribe(client, receiver, **EVERY)
        first = await create(client, query="one", agent_name="echo")
        await receiver.wait_for(1)  # the first delivery hangs at the receiver
        # Tasks go on meanwhile: another completes while that request still hangs.
        second = await create(client, query="two", agent_name="echo")
        await wait_status(client, second["task_id"], "completed")
        assert not receiver.release.is_set()
        timed_out = await wait_delivery(
            client, hook["webhook_id"], task_id=first["task_id"], status="pending", attempts=1
        )
        assert "no answer within 1 s" in timed_out["last_error"]
        receiver.release.set()
        with time_machine.travel(datetime.now().astimezone(), tick=True) as clock:
            clock.shift(timedelta(seconds=7))
            await wait_delivery(
                client, hook["webhook_id"], task_id=first["task_id"], status="delivered"
            )


async def test_metrics_count_deliveries(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(client, receiver, **EVERY)
    await create(client, query="hello", agent_name="echo")
    await receiver.wait_for(1)
    async with asyncio.timeout(30):
        while True:
            text = (await client.get("/metrics")).text
            if 'taskcell_webhook_deliveries_total{outcome="sent"}' in text:
                break
            await asyncio.sleep(0.05)
    assert 'taskcell_webhook_backlog{status="pending"}' in text
    assert "taskcell_webhook_delivery_lag_seconds" in text
