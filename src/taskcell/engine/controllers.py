"""The ``scheduled_task_controller`` component of a task: what it says, and updating it.

A recurring task's controller is emitted at creation and updated in place (same item id) on
every run, pause, resume, cancel and failure. Updating re-emits it from the task's stored state
plus what changed; a task with no controller is left alone.
"""

from __future__ import annotations

import json
from typing import Any

from taskcell.abc import Store
from taskcell.domain.models import Fence, ScheduleConfig, Task
from taskcell.domain.schedule import describe
from taskcell.engine.eventlog import EventLog
from taskcell.engine.responses import CONTROLLER, ResponseFactory


def controller_item_id(task: Task) -> str:
    return f"{task.task_id}:controller"


def controller_content(task: Task, default_zone: str, **extra: Any) -> dict[str, Any]:
    schedule = task.schedule_config
    content: dict[str, Any] = {
        "task_id": task.task_id,
        "task_title": task.title or task.query[:80],
        "task_status": task.status.value,
        "paused": task.paused,
        "schedule": _described(schedule, default_zone),
        "next_run_at": task.next_run_at.isoformat() if task.next_run_at else None,
        "last_error": None,
        "version": task.version,
    }
    content.update(extra)
    return content


def _described(schedule: ScheduleConfig | None, default_zone: str) -> str:
    """The schedule in words; a stored one that cannot be used says so instead of raising."""
    if schedule is None:
        return ""
    try:
        return describe(schedule, default_zone)
    except (ValueError, LookupError, TypeError):
        return "unusable schedule"


class Controllers:
    """Emits and updates tasks' controller components (see the module docstring)."""

    def __init__(self, store: Store, log: EventLog, *, default_zone: str) -> None:
        self._store = store
        self._log = log
        self.default_zone = default_zone

    async def emit_new(self, task: Task) -> None:
        """Emit the controller of a task just created."""
        content = controller_content(task, self.default_zone)
        event = ResponseFactory(task).component(
            CONTROLLER, content, item_id=controller_item_id(task)
        )
        await self._log.emit(event)

    async def update(
        self, task: Task, *, durable: bool = True, fence: Fence | None = None, **changes: Any
    ) -> list[str]:
        """Re-emit every controller component of ``task`` (found by task id) from its stored
        state plus ``changes``; answers their item ids.

        With ``durable`` (the default) it answers once the updates are in the log and history;
        with ``fence``, they are a write of that run (dropped once its lease is lost).
        """
        items = await self._store.task_items(task.task_id, component_type=CONTROLLER)
        if not items:
            return []
        current = await self._store.load(task.task_id) or task
        ids = []
        for item in items:
            previous = _content_of(item.payload)
            content = controller_content(current, self.default_zone)
            content["last_error"] = previous.get("last_error")
            content["last_run_at"] = previous.get("last_run_at")
            content.update({k: _jsonable(v) for k, v in changes.items()})
            event = ResponseFactory(current).component(
                CONTROLLER, content, item_id=item.item_id, conversation_id=item.conversation_id
            )
            await self._log.emit(event, fence=fence)
            ids.append(item.item_id)
        if durable:
            await self._log.flush()
        return ids

    async def ids(self, task_id: str) -> list[str]:
        """The item ids of the task's controller components."""
        items = await self._store.task_items(task_id, component_type=CONTROLLER)
        return [i.item_id for i in items]


def _content_of(payload: dict[str, Any] | None) -> dict[str, Any]:
    raw = (payload or {}).get("content")
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value
