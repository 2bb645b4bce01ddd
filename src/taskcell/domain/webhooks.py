"""Webhooks in the domain: subscriptions, deliveries, which events make a delivery, and the
retry schedule (no I/O; the stores write deliveries with the events that cause them, the
dispatcher in :mod:`taskcell.webhooks` sends them).

A delivery is one event for one subscription. Its body is made when the event is appended, in
the same transaction (the Standard Webhooks shape ``{"type", "timestamp", "data": {"task",
"event"}}``), so what is sent is the task as it was when the event happened, however often it
is sent again.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from taskcell.domain.events import Event, EventType
from taskcell.domain.models import Task, new_id

#: The event types a subscription can ask for, and ``*`` for all of them.
WEBHOOK_EVENT_TYPES: tuple[str, ...] = (
    "task_completed",
    "task_failed",
    "task_cancelled",
    "plan_require_user_input",
    "scheduled_task_result",
    "run_failed",
    "task_paused",
)
ALL_EVENTS = "*"
#: The components whose events may make a delivery (a recurring run's result; a controller
#: that says its task was paused).
RESULT_COMPONENT = "scheduled_task_result"
CONTROLLER_COMPONENT = "scheduled_task_controller"
_DIRECT: dict[EventType, str] = {
    EventType.TASK_COMPLETED: "task_completed",
    EventType.TASK_FAILED: "task_failed",
    EventType.TASK_CANCELLED: "task_cancelled",
    EventType.PLAN_REQUIRE_USER_INPUT: "plan_require_user_input",
}
_WORTHY = frozenset({*_DIRECT, EventType.COMPONENT_GENERATOR})

#: The waits between attempts: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h (each with up to a fifth
#: more, at random): seven attempts over about 18 hours.
RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
#: The share of a wait added at random, at most (so receivers that failed together do not
#: come back together).
JITTER = 0.2
#: A subscription whose every attempt failed for this long is disabled.
DISABLE_AFTER = timedelta(days=3)
#: The longest ``Retry-After`` honoured.
MAX_RETRY_AFTER = timedelta(days=1)


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # due at next_attempt_at
    SENDING = "sending"  # claimed by a dispatcher until next_attempt_at
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(slots=True)
class Webhook:
    """A subscription: where to send which events of whose tasks, signed with ``secret``.

    It receives the events of ``user_id``'s tasks, only of ``task_id`` and of ``agent_name``
    when set, of the types in ``event_types`` (or all, with ``*``).
    """

    url: str
    user_id: str
    secret: str
    event_types: list[str] = field(default_factory=lambda: [ALL_EVENTS])
    task_id: str | None = None
    agent_name: str | None = None
    description: str = ""
    webhook_id: str = field(default_factory=lambda: "wh_" + new_id())
    created_at: datetime | None = None
    #: Since when every attempt failed (None after a success).
    failing_since: datetime | None = None
    disabled_at: datetime | None = None
    disabled_reason: str | None = None

    def wanted_type(self, kinds: Sequence[str]) -> str | None:
        """The first of ``kinds`` (an event's webhook types, most specific first) this
        subscription asks for, or None."""
        if ALL_EVENTS in self.event_types:
            return kinds[0] if kinds else None
        return next((kind for kind in kinds if kind in self.event_types), None)

    def to_public(self) -> dict[str, Any]:
        """The subscription as the API shows it: never its secret."""
        return {
            "webhook_id": self.webhook_id,
            "user_id": self.user_id,
            "url": self.url,
            "event_types": list(self.event_types),
            "task_id": self.task_id,
            "agent_name": self.agent_name,
            "description": self.description,
            "created_at": _iso(self.created_at),
            "failing_since": _iso(self.failing_since),
            "disabled_at": _iso(self.disabled_at),
            "disabled_reason": self.disabled_reason,
        }


@dataclass(slots=True)
class Delivery:
    """One event for one subscription: its body, and how sending it went."""

    webhook_id: str
    task_id: str
    seq: int
    event_type: str
    body: str
    created_at: datetime
    next_attempt_at: datetime | None
    delivery_id: str = field(default_factory=lambda: "msg_" + new_id())
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_response: str | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None

    def to_public(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "webhook_id": self.webhook_id,
            "task_id": self.task_id,
            "seq": self.seq,
            "event_type": self.event_type,
            "status": self.status.value,
            "attempts": self.attempts,
            "created_at": _iso(self.created_at),
            "next_attempt_at": _iso(self.next_attempt_at),
            "last_attempt_at": _iso(self.last_attempt_at),
            "last_status_code": self.last_status_code,
            "last_response": self.last_response,
            "last_error": self.last_error,
            "delivered_at": _iso(self.delivered_at),
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# -- which events make deliveries ------------------------------------------------------------


def worthy_task_ids(events: Sequence[Event]) -> list[str]:
    """The tasks of ``events`` with an event that may make a delivery (a final event, a
    question, a component); most batches (message chunks) have none, and skip the lookup."""
    found: dict[str, None] = {}
    for event in events:
        if event.event in _WORTHY and (
            event.event is not EventType.COMPONENT_GENERATOR or _component(event) is not None
        ):
            found[event.task_id] = None
    return list(found)


def _component(event: Event) -> str | None:
    kind = (event.payload or {}).get("component_type")
    return kind if kind in (RESULT_COMPONENT, CONTROLLER_COMPONENT) else None


def component_content(payload: dict[str, Any] | None) -> dict[str, Any]:
    """A component payload's ``content`` (JSON text) decoded; {} when it is not an object."""
    raw = (payload or {}).get("content")
    if not isinstance(raw, str):
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def controller_ids(events: Sequence[Event]) -> list[str]:
    """The item ids of the controller components in ``events`` that say "paused" (their
    stored state before the batch tells whether the task was just paused)."""
    return [
        e.item_id
        for e in events
        if e.event is EventType.COMPONENT_GENERATOR
        and _component(e) == CONTROLLER_COMPONENT
        and component_content(e.payload).get("paused") is True
    ]


def webhook_types(
    events: Sequence[Event], paused_before: Callable[[str], bool]
) -> list[tuple[Event, tuple[str, ...]]]:
    """Each event of ``events`` that makes deliveries, with its webhook types (most specific
    first): a failed recurring run's result is ``run_failed`` then ``scheduled_task_result``;
    a controller that turns paused is ``task_paused`` (``paused_before(item_id)``: whether
    its stored state said paused already)."""
    found: list[tuple[Event, tuple[str, ...]]] = []
    paused: dict[str, bool] = {}
    for event in events:
        direct = _DIRECT.get(event.event)
        if direct is not None:
            found.append((event, (direct,)))
            continue
        kind = _component(event) if event.event is EventType.COMPONENT_GENERATOR else None
        if kind == RESULT_COMPONENT:
            failed = component_content(event.payload).get("status") == "failed"
            found.append(
                (event, ("run_failed", RESULT_COMPONENT) if failed else (RESULT_COMPONENT,))
            )
        elif kind == CONTROLLER_COMPONENT:
            now_paused = component_content(event.payload).get("paused") is True
            before = paused.get(event.item_id)
            if before is None:
                before = paused_before(event.item_id) if now_paused else False
            paused[event.item_id] = now_paused
            if now_paused and not before:
                found.append((event, ("task_paused",)))
    return found


def paused_in(payload: dict[str, Any] | None) -> bool:
    """Whether a stored controller component's payload says paused."""
    return component_content(payload).get("paused") is True


def subscribed(webhook: Webhook, task: Task) -> bool:
    """Whether ``webhook`` hears of ``task`` (owner and filters; not its event types)."""
    return (
        webhook.disabled_at is None
        and webhook.user_id == task.user_id
        and (webhook.task_id is None or webhook.task_id == task.task_id)
        and (webhook.agent_name is None or webhook.agent_name == task.agent_name)
    )


def plan_deliveries(
    events: Sequence[Event],
    task: Task,
    webhooks: Sequence[Webhook],
    paused_before: Callable[[str], bool],
    now: datetime,
) -> list[Delivery]:
    """The deliveries ``events`` (of ``task``) make for ``webhooks`` (those that hear of the
    task), due at ``now``: one per event and subscription that asks for one of its types."""
    mine = [w for w in webhooks if subscribed(w, task)]
    if not mine:
        return []
    task_json: dict[str, Any] | None = None
    deliveries = []
    bodies: dict[tuple[int, str], str] = {}  # one body per event and type, however many hear
    for event, kinds in webhook_types(
        [e for e in events if e.task_id == task.task_id], paused_before
    ):
        for webhook in mine:
            kind = webhook.wanted_type(kinds)
            if kind is None:
                continue
            body = bodies.get((event.seq, kind))
            if body is None:
                if task_json is None:
                    task_json = task.model_dump(mode="json")
                body = bodies[(event.seq, kind)] = delivery_body(kind, event, task_json)
            deliveries.append(
                Delivery(
                    webhook_id=webhook.webhook_id,
                    task_id=task.task_id,
                    seq=event.seq,
                    event_type=kind,
                    body=body,
                    created_at=now,
                    next_attempt_at=now,
                )
            )
    return deliveries


def delivery_body(kind: str, event: Event, task_json: dict[str, Any]) -> str:
    """The JSON body sent: ``{"type", "timestamp", "data": {"task", "event"}}``."""
    body = {
        "type": kind,
        "timestamp": event.created_at.isoformat(),
        "data": {"task": task_json, "event": event.to_dict()},
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


# -- retries ---------------------------------------------------------------------------------


def retry_delay(
    attempts: int,
    *,
    retry_after: timedelta | None = None,
    rand: Callable[[], float] = random.random,
) -> timedelta | None:
    """How long to wait after failed attempt number ``attempts`` (1 for the first), or None
    when it was the last. ``retry_after`` (a 429's or 503's ``Retry-After``) is honoured: the
    wait is never shorter (at most :data:`MAX_RETRY_AFTER`)."""
    if attempts >= MAX_ATTEMPTS:
        return None
    base = RETRY_DELAYS[max(attempts, 1) - 1]
    wait = base * (1 + JITTER * rand())
    if retry_after is not None:
        wait = max(wait, min(retry_after, MAX_RETRY_AFTER))
    return wait


def disabled_reason(failing_since: datetime) -> str:
    """Why a subscription was disabled: its attempts failed since ``failing_since``."""
    return (
        f"disabled: every delivery attempt failed since {failing_since.isoformat()}"
        " (re-create the subscription once its receiver answers)"
    )
