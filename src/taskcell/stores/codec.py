"""Turning models into SQL row values and back, shared by the SQL stores.

Values are encoded per dialect, named explicitly (:data:`Dialect`):

- ``"sqlite"`` (the default): datetimes as UTC ISO 8601 text of fixed width (microseconds,
  "+00:00"), so text order is time order; booleans as 0/1; JSON fields as compact JSON text.
- ``"postgres"`` (asyncpg): datetimes as aware ``datetime`` objects in UTC (TIMESTAMPTZ),
  booleans as ``bool``, JSON fields as compact JSON text (JSONB columns, whose default asyncpg
  codec sends and answers JSON text).

Rows come back from either, and are read by column name (:class:`Row`: ``sqlite3.Row`` and
``asyncpg.Record`` both answer ``row["status"]``), never by position: :func:`task_from_row` and
:func:`run_from_row` accept ISO text or aware datetimes, and JSON as text or decoded values.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from taskcell.abc import ProcessInfo
from taskcell.domain.clock import as_utc
from taskcell.domain.events import ConversationItem, Event, EventType, Role
from taskcell.domain.models import Run, RunStatus, ScheduleConfig, Task, TaskPattern
from taskcell.domain.policies import CatchupPolicy, OverlapPolicy
from taskcell.domain.state_machine import TaskStatus, Write, effects_of
from taskcell.domain.webhooks import Delivery, DeliveryStatus, Webhook

logger = logging.getLogger(__name__)


class Row(Protocol):
    """A row as both drivers answer it: each column's value by its name."""

    def __getitem__(self, name: str, /) -> Any: ...


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
    "pause_note",
    "run_timeout_seconds",
    "webhook_url",
    "version",
    "overlap",
    "catchup",
    "catchup_window_seconds",
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
    "deadline_at",
    "version",
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
        "deadline_at",
    }
)


def ts(value: datetime | None) -> str | None:
    """A datetime as stored text (UTC, fixed width); None stays None."""
    if value is None:
        return None
    return as_utc(value, "a stored datetime").isoformat(timespec="microseconds")


def from_ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def utc(value: datetime | None) -> datetime | None:
    """A datetime as an asyncpg TIMESTAMPTZ argument (aware, UTC); None stays None."""
    return None if value is None else as_utc(value, "a stored datetime")


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
    if name == "metadata_keys":
        return _dumps(dict(value))
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


class UndecodableRow(ValueError):
    """A stored task row that cannot be turned into a task (damaged by hand, or by a bug).

    ``problems`` maps each column that failed to why; ``column`` is the first of them.
    """

    def __init__(self, task_id: str, problems: Mapping[str, str]) -> None:
        self.task_id = task_id
        self.problems = dict(problems)
        self.column = next(iter(self.problems))
        described = "; ".join(f"{name}: {why}" for name, why in self.problems.items())
        #: Why, for the task's ``error_message``.
        self.reason = f"{UNDECODABLE_PREFIX} ({described})"
        super().__init__(f"the stored task {task_id} cannot be read ({described})")


#: The start of the ``error_message`` of a task whose stored row could not be decoded.
UNDECODABLE_PREFIX = "The stored task could not be read"


def task_from_row(row: Row) -> Task:
    """A task from a row with the :data:`TASK_COLUMNS` (trusted data: no re-validation).

    Raises :class:`UndecodableRow`, naming the task and each column that failed, for a row
    that cannot be decoded (JSON that does not parse or has the wrong shape, an unknown status
    or pattern, a datetime that does not parse or has no offset).
    """
    try:
        return _task_from_row(row)
    except (ValueError, TypeError, KeyError, AttributeError):
        pass
    problems = _problems(row)
    if not problems:  # pragma: no cover - the fast path failed, so some column must
        problems = {"row": "it does not decode"}
    raise UndecodableRow(str(row["task_id"]), problems)


def salvaged_task(row: Row) -> Task:
    """A task from a row that may be undecodable, for showing to its user: each column that
    fails to decode is cleared (its empty value; an unknown status reads ``failed``, an
    unknown pattern ``once``) and ``error_message`` says which and why."""
    try:
        return task_from_row(row)
    except UndecodableRow as error:
        exc = error
    problems = exc.problems
    fields: dict[str, Any] = {}
    for name, (decode, empty) in _DECODERS.items():
        fields[name] = empty() if name in problems else decode(row[name])
    for name in ("created_at", "updated_at"):
        if fields[name] is None:
            fields[name] = (
                fields["updated_at"] or fields["created_at"] or datetime.fromtimestamp(0, UTC)
            )
    return Task.model_construct(
        **_plain_task_fields(row),
        error_message=f"{exc.reason}; those fields are shown cleared",
        **fields,
    )


