"""Live edits of a task: one guarded write, then the controller and the schedulers told.

An edit (``PATCH /tasks/{id}``) is :meth:`taskcell.abc.TaskStore.edit`: the task is read and
written in one transaction, held against every other write of it, with what it writes decided
by :func:`taskcell.domain.edits.edit_changes` from the task as held and the store's clock. A
scheduler's claim of the task's occurrence is one transaction too, so the two are ordered: a
claim before the edit ran the occurrence under the old version (its run records that version,
and finishes under it: a run holds the task as it was claimed); a claim after the edit sees the
new schedule and ``next_run_at`` the edit computed. Either way an occurrence is claimed once.

Watchers see an edit as the update of the task's ``scheduled_task_controller`` component (its
``version`` and schedule), in the task's event stream; a once task has no controller.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from taskcell.abc import Store
from taskcell.domain.edits import edit_changes
from taskcell.domain.models import Task, TaskPattern
from taskcell.engine.controllers import Controllers
from taskcell.service import TaskNotFound

logger = logging.getLogger(__name__)


class Editing:
    """See the module docstring. ``schedule_changed`` wakes the schedulers (this process's
    and, in a cluster, the others')."""

    def __init__(
        self,
        store: Store,
        controllers: Controllers,
        *,
        default_zone: str,
        schedule_changed: Callable[[], Awaitable[None]],
    ) -> None:
        self._store = store
        self._controllers = controllers
        self._default_zone = default_zone
        self._schedule_changed = schedule_changed

    async def edit(
        self, task_id: str, patch: Mapping[str, Any], *, if_version: int | None = None
    ) -> Task:
        """Edit the task by ``patch`` (field to new value); answers the task as edited.

        Raises :class:`~taskcell.service.TaskNotFound`, and what
        :func:`~taskcell.domain.edits.edit_changes` raises (409 a stale ``if_version`` or a
        finished task, 400 a refused field), having written nothing.
        """
        zone = self._default_zone

        def change(task: Task, now: datetime) -> dict[str, Any]:
            return edit_changes(task, patch, now, default_zone=zone, if_version=if_version)

        # Checked against the task as it is first, so bad input costs no write transaction.
        current = await self._store.load(task_id)
        if current is None:
            raise TaskNotFound(task_id)
        change(current, current.updated_at)
        edited = await self._store.edit(task_id, change)
        if edited is None:  # deleted meanwhile
            raise TaskNotFound(task_id)
        logger.info(
            "task edited",
            extra={"task_id": task_id, "version": edited.version, "fields": sorted(patch)},
        )
        if edited.pattern is TaskPattern.RECURRING:
            await self._controllers.update(edited)
            if "schedule_config" in patch:
                await self._schedule_changed()
        return edited
