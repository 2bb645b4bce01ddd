"""The task state machine: the tables that every store and the service use.

A change of status is allowed only along an edge of :data:`TRANSITIONS`. Stores turn an edge
into one guarded write (``UPDATE ... WHERE status IN (sources)``), so correctness never rests on
an in-process lock. What a transition writes beside the status is :data:`ENTRY_STAMPS`: every
store (and :class:`~taskcell.domain.models.Task`'s in-memory moves) derives its writes from
:func:`stamps_of`, so the rule is stated once.
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


class Stamp(NamedTuple):
    """A task field a transition sets to its moment; with ``first_only`` only while unset."""

    field: str
    first_only: bool = False


#: Every transition stamps ``updated_at``.
UPDATED = Stamp("updated_at")

#: What entering each status stamps beside ``updated_at``: ``started_at`` the first time a task
#: runs (a retry or a reply keeps it), ``completed_at`` when it finishes.
ENTRY_STAMPS: dict[TaskStatus, tuple[Stamp, ...]] = {
    TaskStatus.PENDING: (),
    TaskStatus.RUNNING: (Stamp("started_at", first_only=True),),
    TaskStatus.WAITING_INPUT: (),
    TaskStatus.COMPLETED: (Stamp("completed_at"),),
    TaskStatus.FAILED: (Stamp("completed_at"),),
    TaskStatus.CANCELLED: (Stamp("completed_at"),),
}


def stamps_of(target: TaskStatus) -> tuple[Stamp, ...]:
    """Every field a transition to ``target`` sets to its moment (``updated_at`` first)."""
    return _STAMPS[target]


_STAMPS: dict[TaskStatus, tuple[Stamp, ...]] = {
    target: (UPDATED, *stamps) for target, stamps in ENTRY_STAMPS.items()
}


def enter(record: object, target: TaskStatus, now: datetime) -> None:
    """Set ``record``'s status to ``target`` and its stamps to ``now`` (no guard: the caller
    checked the edge). For stores that hold models in memory; SQL stores write the same
    stamps from :func:`stamps_of`."""
    setattr(record, "status", target)  # noqa: B010 - any record with these fields
    for stamp in _STAMPS[target]:
        if not stamp.first_only or getattr(record, stamp.field) is None:
            setattr(record, stamp.field, now)


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