def decoded_tasks(rows: Iterable[Row], *, where: str) -> tuple[list[Task], list[UndecodableRow]]:
    """The tasks of ``rows`` that decode, and the errors of those that do not, each logged
    (ERROR, naming the task and the column) and left out: one damaged row never fails a list
    or a claim (``where`` names the operation in the log)."""
    tasks: list[Task] = []
    bad: list[UndecodableRow] = []
    for row in rows:
        try:
            tasks.append(task_from_row(row))
        except UndecodableRow as exc:
            logger.error(
                "stored task row cannot be decoded: skipped",
                extra={
                    "task_id": exc.task_id,
                    "column": exc.column,
                    "problems": exc.problems,
                    "where": where,
                },
            )
            bad.append(exc)
    return tasks, bad


def row_position(id_column: str) -> Callable[[Row], tuple[datetime, str] | None]:
    """A row's keyset position, (created_at, ``id_column``), for a page's cursor: None when
    it does not decode (a damaged row)."""

    def position(row: Row) -> tuple[datetime, str] | None:
        try:
            return _required_dt(row["created_at"]), str(row[id_column])
        except (ValueError, TypeError):
            return None

    return position


def _plain_task_fields(row: Row) -> dict[str, Any]:
    """The task columns that need no decoding (text and numbers; booleans as 0/1 or bool)."""
    return {
        "task_id": row["task_id"],
        "title": row["title"],
        "query": row["query"],
        "conversation_id": row["conversation_id"],
        "thread_id": row["thread_id"],
        "user_id": row["user_id"],
        "agent_name": row["agent_name"],
        "paused": bool(row["paused"]),
        "attempt": row["attempt"],
        "max_attempts": row["max_attempts"],
        "handoff_from_super_agent": bool(row["handoff_from_super_agent"]),
        "pause_note": row["pause_note"],
        "run_timeout_seconds": row["run_timeout_seconds"],
        "webhook_url": row["webhook_url"],
        "version": row["version"],
        "catchup_window_seconds": row["catchup_window_seconds"],
    }


def _task_from_row(row: Row) -> Task:
    schedule = _json(row["schedule_config"])
    remote_task_ids = _json(row["remote_task_ids"])
    metadata = _json(row["metadata"])
    if type(remote_task_ids) is not list or type(metadata) is not dict:
        raise TypeError("remote_task_ids must be a JSON list and metadata a JSON object")
    return Task.model_construct(
        **_plain_task_fields(row),
        status=TaskStatus(row["status"]),
        pattern=TaskPattern(row["pattern"]),
        schedule_config=ScheduleConfig.model_construct(**schedule) if schedule else None,
        next_run_at=_dt(row["next_run_at"]),
        remote_task_ids=remote_task_ids,
        created_at=_required_dt(row["created_at"]),
        started_at=_dt(row["started_at"]),
        completed_at=_dt(row["completed_at"]),
        updated_at=_required_dt(row["updated_at"]),
        error_message=row["error_message"],
        metadata=metadata,
        overlap=OverlapPolicy(row["overlap"]),
        catchup=CatchupPolicy(row["catchup"]),
    )


def _shaped(kind: type) -> Callable[[Any], Any]:
    def decode(value: Any) -> Any:
        decoded = _json(value)
        if type(decoded) is not kind:
            raise TypeError(f"a JSON {kind.__name__} was expected, found {type(decoded).__name__}")
        return decoded

    return decode


def _schedule(value: Any) -> ScheduleConfig | None:
    decoded = _json(value)
    if not decoded:
        return None
    if type(decoded) is not dict:
        raise TypeError(f"a JSON object was expected, found {type(decoded).__name__}")
    return ScheduleConfig.model_construct(**decoded)


