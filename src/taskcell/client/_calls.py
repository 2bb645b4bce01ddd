"""Every endpoint of docs/api.md as a :class:`~taskcell.client._wire.Call`, built once for both
clients."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import TypeAdapter

from taskcell.client._wire import Call, task_path
from taskcell.client.models import (
    Agent,
    Backfill,
    BulkOutcome,
    CancelResult,
    ConversationItem,
    DeleteResult,
    Page,
    Run,
    ScheduleConfig,
    Task,
    Upcoming,
    Webhook,
    WebhookCreated,
    WebhookDeleted,
    WebhookDelivery,
    WebhookSecret,
)

Schedule = ScheduleConfig | Mapping[str, Any]
ModelT = TypeVar("ModelT")

_AGENTS = TypeAdapter(list[Agent])
_WEBHOOKS = TypeAdapter(list[Webhook])
_DELIVERIES = TypeAdapter(list[WebhookDelivery])


def _task(data: Any) -> Task:
    return Task.model_validate(data)


def _run(data: Any) -> Run:
    return Run.model_validate(data)


def _task_page(data: Any) -> Page[Task]:
    return Page[Task].model_validate(data)


def _run_page(data: Any) -> Page[Run]:
    return Page[Run].model_validate(data)


def _item_page(data: Any) -> Page[ConversationItem]:
    return Page[ConversationItem].model_validate(data)


def _agents(data: Any) -> list[Agent]:
    if isinstance(data, dict):  # tolerate {"items": [...]}
        data = data.get("items") or []
    return _AGENTS.validate_python(data)


def schedule_body(schedule: Schedule) -> dict[str, Any]:
    """A schedule as the API takes it (unset parts left out)."""
    if isinstance(schedule, ScheduleConfig):
        return schedule.model_dump(exclude_none=True)
    return {k: v for k, v in schedule.items() if v is not None}


def create_body(
    query: str,
    agent: str,
    *,
    title: str | None = None,
    conversation_id: str | None = None,
    thread_id: str | None = None,
    schedule: Schedule | None = None,
    run_immediately: bool | None = None,
    max_attempts: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    run_timeout_seconds: int | None = None,
    overlap: str | None = None,
    catchup: str | None = None,
    catchup_window_seconds: int | None = None,
) -> dict[str, Any]:
    """The body of ``POST /tasks``: a recurring task when ``schedule`` is given."""
    body: dict[str, Any] = {"query": query, "agent_name": agent}
    optional = {
        "title": title,
        "conversation_id": conversation_id,
        "thread_id": thread_id,
        "run_immediately": run_immediately,
        "max_attempts": max_attempts,
        "metadata": dict(metadata) if metadata is not None else None,
        "run_timeout_seconds": run_timeout_seconds,
        "overlap": overlap,
        "catchup": catchup,
        "catchup_window_seconds": catchup_window_seconds,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if schedule is not None:
        body["pattern"] = "recurring"
        body["schedule_config"] = schedule_body(schedule)
    return body


def create_task(body: Mapping[str, Any]) -> Call[Task]:
    return Call("POST", "/tasks", _task, body=dict(body))


def list_tasks(
    *,
    status: str | None = None,
    pattern: str | None = None,
    agent_name: str | None = None,
    conversation_id: str | None = None,
    user_id: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[Page[Task]]:
    params = {
        "status": status,
        "pattern": pattern,
        "agent_name": agent_name,
        "conversation_id": conversation_id,
        "user_id": user_id,
        "limit": limit,
        "cursor": cursor,
    }
    return Call("GET", "/tasks", _task_page, params=params, idempotent=True)


def get_task(task_id: str) -> Call[Task]:
    return Call("GET", task_path(task_id), _task, idempotent=True, about_task=True)


def get_task_raw(task_id: str) -> Call[Any]:
    return Call("GET", task_path(task_id), lambda data: data, idempotent=True, about_task=True)


def cancel(task_id: str) -> Call[CancelResult]:
    # Cancelling a cancelled task answers 200: safe to send again.
    return Call(
        "POST",
        task_path(task_id, "cancel"),
        CancelResult.model_validate,
        idempotent=True,
        about_task=True,
    )


def pause(task_id: str, note: str | None = None) -> Call[Task]:
    body = {"note": note} if note is not None else None
    path = task_path(task_id, "pause")
    return Call("POST", path, _task, body=body, idempotent=True, about_task=True)


def bulk_body(
    action: str,
    *,
    ids: Sequence[str] | None = None,
    filter: Mapping[str, Any] | None = None,
    note: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> dict[str, Any]:
    """The body of ``POST /tasks:bulk`` (unset parts left out)."""
    body: dict[str, Any] = {"action": action}
    if ids is not None:
        body["ids"] = list(ids)
    if filter is not None:
        body["filter"] = {k: v for k, v in filter.items() if v is not None}
    optional = {"note": note, "limit": limit, "cursor": cursor}
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


def bulk(body: Mapping[str, Any]) -> Call[BulkOutcome]:
    """``POST /tasks:bulk``. Each action is safe to repeat (a task already paused, resumed,
    cancelled or deleted answers its own result again), so a lost answer is retried."""
    return Call("POST", "/tasks:bulk", BulkOutcome.model_validate, body=dict(body), idempotent=True)


def resume(task_id: str) -> Call[Task]:
    return Call("POST", task_path(task_id, "resume"), _task, idempotent=True, about_task=True)


def edit_body(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The body of ``PATCH /tasks/{id}``: the fields to change (a schedule as the API takes
    it)."""
    body = dict(changes)
    if "schedule_config" in body and body["schedule_config"] is not None:
        body["schedule_config"] = schedule_body(body["schedule_config"])
    return body


