"""The webhook store contract (taskcell.abc.WebhookStore) and the outbox that
``append_events`` writes, on every store (the ``store`` fixture of tests/conftest.py)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import time_machine

from taskcell.abc import LogClosed, Store, TaskStore
from taskcell.domain.events import Event, EventType, Role
from taskcell.domain.models import Task
from taskcell.domain.state_machine import TaskStatus
from taskcell.domain.webhooks import Delivery, DeliveryStatus, Webhook
from taskcell.engine.pruner import RetentionPolicy, prune

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CLAIM = timedelta(minutes=1)
NEVER = timedelta(days=3)


def as_store(store: TaskStore) -> Store:
    return cast(Store, store)


def hook(user: str = "alice", **fields: Any) -> Webhook:
    values: dict[str, Any] = {
        "url": "https://example.com/hook",
        "user_id": user,
        "secret": "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
        "created_at": T0,
    }
    values.update(fields)
    return Webhook(**values)


def event(task: Task, seq: int, kind: EventType, **fields: Any) -> Event:
    values: dict[str, Any] = {
        "event": kind,
        "task_id": task.task_id,
        "conversation_id": task.conversation_id,
        "thread_id": task.thread_id,
        "item_id": f"item-{task.task_id}-{seq}",
        "role": Role.SYSTEM,
        "payload": None,
        "created_at": T0 + timedelta(seconds=seq),
        "agent_name": task.agent_name,
        "seq": seq,
    }
    values.update(fields)
    return Event(**values)


def component(task: Task, seq: int, kind: str, content: dict[str, Any], item: str) -> Event:
    payload = {"component_type": kind, "content": json.dumps(content)}
    return event(task, seq, EventType.COMPONENT_GENERATOR, payload=payload, item_id=item)


async def new_task(store: Store, user: str = "alice", **fields: Any) -> Task:
    task = Task(query="q", agent_name=fields.pop("agent_name", "echo"), user_id=user, **fields)
    await store.create(task, conversation_title="t")
    return task


async def test_subscriptions_round_trip(store: TaskStore) -> None:
    s = as_store(store)
    first = hook(event_types=["task_completed", "run_failed"], task_id="t1", agent_name="echo")
    second = hook("bob", created_at=T0 + timedelta(seconds=1))
    await s.add_webhook(first)
    await s.add_webhook(second)
    loaded = await s.load_webhook(first.webhook_id)
    assert loaded is not None
    assert loaded.to_public() == first.to_public()
    assert loaded.secret == first.secret
    assert [w.webhook_id for w in await s.list_webhooks()] == [
        first.webhook_id,
        second.webhook_id,
    ]
    assert [w.webhook_id for w in await s.list_webhooks(user_id="bob")] == [second.webhook_id]
    assert await s.rotate_webhook_secret(first.webhook_id, "whsec_bmV3")
    assert (await s.load_webhook(first.webhook_id)).secret == "whsec_bmV3"  # type: ignore[union-attr]
    assert not await s.rotate_webhook_secret("wh_none", "whsec_bmV3")
    assert await s.delete_webhook(first.webhook_id)
    assert not await s.delete_webhook(first.webhook_id)
    assert await s.load_webhook(first.webhook_id) is None


async def test_a_task_keeps_its_webhook_url(store: TaskStore) -> None:
    s = as_store(store)
    task = await new_task(s, webhook_url="https://example.com/mine")
    loaded = await s.load(task.task_id)
    assert loaded is not None and loaded.webhook_url == "https://example.com/mine"


async def test_a_final_event_makes_one_delivery_per_matching_subscription(
    store: TaskStore,
) -> None:
    s = as_store(store)
    task = await new_task(s)
    other = await new_task(s, "bob")
    everything = hook()
    only_failures = hook(event_types=["task_failed"])
    of_task = hook(task_id=task.task_id)
    of_other_task = hook(task_id="not-this-one")
    of_agent = hook(agent_name="echo")
    of_other_agent = hook(agent_name="clock")
    bobs = hook("bob")
    disabled = hook(disabled_at=T0, disabled_reason="gone")
    for w in (
        everything,
        only_failures,
        of_task,
        of_other_task,
        of_agent,
        of_other_agent,
        bobs,
        disabled,
    ):
        await s.add_webhook(w)
    chunks = [event(task, 1, EventType.MESSAGE_CHUNK, payload={"content": "hi"})]
    await s.append_events(chunks, [])
    assert not await s.delivery_counts()
    await s.transition(task.task_id, TaskStatus.RUNNING)
    await s.transition(task.task_id, TaskStatus.COMPLETED)
    await s.append_events([event(task, 2, EventType.TASK_COMPLETED)], [])
    made = {
        w.webhook_id: await s.list_deliveries(w.webhook_id) for w in (everything, of_task, of_agent)
    }
    for found in made.values():
        assert [(d.task_id, d.seq, d.event_type, d.status) for d in found] == [
            (task.task_id, 2, "task_completed", DeliveryStatus.PENDING)
        ]
        body = json.loads(found[0].body)
        assert body["type"] == "task_completed"
        assert body["data"]["task"]["task_id"] == task.task_id
        assert body["data"]["task"]["status"] == "completed"
        assert body["data"]["event"]["seq"] == 2
        assert body["data"]["event"]["event"] == "task_completed"
    for w in (only_failures, of_other_task, of_other_agent, bobs, disabled):
        assert await s.list_deliveries(w.webhook_id) == []
    await s.append_events([event(other, 1, EventType.TASK_FAILED)], [])
    assert [d.event_type for d in await s.list_deliveries(bobs.webhook_id)] == ["task_failed"]
    assert sum((await s.delivery_counts()).values()) == 4


async def test_a_refused_batch_makes_no_delivery(store: TaskStore) -> None:
    s = as_store(store)
    task = await new_task(s)
    await s.add_webhook(hook())
    await s.transition(task.task_id, TaskStatus.CANCELLED)
    await s.append_events([event(task, 1, EventType.DONE)], [])
    with pytest.raises(LogClosed):
        await s.append_events([event(task, 2, EventType.TASK_CANCELLED)], [])
    assert not await s.delivery_counts()


async def test_recurring_results_failures_and_pauses(store: TaskStore) -> None:
    s = as_store(store)
    task = await new_task(s)
    results = hook(event_types=["scheduled_task_result"])
    failures = hook(event_types=["run_failed"])
    pauses = hook(event_types=["task_paused"])
    for w in (results, failures, pauses):
        await s.add_webhook(w)
    controller = f"{task.task_id}:controller"
    batch = [
        component(task, 1, "scheduled_task_controller", {"paused": False}, controller),
        component(task, 2, "scheduled_task_result", {"result": "ok"}, "r1"),
        component(task, 3, "scheduled_task_result", {"status": "failed"}, "r2"),
    ]
    await s.append_events(batch, [])
    await s.append_events(
        [component(task, 4, "scheduled_task_controller", {"paused": True}, controller)], []
    )
    # Stored state: paused. A later controller that still says paused is no new pause.
    from taskcell.domain.events import ConversationItem

    item = ConversationItem(
        item_id=controller,
        conversation_id=task.conversation_id,
        thread_id=task.thread_id,
        task_id=task.task_id,
        run_id=None,
        role=Role.AGENT,
        event=EventType.COMPONENT_GENERATOR,
        payload=batch[0].payload | {"content": json.dumps({"paused": True})},
        created_at=T0,
        updated_at=T0,
        component_type="scheduled_task_controller",
    )
    await s.append_events([], [item])
    await s.append_events(
        [component(task, 5, "scheduled_task_controller", {"paused": True}, controller)], []
    )

    def kinds(found: list[Delivery]) -> list[tuple[int, str]]:
        return sorted((d.seq, d.event_type) for d in found)

    assert kinds(await s.list_deliveries(results.webhook_id)) == [
        (2, "scheduled_task_result"),
        (3, "scheduled_task_result"),
    ]
    assert kinds(await s.list_deliveries(failures.webhook_id)) == [(3, "run_failed")]
    assert kinds(await s.list_deliveries(pauses.webhook_id)) == [(4, "task_paused")]


async def _deliveries(s: Store, count: int) -> tuple[Webhook, list[Task]]:
    w = hook()
    await s.add_webhook(w)
    tasks = []
    for _ in range(count):
        task = await new_task(s)
        await s.append_events([event(task, 1, EventType.TASK_FAILED)], [])
        tasks.append(task)
    return w, tasks


async def test_claims_retries_and_a_stale_claim(store: TaskStore) -> None:
    s = as_store(store)
    w, _ = await _deliveries(s, 1)
    [(delivery, webhook)] = await s.claim_deliveries(CLAIM)
    assert webhook.webhook_id == w.webhook_id and webhook.secret == w.secret
    assert delivery.status is DeliveryStatus.SENDING and delivery.attempts == 1
    assert await s.claim_deliveries(CLAIM) == []  # claimed: not due again for a minute
    assert await s.finish_delivery(
        delivery.delivery_id,
        attempt=1,
        status=DeliveryStatus.PENDING,
        retry_in=timedelta(0),
        status_code=500,
        response="oops",
        disable_after=NEVER,
    )
    failing = await s.load_webhook(w.webhook_id)
    assert failing is not None and failing.failing_since is not None
    [(again, _)] = await s.claim_deliveries(CLAIM)
    assert again.attempts == 2 and again.last_status_code == 500 and again.last_response == "oops"
    assert not await s.finish_delivery(  # a stale claim's answer
        again.delivery_id, attempt=1, status=DeliveryStatus.DELIVERED, disable_after=NEVER
    )
    assert await s.finish_delivery(
        again.delivery_id, attempt=2, status=DeliveryStatus.DELIVERED, status_code=204,
        disable_after=NEVER,
    )  # fmt: skip
    [done] = await s.list_deliveries(w.webhook_id)
    assert done.status is DeliveryStatus.DELIVERED and done.delivered_at is not None
    healthy = await s.load_webhook(w.webhook_id)
    assert healthy is not None and healthy.failing_since is None
    assert await s.claim_deliveries(CLAIM) == []
    assert await s.redeliver(w.webhook_id, "msg_none") is None
    assert await s.redeliver("wh_other", done.delivery_id) is None
    redone = await s.redeliver(w.webhook_id, done.delivery_id)
    assert redone is not None and redone.status is DeliveryStatus.PENDING and redone.attempts == 0
    [(third, _)] = await s.claim_deliveries(CLAIM)
    assert third.delivery_id == done.delivery_id and third.attempts == 1
    assert await s.redeliver(w.webhook_id, done.delivery_id) is None  # being sent


async def test_deliveries_of_a_task_are_claimed_in_order(store: TaskStore) -> None:
    s = as_store(store)
    w = hook()
    await s.add_webhook(w)
    task = await new_task(s)
    question = event(task, 1, EventType.PLAN_REQUIRE_USER_INPUT, payload={"content": "?"})
    await s.append_events([question], [])
    await s.append_events([event(task, 2, EventType.TASK_FAILED)], [])
    [(first, _)] = await s.claim_deliveries(CLAIM, limit=10)
    assert first.seq == 1
    assert await s.claim_deliveries(CLAIM, limit=10) == []  # the first is being sent
    await s.finish_delivery(
        first.delivery_id, attempt=1, status=DeliveryStatus.DELIVERED, disable_after=NEVER
    )
    [(second, _)] = await s.claim_deliveries(CLAIM, limit=10)
    assert second.seq == 2


async def test_concurrent_claims_are_disjoint(store: TaskStore) -> None:
    s = as_store(store)
    await _deliveries(s, 30)
    claims = await asyncio.gather(*(s.claim_deliveries(CLAIM, limit=7) for _ in range(6)))
    ids = [d.delivery_id for claim in claims for d, _ in claim]
    assert len(ids) == len(set(ids)) == 30


async def test_a_subscription_failing_long_enough_is_disabled(store: TaskStore) -> None:
    s = as_store(store)
    w, _ = await _deliveries(s, 2)
    [(delivery, _), *_rest] = await s.claim_deliveries(CLAIM, limit=1)
    assert await s.finish_delivery(
        delivery.delivery_id,
        attempt=1,
        status=DeliveryStatus.FAILED,
        status_code=404,
        error="not found",
        disable_after=timedelta(0),
    )
    disabled = await s.load_webhook(w.webhook_id)
    assert disabled is not None and disabled.disabled_at is not None
    assert disabled.disabled_reason and "failed since" in disabled.disabled_reason
    found = await s.list_deliveries(w.webhook_id)
    assert {d.status for d in found} == {DeliveryStatus.FAILED}
    assert await s.list_deliveries(w.webhook_id, status=DeliveryStatus.PENDING) == []
    assert await s.claim_deliveries(CLAIM) == []


async def _ended_deliveries(s: Store) -> tuple[Webhook, Delivery]:
    """Three deliveries: one delivered, one failed, one still being sent (answered)."""
    w, _ = await _deliveries(s, 3)
    claimed = await s.claim_deliveries(CLAIM)
    assert len(claimed) == 3
    (delivered, _), (failed, _), (sending, _) = claimed
    assert await s.finish_delivery(
        delivered.delivery_id, attempt=1, status=DeliveryStatus.DELIVERED, disable_after=NEVER
    )
    assert await s.finish_delivery(
        failed.delivery_id, attempt=1, status=DeliveryStatus.FAILED, status_code=410,
        disable_after=NEVER,
    )  # fmt: skip
    return w, sending


async def test_retention_removes_only_deliveries_that_ended(store: TaskStore) -> None:
    s = as_store(store)
    w, sending = await _ended_deliveries(s)
    now = await s.clock()
    assert await s.prune_deliveries(created_before=now - timedelta(hours=1), limit=10) == 0
    later = now + timedelta(hours=1)
    assert await s.prune_deliveries(created_before=later, limit=10, dry_run=True) == 2
    assert len(await s.list_deliveries(w.webhook_id)) == 3  # a dry run changes nothing
    assert await s.prune_deliveries(created_before=later, limit=1) == 1  # at most limit
    assert await s.prune_deliveries(created_before=later, limit=10) == 1
    assert await s.prune_deliveries(created_before=later, limit=10) == 0
    [left] = await s.list_deliveries(w.webhook_id)
    assert left.delivery_id == sending.delivery_id  # one still to be sent is never removed


async def test_the_pruner_removes_ended_deliveries_after_the_retention_days(
    store: TaskStore,
) -> None:
    s = as_store(store)
    w, sending = await _ended_deliveries(s)
    policy = RetentionPolicy(days=30, runs=2)
    now = await s.clock()
    with time_machine.travel(now + timedelta(days=29), tick=True):
        assert (await prune(s, policy)).deliveries == 0
    with time_machine.travel(now + timedelta(days=31), tick=True):
        report = await prune(s, policy)
    assert report.deliveries == 2, report
    assert [d.delivery_id for d in await s.list_deliveries(w.webhook_id)] == [sending.delivery_id]