#: Each decoded task column: its decoder, and its cleared value.
_DECODERS: dict[str, tuple[Callable[[Any], Any], Callable[[], Any]]] = {
    "status": (TaskStatus, lambda: TaskStatus.FAILED),
    "pattern": (TaskPattern, lambda: TaskPattern.ONCE),
    "schedule_config": (_schedule, lambda: None),
    "next_run_at": (lambda v: _dt(v), lambda: None),
    "remote_task_ids": (_shaped(list), list),
    "created_at": (lambda v: _required_dt(v), lambda: None),
    "started_at": (lambda v: _dt(v), lambda: None),
    "completed_at": (lambda v: _dt(v), lambda: None),
    "updated_at": (lambda v: _required_dt(v), lambda: None),
    "metadata": (_shaped(dict), dict),
    "overlap": (OverlapPolicy, lambda: OverlapPolicy.SKIP),
    "catchup": (CatchupPolicy, lambda: CatchupPolicy.COALESCE),
}


def _problems(row: Row) -> dict[str, str]:
    """Each column of ``row`` that does not decode, with why."""
    problems = {}
    for name, (decode, _) in _DECODERS.items():
        try:
            decode(row[name])
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            problems[name] = str(exc) or type(exc).__name__
    return problems


def run_from_row(row: Row) -> Run:
    """A run from a row with the :data:`RUN_COLUMNS`."""
    return Run.model_construct(
        run_id=row["run_id"],
        task_id=row["task_id"],
        attempt=row["attempt"],
        scheduled_for=_dt(row["scheduled_for"]),
        started_at=_dt(row["started_at"]),
        finished_at=_dt(row["finished_at"]),
        status=RunStatus(row["status"]),
        error=row["error"],
        result=row["result"],
        owner=row["owner"],
        lease_expires_at=_dt(row["lease_expires_at"]),
        created_at=_required_dt(row["created_at"]),
        epoch=row["epoch"],
        closed_by=row["closed_by"],
        deadline_at=_dt(row["deadline_at"]),
        version=row["version"],
    )


def _dt(value: Any) -> datetime | None:
    """A stored datetime: text (SQLite) or an aware datetime (PostgreSQL)."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return as_utc(moment, "the stored datetime")


def _required_dt(value: Any) -> datetime:
    moment = _dt(value)
    if moment is None:
        raise ValueError("a required datetime column is NULL")
    return moment


def process_from_row(row: Row) -> ProcessInfo:
    """A process record from a row with process_id, started_at and heartbeat_at."""
    return ProcessInfo(
        row["process_id"], _required_dt(row["started_at"]), _required_dt(row["heartbeat_at"])
    )


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


def assignment(name: str, value: str, *, dialect: Dialect = "sqlite") -> str:
    """The SET assignment of a change (``value`` the SQL of its value): ``name = value``, but
    ``metadata_keys`` merges its keys into ``metadata`` (a null value removes its key; see
    :data:`taskcell.stores.rules.MERGED_FIELDS`)."""
    if name != "metadata_keys":
        return f"{name} = {value}"
    if dialect == "sqlite":
        return f"metadata = json_patch(metadata, {value})"
    return (
        "metadata = (metadata - ARRAY(SELECT e.key FROM jsonb_each("
        f"{value}::jsonb) AS e WHERE e.value = 'null'::jsonb)) || jsonb_strip_nulls({value}::jsonb)"
    )


def effect_sql(target: TaskStatus, now: str, *, given: Collection[str] = ()) -> list[str]:
    """The SET assignments of what a transition to ``target`` writes beside the status
    (:func:`~taskcell.domain.state_machine.effects_of`), ``now`` being the SQL of its
    moment. Fields in ``given`` are left out: the caller writes them (its value wins, as
    ``changes`` win over the effects in every store)."""
    return [
        f"{effect.field} = {_effect_value(target, effect.field, now, '')}"
        for effect in effects_of(target)
        if effect.field not in given
    ]


def effect_case_sql(
    condition: str, then: TaskStatus, otherwise: TaskStatus, now: str, *, table: str = "tasks"
) -> list[str]:
    """The SET assignments of the effects of a write that moves each row to ``then`` where
    ``condition`` holds and to ``otherwise`` elsewhere (``table`` qualifies the columns read)."""
    fields = dict.fromkeys(e.field for e in (*effects_of(then), *effects_of(otherwise)))
    assignments = []
    for field in fields:
        when, other = (_effect_value(t, field, now, f"{table}.") for t in (then, otherwise))
        value = when if when == other else f"CASE WHEN {condition} THEN {when} ELSE {other} END"
        assignments.append(f"{field} = {value}")
    return assignments


def _effect_value(target: TaskStatus, field: str, now: str, prefix: str) -> str:
    """The SQL of ``field``'s value after a transition to ``target``."""
    for effect in effects_of(target):
        if effect.field == field:
            if effect.write is Write.CLEAR:
                return "NULL"
            return f"COALESCE({prefix}{field}, {now})" if effect.write is Write.FIRST else now
    return f"{prefix}{field}"


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


