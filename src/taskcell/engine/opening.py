"""Opening a task: storing it and emitting its opening events (once and recurring alike)."""

from __future__ import annotations

from taskcell.domain.models import Task
from taskcell.engine.eventlog import EventLog
from taskcell.engine.responses import ResponseFactory
from taskcell.service import TaskService, conversation_title


async def open_task(service: TaskService, log: EventLog, task: Task) -> None:
    """Store a new task and emit its opening events (its conversation, if new, then its
    thread and the user's message). :class:`~taskcell.abc.DuplicateTask` (nothing stored,
    nothing emitted) when its id is taken."""
    new_conversation = await service.add_task(task)
    log.new_task(task.task_id)
    factory = ResponseFactory(task)
    if new_conversation:
        await log.emit(factory.conversation_started())
    await log.emit(factory.thread_started(conversation_title(task)))
    await log.emit(factory.user_message(task.query))
