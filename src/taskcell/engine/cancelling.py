"""Cancelling a task: a signal, not a poll.

``cancel`` marks the task cancelled in the store (one guarded write, which also disarms its
schedule), updates its controllers, and stops what runs it: the asyncio task that runs it here
(which cancels the remote agent's task, emits ``task_cancelled`` and ``done``, and ends its
run: see :meth:`~taskcell.engine.settler.RunSettler.stopped`), or, in a cluster, the process
that runs it; with nothing running, the settler closes what is left open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from taskcell.abc import Store
from taskcell.domain.models import RunStatus, Task, TaskPattern
from taskcell.domain.state_machine import InvalidTransition, TaskStatus
from taskcell.engine.controllers import Controllers
from taskcell.engine.eventlog import EventLog
from taskcell.engine.responses import ResponseFactory
from taskcell.engine.runs import CANCELLED_BY_USER, STOP_GRACE_SECONDS, RunTable
from taskcell.engine.settler import RunSettler
from taskcell.service import TaskService

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CancelResult:
    task_id: str
    success: bool
    updated_component_ids: list[str]


class Cancellation:
    """See the module docstring. ``cancel_elsewhere`` signals the live process that runs a
    task and waits for it to stop (False: none does, or not in time); ``schedule_changed``
    wakes the schedulers."""

    def __init__(
        self,
        store: Store,
        service: TaskService,
        log: EventLog,
        runs: RunTable,
        settler: RunSettler,
        controllers: Controllers,
        *,
        cancel_elsewhere: Callable[[str], Awaitable[bool]],
        schedule_changed: Callable[[], Awaitable[None]],
    ) -> None:
        self._store = store
        self._service = service
        self._log = log
        self._runs = runs
        self._settler = settler
        self._controllers = controllers
        self._cancel_elsewhere = cancel_elsewhere
        self._schedule_changed = schedule_changed

    async def cancel(self, task_id: str, reason: str = CANCELLED_BY_USER) -> CancelResult:
        """Cancel a task: its run, its remote task, its schedule, its controllers.

        Idempotent for a cancelled task; :class:`InvalidTransition` for a completed or failed
        one; :class:`~taskcell.service.TaskNotFound` for an unknown one.
        """
        task = await self._service.require_task(task_id)
        changes: dict[str, Any] = {"error_message": reason, "next_run_at": None}
        changed = await self._store.transition(task_id, TaskStatus.CANCELLED, changes=changes)
        if not changed:
            current = await self._service.require_task(task_id)
            if current.status is not TaskStatus.CANCELLED:
                raise InvalidTransition(task_id, current.status, TaskStatus.CANCELLED)
            return CancelResult(task_id, True, await self._controllers.ids(task_id))
        ids = await self._controllers.update(task, next_run_at=None)
        runners = self._runs.stop_all(task_id, reason)
        if task.pattern is TaskPattern.RECURRING:
            # Occurrences waiting for a run in progress (overlap buffer_*) never start now.
            for run in await self._store.runs_in_status([RunStatus.QUEUED], task_id=task_id):
                await self._settler.close_run(run, RunStatus.CANCELLED, reason)
        if runners:
            await asyncio.wait(runners, timeout=STOP_GRACE_SECONDS)
        elif not await self._cancel_elsewhere(task_id):
            await self._settler.cancel_idle(task, reason)
        await self._schedule_changed()
        await self._log.flush()
        logger.info("task cancelled", extra={"task_id": task_id, "components": len(ids)})
        return CancelResult(task_id, True, ids)

    async def add_cancelled(self, task: Task, reason: str) -> Task:
        """Store a task that will never run, cancelled with ``reason``, and emit its closing
        events; answers it as stored."""
        await self._service.create_task(task)
        await self._service.cancel_task(task.task_id, reason)
        factory = ResponseFactory(task)
        await self._log.emit(factory.task_cancelled(reason))
        await self._log.emit(factory.done())
        return await self._service.require_task(task.task_id)

    async def cancelled_elsewhere(self, task_id: str) -> None:
        """Another process cancelled the task: stop its run if it runs here (an old notice,
        for a task that runs again or was never cancelled, is ignored)."""
        if not self._runs.is_running_here(task_id):
            return
        task = await self._store.load(task_id)
        if task is None or task.status is not TaskStatus.CANCELLED:
            return
        self._runs.stop(task_id, task.error_message or None)
