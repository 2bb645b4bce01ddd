"""Every endpoint of docs/api.md as a :class:`~taskcell.client._wire.Call`, built once for both
clients."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pydantic import TypeAdapter

from taskcell.client._wire import Call, task_path
from taskcell.client.models import (
    Agent,
    CancelResult,
    ConversationItem,
    DeleteResult,
    Page,
    Run,
    ScheduleConfig,
    Task,
    Upcoming,
)

Schedule = ScheduleConfig | Mapping[str, Any]

_AGENTS = TypeAdapter(list[Agent])


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


def pause(task_id: str) -> Call[Task]:
    return Call("POST", task_path(task_id, "pause"), _task, idempotent=True, about_task=True)


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