def edit(task_id: str, changes: Mapping[str, Any], *, if_version: int | None = None) -> Call[Task]:
    """``PATCH /tasks/{id}``; with ``if_version``, only while the task has that version
    (``If-Match``). Not retried: sent twice, it would edit twice."""
    headers = {"If-Match": f'"{if_version}"'} if if_version is not None else {}
    return Call(
        "PATCH",
        task_path(task_id),
        _task,
        body=edit_body(changes),
        about_task=True,
        headers=headers,
    )


def run_now(task_id: str) -> Call[Run]:
    return Call("POST", task_path(task_id, "run"), _run, about_task=True)


def backfill(task_id: str, start: datetime, end: datetime) -> Call[Backfill]:
    """``POST /tasks/{id}/backfill``. Not retried: a lost answer is safe to send again (runs
    are not stored twice), but the second answer would list them as already run."""
    body = {"start": start.isoformat(), "end": end.isoformat()}
    return Call(
        "POST", task_path(task_id, "backfill"), Backfill.model_validate, body=body, about_task=True
    )


def answer(task_id: str, text: str) -> Call[Task]:
    return Call("POST", task_path(task_id, "input"), _task, body={"text": text}, about_task=True)


def delete(task_id: str) -> Call[DeleteResult]:
    # Not retried: a delete whose answer was lost would answer 404 the second time.
    return Call("DELETE", task_path(task_id), DeleteResult.model_validate, about_task=True)


def runs(task_id: str, *, limit: int | None = None, cursor: str | None = None) -> Call[Page[Run]]:
    params = {"limit": limit, "cursor": cursor}
    path = task_path(task_id, "runs")
    return Call("GET", path, _run_page, params=params, idempotent=True, about_task=True)


def upcoming_json(task_id: str, *, count: int | None = None) -> Call[Any]:
    """``GET /tasks/{id}/upcoming``: the next fire times, as the server's JSON (the CLI's)."""
    params = {"count": count} if count is not None else {}
    path = task_path(task_id, "upcoming")
    return Call("GET", path, lambda data: data, params=params, idempotent=True, about_task=True)


