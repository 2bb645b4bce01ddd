"""The demo agents' A2A task store: the SDK's in-memory store, forgetting finished tasks.

A demo agent serves every task taskcell (or anyone allowed) sends it, for as long as the server
runs, so a store that keeps every task grows without end. :class:`ForgetfulTaskStore` keeps a
finished task (completed, failed, cancelled, rejected) for ``keep_seconds`` (default ten
minutes) and at most ``keep_finished`` of them (default 1,000), whichever ends first; then it
is gone (``GetTask`` answers not found). Unfinished tasks, including those waiting for input,
are kept. Tasks stay scoped to their owner, as in the SDK's store (see
:mod:`taskcell.agents.demo.door`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from a2a.server.context import ServerCallContext
from a2a.server.tasks import InMemoryTaskStore, TaskStore
from a2a.types import ListTasksRequest, ListTasksResponse, Task, TaskState

FINISHED_STATES = frozenset(
    {
        TaskState.TASK_STATE_COMPLETED,
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_CANCELED,
        TaskState.TASK_STATE_REJECTED,
    }
)
DEFAULT_KEEP_SECONDS = 600.0
DEFAULT_KEEP_FINISHED = 1_000


class ForgetfulTaskStore(TaskStore):
    """An in-memory A2A task store that forgets finished tasks; see the module docstring."""

    def __init__(
        self,
        *,
        keep_seconds: float = DEFAULT_KEEP_SECONDS,
        keep_finished: int = DEFAULT_KEEP_FINISHED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = InMemoryTaskStore()
        self.keep_seconds = keep_seconds
        self.keep_finished = keep_finished
        self._clock = clock
        #: Finished tasks, oldest first: task id -> (finished at, a context naming its owner,
        #: for the delete; only the user of the request that saved it is kept).
        self._finished: OrderedDict[str, tuple[float, ServerCallContext]] = OrderedDict()

    @property
    def finished_count(self) -> int:
        """How many finished tasks are kept now."""
        return len(self._finished)

    async def save(self, task: Task, context: ServerCallContext) -> None:
        await self._inner.save(task, context)
        if task.status.state in FINISHED_STATES:
            self._finished.pop(task.id, None)
            self._finished[task.id] = (self._clock(), ServerCallContext(user=context.user))
        else:
            self._finished.pop(task.id, None)
        await self._forget_old()

    async def get(self, task_id: str, context: ServerCallContext) -> Task | None:
        return await self._inner.get(task_id, context)

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        return await self._inner.list(params, context)

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        self._finished.pop(task_id, None)
        await self._inner.delete(task_id, context)

    async def _forget_old(self) -> None:
        """Drop finished tasks beyond the count, and those kept longer than the time."""
        cutoff = self._clock() - self.keep_seconds
        while self._finished:
            task_id, (finished_at, context) = next(iter(self._finished.items()))
            if len(self._finished) <= self.keep_finished and finished_at > cutoff:
                return
            del self._finished[task_id]
            await self._inner.delete(task_id, context)


__all__ = ["DEFAULT_KEEP_FINISHED", "DEFAULT_KEEP_SECONDS", "FINISHED_STATES", "ForgetfulTaskStore"]
