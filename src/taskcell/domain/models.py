"""Task, Run and ScheduleConfig: the domain models (pydantic v2, no I/O).

Every datetime is aware and in UTC. A time zone appears only inside a schedule (for daily wall
clock times) and in what is shown to people.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from taskcell.domain.clock import NaiveDatetime, as_utc
from taskcell.domain.clock import utcnow as utcnow  # re-exported: where callers import it
from taskcell.domain.cron import CronError, check_cron
from taskcell.domain.policies import (
    MAX_CATCHUP_WINDOW_SECONDS,
    MIN_CATCHUP_WINDOW_SECONDS,
    CatchupPolicy,
    OverlapPolicy,
)
from taskcell.domain.schedule import is_valid_zone, parse_daily_time
from taskcell.domain.state_machine import (
    FINAL_STATUSES,
    InvalidTransition,
    TaskStatus,
    can_transition,
    enter,
)
from taskcell.domain.text import check_json, check_text, json_longer_than

MAX_QUERY_CHARS = 32_000
MAX_METADATA_CHARS = 64_000
MAX_INTERVAL_MINUTES = 525_600  # one year
MAX_ZONE_CHARS = 100  # the longest IANA name is 32 characters
MAX_PAUSE_NOTE_CHARS = 500
#: The longest run time-out a task may set: a week.
MAX_RUN_TIMEOUT_SECONDS = 7 * 24 * 3600
MAX_WEBHOOK_URL_CHARS = 2000
DEFAULT_USER = "default_user"


#: The version (7) and variant (RFC 9562) bits of a UUID, as a 128-bit integer's.
_UUID_FORM_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID7_SET = (0x7000 << 64) | (0x8000 << 48)


def new_id() -> str:
    """A fresh opaque identifier: a UUID version 7 (RFC 9562) as 32 hex digits.

    Its first 48 bits are the Unix time in milliseconds, the other 74 (bar the version and
    variant) random. Time-ordered ids keep every index keyed by them compact as it grows:
    ids made together sort together, so an insert goes to the index's few newest pages
    instead of a random page of a large table (one page read and written for each of a
    task's ids, in a store with millions of them). 74 random bits keep them unguessable.
    The same form as ``uuid.UUID(...).hex``, built without a ``UUID`` object (several ids
    are made for every task).
    """
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10))
    return f"{value & _UUID_FORM_CLEAR | _UUID7_SET:032x}"


def _as_utc(value: datetime) -> datetime:
    try:
        return as_utc(value)
    except NaiveDatetime:
        raise PydanticCustomError("naive_datetime", "datetime must carry a UTC offset") from None


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


def check_pause_note(value: str) -> str:
    """A pause note as stored: safe text of at most :data:`MAX_PAUSE_NOTE_CHARS` characters,
    one line (the note is shown in lists and controllers), surrounding blanks removed."""
    check_text(value)
    note = value.strip()
    if len(note) > MAX_PAUSE_NOTE_CHARS:
        raise PydanticCustomError(
            "pause_note",
            "the note is {length} characters long; the limit is {limit}",
            {"length": len(note), "limit": MAX_PAUSE_NOTE_CHARS},
        )
    if any(ord(ch) < 32 and ch != "\t" for ch in note):  # line breaks and control characters
        raise PydanticCustomError("pause_note", "the note must be one line of plain text")
    return note


class TaskPattern(StrEnum):
    ONCE = "once"
    RECURRING = "recurring"


class RunStatus(StrEnum):
    """The outcome of one execution of a task (a run)."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING_INPUT = "waiting_input"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # its process died while it ran
    SKIPPED = "skipped"  # an occurrence that came due while the previous run still ran


FINAL_RUN_STATUSES: frozenset[RunStatus] = frozenset(
    {
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
        RunStatus.INTERRUPTED,
        RunStatus.SKIPPED,
    }
)


@dataclass(frozen=True, slots=True)
class Fence:
    """A run's fencing token: the run, its owner and its lease epoch.

    A write guarded by a fence happens only if the run still has this owner and this epoch
    (and, for the writes that settle it, is still open); see :class:`taskcell.abc.LeaseLost`.
    """

    run_id: str
    owner: str
    epoch: int


#: A run that has not ended yet (``finish_run`` and ``close_run`` end only these).
OPEN_RUN_STATUSES: frozenset[RunStatus] = frozenset(
    {RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING_INPUT}
)


class ScheduleConfig(BaseModel):
    """When a recurring task fires: every ``interval_minutes``, daily at ``daily_time``, or
    on a ``cron`` expression.

    ``daily_time`` is a wall-clock "HH:MM" and ``cron`` five cron fields ("0 9 * * MON-FRI")
    or an alias ("@hourly", "@daily", "@weekly", "@monthly", "@yearly"), both read in
    ``timezone`` (an IANA name; None means the server's zone, resolved to a name when the
    task is created). Exactly one of ``interval_minutes``, ``daily_time`` and ``cron`` is set.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_minutes: int | None = None
    daily_time: str | None = None
    cron: str | None = None
    timezone: str | None = None

    @field_validator("interval_minutes")
    @classmethod
    def _check_interval(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= MAX_INTERVAL_MINUTES:
            raise PydanticCustomError(
                "interval_minutes",
                "interval_minutes must be a whole number from 1 to {maximum}",
                {"maximum": MAX_INTERVAL_MINUTES},
            )
        return value

    @field_validator("daily_time")
    @classmethod
    def _check_daily_time(cls, value: str | None) -> str | None:
        if value is None:
            return None
        check_text(value)
        try:
            parse_daily_time(value)  # the scheduler's own parser: what is stored, it can use
        except ValueError as exc:
            raise PydanticCustomError("daily_time", str(exc)) from None
        return value

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        check_text(value)
        try:
            check_cron(value)  # the scheduler's own parser: what is stored, it can use
        except CronError as exc:
            raise PydanticCustomError("cron", str(exc)) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        check_text(value)
        if len(value) > MAX_ZONE_CHARS or not is_valid_zone(value):
            raise PydanticCustomError("timezone", "unknown time zone '{name}'", {"name": value})
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ScheduleConfig:
        kinds = (self.interval_minutes, self.daily_time, self.cron)
        if sum(kind is not None for kind in kinds) != 1:
            raise PydanticCustomError(
                "schedule", "exactly one of interval_minutes, daily_time and cron must be set"
            )
        return self


_BOTH = frozenset(TaskPattern)
_RECURRING = frozenset({TaskPattern.RECURRING})

#: The fields an edit (``PATCH /tasks/{id}``) may change, each with the patterns of the tasks
#: that may change it: a recurring task while it runs, a once task (until it ends) only what
#: does not change how it runs. The one list of editable fields: adding one is a line here.
EDITABLE_FIELDS: dict[str, frozenset[TaskPattern]] = {
    "title": _BOTH,
    "metadata": _BOTH,
    "query": _RECURRING,
    "schedule_config": _RECURRING,
    "max_attempts": _RECURRING,
    "run_timeout_seconds": _RECURRING,
    "overlap": _RECURRING,
    "catchup": _RECURRING,
    "catchup_window_seconds": _RECURRING,
}


class Task(BaseModel):
    """A request to an agent, run once or on a schedule. Fields match docs/api.md's task object."""

    model_config = ConfigDict(validate_assignment=False, extra="forbid")

    task_id: str = Field(default_factory=new_id, min_length=1, max_length=200)
    title: str = Field(default="", max_length=500)
    query: str
    conversation_id: str = Field(default_factory=new_id, min_length=1, max_length=200)
    thread_id: str = Field(default_factory=new_id, min_length=1, max_length=200)
    user_id: str = Field(default=DEFAULT_USER, min_length=1, max_length=200)
    agent_name: str = Field(min_length=1, max_length=200)
    status: TaskStatus = TaskStatus.PENDING
    pattern: TaskPattern = TaskPattern.ONCE
    schedule_config: ScheduleConfig | None = Field(default=None, validate_default=True)
    paused: bool = False
    next_run_at: UtcDatetime | None = None
    attempt: int = Field(default=0, ge=0, le=1000)
    max_attempts: int = Field(default=3, ge=1, le=20)
    remote_task_ids: list[str] = Field(default_factory=list)
    handoff_from_super_agent: bool = False
    created_at: UtcDatetime = Field(default_factory=utcnow)
    started_at: UtcDatetime | None = None
    completed_at: UtcDatetime | None = None
    updated_at: UtcDatetime = Field(default_factory=utcnow)
    error_message: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    #: What the user said when pausing the schedule (cleared by resume).
    pause_note: str | None = Field(default=None, max_length=MAX_PAUSE_NOTE_CHARS)
    #: A run still going this many seconds after its start is stopped and recorded failed
    #: ("timed out after N s"); None: no limit.
    run_timeout_seconds: int | None = Field(default=None, ge=1, le=MAX_RUN_TIMEOUT_SECONDS)
    #: Where this task's own webhook deliveries go (a subscription to this task made with it).
    webhook_url: str | None = Field(default=None, max_length=MAX_WEBHOOK_URL_CHARS)
    #: Grows by one at each edit (``PATCH /tasks/{id}``); a run records the version it ran.
    version: int = Field(default=1, ge=1)
    #: A recurring task's overlap and catch-up policies (see :mod:`taskcell.domain.policies`).
    overlap: OverlapPolicy = OverlapPolicy.SKIP
    catchup: CatchupPolicy = CatchupPolicy.COALESCE
    #: Missed occurrences older than this are skipped (None: no limit).
    catchup_window_seconds: int | None = None

    @field_validator("pause_note")
    @classmethod
    def _check_pause_note(cls, value: str | None) -> str | None:
        return None if value is None else check_pause_note(value)

    @field_validator(
        "task_id", "title", "conversation_id", "thread_id", "user_id", "agent_name", "query"
    )
    @classmethod
    def _check_text(cls, value: str) -> str:
        return check_text(value)

    @field_validator("remote_task_ids")
    @classmethod
    def _check_remote_ids(cls, value: list[str]) -> list[str]:
        return check_json(value)  # type: ignore[no-any-return]

    @field_validator("metadata")
    @classmethod
    def _check_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            return value  # most tasks: nothing to check (saves a JSON encoding per task)
        # The size first, from a bounded look (a megabyte of metadata is refused after reading
        # 64,000 characters of it), so neither the encoding nor the walk below meets a huge
        # value.
        if json_longer_than(value, MAX_METADATA_CHARS):
            raise PydanticCustomError(
                "metadata",
                "metadata is over {limit} characters as JSON",
                {"limit": MAX_METADATA_CHARS},
            )
        try:
            text = json.dumps(value, allow_nan=False)
        except RecursionError:
            raise PydanticCustomError("metadata", "metadata nests too deeply") from None
        except (TypeError, ValueError) as exc:
            raise PydanticCustomError(
                "metadata",
                "metadata must be plain JSON (no NaN or Infinity): {reason}",
                {"reason": str(exc)},
            ) from exc
        if len(text) > MAX_METADATA_CHARS:
            raise PydanticCustomError(
                "metadata",
                "metadata is {length} characters as JSON; the limit is {limit}",
                {"length": len(text), "limit": MAX_METADATA_CHARS},
            )
        check_json(value)  # keys and strings safe text at any depth, and at most 32 deep
        return value

    @field_validator("query")
    @classmethod
    def _check_query(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("query", "query must not be empty")
        if len(value) > MAX_QUERY_CHARS:
            raise PydanticCustomError(
                "query",
                "query is {length} characters long; the limit is {limit}",
                {"length": len(value), "limit": MAX_QUERY_CHARS},
            )
        return value

    @field_validator("schedule_config")
    @classmethod
    def _check_pattern(
        cls, value: ScheduleConfig | None, info: ValidationInfo
    ) -> ScheduleConfig | None:
        pattern = info.data.get("pattern")
        if pattern is TaskPattern.RECURRING and value is None:
            raise PydanticCustomError("schedule_config", "a recurring task needs a schedule_config")
        if pattern is TaskPattern.ONCE and value is not None:
            raise PydanticCustomError(
                "schedule_config", "a once task takes no schedule_config; use pattern recurring"
            )
        return value

    @field_validator("overlap", "catchup", mode="before")
    @classmethod
    def _check_policy(cls, value: Any, info: ValidationInfo) -> Any:
        name = str(info.field_name)
        kind = OverlapPolicy if name == "overlap" else CatchupPolicy
        if not isinstance(value, str) or value not in kind._value2member_map_:
            choices = ", ".join(member.value for member in kind)
            raise PydanticCustomError(
                name, "{field} must be one of {choices}", {"field": name, "choices": choices}
            )
        if value != next(iter(kind)).value:
            _recurring_only(name, info)
        return value

    @field_validator("catchup_window_seconds")
    @classmethod
    def _check_window(cls, value: int | None, info: ValidationInfo) -> int | None:
        low, high = MIN_CATCHUP_WINDOW_SECONDS, MAX_CATCHUP_WINDOW_SECONDS
        if value is None:
            return None
        if not low <= value <= high:
            raise PydanticCustomError(
                "catchup_window_seconds",
                "catchup_window_seconds must be a whole number from {low} to {high}",
                {"low": low, "high": high},
            )
        _recurring_only("catchup_window_seconds", info)
        return value

    # -- queries -------------------------------------------------------------------------

    def is_finished(self) -> bool:
        return self.status in FINAL_STATUSES

    def is_running(self) -> bool:
        return self.status is TaskStatus.RUNNING

    def is_waiting_input(self) -> bool:
        return self.status is TaskStatus.WAITING_INPUT

    def is_scheduled(self) -> bool:
        return self.pattern is TaskPattern.RECURRING and self.schedule_config is not None

    # -- in-memory transitions (stores do the durable, guarded ones) ---------------------

    def _move(self, target: TaskStatus, now: datetime | None) -> None:
        if not can_transition(self.status, target):
            raise InvalidTransition(self.task_id, self.status, target)
        enter(self, target, now or utcnow())

    def start(self, now: datetime | None = None) -> None:
        self._move(TaskStatus.RUNNING, now)

    def complete(self, now: datetime | None = None) -> None:
        self._move(TaskStatus.COMPLETED, now)

    def fail(self, reason: str, now: datetime | None = None) -> None:
        self._move(TaskStatus.FAILED, now)
        self.error_message = reason

    def cancel(self, reason: str | None = None, now: datetime | None = None) -> None:
        self._move(TaskStatus.CANCELLED, now)
        if reason is not None:
            self.error_message = reason

    def wait_for_input(self, now: datetime | None = None) -> None:
        self._move(TaskStatus.WAITING_INPUT, now)


def _recurring_only(name: str, info: ValidationInfo) -> None:
    """A policy set (not its default) on a task that is not recurring is refused."""
    if info.data.get("pattern", TaskPattern.ONCE) is not TaskPattern.RECURRING:
        raise PydanticCustomError(name, "{field} applies to recurring tasks only", {"field": name})


class Run(BaseModel):
    """One execution of a task: an attempt of a once task, or one occurrence of a recurring one.

    ``(task_id, scheduled_for)`` is unique in every store, so an occurrence never fires twice.
    A once task's runs have no ``scheduled_for``; they are told apart by ``attempt``.
    """

    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(default_factory=new_id)
    task_id: str
    attempt: int = Field(default=1, ge=1)
    scheduled_for: UtcDatetime | None = None
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    status: RunStatus = RunStatus.RUNNING
    error: str | None = None
    result: str | None = None
    owner: str | None = None
    lease_expires_at: UtcDatetime | None = None
    created_at: UtcDatetime = Field(default_factory=utcnow)
    #: The lease epoch: grows at each takeover (another process's recovery, a reply taken up).
    epoch: int = Field(default=0, ge=0)
    #: The process that closed the run when another than its owner did (recovery).
    closed_by: str | None = None
    #: When the run times out (its task's ``run_timeout_seconds`` after its start), if ever.
    deadline_at: UtcDatetime | None = None
    #: The task's version this run ran (its fields as they were when the run was claimed).
    version: int = Field(default=1, ge=1)

    @property
    def fence(self) -> Fence:
        """This run's fencing token as it is now (its writes are guarded by it)."""
        return Fence(self.run_id, self.owner or "", self.epoch)
