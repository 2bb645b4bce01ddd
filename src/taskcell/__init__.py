"""taskcell: a durable task service for AI agents."""

from __future__ import annotations

from taskcell.abc import Page, TaskFilter, TaskStore
from taskcell.domain.models import Run, RunStatus, ScheduleConfig, Task, TaskPattern
from taskcell.domain.state_machine import InvalidTransition, TaskStatus
from taskcell.service import (
    TaskNotFound,
    TaskService,
    get_task_service,
    reset_task_service,
    set_task_service,
)
from taskcell.stores.memory import InMemoryTaskStore
from taskcell.stores.sqlite import SQLiteTaskStore

__all__ = [
    "InMemoryTaskStore",
    "InvalidTransition",
    "Page",
    "Run",
    "RunStatus",
    "SQLiteTaskStore",
    "ScheduleConfig",
    "Task",
    "TaskFilter",
    "TaskNotFound",
    "TaskPattern",
    "TaskService",
    "TaskStatus",
    "TaskStore",
    "get_task_service",
    "reset_task_service",
    "set_task_service",
]
