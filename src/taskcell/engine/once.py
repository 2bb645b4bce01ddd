"""Once tasks: submitting one, its run loop with retries, and continuing it with a reply.

Each attempt of a once task is a run of its own: started (pending to running, and the run with
this process as owner and its lease) in one write, executed, and settled by the
:class:`~taskcell.engine.settler.RunSettler`. A transient failure with attempts left requeues
the task and the loop sleeps out the back-off before the next attempt (an earlier attempt's
remote task is taken up again: see :mod:`taskcell.engine.executor`). An outage at the start is
waited out: the task stays pending, never orphaned.

A task waiting for input is continued in the same run: taken over (its epoch bumped, this
process its owner), the reply sent to the same remote task.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import timedelta

from taskcell.abc import Store
from taskcell.agents.base import AgentError, TransientAgentError
from taskcell.domain.models import Run, RunStatus, Task, TaskPattern, utcnow
from taskcell.domain.state_machine import InvalidTransition, TaskStatus
from taskcell.engine.attempts import Attempts
from taskcell.engine.eventlog import EventLog
from taskcell.engine.executor import (
    CONTEXT_KEY,
    RESUMABLE_KEY,
    Outcome,
    OutcomeKind,
    RunContext,
    TaskExecutor,
)
from taskcell.engine.opening import open_task
from taskcell.engine.responses import ResponseFactory
from taskcell.engine.runs import RunTable
from taskcell.engine.settler import RunSettler
from taskcell.engine.supervisor import Supervisor
from taskcell.service import TaskNotFound, TaskService

logger = logging.getLogger(__name__)


class OnceTasks:
    """See the module docstring. Runs are owned by ``owner`` and leased for ``lease``."""

    def __init__(
        self,
        store: Store,
        service: TaskService,
        log: EventLog,
        executor: TaskExecutor,
        runs: RunTable,
        settler: RunSettler,
        attempts: Attempts,
        supervisor: Supervisor,
        *,
        owner: str,
        lease: timedelta,
    ) -> None:
        self._store = store
        self._service = service
        self._log = log
        self._executor = executor
        self._runs = runs
        self._settler = settler
        self._attempts = attempts
        self._supervisor = supervisor
        self._owner = owner
        self._lease = lease

    async def submit(self, task: Task) -> Task:
        """Store a new once task, emit its opening events, and run it."""
        await open_task(self._service, self._log, task)
        self._runs.spawn(task.task_id, self._run(task))
        await self._log.flush()  # the opening events are durable before the caller hears of it
        return task

    def start(self, task: Task) -> bool:
        """Run a pending task here unless it runs here already; answers whether it started."""
        if self._runs.is_running_here(task.task_id):
            return False
        self._runs.spawn(task.task_id, self._run(task))
        return True

    async def _run(self, task: Task) -> None:
        async with self._settler.slot(task):
            while True:
                attempt = task.attempt + 1
                now = utcnow()
                run = Run(
                    task_id=task.task_id,
                    attempt=attempt,
                    started_at=now,
                    created_at=now,
                    owner=self._owner,
                    lease_expires_at=now + self._lease,
                    version=task.version,
                )
                # An outage is waited out here: the task stays pending, never orphaned.
                if not await self._supervisor.weather(
                    f"run {task.task_id}", functools.partial(self._store.start_run, run, now=now)
                ):
                    return  # no longer pending: cancelled, or another process runs it
                task.attempt, task.status = attempt, TaskStatus.RUNNING
                ctx = RunContext(task, run)
                delay: float | None = None
                async with self._settler.holding(ctx):
                    delay = await self._attempt(ctx)
                if delay is None:
                    return
                try:
                    await asyncio.sleep(delay)
                except asyncio.CancelledError:
                    await asyncio.shield(self._settler.stopped_between_attempts(task))
                    raise
                reloaded = await self._store.load(task.task_id)
                if reloaded is None or reloaded.status is not TaskStatus.PENDING:
                    return
                task = reloaded

    async def _attempt(self, ctx: RunContext) -> float | None:
        """Run one attempt and settle it; answers the back-off delay when it should retry.

        A later attempt of a once task takes up the remote task an earlier one left, if any
        (see :mod:`taskcell.engine.executor`)."""
        resume = None
        if ctx.task.pattern is TaskPattern.ONCE:
            resume = ctx.task.metadata.get(RESUMABLE_KEY) or None
        try:
            outcome = await self._executor.execute(
                ctx, resume=resume, after_attempt=ctx.run.attempt > 1
            )
        except TransientAgentError as exc:
            if self._runs.stopping:
                await self._attempts.until_stopped(ctx)
            return await self._settler.to_the_end(
                ctx, self._settler.transient_failure(ctx, str(exc))
            )
        except AgentError as exc:
            outcome = Outcome(OutcomeKind.FAILED, str(exc))
        except asyncio.CancelledError:
            await asyncio.shield(self._settler.stopped(ctx))
            raise
        await self._settler.to_the_end(ctx, self._settler.settle(ctx, outcome))
        return None

    # -- a reply ------------------------------------------------------------------------

    async def answer_here(self, task_id: str, text: str, *, said: bool = False) -> Task:
        """Continue a waiting task in this process with ``text`` (``said``: the user's message
        is in its log already, written by the process that took the reply).
        :class:`InvalidTransition` when the task does not wait for input (any more)."""
        task = await self._service.require_task(task_id)
        runs = (await self._store.list_runs(task_id, limit=1)).items
        lease_until = utcnow() + self._lease
        if not runs or not await self._store.continue_run(
            runs[0].run_id, task_id=task_id, owner=self._owner, lease_expires_at=lease_until
        ):
            current = await self._service.require_task(task_id)
            raise InvalidTransition(task_id, current.status, TaskStatus.RUNNING)
        run = runs[0]
        run.status, run.owner, run.lease_expires_at = RunStatus.RUNNING, self._owner, lease_until
        run.epoch += 1  # continue_run took the run over
        task.status = TaskStatus.RUNNING
        if not said:
            # Under the continued run's own fence: the previous epoch may still be held here
            # for a moment (its holder lets go once its settling returns).
            message = ResponseFactory(task, run.run_id).user_message(text)
            await self._log.emit(message, fence=run.fence)
        ctx = RunContext(
            task,
            run,
            remote_task_id=task.remote_task_ids[-1] if task.remote_task_ids else None,
            context_id=task.metadata.get(CONTEXT_KEY),
        )
        self._runs.spawn(task_id, self._continue(ctx, text))
        return await self._service.require_task(task_id)

    async def answer_forwarded(self, task_id: str, seq: int) -> None:
        """Continue a task waiting here with the reply another process wrote at ``seq`` of its
        log (a reply already taken, or a task deleted, is logged and left)."""
        self._log.appended_elsewhere(task_id)
        found = await self._store.read_events(task_id, after=seq - 1, limit=1)
        if not found or found[0].seq != seq or found[0].payload is None:
            logger.warning("forwarded reply not found", extra={"task_id": task_id, "seq": seq})
            return
        text = str(found[0].payload.get("content", ""))
        try:
            await self.answer_here(task_id, text, said=True)
        except (InvalidTransition, TaskNotFound) as exc:  # answered already, or deleted
            logger.info("forwarded reply not taken", extra={"task_id": task_id, "why": str(exc)})

    async def _continue(self, ctx: RunContext, text: str) -> None:
        async with self._settler.slot(ctx.task, ctx), self._settler.holding(ctx):
            try:
                outcome = await self._attempts.execute_with_retries(ctx, reply=text)
            except asyncio.CancelledError:
                await asyncio.shield(self._settler.stopped(ctx))
                raise
            await self._settler.to_the_end(ctx, self._settler.settle(ctx, outcome))
