"""/api/v1/webhooks: subscriptions (a user's own; an admin's for anyone's), their secrets
(answered once, rotatable), their deliveries, and sending one again."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from taskcell.api.auth import Caller, caller
from taskcell.api.body import JsonBodyRoute
from taskcell.api.deps import SafeParam, engine_of
from taskcell.api.envelope import ApiError, Envelope, ok
from taskcell.api.routes_tasks import ERRORS
from taskcell.domain.models import MAX_WEBHOOK_URL_CHARS
from taskcell.domain.text import SafeText
from taskcell.domain.webhooks import ALL_EVENTS, DeliveryStatus, Webhook
from taskcell.engine.engine import Engine
from taskcell.webhooks.service import WebhookError

router = APIRouter(prefix="/api/v1", tags=["webhooks"], responses=ERRORS, route_class=JsonBodyRoute)

CallerDep = Annotated[Caller, Depends(caller)]
EngineDep = Annotated[Engine, Depends(engine_of)]
MAX_EVENT_TYPES = 16


class WebhookCreate(BaseModel):
    """POST /webhooks. Shapes here (422); the URL's safety and the event types are checked
    by the service (422 naming the field)."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[SafeText, Field(min_length=1, max_length=MAX_WEBHOOK_URL_CHARS)]
    event_types: Annotated[list[SafeText], Field(max_length=MAX_EVENT_TYPES)] = [ALL_EVENTS]
    task_id: Annotated[SafeText, Field(min_length=1, max_length=200)] | None = None
    agent_name: Annotated[SafeText, Field(min_length=1, max_length=200)] | None = None
    description: Annotated[SafeText, Field(max_length=500)] = ""


class WebhookOut(BaseModel):
    webhook_id: str
    user_id: str
    url: str
    event_types: list[str]
    task_id: str | None
    agent_name: str | None
    description: str
    created_at: datetime | None
    failing_since: datetime | None
    disabled_at: datetime | None
    disabled_reason: str | None


class WebhookCreated(WebhookOut):
    #: The signing secret (``whsec_...``): answered this once, never again.
    secret: str


class WebhookList(BaseModel):
    items: list[WebhookOut]


class SecretOut(BaseModel):
    webhook_id: str
    secret: str


class WebhookDeleted(BaseModel):
    webhook_id: str
    deleted: bool


class DeliveryOut(BaseModel):
    delivery_id: str
    webhook_id: str
    task_id: str
    seq: int
    event_type: str
    status: Literal["pending", "sending", "delivered", "failed"]
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_response: str | None
    last_error: str | None
    delivered_at: datetime | None


class DeliveryList(BaseModel):
    items: list[DeliveryOut]


def unprocessable(exc: WebhookError) -> ApiError:
    return ApiError(422, str(exc), [{"field": exc.field, "message": exc.message}])


async def _visible(engine: Engine, who: Caller, webhook_id: str) -> Webhook:
    """The subscription, or 404 when it does not exist or is someone else's."""
    webhook = await engine.webhooks.get(webhook_id)
    if webhook is None or not (who.is_admin or webhook.user_id == who.user_id):
        raise ApiError(404, f"webhook {webhook_id} not found")
    return webhook


@router.post("/webhooks", status_code=201, response_model=Envelope[WebhookCreated])
async def create_webhook(body: WebhookCreate, who: CallerDep, engine: EngineDep) -> JSONResponse:
    """Subscribe a URL to events of the caller's tasks; the secret is answered this once."""
    try:
        webhook = await engine.webhooks.create(
            user_id=who.user_id,
            url=body.url,
            event_types=body.event_types,
            task_id=body.task_id,
            agent_name=body.agent_name,
            description=body.description,
        )
    except WebhookError as exc:
        raise unprocessable(exc) from None
    return ok({**webhook.to_public(), "secret": webhook.secret}, 201)


@router.get("/webhooks", response_model=Envelope[WebhookList])
async def list_webhooks(
    who: CallerDep, engine: EngineDep, user_id: SafeParam | None = None
) -> JSONResponse:
    """The caller's subscriptions (an admin: everyone's, or ``user_id``'s), oldest first."""
    if user_id is not None and not who.is_admin:
        raise ApiError(403, "user_id: only an admin may list another user's webhooks")
    owner = user_id if who.is_admin else who.user_id
    found = await engine.webhooks.list_for(user_id=owner)
    return ok({"items": [w.to_public() for w in found]})


@router.get("/webhooks/{webhook_id}", response_model=Envelope[WebhookOut])
async def get_webhook(webhook_id: SafeParam, who: CallerDep, engine: EngineDep) -> JSONResponse:
    return ok((await _visible(engine, who, webhook_id)).to_public())


@router.delete("/webhooks/{webhook_id}", response_model=Envelope[WebhookDeleted])
async def delete_webhook(webhook_id: SafeParam, who: CallerDep, engine: EngineDep) -> JSONResponse:
    """Remove a subscription and its deliveries (nothing more is sent)."""
    await _visible(engine, who, webhook_id)
    deleted = await engine.webhooks.delete(webhook_id)
    return ok({"webhook_id": webhook_id, "deleted": deleted})


@router.post("/webhooks/{webhook_id}/rotate", response_model=Envelope[SecretOut])
async def rotate_secret(webhook_id: SafeParam, who: CallerDep, engine: EngineDep) -> JSONResponse:
    """A new signing secret, answered this once; attempts from now on are signed with it."""
    await _visible(engine, who, webhook_id)
    secret = await engine.webhooks.rotate(webhook_id)
    if secret is None:
        raise ApiError(404, f"webhook {webhook_id} not found")
    return ok({"webhook_id": webhook_id, "secret": secret})


@router.get("/webhooks/{webhook_id}/deliveries", response_model=Envelope[DeliveryList])
async def list_deliveries(
    webhook_id: SafeParam,
    who: CallerDep,
    engine: EngineDep,
    status: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JSONResponse:
    """The subscription's deliveries, newest first: status, attempts, the last answer's code
    and start, the next attempt."""
    await _visible(engine, who, webhook_id)
    found = await engine.webhooks.deliveries(webhook_id, limit=limit, status=status)
    return ok({"items": [d.to_public() for d in found]})


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    response_model=Envelope[DeliveryOut],
)
async def redeliver(
    webhook_id: SafeParam, delivery_id: SafeParam, who: CallerDep, engine: EngineDep
) -> JSONResponse:
    """Send a delivery again now (same ``webhook-id``), with a new round of retries; 409
    while it is being sent."""
    await _visible(engine, who, webhook_id)
    delivery = await engine.webhooks.redeliver(webhook_id, delivery_id)
    if delivery is None:
        if not any(
            d.delivery_id == delivery_id
            for d in await engine.webhooks.deliveries(webhook_id, limit=500)
        ):
            raise ApiError(404, f"delivery {delivery_id} not found")
        raise ApiError(409, f"delivery {delivery_id} is being sent now; try again shortly")
    return ok(delivery.to_public())
