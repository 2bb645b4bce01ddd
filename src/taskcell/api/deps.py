"""What routes need from the app: the engine, the caller, and a task the caller may see."""

from __future__ import annotations

from fastapi import Request

from taskcell.api.auth import Caller
from taskcell.domain.models import Task
from taskcell.engine.engine import Engine
from taskcell.service import TaskNotFound


async def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def visible_task(engine: Engine, caller: Caller, task_id: str) -> Task:
    """The task, or :class:`TaskNotFound` when it does not exist or belongs to someone else."""
    task = await engine.store.load(task_id)
    if task is None or not caller.may_see(task):
        raise TaskNotFound(task_id)
    return task
