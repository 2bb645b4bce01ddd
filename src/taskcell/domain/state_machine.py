"""The task state machine: one table that every store and the service use.

A change of status is allowed only along an edge of :data:`TRANSITIONS`. Stores turn an edge
into one guarded write (``UPDATE ... WHERE status IN (sources)``), so correctness never rests on
an in-process lock.
"""

from __future__ import annotations

from enum import StrEnum


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
