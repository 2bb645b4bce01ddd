"""TaskService: the operations on tasks, over any TaskStore, and the process-wide locator."""

from __future__ import annotations

import logging

from taskcell.abc import UPDATABLE_FIELDS, Page, TaskFilter, TaskStore
from taskcell.domain.models import Task, utcnow
from taskcell.domain.state_machine import FINAL_STATUSES, TaskStatus

logger = logging.getLogger(__name__)


class TaskNotFound(LookupError):
    """No task with this id (or not one the caller may see)."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(f"task {task_id} not found")


def conversation_title(task: Task) -> str:
    """The title a new conversation takes from the task that opens it."""
    return task.title or task.query[:80]


class TaskService:
    """The origin's task operations (taskcell's Python API), each state change one guarded
    write in the store: a change the task's current status forbids answers False and changes
    nothing. The engine runs tasks through the store itself; these are for programs that keep
    their own tasks in taskcell."""

    def __init__(self, store: TaskStore) -> None:
        self.store = store

    async def create_task(self, task: Task) -> Task:
        """Store a new task (and its conversation if new) and answer it;
        :class:`~taskcell.abc.DuplicateTask` (nothing stored) when its id is taken."""
        await self.add_task(task)
        return task

    async def add_task(self, task: Task) -> bool:
        """Store a new task and, if new, its conversation; answers whether the conversation is
        new. :class:`DuplicateTask` (nothing stored) when the task's id is taken."""
        title = conversation_title(task)
        new_conversation = await self.store.create(task, conversation_title=title)
        logger.info(
            "task created",
            extra={"task_id": task.task_id, "agent": task.agent_name, "pattern": task.pattern},
        )
        return new_conversation

    async def get_task(self, task_id: str) -> Task | None:
        """The task, or None when there is none with that id."""
        return await self.store.load(task_id)

    async def require_task(self, task_id: str) -> Task:
        """The task; :class:`TaskNotFound` when there is none with that id."""
        task = await self.store.load(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return task

    async def list_tasks(
        self,
        flt: TaskFilter | None = None,
        *,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Task]:
        """One page of the tasks matching ``flt`` (all, without), newest first; pass the
        page's ``next_cursor`` for the next. :class:`~taskcell.abc.InvalidCursor` for a
        cursor the store did not make."""
        return await self.store.list_tasks(flt or TaskFilter(), limit=limit, cursor=cursor)

    async def update_task(self, task: Task) -> bool:
        """Write the task's non-status fields (:data:`~taskcell.abc.UPDATABLE_FIELDS`) as they
        are on ``task``; status moves only through transitions. Answers whether the task
        exists (and so was updated)."""
        changes = {name: getattr(task, name) for name in UPDATABLE_FIELDS}
        return await self.store.update(task.task_id, changes)

    async def start_task(self, task_id: str) -> bool:
        """Move the task to running (from pending, or waiting for input); answers whether it
        moved. The first start stamps ``started_at``."""
        return await self.store.transition(task_id, TaskStatus.RUNNING)

    async def complete_task(self, task_id: str) -> bool:
        """Move the running task to completed (``completed_at`` stamped); answers whether it
        moved."""
        return await self.store.transition(task_id, TaskStatus.COMPLETED)

    async def fail_task(self, task_id: str, reason: str) -> bool:
        """Move an unfinished task to failed with ``reason`` as its ``error_message``;
        answers whether it moved."""
        return await self.store.transition(
            task_id, TaskStatus.FAILED, changes={"error_message": reason}
        )

    async def wait_for_input(self, task_id: str) -> bool:
        """Move the running task to waiting_input; answers whether it moved."""
        return await self.store.transition(
            task_id, TaskStatus.WAITING_INPUT, expected=[TaskStatus.RUNNING]
        )

    async def cancel_task(self, task_id: str, reason: str | None = None) -> bool:
        """Cancel an unfinished task (``reason``, if given, as its ``error_message``).

        Answers True for a task that is cancelled now or was already, False for one that had
        finished otherwise (completed or failed: the API answers 409); :class:`TaskNotFound`
        when there is none with that id.
        """
        changes = {"error_message": reason} if reason is not None else None
        if await self.store.transition(task_id, TaskStatus.CANCELLED, changes=changes):
            logger.info("task cancelled", extra={"task_id": task_id})
            return True
        task = await self.store.load(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return task.status is TaskStatus.CANCELLED

    async def cancel_conversation_tasks(self, conversation_id: str) -> list[str]:
        """Cancel every unfinished task of a conversation; answers their ids."""
        return await self.store.cancel_conversation(conversation_id, now=utcnow())

    async def delete_task(self, task_id: str) -> bool:
        """Delete a finished task and its history; False if it is not finished."""
        task = await self.require_task(task_id)
        if task.status not in FINAL_STATUSES:
            return False
        return await self.store.delete(task_id)


# -- the process-wide locator ----------------------------------------------------------------

_service: TaskService | None = None


def get_task_service() -> TaskService:
    """The process-wide service, on the SQLite file (or database) named by settings."""
    global _service
    if _service is None:
        from taskcell.settings import Settings, redact_url
        from taskcell.stores.factory import store_from_url

        settings = Settings()
        url = settings.database_url
        logger.info("opening the task database", extra={"database_url": redact_url(url)})
        _service = TaskService(store_from_url(url, pool_size=settings.database_pool_size))
    return _service


def set_task_service(service: TaskService) -> None:
    global _service
    _service = service


def reset_task_service() -> None:
    """Forget the process-wide service (the next get makes a new one)."""
    global _service
    _service = None
