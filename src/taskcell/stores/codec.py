"""Turning models into SQL row values and back, shared by the SQL stores.

Values are encoded per dialect, named explicitly (:data:`Dialect`):

- ``"sqlite"`` (the default): datetimes as UTC ISO 8601 text of fixed width (microseconds,
  "+00:00"), so text order is time order; booleans as 0/1; JSON fields as compact JSON text.
- ``"postgres"`` (asyncpg): datetimes as aware ``datetime`` objects in UTC (TIMESTAMPTZ),
  booleans as ``bool``, JSON fields as compact JSON text (JSONB columns, whose default asyncpg
  codec sends and answers JSON text).

Rows come back from either: :func:`task_from_row` and :func:`run_from_row` accept ISO text or
aware datetimes, and JSON as text or decoded values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from taskcell.abc import ProcessInfo
from taskcell.domain.events import ConversationItem, Event, EventType, Role
from taskcell.domain.models import Run, RunStatus, ScheduleConfig, Task, TaskPattern
from taskcell.domain.state_machine import TaskStatus

TASK_COLUMNS: tuple[str, ...] = (
    "task_id",
    "title",
    "query",
    "conversation_id",
    "thread_id",
    "user_id",
    "agent_name",
    "status",
    "pattern",
    "schedule_config",
    "paused",
    "next_run_at",
    "attempt",
    "max_attempts",
    "remote_task_ids",
    "handoff_from_super_agent",
    "created_at",
    "started_at",
    "completed_at",
    "updated_at",
    "error_message",
    "metadata",
)

#: Which SQL driver a value is encoded for.
Dialect = Literal["sqlite", "postgres"]

RUN_COLUMNS: tuple[str, ...] = (
    "run_id",
    "task_id",
    "attempt",
    "scheduled_for",
    "started_at",
    "finished_at",
    "status",
    "error",
    "result",
    "owner",
    "lease_expires_at",
    "created_at",
    "epoch",
    "closed_by",
)

_DATETIME_FIELDS = frozenset(
    {
        "next_run_at",
        "created_at",
        "started_at",
        "completed_at",
        "updated_at",
        "scheduled_for",
        "finished_at",
        "lease_expires_at",
    }
)


def ts(value: datetime | None) -> str | None:
    """A datetime as stored text (UTC, fixed width); None stays None."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; give a UTC offset")
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")


