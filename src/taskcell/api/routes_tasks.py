"""/api/v1/tasks: create, list, read, cancel, pause, resume, run now, backfill, answer, delete,
and the upcoming fire times of a schedule."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, TypeAdapter
from pydantic_core import PydanticCustomError

from taskcell.abc import TaskFilter
from taskcell.api.auth import Caller, caller
from taskcell.api.body import JsonBodyRoute
from taskcell.api.deps import SafeParam, TaskIdPath, engine_of, visible_task
from taskcell.api.envelope import ApiError, Envelope, ErrorEnvelope, ok
from taskcell.api.schemas import (
    BackfillIn,
    BackfillOut,
    BackfillRun,
    CancelOut,
    DeleteOut,
    FireTime,
    InputIn,
    PauseIn,
    RunPage,
    TaskCreate,
    TaskCreated,
    TaskPage,
    TaskPatch,
    UpcomingOut,
)
from taskcell.domain.edits import parse_version
from taskcell.domain.models import MAX_QUERY_CHARS, Run, Task, TaskPattern, check_pause_note
from taskcell.domain.schedule import describe, resolve_zone_name
from taskcell.domain.state_machine import TaskConflict, TaskStatus
from taskcell.engine.engine import BadBackfill, Engine
from taskcell.stores.cursor import bind_cursor, unbind_cursor
from taskcell.webhooks.service import WebhookError

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope} for status in (400, 401, 403, 404, 409, 413, 422, 500)
}

router = APIRouter(prefix="/api/v1", tags=["tasks"], responses=ERRORS, route_class=JsonBodyRoute)

_TASK_LIST = TypeAdapter(list[Task])
#: The most fire times ``GET /tasks/{id}/upcoming`` lists at once.
MAX_UPCOMING = 100

CallerDep = Annotated[Caller, Depends(caller)]
EngineDep = Annotated[Engine, Depends(engine_of)]


def task_json(task: Task) -> dict[str, Any]:
    return task.model_dump(mode="json")


def build_task(body: TaskCreate, who: Caller) -> Task:
    """The domain task of a create body; a value the domain refuses raises (answered 400)."""
    values: dict[str, Any] = {
        "query": body.query,
        "agent_name": body.agent_name,
        "title": body.title or "",
        "pattern": body.pattern,
        "schedule_config": body.schedule_config.model_dump() if body.schedule_config else None,
        "max_attempts": body.max_attempts,
        "metadata": body.metadata or {},
        "run_timeout_seconds": body.run_timeout_seconds,
        "user_id": who.user_id,
    }
    policies = {
        "overlap": body.overlap,
        "catchup": body.catchup,
        "catchup_window_seconds": body.catchup_window_seconds,
    }
    values.update({name: value for name, value in policies.items() if value is not None})
    if body.conversation_id is not None:
        values["conversation_id"] = body.conversation_id
    if body.thread_id is not None:
        values["thread_id"] = body.thread_id
    return Task(**values)


def _links(targets: dict[str, tuple[str, str]], parameters: dict[str, str]) -> dict[str, Any]:
    """OpenAPI links: where a client (or schemathesis' stateful phase) can go from an answer."""
    return {
        name: {
            "operationRef": "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method,
            "parameters": parameters,
        }
        for name, (path, method) in targets.items()
    }


_TASK = "/api/v1/tasks/{task_id}"
#: From a created task to everything that can be done with it.
TASK_LINKS = {
    **_links(
        {
            "GetTask": (_TASK, "get"),
            "EditTask": (_TASK, "patch"),
            "CancelTask": (f"{_TASK}/cancel", "post"),
            "PauseTask": (f"{_TASK}/pause", "post"),
            "ResumeTask": (f"{_TASK}/resume", "post"),
            "RunTaskNow": (f"{_TASK}/run", "post"),
            "BackfillTask": (f"{_TASK}/backfill", "post"),
            "AnswerTask": (f"{_TASK}/input", "post"),
            "DeleteTask": (_TASK, "delete"),
            "ListRuns": (f"{_TASK}/runs", "get"),
            "TaskEvents": (f"{_TASK}/events", "get"),
        },
        {"task_id": "$response.body#/data/task_id"},
    ),
    **_links(
        {"ConversationItems": ("/api/v1/conversations/{conversation_id}/items", "get")},
        {"conversation_id": "$response.body#/data/conversation_id"},
    ),
}


@router.post(
    "/tasks",
    status_code=201,
    response_model=Envelope[TaskCreated],
    responses={201: {"description": "the task", "links": TASK_LINKS}},
)
async def create_task(body: TaskCreate, who: CallerDep, engine: EngineDep) -> JSONResponse:
    """Create a task and queue it to run (a recurring one is scheduled)."""
    # Conversation ids are per user: the task joins the caller's own conversation with this id
    # (made if new), whoever else uses the same id.
    task = build_task(body, who)
    if body.webhook_url is None:
        created = await engine.submit(task, run_immediately=body.run_immediately)
        return ok(task_json(created), 201)
    # Its subscription first, so that no event of the task comes before it.
    task.webhook_url = body.webhook_url
    engine.registry.get(task.agent_name)  # an unknown agent: 400, before anything is stored
    try:
        webhook = await engine.webhooks.create(
            user_id=who.user_id, url=body.webhook_url, task_id=task.task_id, url_field="webhook_url"
        )
    except WebhookError as exc:
        raise ApiError(422, str(exc), [{"field": exc.field, "message": exc.message}]) from None
    try:
        created = await engine.submit(task, run_immediately=body.run_immediately)
    except BaseException:
        await asyncio.shield(engine.webhooks.delete(webhook.webhook_id))
        raise
    return ok({**task_json(created), "webhook_secret": webhook.secret}, 201)


@router.get(
    "/tasks",
    response_model=Envelope[TaskPage],
    responses={
        200: {
            "description": "a page of tasks",
            "links": _links(
                {"NextPage": ("/api/v1/tasks", "get")},
                {"cursor": "$response.body#/data/next_cursor"},
            ),
        }
    },
)
async def list_tasks(
    who: CallerDep,
    engine: EngineDep,
    status: TaskStatus | None = None,
    pattern: TaskPattern | None = None,
    agent_name: SafeParam | None = None,
    conversation_id: SafeParam | None = None,
    user_id: SafeParam | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: SafeParam | None = None,
) -> Response:
    """The caller's tasks, newest first, filtered and paged by cursor."""
    if user_id is not None and not who.is_admin:
        raise ApiError(403, "user_id: only an admin may list another user's tasks")
    owner = user_id if who.is_admin else who.user_id
    flt = TaskFilter(
        user_id=owner,
        status=status,
        pattern=pattern,
        agent_name=agent_name,
        conversation_id=conversation_id,
    )
    scope = "tasks " + json.dumps(
        [owner, status, pattern, agent_name, conversation_id], ensure_ascii=True
    )
    store_cursor = unbind_cursor(cursor, scope)
    page = await engine.list_tasks(flt, limit=limit, cursor=store_cursor)
    # The page is serialised in one go by pydantic's core (the list endpoint is the hot one).
    items = _TASK_LIST.dump_json(page.items)
    cursor_json = json.dumps(bind_cursor(page.next_cursor, scope)).encode()
    body = b'{"code":0,"msg":"ok","data":{"items":' + items + b',"next_cursor":' + cursor_json
    return Response(body + b"}}", media_type="application/json")


def etag(task: Task) -> dict[str, str]:
    """The ``ETag`` header of a task: its version, quoted ('"3"')."""
    return {"ETag": f'"{task.version}"'}


def if_match_version(if_match: str | None) -> int | None:
    """The version an ``If-Match`` header names (None: no header, or "*"); 400 naming it."""
    if if_match is None:
        return None
    try:
        return parse_version(if_match)
    except ValueError as exc:
        fields = [{"field": "If-Match", "message": str(exc)}]
        raise ApiError(400, f"If-Match: {exc}", fields) from None


_TAGGED = {"description": "the task", "headers": {"ETag": {"schema": {"type": "string"}}}}


@router.get("/tasks/{task_id}", response_model=Envelope[Task], responses={200: _TAGGED})
async def get_task(task_id: TaskIdPath, who: CallerDep, engine: EngineDep) -> JSONResponse:
    """One task; ``ETag`` is its version (for ``If-Match`` on an edit)."""
    task = await visible_task(engine, who, task_id)
    response = ok(task_json(task))
    response.headers.update(etag(task))
    return response


@router.patch("/tasks/{task_id}", response_model=Envelope[Task], responses={200: _TAGGED})
async def edit_task(
    task_id: TaskIdPath,
    body: TaskPatch,
    who: CallerDep,
    engine: EngineDep,
    if_match: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Edit a task: only the fields given change (a recurring task while it runs; a once task
    its title and metadata). With ``If-Match: <version>`` only while the task still has that
    version (else 409). The task's ``version`` grows by one."""
    expected = if_match_version(if_match)
    await visible_task(engine, who, task_id)
    patch = {name: getattr(body, name) for name in body.model_fields_set}
    if isinstance(patch.get("schedule_config"), BaseModel):
        patch["schedule_config"] = patch["schedule_config"].model_dump(exclude_none=True)
    edited = await engine.edit(task_id, patch, if_version=expected)
    response = ok(task_json(edited))
    response.headers.update(etag(edited))
    return response


@router.post("/tasks/{task_id}/cancel", response_model=Envelope[CancelOut])
async def cancel_task(task_id: TaskIdPath, who: CallerDep, engine: EngineDep) -> JSONResponse:
    """Cancel the task, its remote task and schedule, and update its controller components."""
    await visible_task(engine, who, task_id)
    result = await engine.cancel(task_id)
    return ok(
        {
            "task_id": result.task_id,
            "success": result.success,
            "updated_component_ids": result.updated_component_ids,
        }
    )


def pause_note(body: PauseIn | None) -> str | None:
    """The note of a pause body, checked (400 naming ``note``); None without one."""
    if body is None or body.note is None:
        return None
    try:
        note = check_pause_note(body.note)
    except PydanticCustomError as exc:
        message = str(exc)
        raise ApiError(400, f"note: {message}", [{"field": "note", "message": message}]) from None
    return note or None


@router.post("/tasks/{task_id}/pause", response_model=Envelope[Task])
async def pause_task(
    task_id: TaskIdPath, who: CallerDep, engine: EngineDep, body: PauseIn | None = None
) -> JSONResponse:
    """Pause a recurring schedule, optionally with a note saying why (shown until resumed)."""
    note = pause_note(body)
    await visible_task(engine, who, task_id)
    return ok(task_json(await engine.pause(task_id, note)))


@router.post("/tasks/{task_id}/resume", response_model=Envelope[Task])
async def resume_task(task_id: TaskIdPath, who: CallerDep, engine: EngineDep) -> JSONResponse:
    await visible_task(engine, who, task_id)
    return ok(task_json(await engine.resume(task_id)))


@router.post("/tasks/{task_id}/run", response_model=Envelope[Run])
async def run_task_now(task_id: TaskIdPath, who: CallerDep, engine: EngineDep) -> JSONResponse:
    """Run a recurring task now, once, outside its schedule."""
    await visible_task(engine, who, task_id)
    run = await engine.run_now(task_id)
    return ok(run.model_dump(mode="json"))


@router.post("/tasks/{task_id}/backfill", response_model=Envelope[BackfillOut])
async def backfill_task(
    task_id: TaskIdPath, body: BackfillIn, who: CallerDep, engine: EngineDep
) -> JSONResponse:
    """Run the occurrences of ``[start, end)`` that have no run yet, in order, under the task's
    overlap policy (at most 1,000 occurrences)."""
    for name, value in (("start", body.start), ("end", body.end)):
        if value.tzinfo is None or value.utcoffset() is None:
            message = f"{name} must carry a UTC offset (an aware ISO 8601 datetime)"
            raise ApiError(422, f"{name}: {message}", [{"field": name, "message": message}])
    if body.end <= body.start:
        message = "end must be after start (the range is [start, end))"
        raise ApiError(422, f"end: {message}", [{"field": "end", "message": message}])
    await visible_task(engine, who, task_id)
    try:
        done = await engine.backfill(task_id, body.start, body.end)
    except BadBackfill as exc:
        fields = [{"field": exc.field, "message": str(exc)}]
        raise ApiError(422, f"{exc.field}: {exc}", fields) from None
    answer = BackfillOut(
        task_id=done.task_id,
        queued=len(done.runs),
        runs=[
            BackfillRun(run_id=r.run_id, scheduled_for=r.scheduled_for, status=r.status.value)
            for r in done.runs
        ],
        already_run=done.already_run,
    )
    return ok(answer.model_dump(mode="json"))


@router.get("/tasks/{task_id}/upcoming", response_model=Envelope[UpcomingOut])
async def upcoming_fires(
    task_id: TaskIdPath,
    who: CallerDep,
    engine: EngineDep,
    count: Annotated[int, Query(ge=1, le=MAX_UPCOMING)] = 5,
) -> JSONResponse:
    """The next ``count`` fire times of a recurring task, in UTC and in its schedule's zone."""
    task = await visible_task(engine, who, task_id)
    times = engine.upcoming(task, count)
    schedule = task.schedule_config
    zone_name = (schedule.timezone if schedule else None) or engine.default_zone
    try:  # a finished task's stored schedule is not checked by ``upcoming``
        words = describe(schedule, engine.default_zone) if schedule else ""
        zone = ZoneInfo(resolve_zone_name(zone_name))
    except ValueError as exc:
        message = f"task {task.task_id}'s stored schedule cannot be used ({exc})"
        raise TaskConflict(task.task_id, message) from exc
    body = UpcomingOut(
        task_id=task.task_id,
        timezone=zone_name,
        schedule=words,
        paused=task.paused,
        items=[FireTime(at=at, local=at.astimezone(zone)) for at in times],
    )
    return ok(body.model_dump(mode="json"))


@router.post("/tasks/{task_id}/input", response_model=Envelope[Task])
async def answer_task(
    task_id: TaskIdPath, body: InputIn, who: CallerDep, engine: EngineDep
) -> JSONResponse:
    """Answer a task that waits for input; the agent's task goes on."""
    text = body.text  # safe text (no NUL, no lone surrogate): checked by InputIn
    if not text.strip() or len(text) > MAX_QUERY_CHARS:
        message = f"text must be 1 to {MAX_QUERY_CHARS} characters, not blank"
        raise ApiError(400, f"text: {message}", [{"field": "text", "message": message}])
    await visible_task(engine, who, task_id)
    return ok(task_json(await engine.provide_input(task_id, text)))


@router.delete("/tasks/{task_id}", response_model=Envelope[DeleteOut])
async def delete_task(task_id: TaskIdPath, who: CallerDep, engine: EngineDep) -> JSONResponse:
    """Delete a finished task with its runs, events and history."""
    task = await visible_task(engine, who, task_id)
    if not await engine.delete_task(task_id):
        message = f"task {task_id} is {task.status.value}; cancel it before deleting it"
        raise TaskConflict(task_id, message)
    return ok({"task_id": task_id, "deleted": True})


@router.get("/tasks/{task_id}/runs", response_model=Envelope[RunPage])
async def list_runs(
    task_id: TaskIdPath,
    who: CallerDep,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: SafeParam | None = None,
) -> JSONResponse:
    await visible_task(engine, who, task_id)
    scope = "runs " + json.dumps(task_id, ensure_ascii=True)
    store_cursor = unbind_cursor(cursor, scope)
    page = await engine.list_runs(task_id, limit=limit, cursor=store_cursor)
    items = [r.model_dump(mode="json") for r in page.items]
    return ok({"items": items, "next_cursor": bind_cursor(page.next_cursor, scope)})