def item_from_row(row: Row) -> ConversationItem:
    """A conversation item from a row with the :data:`ITEM_COLUMNS`."""
    return ConversationItem(
        item_id=row["item_id"],
        conversation_id=row["conversation_id"],
        thread_id=row["thread_id"],
        task_id=row["task_id"],
        run_id=row["run_id"],
        role=Role(row["role"]),
        event=EventType(row["event"]),
        agent_name=row["agent_name"],
        component_type=row["component_type"],
        payload=_json(row["payload"]),
        metadata=_json(row["metadata"]) or {},
        created_at=_required_dt(row["created_at"]),
        updated_at=_required_dt(row["updated_at"]),
    )


# -- webhooks (subscriptions and their deliveries) -------------------------------------------

WEBHOOK_COLUMNS: tuple[str, ...] = (
    "webhook_id",
    "user_id",
    "url",
    "event_types",
    "task_id",
    "agent_name",
    "description",
    "secret",
    "created_at",
    "failing_since",
    "disabled_at",
    "disabled_reason",
)
DELIVERY_COLUMNS: tuple[str, ...] = (
    "delivery_id",
    "webhook_id",
    "task_id",
    "seq",
    "event_type",
    "body",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
    "last_attempt_at",
    "last_status_code",
    "last_response",
    "last_error",
    "delivered_at",
)


def _moment(value: datetime | None, dialect: Dialect) -> Any:
    return utc(value) if dialect == "postgres" else ts(value)


def webhook_values(webhook: Webhook, dialect: Dialect = "sqlite") -> tuple[Any, ...]:
    return (
        webhook.webhook_id,
        webhook.user_id,
        webhook.url,
        _dumps(list(webhook.event_types)),
        webhook.task_id,
        webhook.agent_name,
        webhook.description,
        webhook.secret,
        _moment(webhook.created_at, dialect),
        _moment(webhook.failing_since, dialect),
        _moment(webhook.disabled_at, dialect),
        webhook.disabled_reason,
    )


def webhook_from_row(row: Row) -> Webhook:
    """A subscription from a row with the :data:`WEBHOOK_COLUMNS`."""
    return Webhook(
        webhook_id=row["webhook_id"],
        user_id=row["user_id"],
        url=row["url"],
        event_types=list(_json(row["event_types"])),
        task_id=row["task_id"],
        agent_name=row["agent_name"],
        description=row["description"],
        secret=row["secret"],
        created_at=_dt(row["created_at"]),
        failing_since=_dt(row["failing_since"]),
        disabled_at=_dt(row["disabled_at"]),
        disabled_reason=row["disabled_reason"],
    )


def delivery_values(delivery: Delivery, dialect: Dialect = "sqlite") -> tuple[Any, ...]:
    return (
        delivery.delivery_id,
        delivery.webhook_id,
        delivery.task_id,
        delivery.seq,
        delivery.event_type,
        delivery.body,
        delivery.status.value,
        delivery.attempts,
        _moment(delivery.next_attempt_at, dialect),
        _moment(delivery.created_at, dialect),
        _moment(delivery.last_attempt_at, dialect),
        delivery.last_status_code,
        delivery.last_response,
        delivery.last_error,
        _moment(delivery.delivered_at, dialect),
    )


def delivery_from_row(row: Row) -> Delivery:
    """A delivery from a row with the :data:`DELIVERY_COLUMNS`."""
    return Delivery(
        delivery_id=row["delivery_id"],
        webhook_id=row["webhook_id"],
        task_id=row["task_id"],
        seq=row["seq"],
        event_type=row["event_type"],
        body=row["body"],
        status=DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=_dt(row["next_attempt_at"]),
        created_at=_required_dt(row["created_at"]),
        last_attempt_at=_dt(row["last_attempt_at"]),
        last_status_code=row["last_status_code"],
        last_response=row["last_response"],
        last_error=row["last_error"],
        delivered_at=_dt(row["delivered_at"]),
    )
