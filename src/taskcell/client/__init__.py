"""The public Python client of taskcell's HTTP API (docs/client.md).

:class:`Client` (blocking) and :class:`AsyncClient` (asyncio) cover every endpoint of
docs/api.md with typed models (:mod:`taskcell.client.models`), raise
:mod:`taskcell.client.errors` for error answers, page lists as iterators
(``client.tasks.iter(status="running")``) and follow a task's events with :meth:`Client.watch`,
which reconnects with ``Last-Event-ID`` and ends with the task.
"""

from taskcell.client.aio import AsyncClient
from taskcell.client.errors import (
    ApiError,
    Conflict,
    ConnectionFailed,
    FieldError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ServerError,
    ServiceUnavailable,
    TaskcellError,
    TaskNotFound,
    Unauthorized,
    ValidationFailed,
)
from taskcell.client.models import (
    Agent,
    Backfill,
    BulkOutcome,
    CancelResult,
    ConversationItem,
    DeleteResult,
    FireTime,
    Health,
    Page,
    Run,
    ScheduleConfig,
    Task,
    TaskEvent,
    Upcoming,
    Webhook,
    WebhookCreated,
    WebhookDeleted,
    WebhookDelivery,
    WebhookSecret,
)
from taskcell.client.sync import Client

__all__ = [
    "Agent",
    "ApiError",
    "AsyncClient",
    "Backfill",
    "BulkOutcome",
    "CancelResult",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "ConversationItem",
    "DeleteResult",
    "FieldError",
    "FireTime",
    "Forbidden",
    "Health",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "Run",
    "ScheduleConfig",
    "ServerError",
    "ServiceUnavailable",
    "Task",
    "TaskEvent",
    "TaskNotFound",
    "TaskcellError",
    "Unauthorized",
    "Upcoming",
    "ValidationFailed",
    "Webhook",
    "WebhookCreated",
    "WebhookDeleted",
    "WebhookDelivery",
    "WebhookSecret",
]
