"""The task state machine: the tables that every store and the service use.

A change of status is allowed only along an edge of :data:`TRANSITIONS`. Stores turn an edge
into one guarded write (``UPDATE ... WHERE status IN (sources)``), so correctness never rests on
an in-process lock. What a transition writes beside the status is :data:`ENTRY_EFFECTS`:
every store (and :class:`~taskcell.domain.models.Task`'s in-memory moves) derives its writes
from :func:`effects_of`, so the rule is stated once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import NamedTuple


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING_INPUT = "waiting_input"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATUSES: frozenset[TaskStatus] = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}
)

TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.PENDING: frozenset({TaskStatus.RUNNING, TaskStatus.CANCELLED, TaskStatus.FAILED}),
    TaskStatus.RUNNING: frozenset(
        {
            TaskStatus.WAITING_INPUT,
            TaskStatus.COMPLETED,
            TaskStatus.FAILED,
            TaskStatus.CANCELLED,
            TaskStatus.PENDING,  # retry, or requeue after an interrupted run
        }
    ),
    TaskStatus.WAITING_INPUT: frozenset(
        {TaskStatus.RUNNING, TaskStatus.FAILED, TaskStatus.CANCELLED}
    ),
    TaskStatus.COMPLETED: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}


class Write(StrEnum):
    """What a transition writes to a field."""

    NOW = "now"  #: the transition's moment
    FIRST = "first"  #: the transition's moment, only while the field is unset
    CLEAR = "clear"  #: nothing: the field is set to null


class Effect(NamedTuple):
    """One task field a transition writes beside the status, and what it writes."""

    field: str
    write: Write


#: Every transition stamps ``updated_at``.
UPDATED = Effect("updated_at", Write.NOW)
_FINISHED = (Effect("completed_at", Write.NOW), Effect("next_run_at", Write.CLEAR))

#: What entering each status writes beside ``updated_at``: ``started_at`` the first time a task
#: runs (a retry or a reply keeps it); on a final status ``completed_at``, and ``next_run_at``
#: cleared (a finished task has no next occurrence).
ENTRY_EFFECTS: dict[TaskStatus, tuple[Effect, ...]] = {
    TaskStatus.PENDING: (),
    TaskStatus.RUNNING: (Effect("started_at", Write.FIRST),),
    TaskStatus.WAITING_INPUT: (),
    TaskStatus.COMPLETED: _FINISHED,
    TaskStatus.FAILED: _FINISHED,
    TaskStatus.CANCELLED: _FINISHED,
}


def effects_of(target: TaskStatus) -> tuple[Effect, ...]:
    """Every field a transition to ``target`` writes beside the status (``updated_at``
    first)."""
    return _EFFECTS[target]


_EFFECTS: dict[TaskStatus, tuple[Effect, ...]] = {
    target: (UPDATED, *effects) for target, effects in ENTRY_EFFECTS.items()
}


def enter(record: object, target: TaskStatus, now: datetime) -> None:
    """Set ``record``'s status to ``target`` and write its effects at ``now`` (no guard: the
    caller checked the edge). For stores that hold models in memory; SQL stores write the
    same effects from :func:`effects_of`."""
    setattr(record, "status", target)  # noqa: B010 - any record with these fields
    for effect in _EFFECTS[target]:
        if effect.write is Write.CLEAR:
            setattr(record, effect.field, None)
        elif effect.write is Write.NOW or getattr(record, effect.field) is None:
            setattr(record, effect.field, now)


def can_transition(source: TaskStatus, target: TaskStatus) -> bool:
    """Whether ``source -> target`` is an edge of the state machine."""
    return target in TRANSITIONS[source]


def sources_of(target: TaskStatus) -> frozenset[TaskStatus]:
    """Every status from which ``target`` may be entered (the guard of a transition)."""
    return _SOURCES[target]


_SOURCES: dict[TaskStatus, frozenset[TaskStatus]] = {
    target: frozenset(s for s, targets in TRANSITIONS.items() if target in targets)
    for target in TaskStatus
}


class TaskConflict(Exception):
    """An action the task's current state forbids (the API answers 409)."""

    def __init__(self, task_id: str, message: str) -> None:
        self.task_id = task_id
        super().__init__(message)


class InvalidTransition(TaskConflict):
    """A status change the state machine forbids (the API answers 409)."""

    def __init__(self, task_id: str, source: TaskStatus | None, target: TaskStatus) -> None:
        self.source = source
        self.target = target
        where = f"it is {source.value}" if source is not None else "its status changed"
        super().__init__(task_id, f"task {task_id} cannot become {target.value}: {where}")
