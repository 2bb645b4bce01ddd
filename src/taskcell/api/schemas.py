"""Request and answer bodies of the HTTP API (they make the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, create_model

from taskcell.domain.models import EDITABLE_FIELDS, Run, Task, TaskPattern
from taskcell.domain.state_machine import TaskStatus
from taskcell.domain.text import SafeText

#: Shape only: the domain checks the value (else 400). Strict: ``true`` and ``"5"`` are not
#: integers (422).
WholeNumber = StrictInt


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interval_minutes: WholeNumber | None = None
    daily_time: SafeText | None = None
    cron: SafeText | None = None
    timezone: SafeText | None = None


class TaskCreate(BaseModel):
    """POST /tasks. Only shapes are checked here (else 422); values by the domain (else 400)."""

    model_config = ConfigDict(extra="forbid")

    query: SafeText
    agent_name: SafeText
    title: SafeText | None = None
    conversation_id: SafeText | None = None
    thread_id: SafeText | None = None
    pattern: Literal["once", "recurring"] = "once"
    schedule_config: ScheduleIn | None = None
    run_immediately: StrictBool = True
    max_attempts: WholeNumber = 3
    #: Checked by the domain (size first, then text and depth): 400 naming ``metadata``.
    metadata: dict[str, Any] | None = None
    #: A run still going this many seconds after its start is stopped and recorded failed
    #: (1..604,800, checked by the domain: 400 naming ``run_timeout_seconds``).
    run_timeout_seconds: WholeNumber | None = None
    #: A recurring task's policies (docs/api.md, "Overlap and catch-up"); the domain checks
    #: the values (400 naming the field).
    overlap: SafeText | None = None
    catchup: SafeText | None = None
    catchup_window_seconds: WholeNumber | None = None
    #: Where this task's events go (a webhook subscription to this task, all event types);
    #: its signing secret is answered once, as ``webhook_secret``. Checked like a webhook's
    #: URL (else 422 naming ``webhook_url``).
    webhook_url: SafeText | None = None


class TaskCreated(Task):
    """A created task; ``webhook_secret`` is the signing secret of its ``webhook_url`` (given
    this once)."""

    webhook_secret: str | None = None


def _patch_field(name: str) -> Any:
    """An editable field in a patch: its shape at creation (else the task's), optional."""
    info = TaskCreate.model_fields.get(name) or Task.model_fields[name]
    shape = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
    return (shape | None, None)  # type: ignore[operator]


#: PATCH /tasks/{id}: any of the editable fields (:data:`EDITABLE_FIELDS`), each optional;
#: only those given change. Shapes are checked here (else 422: an unknown or read-only field
#: too), values by the domain (else 400).
TaskPatch: type[BaseModel] = create_model(
    "TaskPatch",
    __config__=ConfigDict(extra="forbid"),
    __doc__="The fields to change; the others are left as they are.",
    **{name: _patch_field(name) for name in EDITABLE_FIELDS},
)


class StreamCreate(BaseModel):
    """POST /agents/stream."""

    model_config = ConfigDict(extra="forbid")

    query: SafeText
    agent_name: SafeText
    conversation_id: SafeText | None = None
    pattern: Literal["once", "recurring"] = "once"
    schedule_config: ScheduleIn | None = None
    title: SafeText | None = None


class PauseIn(BaseModel):
    """POST /tasks/{id}/pause (the body is optional)."""

    model_config = ConfigDict(extra="forbid")

    #: Why the schedule is paused: one line, at most 500 characters (400 naming ``note``).
    note: SafeText | None = None


class BulkFilter(BaseModel):
    """The tasks a bulk action chooses: the filters of ``GET /tasks`` (AND-ed; none: all of
    the caller's tasks). ``user_id`` is an admin's only (403 for anyone else)."""

    model_config = ConfigDict(extra="forbid")

    status: TaskStatus | None = None
    pattern: TaskPattern | None = None
    agent_name: SafeText | None = None
    conversation_id: SafeText | None = None
    user_id: SafeText | None = None


class BulkIn(BaseModel):
    """POST /tasks:bulk: an action and exactly one of ``ids`` and ``filter``."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["pause", "resume", "cancel", "delete"]
    #: 1 to 1,000 task ids (each acted on once, in the order given).
    ids: list[SafeText] | None = None
    filter: BulkFilter | None = None
    #: For ``pause``: the note every paused task gets (as ``POST /tasks/{id}/pause``).
    note: SafeText | None = None
    #: With ``filter``: act on at most this many tasks (1..1,000, default 1,000).
    limit: WholeNumber | None = None
    #: With ``filter``: go on after the tasks of an earlier answer (its ``next_cursor``).
    cursor: SafeText | None = None


class BulkResult(BaseModel):
    task_id: str
    ok: bool
    #: 0 when it worked; else the status its single endpoint would answer (404, 409).
    code: int
    message: str


class BulkOut(BaseModel):
    action: str
    succeeded: int
    failed: int
    results: list[BulkResult]
    #: With ``filter``: more tasks match; send it back as ``cursor`` to go on. Else null.
    next_cursor: str | None = None


class BackfillIn(BaseModel):
    """POST /tasks/{id}/backfill: the occurrences of ``[start, end)`` (aware datetimes)."""

    model_config = ConfigDict(extra="forbid")

    start: datetime
    end: datetime


class BackfillRun(BaseModel):
    run_id: str
    scheduled_for: datetime | None
    #: running (started now), queued (waits for the run in progress), skipped or cancelled
    #: (as the task's overlap policy decided).
    status: str


class BackfillOut(BaseModel):
    task_id: str
    #: How many occurrences of the range got a run now.
    queued: int
    #: Those runs, in order.
    runs: list[BackfillRun]
    #: The occurrences of the range that had a run already (not run again).
    already_run: list[datetime]


class InputIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: SafeText


class TaskPage(BaseModel):
    items: list[Task]
    next_cursor: str | None = None


class RunPage(BaseModel):
    items: list[Run]
    next_cursor: str | None = None


class CancelOut(BaseModel):
    task_id: str
    success: bool
    updated_component_ids: list[str]


class FireTime(BaseModel):
    #: The fire time in UTC.
    at: datetime
    #: The same instant in the schedule's zone, with its offset ("2026-03-29T03:00:00+02:00").
    local: datetime


class UpcomingOut(BaseModel):
    task_id: str
    #: The zone of ``local`` (the schedule's, or the server's for an interval without one).
    timezone: str
    #: In words ("at 09:00 on Monday through Friday (Europe/Berlin)").
    schedule: str
    paused: bool
    items: list[FireTime]


class DeleteOut(BaseModel):
    task_id: str
    deleted: bool


class AgentOut(BaseModel):
    name: str
    description: str
    skills: list[str]
    url: str
    reachable: bool


class ItemOut(BaseModel):
    item_id: str
    conversation_id: str
    thread_id: str
    task_id: str | None
    run_id: str | None
    role: str
    event: str
    agent_name: str | None
    component_type: str | None
    payload: dict[str, Any] | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ItemPage(BaseModel):
    items: list[ItemOut]
    next_cursor: str | None = None


class ProcessOut(BaseModel):
    process_id: str
    started_at: datetime
    heartbeat_at: datetime


class HealthOut(BaseModel):
    #: ok; degraded: the store is unavailable now (an outage: unreachable, disk full, file
    #: replaced), the service waits it out; failing: a background loop died (a bug).
    status: Literal["ok", "degraded", "failing"]
    store: bool
    scheduler: bool
    event_log: bool
    problem: str | None = None
    #: This process, as it is named in run ownership ("host:pid:token").
    process_id: str
    #: The processes serving this database with a recent heartbeat (a cluster shows them all).
    processes: list[ProcessOut]


LIMIT = Field(default=50, ge=1, le=500)