def from_ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def utc(value: datetime | None) -> datetime | None:
    """A datetime as an asyncpg TIMESTAMPTZ argument (aware, UTC); None stays None."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetimes are not stored; give a UTC offset")
    return value.astimezone(UTC)


_EMPTY_JSON: dict[type, str] = {list: "[]", dict: "{}"}


def _dumps(value: Any) -> str:
    if not value and type(value) in _EMPTY_JSON:
        return _EMPTY_JSON[type(value)]  # most tasks: no metadata, no remote tasks yet
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def encode_field(name: str, value: Any, *, dialect: Dialect = "sqlite") -> Any:
    """One task or run field as its SQL value in ``dialect`` (see the module docstring)."""
    if name in _DATETIME_FIELDS:
        return utc(value) if dialect == "postgres" else ts(value)
    if name in ("remote_task_ids", "metadata"):
        return _dumps(value)
    if name == "schedule_config":
        if value is None:
            return None
        config = value if isinstance(value, ScheduleConfig) else ScheduleConfig(**value)
        return _dumps(config.model_dump())
    if name in ("paused", "handoff_from_super_agent"):
        return bool(value) if dialect == "postgres" else int(bool(value))
    return value


_ENCODED_FIELDS = frozenset(
    {"remote_task_ids", "metadata", "schedule_config", "paused", "handoff_from_super_agent"}
)

#: Each task column, and whether ``encode_field`` passes its SQLite value through unchanged.
_SQLITE_TASK_PLAIN: tuple[tuple[str, bool], ...] = tuple(
    (name, name not in _DATETIME_FIELDS and name not in _ENCODED_FIELDS) for name in TASK_COLUMNS
)


def task_values(task: Task, *, dialect: Dialect = "sqlite") -> tuple[Any, ...]:
    if dialect != "sqlite":
        return tuple(
            encode_field(name, getattr(task, name), dialect=dialect) for name in TASK_COLUMNS
        )
    # The hot path of every task write: read the fields directly, encode only those that need it.
    fields = task.__dict__
    return tuple(
        fields[name] if plain else encode_field(name, fields[name])
        for name, plain in _SQLITE_TASK_PLAIN
    )


def run_values(run: Run, *, dialect: Dialect = "sqlite") -> tuple[Any, ...]:
    return tuple(encode_field(name, getattr(run, name), dialect=dialect) for name in RUN_COLUMNS)


def task_from_row(row: Sequence[Any]) -> Task:
    """A task from a row in :data:`TASK_COLUMNS` order (trusted data: no re-validation)."""
    schedule = row[9]
    return Task.model_construct(
        task_id=row[0],
        title=row[1],
        query=row[2],
        conversation_id=row[3],
        thread_id=row[4],
        user_id=row[5],
        agent_name=row[6],
        status=TaskStatus(row[7]),
        pattern=TaskPattern(row[8]),
        schedule_config=(
            ScheduleConfig.model_construct(**json.loads(schedule)) if schedule else None
        ),
        paused=bool(row[10]),
        next_run_at=_dt(row[11]),
        attempt=row[12],
        max_attempts=row[13],
        remote_task_ids=_json(row[14]),
        handoff_from_super_agent=bool(row[15]),
        created_at=_required_dt(row[16]),
        started_at=_dt(row[17]),
        completed_at=_dt(row[18]),
        updated_at=_required_dt(row[19]),
        error_message=row[20],
        metadata=_json(row[21]),
    )


def run_from_row(row: Sequence[Any]) -> Run:
    return Run.model_construct(
        run_id=row[0],
        task_id=row[1],
        attempt=row[2],
        scheduled_for=_dt(row[3]),
        started_at=_dt(row[4]),
        finished_at=_dt(row[5]),
        status=RunStatus(row[6]),
        error=row[7],
        result=row[8],
        owner=row[9],
        lease_expires_at=_dt(row[10]),
        created_at=_required_dt(row[11]),
        epoch=row[12],
        closed_by=row[13],
    )


def _dt(value: Any) -> datetime | None:
    """A stored datetime: text (SQLite) or an aware datetime (PostgreSQL)."""
    if value is None or isinstance(value, datetime):
        return value.astimezone(UTC) if isinstance(value, datetime) else None
    return datetime.fromisoformat(value)


def _required_dt(value: Any) -> datetime:
    moment = _dt(value)
    if moment is None:
        raise ValueError("a required datetime column is NULL")
    return moment


def process_from_row(row: Sequence[Any]) -> ProcessInfo:
    """A process record from (process_id, started_at, heartbeat_at)."""
    return ProcessInfo(row[0], _required_dt(row[1]), _required_dt(row[2]))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def encode_changes(changes: Mapping[str, Any], *, dialect: Dialect = "sqlite") -> dict[str, Any]:
    return {name: encode_field(name, value, dialect=dialect) for name, value in changes.items()}


ITEM_COLUMNS: tuple[str, ...] = (
    "item_id",
    "conversation_id",
    "thread_id",
    "task_id",
    "run_id",
    "role",
    "event",
    "agent_name",
    "component_type",
    "payload",
    "metadata",
    "created_at",
    "updated_at",
)


def event_body(event: Event) -> str:
    """An event's stored body: its docs/api.md JSON, compact."""
    return event.to_json()


def event_from_body(body: str | dict[str, Any]) -> Event:
    return Event.from_dict(json.loads(body) if isinstance(body, str) else body)


def item_values(item: ConversationItem, dialect: Dialect = "sqlite") -> tuple[Any, ...]:
    when = (
        (ts(item.created_at), ts(item.updated_at))
        if dialect == "sqlite"
        else (utc(item.created_at), utc(item.updated_at))
    )
    return (
        item.item_id,
        item.conversation_id,
        item.thread_id,
        item.task_id,
        item.run_id,
        item.role.value,
        item.event.value,
        item.agent_name,
        item.component_type,
        None if item.payload is None else _dumps(item.payload),
        _dumps(item.metadata),
        *when,
    )


def item_from_row(row: Sequence[Any]) -> ConversationItem:
    return ConversationItem(
        item_id=row[0],
        conversation_id=row[1],
        thread_id=row[2],
        task_id=row[3],
        run_id=row[4],
        role=Role(row[5]),
        event=EventType(row[6]),
        agent_name=row[7],
        component_type=row[8],
        payload=_json(row[9]),
        metadata=_json(row[10]) or {},
        created_at=_required_dt(row[11]),
        updated_at=_required_dt(row[12]),
    )
