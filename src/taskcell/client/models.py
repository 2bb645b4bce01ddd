"""The objects the client returns: the server's own models where they are the contract.

:class:`Task`, :class:`Run` and :class:`ScheduleConfig` are the domain models the server
stores and answers (docs/api.md, "Objects"). The client's :class:`Task` and :class:`Run` are
subclasses that ignore fields they do not know, so a client keeps working against a newer server
that answers more. :class:`Agent`, :class:`CancelResult`, :class:`DeleteResult`,
:class:`ConversationItem` and :class:`Health` are the API's answer bodies. :class:`TaskEvent`
is one event of a task's stream.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from taskcell.api.schemas import (
    AgentOut,
    BackfillOut,
    BulkOut,
    BulkResult,
    CancelOut,
    DeleteOut,
    FireTime,
    HealthOut,
    ItemOut,
    ProcessOut,
    UpcomingOut,
)
from taskcell.domain.events import EventType
from taskcell.domain.models import Run as _Run
from taskcell.domain.models import RunStatus, ScheduleConfig, TaskPattern
from taskcell.domain.models import Task as _Task
from taskcell.domain.state_machine import FINAL_STATUSES, TaskStatus

__all__ = [
    "FINAL_STATUSES",
    "Agent",
    "Backfill",
    "BulkOutcome",
    "BulkResult",
    "CancelResult",
    "ConversationItem",
    "DeleteResult",
    "EventData",
    "EventType",
    "FireTime",
    "Health",
    "Page",
    "Process",
    "Run",
    "RunStatus",
    "ScheduleConfig",
    "Task",
    "TaskEvent",
    "TaskPattern",
    "TaskStatus",
    "Upcoming",
    "Webhook",
    "WebhookCreated",
    "WebhookDeleted",
    "WebhookDelivery",
    "WebhookSecret",
]

Agent = AgentOut
#: ``POST /tasks/{id}/backfill``: the runs stored for the range, and the occurrences already run.
Backfill = BackfillOut
CancelResult = CancelOut
DeleteResult = DeleteOut
ConversationItem = ItemOut
Health = HealthOut
Process = ProcessOut
#: ``POST /tasks:bulk``: the action, a result per task, and the cursor to go on with.
BulkOutcome = BulkOut
#: ``GET /tasks/{id}/upcoming``: the schedule in words, its zone, and the next fire times.
Upcoming = UpcomingOut


class Task(_Task):
    """A task as the server answers it (docs/api.md, "Task"); unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")


class Run(_Run):
    """A run as the server answers it (docs/api.md, "Run"); unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")


ItemT = TypeVar("ItemT", bound=BaseModel)


class Page(BaseModel, Generic[ItemT]):
    """One page of a list: its ``items`` and the cursor of the next page (None on the last)."""

    items: list[ItemT]
    next_cursor: str | None = None


class EventData(BaseModel):
    """An event's body: where it belongs (task, run, history item) and its ``payload``."""

    model_config = ConfigDict(extra="allow")

    conversation_id: str = ""
    thread_id: str = ""
    task_id: str = ""
    run_id: str | None = None
    item_id: str = ""
    role: str = ""
    agent_name: str | None = None
    payload: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class TaskEvent(BaseModel):
    """One event of a task's stream (docs/api.md, "Events").

    ``seq`` numbers the task's events 1, 2, 3, ... with no gaps; ``event`` is one of
    :class:`EventType`'s values (kept a string, so a newer server's types still arrive).
    """

    model_config = ConfigDict(extra="allow")

    seq: int
    event: str
    data: EventData = Field(default_factory=EventData)
    created_at: datetime | None = None

    @property
    def content(self) -> str | None:
        """The payload's ``content`` when it is text (a message, a chunk, a reason), else None."""
        payload = self.data.payload or {}
        value = payload.get("content")
        return value if isinstance(value, str) else None

    @property
    def component_type(self) -> str | None:
        """For a ``component_generator`` event, its component type."""
        payload = self.data.payload or {}
        value = payload.get("component_type")
        return value if isinstance(value, str) else None


class Webhook(BaseModel):
    """A webhook subscription (docs/api.md, "Webhooks"), without its secret."""

    model_config = ConfigDict(extra="ignore")

    webhook_id: str
    user_id: str
    url: str
    event_types: list[str]
    task_id: str | None = None
    agent_name: str | None = None
    description: str = ""
    created_at: datetime | None = None
    failing_since: datetime | None = None
    disabled_at: datetime | None = None
    disabled_reason: str | None = None


class WebhookCreated(Webhook):
    """``POST /webhooks``: the subscription and its signing ``secret``, answered this once."""

    secret: str


class WebhookSecret(BaseModel):
    """``POST /webhooks/{id}/rotate``: the new signing ``secret``, answered this once."""

    model_config = ConfigDict(extra="ignore")

    webhook_id: str
    secret: str


class WebhookDeleted(BaseModel):
    """``DELETE /webhooks/{id}``."""

    model_config = ConfigDict(extra="ignore")

    webhook_id: str
    deleted: bool


class WebhookDelivery(BaseModel):
    """One delivery of an event to a subscription: its ``status`` (``pending``, ``sending``,
    ``delivered``, ``failed``), attempts and the last answer."""

    model_config = ConfigDict(extra="ignore")

    delivery_id: str
    webhook_id: str
    task_id: str
    seq: int
    event_type: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_response: str | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
