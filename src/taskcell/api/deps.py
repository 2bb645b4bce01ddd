"""What routes need from the app: the engine, the caller, and a task the caller may see."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request
from pydantic import AfterValidator

from taskcell.api.auth import Caller
from taskcell.domain.models import Task
from taskcell.domain.text import check_text
from taskcell.engine.engine import Engine
from taskcell.service import TaskNotFound

#: A task id in a path: any text, but never NUL or a lone surrogate (400 naming it).
TaskIdPath = Annotated[str, Path(), AfterValidator(check_text)]
#: An id in a path or a query: the same rule.
SafeParam = Annotated[str, AfterValidator(check_text)]


async def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def visible_task(engine: Engine, caller: Caller, task_id: str) -> Task:
    """The task, or :class:`TaskNotFound` when it does not exist or belongs to someone else."""
    task = await engine.get_task(task_id)
    if task is None or not caller.may_see(task):
        raise TaskNotFound(task_id)
    return task
