"""Executing within one run, retrying transient failures with back-off.

Used where a new run per attempt is not possible: a reply continuing a waiting task, and an
occurrence of a recurring task. (A once task's attempts are each a run of their own: see
:mod:`taskcell.engine.once`.) During a graceful stop a cut agent connection is the stop's doing,
not a failure: the run waits to be stopped (:func:`wait_for_stop`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import NoReturn

from taskcell.abc import Store
from taskcell.agents.base import AgentError, TransientAgentError
from taskcell.engine.executor import Outcome, OutcomeKind, RunContext, TaskExecutor
from taskcell.engine.runs import RunTable
from taskcell.engine.settler import RetryPolicy, RunSettler

logger = logging.getLogger(__name__)


async def wait_for_stop(ctx: RunContext) -> NoReturn:
    """During a graceful stop a cut agent connection is the stop's doing (the agents this
    server serves stop with it): the run waits for the stop to cancel it, to be closed as
    interrupted like every other run, not failed."""
    logger.info(
        "agent connection lost while stopping",
        extra={"task_id": ctx.task.task_id, "run_id": ctx.run.run_id},
    )
    await asyncio.Event().wait()  # until the stop cancels this run
    raise AssertionError("unreachable: nothing sets the event")


class Attempts:
    """See the module docstring."""

    def __init__(
        self,
        store: Store,
        executor: TaskExecutor,
        runs: RunTable,
        settler: RunSettler,
        *,
        retry: RetryPolicy,
    ) -> None:
        self._store = store
        self._executor = executor
        self._runs = runs
        self._settler = settler
        self._retry = retry

    async def until_stopped(self, ctx: RunContext) -> NoReturn:
        """:func:`wait_for_stop`, then settle the run as stopped."""
        try:
            await wait_for_stop(ctx)
        except asyncio.CancelledError:
            await asyncio.shield(self._settler.stopped(ctx))
            raise

    async def execute_with_retries(
        self,
        ctx: RunContext,
        *,
        reply: str | None = None,
        emit_routed: bool = True,
        count_attempts: bool = False,
    ) -> Outcome:
        """Execute within one run, retrying transient failures with back-off.

        ``count_attempts`` records the attempt on the run (an occurrence). Giving up answers
        a FAILED outcome that says after how many attempts. An occurrence's retry resumes the
        remote task the failed attempt started, if any.
        """
        limit = ctx.task.max_attempts
        resume: str | None = None
        for attempt in range(1, limit + 1):
            try:
                return await self._executor.execute(
                    ctx, reply=reply, emit_routed=emit_routed, resume=resume
                )
            except TransientAgentError as exc:
                if self._runs.stopping:
                    await wait_for_stop(ctx)  # the caller closes it when cancelled
                if reply is None:
                    # The remote task a cut attempt started is taken up again (or cancelled,
                    # where the agent cannot), not started a second time.
                    resume = ctx.remote_task_id
                if attempt == limit:
                    await self._settler.cancel_remote(ctx.task, resume)
                    plural = "s" if attempt != 1 else ""
                    reason = f"{exc} (gave up after {attempt} attempt{plural})"
                    return Outcome(OutcomeKind.FAILED, reason)
                if count_attempts:
                    ctx.run.attempt = attempt + 1
                    changes = {"attempt": ctx.run.attempt}
                    await self._store.update_run(ctx.run.run_id, changes, fence=ctx.run.fence)
                await asyncio.sleep(self._retry.delay(attempt))
            except AgentError as exc:
                return Outcome(OutcomeKind.FAILED, str(exc))
        raise AssertionError("unreachable: max_attempts is at least 1")
