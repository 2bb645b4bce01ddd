"""POST /api/v1/tasks:bulk: pause, resume, cancel or delete many tasks in one request.

The tasks are named by ``ids`` or chosen by ``filter`` (the filters of ``GET /tasks``), and each
is acted on by the same engine call as its single endpoint, so each is its own guarded write:
one task's refusal (409), absence (404) or bad note never stops the others, and every task gets
a result. A caller acts on their own tasks only (another user's id answers 404 in its result,
as ``GET /tasks/{id}`` would); an admin on anyone's, and may filter by ``user_id``.

At most :data:`MAX_BULK_TASKS` tasks per request. A filter is read page by page with the
store's keyset (as ``GET /tasks`` pages, newest first), acting on each page before reading the
next; when more tasks match than the request's ``limit``, the answer's ``next_cursor`` continues
after the last task acted on (positions, not membership: a task the action moved out of the
filter is never met twice).
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from taskcell.abc import TaskFilter
from taskcell.api.auth import Caller, caller
from taskcell.api.body import JsonBodyRoute
from taskcell.api.deps import engine_of
from taskcell.api.envelope import ApiError, Envelope, ErrorEnvelope, ok
from taskcell.api.routes_tasks import pause_note
from taskcell.api.schemas import BulkFilter, BulkIn, BulkOut, BulkResult, PauseIn
from taskcell.domain.state_machine import TaskConflict
from taskcell.engine.engine import Engine
from taskcell.service import TaskNotFound
from taskcell.stores.cursor import bind_cursor, unbind_cursor

logger = logging.getLogger(__name__)

#: The most tasks one bulk request acts on (its ``ids``, or its ``limit`` through a filter).
MAX_BULK_TASKS = 1000
#: The page size a filter is read in (the store's largest list page).
_PAGE = 500

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope} for status in (400, 401, 403, 413, 422, 500)
}
router = APIRouter(prefix="/api/v1", tags=["tasks"], responses=ERRORS, route_class=JsonBodyRoute)

CallerDep = Annotated[Caller, Depends(caller)]
EngineDep = Annotated[Engine, Depends(engine_of)]


def _refuse(field: str, message: str) -> ApiError:
    return ApiError(400, f"{field}: {message}", [{"field": field, "message": message}])


async def _act(engine: Engine, action: str, task_id: str, note: str | None) -> None:
    """The single endpoint's engine call for ``action`` (raises what that endpoint answers)."""
    if action == "pause":
        await engine.pause(task_id, note)
    elif action == "resume":
        await engine.resume(task_id)
    elif action == "cancel":
        await engine.cancel(task_id)
    else:
        task = await engine.require_task(task_id)
        if not await engine.delete_task(task_id):
            message = f"task {task_id} is {task.status.value}; cancel it before deleting it"
            raise TaskConflict(task_id, message)


async def _one(
    engine: Engine, who: Caller, body: BulkIn, task_id: str, note: str | None
) -> BulkResult:
    """Act on one task, answering its result (never raising for the task's own refusal)."""
    try:
        task = await engine.get_task(task_id)
        if task is None or not who.may_see(task):
            raise TaskNotFound(task_id)
        await _act(engine, body.action, task_id, note)
    except TaskNotFound as exc:
        return BulkResult(task_id=task_id, ok=False, code=404, message=str(exc))
    except TaskConflict as exc:
        return BulkResult(task_id=task_id, ok=False, code=409, message=str(exc))
    return BulkResult(task_id=task_id, ok=True, code=0, message="ok")


def _filter_of(flt: BulkFilter, who: Caller) -> TaskFilter:
    if flt.user_id is not None and not who.is_admin:
        raise ApiError(403, "filter.user_id: only an admin may act on another user's tasks")
    return TaskFilter(
        user_id=flt.user_id if who.is_admin else who.user_id,
        status=flt.status,
        pattern=flt.pattern,
        agent_name=flt.agent_name,
        conversation_id=flt.conversation_id,
    )


def _scope(flt: TaskFilter) -> str:
    """What a bulk cursor is bound to: this endpoint and the filter that issued it."""
    values = [flt.user_id, flt.status, flt.pattern, flt.agent_name, flt.conversation_id]
    return "bulk " + json.dumps(values, ensure_ascii=True)


@router.post("/tasks:bulk", response_model=Envelope[BulkOut])
async def bulk_action(body: BulkIn, who: CallerDep, engine: EngineDep) -> JSONResponse:
    """Pause, resume, cancel or delete the tasks named by ``ids`` or chosen by ``filter``,
    each as its own guarded write, answering a result per task."""
    if (body.ids is None) == (body.filter is None):
        raise _refuse("ids", "give exactly one of ids and filter")
    if body.note is not None and body.action != "pause":
        raise _refuse("note", "a note goes with the pause action only")
    note = pause_note(PauseIn(note=body.note))  # checked once, for every task (400 naming it)
    if body.ids is not None:
        if body.limit is not None or body.cursor is not None:
            raise _refuse("limit" if body.limit is not None else "cursor", "goes with filter only")
        if not 1 <= len(body.ids) <= MAX_BULK_TASKS:
            raise _refuse("ids", f"give 1 to {MAX_BULK_TASKS} task ids, not {len(body.ids)}")
        ids = list(dict.fromkeys(body.ids))  # each task once, in the order given
        results = [await _one(engine, who, body, task_id, note) for task_id in ids]
        return _answer(body.action, results, None)
    assert body.filter is not None
    limit = MAX_BULK_TASKS if body.limit is None else body.limit
    if not 1 <= limit <= MAX_BULK_TASKS:
        raise _refuse("limit", f"must be 1 to {MAX_BULK_TASKS}, not {limit}")
    flt = _filter_of(body.filter, who)
    scope = _scope(flt)
    cursor = unbind_cursor(body.cursor, scope)
    results = []
    while len(results) < limit:
        page = await engine.list_tasks(flt, limit=min(_PAGE, limit - len(results)), cursor=cursor)
        results += [await _one(engine, who, body, task.task_id, note) for task in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    return _answer(body.action, results, bind_cursor(cursor, scope))


def _answer(action: str, results: list[BulkResult], next_cursor: str | None) -> JSONResponse:
    done = sum(1 for r in results if r.ok)
    logger.info("bulk action", extra={"action": action, "tasks": len(results), "succeeded": done})
    out = BulkOut(
        action=action,
        succeeded=done,
        failed=len(results) - done,
        results=results,
        next_cursor=next_cursor,
    )
    return ok(out.model_dump(mode="json"))
