"""/api/v1/agents, /api/v1/conversations/{id}/items, /api/v1/health."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import AfterValidator

from taskcell.api.auth import Caller, caller
from taskcell.api.body import JsonBodyRoute
from taskcell.api.deps import SafeParam, engine_of
from taskcell.api.envelope import ApiError, Envelope, ok
from taskcell.api.routes_tasks import ERRORS
from taskcell.api.schemas import AgentOut, HealthOut, ItemPage, ProcessOut
from taskcell.domain.models import utcnow
from taskcell.domain.text import check_text
from taskcell.engine.engine import Engine
from taskcell.stores.cursor import bind_cursor, unbind_cursor

router = APIRouter(prefix="/api/v1", responses=ERRORS, route_class=JsonBodyRoute)

CallerDep = Annotated[Caller, Depends(caller)]
EngineDep = Annotated[Engine, Depends(engine_of)]


@router.get("/agents", response_model=Envelope[list[AgentOut]], tags=["agents"])
async def list_agents(_: CallerDep, engine: EngineDep) -> JSONResponse:
    """Registered agents: name, description, skills, url (or "local"), reachable."""
    infos = await engine.registry.infos()
    return ok(
        [
            {
                "name": i.name,
                "description": i.description,
                "skills": list(i.skills),
                "url": i.url,
                "reachable": i.reachable,
            }
            for i in sorted(infos, key=lambda i: i.name)
        ]
    )


@router.get(
    "/conversations/{conversation_id}/items",
    response_model=Envelope[ItemPage],
    tags=["conversations"],
)
async def conversation_items(
    conversation_id: Annotated[str, Path(), AfterValidator(check_text)],
    who: CallerDep,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: SafeParam | None = None,
) -> JSONResponse:
    """The conversation's history, oldest first: messages merged, components latest."""
    owner = await engine.store.conversation_owner(conversation_id)
    if owner is None or not (who.is_admin or owner == who.user_id):
        raise ApiError(404, f"conversation {conversation_id} not found")
    scope = "items " + json.dumps(conversation_id, ensure_ascii=True)
    store_cursor = unbind_cursor(cursor, scope)
    page = await engine.store.list_items(conversation_id, limit=limit, cursor=store_cursor)
    return ok(
        {
            "items": [i.to_dict() for i in page.items],
            "next_cursor": bind_cursor(page.next_cursor, scope),
        }
    )


@router.get(
    "/health",
    response_model=Envelope[HealthOut],
    tags=["operations"],
    responses={503: {"model": Envelope[HealthOut]}},
)
async def health(engine: EngineDep) -> JSONResponse:
    """Liveness: the store answers, and the scheduler and event log writer run; which
    processes serve the database (a heartbeat within two lease lengths)."""
    store_ok = await engine.store.ping()
    processes: list[dict[str, Any]] = []
    if store_ok:
        since = utcnow() - engine.dead_after
        processes = [
            ProcessOut(**asdict(p)).model_dump(mode="json")
            for p in await engine.store.live_processes(since)
        ]
    scheduler_ok = engine.supervisor.alive("scheduler")
    log_ok = engine.supervisor.alive("event-log-writer")
    healthy = store_ok and scheduler_ok and log_ok
    body = {
        "status": "ok" if healthy else "failing",
        "store": store_ok,
        "scheduler": scheduler_ok,
        "event_log": log_ok,
        "problem": engine.supervisor.failure,
        "process_id": engine.owner,
        "processes": processes,
    }
    if healthy:
        return ok(body)
    return JSONResponse({"code": 503, "msg": "unhealthy", "data": body}, status_code=503)
