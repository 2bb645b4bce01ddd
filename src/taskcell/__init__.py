"""taskcell: a durable task service for AI agents.

The names below are loaded when first used, so that ``import taskcell.client`` (a program that
only talks to a server) loads neither the stores nor their database drivers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "Page": "taskcell.abc",
    "TaskFilter": "taskcell.abc",
    "TaskStore": "taskcell.abc",
    "Run": "taskcell.domain.models",
    "RunStatus": "taskcell.domain.models",
    "ScheduleConfig": "taskcell.domain.models",
    "Task": "taskcell.domain.models",
    "TaskPattern": "taskcell.domain.models",
    "InvalidTransition": "taskcell.domain.state_machine",
    "TaskStatus": "taskcell.domain.state_machine",
    "TaskNotFound": "taskcell.service",
    "TaskService": "taskcell.service",
    "get_task_service": "taskcell.service",
    "reset_task_service": "taskcell.service",
    "set_task_service": "taskcell.service",
    "InMemoryTaskStore": "taskcell.stores.memory",
    "SQLiteTaskStore": "taskcell.stores.sqlite",
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'taskcell' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