def upcoming(task_id: str, *, count: int | None = None) -> Call[Upcoming]:
    """``GET /tasks/{id}/upcoming``: the next fire times of a recurring task."""
    params = {"count": count} if count is not None else {}
    path = task_path(task_id, "upcoming")
    return Call(
        "GET", path, Upcoming.model_validate, params=params, idempotent=True, about_task=True
    )


def agents() -> Call[list[Agent]]:
    return Call("GET", "/agents", _agents, idempotent=True)


def items(
    conversation_id: str, *, limit: int | None = None, cursor: str | None = None
) -> Call[Page[ConversationItem]]:
    path = f"/conversations/{quote(conversation_id, safe='')}/items"
    params = {"limit": limit, "cursor": cursor}
    return Call("GET", path, _item_page, params=params, idempotent=True)


def stream_body(
    query: str,
    agent: str,
    *,
    title: str | None = None,
    conversation_id: str | None = None,
    schedule: Schedule | None = None,
) -> dict[str, Any]:
    """The body of ``POST /agents/stream`` (it takes fewer fields than ``POST /tasks``)."""
    body: dict[str, Any] = {"query": query, "agent_name": agent}
    if title is not None:
        body["title"] = title
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    if schedule is not None:
        body["pattern"] = "recurring"
        body["schedule_config"] = schedule_body(schedule)
    return body


def _webhook_path(webhook_id: str, *rest: str) -> str:
    return "/".join(["/webhooks", quote(webhook_id, safe=""), *rest])


def _items(adapter: TypeAdapter[list[ModelT]]) -> Callable[[Any], list[ModelT]]:
    return lambda data: adapter.validate_python(data["items"])


def create_webhook(
    url: str,
    *,
    event_types: Sequence[str] | None = None,
    task_id: str | None = None,
    agent_name: str | None = None,
    description: str | None = None,
) -> Call[WebhookCreated]:
    """``POST /webhooks``. Not retried: sent twice, it would subscribe twice."""
    body: dict[str, Any] = {"url": url}
    if event_types is not None:
        body["event_types"] = list(event_types)
    optional = {"task_id": task_id, "agent_name": agent_name, "description": description}
    body.update({k: v for k, v in optional.items() if v is not None})
    return Call("POST", "/webhooks", WebhookCreated.model_validate, body=body)


def list_webhooks(*, user_id: str | None = None) -> Call[list[Webhook]]:
    params = {"user_id": user_id}
    return Call("GET", "/webhooks", _items(_WEBHOOKS), params=params, idempotent=True)


def get_webhook(webhook_id: str) -> Call[Webhook]:
    return Call("GET", _webhook_path(webhook_id), Webhook.model_validate, idempotent=True)


def delete_webhook(webhook_id: str) -> Call[WebhookDeleted]:
    # Not retried: a delete whose answer was lost would answer 404 the second time.
    return Call("DELETE", _webhook_path(webhook_id), WebhookDeleted.model_validate)


def rotate_webhook(webhook_id: str) -> Call[WebhookSecret]:
    # Not retried: a lost answer would leave a secret nobody saw.
    path = _webhook_path(webhook_id, "rotate")
    return Call("POST", path, WebhookSecret.model_validate)


def deliveries(
    webhook_id: str, *, status: str | None = None, limit: int | None = None
) -> Call[list[WebhookDelivery]]:
    params = {"status": status, "limit": limit}
    path = _webhook_path(webhook_id, "deliveries")
    return Call("GET", path, _items(_DELIVERIES), params=params, idempotent=True)


def redeliver(webhook_id: str, delivery_id: str) -> Call[WebhookDelivery]:
    # Safe to repeat: a second request starts the same delivery's round again.
    path = _webhook_path(webhook_id, "deliveries", quote(delivery_id, safe=""), "redeliver")
    return Call("POST", path, WebhookDelivery.model_validate, idempotent=True)
