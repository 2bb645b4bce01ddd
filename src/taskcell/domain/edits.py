"""Live edits of a task (``PATCH /tasks/{id}``): what an edit may change and what it writes.

Pure: :func:`edit_changes` answers the fields an edit writes, from the task as stored (read in
the edit's own transaction, see :meth:`taskcell.abc.TaskStore.edit`) and a reading of the
store's clock. The editable fields are :data:`~taskcell.domain.models.EDITABLE_FIELDS`.

The rules:

- A finished task (completed, failed, cancelled) is not edited (409). A recurring task may
  change every editable field while it runs, paused or not; a once task only the fields that
  do not change how it runs (title, metadata), until it ends.
- ``If-Match``: with ``if_version`` the edit happens only while the task's version is still
  that one (409 otherwise: someone else edited it first).
- A new schedule starts at the edit: its first occurrence is the first strictly after the edit
  instant (an interval counts from the edit). An occurrence of the old schedule already due
  but not yet claimed by a scheduler stays due and fires once; the new schedule continues from
  it. An occurrence already claimed runs (it was claimed under the old version). So no
  occurrence runs twice and none is lost.
- Every value is checked as at creation (the task as edited must be a valid task); a refused
  value names its field and nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from taskcell.domain.models import EDITABLE_FIELDS, ScheduleConfig, Task, TaskPattern
from taskcell.domain.schedule import next_fire_time
from taskcell.domain.state_machine import FINAL_STATUSES, TaskConflict

_MAX_DIGITS = 18  # a version fits a 64-bit integer

__all__ = ["VersionMismatch", "edit_changes", "parse_version", "refused"]


class VersionMismatch(TaskConflict):
    """``If-Match`` named a version the task no longer has (the API answers 409)."""

    def __init__(self, task: Task, expected: int) -> None:
        self.expected, self.actual = expected, task.version
        message = (
            f"task {task.task_id} is at version {task.version}, not {expected}: it was edited"
            " meanwhile; read it again and re-apply your change"
        )
        super().__init__(task.task_id, message)


class NotEditable(TaskConflict):
    """An edit of a task that has ended (the API answers 409)."""

    def __init__(self, task: Task) -> None:
        message = f"task {task.task_id} is {task.status.value}; a finished task cannot be edited"
        super().__init__(task.task_id, message)


def refused(problems: Mapping[str, str], values: Mapping[str, Any]) -> ValidationError:
    """A validation error naming each refused field and why (the API answers 400)."""
    details = [
        InitErrorDetails(
            type=PydanticCustomError("edit", message), loc=(field,), input=values.get(field)
        )
        for field, message in problems.items()
    ]
    return ValidationError.from_exception_data("TaskEdit", details)


def parse_version(text: str) -> int | None:
    """The version an ``If-Match`` header names: a bare number ("3") or a quoted entity tag
    ('"3"'); None for "*" (any version). ``ValueError`` for anything else."""
    value = text.strip()
    if value == "*":
        return None
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not value.isascii() or not value.isdigit() or len(value) > _MAX_DIGITS:
        raise ValueError(f"If-Match must name a task version, such as 3 or '\"3\"', not {text!r}")
    version = int(value)
    if version < 1:
        raise ValueError("If-Match must name a task version, 1 or more")
    return version


def edit_changes(
    task: Task,
    patch: Mapping[str, Any],
    now: datetime,
    *,
    default_zone: str,
    if_version: int | None = None,
) -> dict[str, Any]:
    """The fields an edit of ``task`` by ``patch`` writes at ``now`` (the store's clock).

    Raises :class:`VersionMismatch` when ``if_version`` is not the task's version,
    :class:`NotEditable` for a finished task, and ``ValidationError`` naming each refused
    field (not editable, not editable on a once task, or a value the task refuses). See the
    module docstring for the rules; ``next_run_at`` is among the changes when the schedule
    changes.
    """
    if if_version is not None and task.version != if_version:
        raise VersionMismatch(task, if_version)
    if task.status in FINAL_STATUSES:
        raise NotEditable(task)
    _check_fields(task, patch)
    merged = task.model_dump()
    merged.update(patch)
    if isinstance(merged.get("schedule_config"), ScheduleConfig):
        merged["schedule_config"] = merged["schedule_config"].model_dump()
    edited = Task.model_validate(merged)  # every value checked as at creation (400 naming it)
    changes = {name: getattr(edited, name) for name in patch}
    schedule = changes.get("schedule_config")
    if schedule is not None:
        if schedule.interval_minutes is None and schedule.timezone is None:
            # A wall-clock schedule (daily time or cron) keeps the zone it is edited in.
            schedule = changes["schedule_config"] = schedule.model_copy(
                update={"timezone": default_zone}
            )
        if schedule != task.schedule_config:
            changes["next_run_at"] = _next_run_at(task, schedule, now, default_zone)
    return changes


def _check_fields(task: Task, patch: Mapping[str, Any]) -> None:
    """ValidationError naming each field of ``patch`` this task may not edit."""
    problems: dict[str, str] = {}
    if not patch:
        problems["body"] = "an edit names at least one field: " + ", ".join(EDITABLE_FIELDS)
    for name in patch:
        patterns = EDITABLE_FIELDS.get(name)
        if patterns is None:
            kind = "is read-only" if name in Task.model_fields else "is not a task field"
            problems[name] = f"{name} {kind}; an edit may change " + ", ".join(EDITABLE_FIELDS)
        elif task.pattern not in patterns:
            allowed = [n for n, p in EDITABLE_FIELDS.items() if task.pattern in p]
            if name == "schedule_config" and task.pattern is TaskPattern.ONCE:
                problems[name] = "a once task has no schedule; create a recurring task instead"
            else:
                problems[name] = (
                    f"a {task.pattern.value} task's {name} cannot be edited; it may change "
                    + ", ".join(allowed)
                )
    if problems:
        raise refused(problems, patch)


def _next_run_at(
    task: Task, schedule: ScheduleConfig, now: datetime, default_zone: str
) -> datetime | None:
    """When the edited schedule fires next: an occurrence already due and not yet claimed
    stays due (it fires once, and the new schedule continues from it); otherwise the new
    schedule's first occurrence strictly after ``now``."""
    armed = task.next_run_at
    if armed is not None and armed <= now:
        return armed
    try:
        return next_fire_time(schedule, now=now, default_zone=default_zone)
    except (ValueError, LookupError) as exc:
        raise refused({"schedule_config": str(exc)}, {"schedule_config": schedule}) from exc
