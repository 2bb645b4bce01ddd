"""/api/v1/agents, /api/v1/conversations/{id}/items, /api/v1/health."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import AfterValidator

from taskcell.api.auth import Caller, caller
from taskcell.api.body import JsonBodyRoute
from taskcell.api.deps import SafeParam, engine_of
from taskcell.api.envelope import ApiError, Envelope, ok
from taskcell.api.routes_tasks import ERRORS
from taskcell.api.schemas import AgentOut, HealthOut, ItemPage, ProcessOut
from taskcell.domain.text import check_text
from taskcell.engine.engine import Engine
from taskcell.stores.cursor import bind_cursor, unbind_cursor

router = APIRouter(prefix="/api/v1", responses=ERRORS, route_class=JsonBodyRoute)

CallerDep = Annotated[Caller, Depends(caller)]
EngineDep = Annotated[Engine, Depends(engine_of)]


@router.get("/agents", response_model=Envelope[list[AgentOut]], tags=["agents"])
async def list_agents(_: CallerDep, engine: EngineDep) -> JSONResponse:
    """Registered agents: name, description, skills, url (or "local"), reachable."""
    infos = await engine.agents()
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
    # Conversation ids are per user: a user sees their own conversation with this id, an
    # admin every user's.
    user_id = None if who.is_admin else who.user_id
    if not await engine.has_conversation(conversation_id, user_id=user_id):
        raise ApiError(404, f"conversation {conversation_id} not found")
    scope = "items " + json.dumps(conversation_id, ensure_ascii=True)
    store_cursor = unbind_cursor(cursor, scope)
    page = await engine.list_items(
        conversation_id, user_id=user_id, limit=limit, cursor=store_cursor
    )
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
    """Liveness: the store answers (within about a second, whatever it does), and the
    scheduler and event log writer run; which processes serve the database (a heartbeat within
    two lease lengths). 503 with ``degraded`` and the reason while the store is unavailable
    (the service waits the outage out); 503 with ``failing`` if a background loop died."""
    health = await engine.health()
    processes = [ProcessOut(**asdict(p)).model_dump(mode="json") for p in health.processes]
    status = health.status
    body = {
        "status": status,
        "store": health.store,
        "scheduler": health.scheduler,
        "event_log": health.event_log,
        "problem": health.problem,
        "process_id": engine.owner,
        "processes": processes,
    }
    if status == "ok":
        return ok(body)
    return JSONResponse({"code": 503, "msg": status, "data": body}, status_code=503)
