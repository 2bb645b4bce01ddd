"""The run settler: the one place that closes runs and settles their tasks.

Every way a run ends goes through here: an attempt's outcome (completed, failed, cancelled by
the agent, waiting for input), a transient failure (requeued with back-off, or failed with no
attempt left), a cancelled asyncio task (a user's cancel, a stop, an outage, a lost lease), a
task cancelled while nothing runs it, and recovery's closing of a run another process (or this
one, before an outage) left open. Each is one guarded write of the store, under the run's
fence where the run holds one (a run taken over meanwhile is refused: :class:`LeaseLost`), and
the closing events follow the write that settled the task.

A run that lost its lease writes nothing more, and its remote task is cancelled unless the
task's next attempt resumes it. A run whose own write meets an outage stops here as if its
lease had lapsed, and is recovered once the store answers again
(:meth:`RunSettler.interrupt`, called by :mod:`taskcell.engine.recovery`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from taskcell.abc import LeaseLost, Store
from taskcell.agents.base import can_resume
from taskcell.agents.registry import AgentRegistry
from taskcell.domain.events import EventType
from taskcell.domain.models import (
    OPEN_RUN_STATUSES,
    Fence,
    Run,
    RunStatus,
    Task,
    TaskPattern,
    utcnow,
)
from taskcell.domain.state_machine import TaskStatus
from taskcell.engine.controllers import Controllers
from taskcell.engine.eventlog import EventLog
from taskcell.engine.executor import RESUMABLE_KEY, Outcome, OutcomeKind, RunContext, TaskExecutor
from taskcell.engine.responses import ResponseFactory
from taskcell.engine.runs import INTERRUPTED, OUTAGE, RunTable
from taskcell.metrics import RUNS
from taskcell.outages import is_outage

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential back-off with jitter between attempts of a transient failure."""

    base_seconds: float = 0.5
    cap_seconds: float = 30.0

    def delay(self, attempt: int) -> float:
        raw = min(self.cap_seconds, self.base_seconds * 2.0 ** (attempt - 1))
        return float(raw * (0.5 + random.random() / 2))


def closing(status: RunStatus, error: str | None, result: str | None) -> dict[str, Any]:
    """The changes that end a run."""
    changes: dict[str, Any] = {"status": status, "finished_at": utcnow()}
    if error is not None:
        changes["error"] = error
    if result is not None:
        changes["result"] = result
    return changes


class RunSettler:
    """See the module docstring."""

    def __init__(
        self,
        store: Store,
        log: EventLog,
        runs: RunTable,
        executor: TaskExecutor,
        registry: AgentRegistry,
        controllers: Controllers,
        *,
        retry: RetryPolicy,
    ) -> None:
        self._store = store
        self._log = log
        self._runs = runs
        self._executor = executor
        self._registry = registry
        self._controllers = controllers
        self.retry = retry

    # -- while a run runs -----------------------------------------------------------------

    @contextlib.contextmanager
    def fenced(self, run: Run) -> Iterator[None]:
        """While the block runs, the run's events are appended under its fence (and a lost
        lease stops it: :meth:`RunTable.leases_lost`)."""
        held = run.fence
        self._runs.hold(run)
        self._log.hold(held)
        try:
            yield
        finally:
            self._runs.release(run.run_id)
            self._log.release(held)

    @contextlib.asynccontextmanager
    async def holding(self, ctx: RunContext) -> AsyncIterator[None]:
        """The block is the run's work under its fence. A :class:`LeaseLost` or an outage
        raised from it ends the run here (see :meth:`lease_lost`, :meth:`run_hit_outage`) and
        is not raised further; when the block ends, the run's cached log state goes."""
        with self.fenced(ctx.run):
            try:
                yield
            except LeaseLost:
                await self.lease_lost(ctx)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self.run_hit_outage(ctx, exc)
            finally:
                self._log.run_ended(ctx.run.run_id)

    @contextlib.asynccontextmanager
    async def slot(self, task: Task, ctx: RunContext | None = None) -> AsyncIterator[None]:
        """Hold a run slot for ``task`` (see :meth:`RunTable.slot`). Cancelled while it
        waits (a user's cancel, a stop, an outage), it settles what waits before it
        re-raises: the stored run ``ctx`` (a reply taken up, an occurrence) as :meth:`stopped`
        does, or, with no run yet, a cancelled task's closing events."""
        on_cancelled = functools.partial(self._stopped_waiting, task, ctx)
        async with self._runs.slot(task, on_cancelled=on_cancelled):
            yield

    # -- an attempt's outcome -------------------------------------------------------------

    async def to_the_end(self, ctx: RunContext, settling: Awaitable[T]) -> T:
        """Await a run's settling to its end even if the run is cancelled meanwhile (a user's
        cancel, a stop), then let the cancellation go on.

        Settling is a guarded write and the events that go with it: cut in between, the run
        would stay open with no coroutine behind it (and its lease renewed with the others'),
        or its task settled with no closing events (a stream that never ends). A settling
        write that fails for an outage raises as before (:meth:`holding` recovers the run).
        Cancelled because the store is unavailable (the lease guard), the settling is cut at
        once, since it cannot finish anyway, and the run is recovered once the store answers
        (:meth:`RunTable.stopped_for_outage`), as if its settling write had failed.
        """
        work = asyncio.ensure_future(settling)
        cancelled = False
        while True:
            try:
                result = await asyncio.shield(work)
                break
            except asyncio.CancelledError:
                if work.done():
                    raise  # cancelled from inside: nothing more to wait for
                if self._runs.reason(ctx.task.task_id) == OUTAGE:
                    work.cancel()
                    await asyncio.gather(work, return_exceptions=True)
                    self._runs.stopped_for_outage(ctx.run)
                    raise
                cancelled = True  # taken up once the settling is done
        if cancelled:
            raise asyncio.CancelledError
        return result

    async def settle(self, ctx: RunContext, outcome: Outcome) -> None:
        """Settle a once task's attempt (or a reply's continuation) with its outcome."""
        task, run = ctx.task, ctx.run
        factory = ResponseFactory(task, run.run_id)
        emit = self._log.emit
        if outcome.kind is OutcomeKind.WAITING_INPUT:
            # The question's events are written under this epoch before anyone can take the
            # run up (a reply bumps the epoch: events of the old one would be refused).
            await self._log.flush()
            waiting: dict[str, Any] = {"status": RunStatus.WAITING_INPUT}
            await self._store.update_run(run.run_id, waiting, fence=run.fence)
            await self._store.transition(
                task.task_id,
                TaskStatus.WAITING_INPUT,
                expected=[TaskStatus.RUNNING],
                changes=ctx.remote_changes(),
            )
            return
        if outcome.kind is OutcomeKind.COMPLETED:
            if await self.finish_run(
                run,
                RunStatus.COMPLETED,
                TaskStatus.COMPLETED,
                result=outcome.text,
                expected=[TaskStatus.RUNNING],
                changes=ctx.remote_changes(),
                fence=run.fence,
            ):
                await emit(factory.task_completed())
                await emit(factory.done())
            return
        if outcome.kind is OutcomeKind.CANCELLED:
            changes = {"error_message": outcome.text, **ctx.remote_changes()}
            if await self.finish_run(
                run,
                RunStatus.CANCELLED,
                TaskStatus.CANCELLED,
                error=outcome.text,
                changes=changes,
                fence=run.fence,
            ):
                await emit(factory.task_cancelled(outcome.text))
                await emit(factory.done())
            return
        await self._fail(ctx, outcome.text)

    async def _fail(self, ctx: RunContext, reason: str) -> None:
        """The FAIL_TASK side effect: the run and task failed, their components updated."""
        task, run = ctx.task, ctx.run
        factory = ResponseFactory(task, run.run_id)
        changes = {"error_message": reason, **ctx.remote_changes()}
        if await self.finish_run(
            run, RunStatus.FAILED, TaskStatus.FAILED, error=reason, changes=changes, fence=run.fence
        ):
            await self._log.emit(factory.task_failed(reason))
            await self._controllers.update(
                task, task_status="failed", last_error=reason, fence=run.fence
            )
            await self._log.emit(factory.done())

    async def transient_failure(self, ctx: RunContext, reason: str) -> float | None:
        """A once task's attempt failed transiently: with attempts left the run fails and the
        task is requeued in one write, answering the back-off delay before the next attempt;
        else the task fails (answering None)."""
        task, run = ctx.task, ctx.run
        if run.attempt >= task.max_attempts:
            plural = "s" if run.attempt != 1 else ""
            await self._fail_task(
                task,
                run,
                f"{reason} (gave up after {run.attempt} attempt{plural})",
                error=reason,
                changes=ctx.remote_changes(),
                fence=run.fence,
            )
            return None
        if not await self.finish_run(
            run,
            RunStatus.FAILED,
            TaskStatus.PENDING,
            error=reason,
            expected=[TaskStatus.RUNNING],
            changes=ctx.remote_changes(),
            fence=run.fence,
        ):
            return None
        ctx.remote_changed = False
        delay = self.retry.delay(run.attempt)
        note = (
            f"Attempt {run.attempt} of {task.max_attempts} failed: {reason}. "
            f"Retrying in {delay:.1f} s."
        )
        await self._log.emit(ResponseFactory(task, run.run_id).system_message(note))
        return delay

    async def timed_out(self, ctx: RunContext, reason: str) -> float | None:
        """A once task's attempt ran past its deadline: its remote task is cancelled (never
        resumed), then the attempt is a failed one like a transient failure's: the task is
        requeued while attempts are left (answering the back-off delay), else it fails."""
        task = ctx.task
        remote = ctx.remote_task_id or task.metadata.get(RESUMABLE_KEY)
        await self.cancel_remote(task, remote)
        if task.metadata.get(RESUMABLE_KEY):
            task.metadata = {**task.metadata, RESUMABLE_KEY: None}
            ctx.remote_changed = True  # written with the settling write
        return await self.transient_failure(ctx, reason)

    async def _fail_task(
        self,
        task: Task,
        run: Run,
        reason: str,
        *,
        error: str | None = None,
        changes: dict[str, Any] | None = None,
        fence: Fence | None = None,
        status: RunStatus = RunStatus.FAILED,
    ) -> None:
        """Fail the task with ``reason``; its still open ``run`` is closed (as ``status``, with
        ``error``, default the reason) in the same write, guarded by ``fence``. The once task's
        remote task, which may still run (an interrupted or cut-off last attempt), is
        cancelled."""
        factory = ResponseFactory(task, run.run_id)
        changes = {**(changes or {}), "error_message": reason}
        if await self.finish_run(
            run, status, TaskStatus.FAILED, error=error or reason, changes=changes, fence=fence
        ):
            await self._log.emit(factory.task_failed(reason))
            await self._log.emit(factory.done())
            if task.pattern is TaskPattern.ONCE and task.metadata.get(RESUMABLE_KEY):
                await self.cancel_remote(task, task.metadata[RESUMABLE_KEY])

    # -- the writes that close a run ------------------------------------------------------

    async def close_run(
        self,
        run: Run,
        status: RunStatus,
        error: str | None = None,
        *,
        result: str | None = None,
        fence: Fence | None = None,
    ) -> None:
        """End ``run`` with ``status`` if it is still open (its task is left as it is); with
        ``fence``, only while the run is still the fence's (else :class:`LeaseLost`)."""
        changes = closing(status, error, result)
        if await self._store.update_run(
            run.run_id, changes, expected=OPEN_RUN_STATUSES, fence=fence
        ):
            RUNS.labels(outcome=status.value).inc()

    async def finish_run(
        self,
        run: Run,
        status: RunStatus,
        target: TaskStatus,
        *,
        error: str | None = None,
        result: str | None = None,
        expected: list[TaskStatus] | None = None,
        changes: dict[str, Any] | None = None,
        fence: Fence | None = None,
    ) -> bool:
        """End ``run`` with ``status`` and move its task to ``target`` in one write; answers
        whether the task moved (the run is closed either way, if it was still open). With
        ``fence``, nothing happens unless the run is still the fence's: :class:`LeaseLost`."""
        closed, moved = await self._store.finish_run(
            run.run_id,
            closing(status, error, result),
            task_id=run.task_id,
            target=target,
            expected=expected,
            task_changes=changes,
            fence=fence,
        )
        if closed:
            RUNS.labels(outcome=status.value).inc()
        return moved

    # -- a run that was stopped -----------------------------------------------------------

    async def stopped(self, ctx: RunContext) -> None:
        """A run's asyncio task was cancelled: by a user's cancel, by shutdown, by an outage,
        or because its lease was lost (for the last two it writes nothing: another process
        owns the task now, or will: see :meth:`RunTable.stop_for_outage`).

        At shutdown the run is closed as interrupted and its task queued again; its remote
        A2A task goes on, and the next attempt resumes it (or cancels it, where the agent
        cannot resume). A task with no attempt left fails, and its remote task is cancelled.
        """
        if self._runs.lost(ctx.run.run_id):
            await self.lease_lost(ctx)
            return
        if self._runs.reason(ctx.task.task_id) == OUTAGE:
            self._runs.stopped_for_outage(ctx.run)
            return
        try:
            await self._stopped(ctx)
        except LeaseLost:
            await self.lease_lost(ctx)

    async def _stopped(self, ctx: RunContext) -> None:
        task, run, fence = ctx.task, ctx.run, ctx.run.fence
        reason = self._runs.reason(task.task_id)
        if reason is not None:
            if ctx.remote_changed:
                await self._store.update(task.task_id, ctx.remote_changes(), fence=fence)
            await self.cancel_remote(task, ctx.remote_task_id)
            await self.close_run(run, RunStatus.CANCELLED, reason, fence=fence)
            await self._emit_cancelled(task, reason, run.run_id)
            return
        if task.pattern is not TaskPattern.ONCE:
            if ctx.remote_changed:
                await self._store.update(task.task_id, ctx.remote_changes(), fence=fence)
            await self.close_run(run, RunStatus.INTERRUPTED, INTERRUPTED, fence=fence)
            # An occurrence is not run again (its task goes on at the next one): nobody
            # would read its remote task.
            await self.cancel_remote(task, ctx.remote_task_id)
            return
        # Closed and requeued (or failed, without attempts left) in one write.
        if run.attempt < task.max_attempts:
            await self.finish_run(
                run,
                RunStatus.INTERRUPTED,
                TaskStatus.PENDING,
                error=INTERRUPTED,
                expected=[TaskStatus.RUNNING],
                changes=ctx.remote_changes(),
                fence=fence,
            )
        else:
            await self._fail_task(
                task,
                run,
                INTERRUPTED,
                changes=ctx.remote_changes(),
                fence=fence,
                status=RunStatus.INTERRUPTED,
            )

    async def _stopped_waiting(self, task: Task, ctx: RunContext | None) -> None:
        """A run cancelled while it waited for a slot: see :meth:`slot`."""
        logger.info(
            "run stopped while it waited for a slot",
            extra={"task_id": task.task_id, "reason": self._runs.reason(task.task_id)},
        )
        if ctx is None:
            await self.stopped_between_attempts(task)
            return
        with self.fenced(ctx.run):
            try:
                await self.stopped(ctx)
            finally:
                self._log.run_ended(ctx.run.run_id)

    async def stopped_between_attempts(self, task: Task) -> None:
        """A once task's run was cancelled while it held no run (waiting for a slot, or out a
        retry's back-off): a user's cancel writes the task's closing events."""
        reason = self._runs.reason(task.task_id)
        if reason is not None and reason != OUTAGE:
            await self._emit_cancelled(task, reason)

    def run_hit_outage(self, ctx: RunContext, exc: BaseException) -> None:
        """A write of the run (its settling, say) failed for an outage: the run stops here as
        if its lease had lapsed, and is recovered (closed and requeued in one fenced write, or,
        if the failed write committed after all, its closing events written) once the store
        answers again, before any lease is renewed."""
        logger.warning(
            "run stopped: the store was unavailable for its write",
            extra={"task_id": ctx.task.task_id, "run_id": ctx.run.run_id, "error": repr(exc)},
        )
        self._runs.stopped_for_outage(ctx.run)

    async def lease_lost(self, ctx: RunContext) -> None:
        """A run lost its lease: it writes nothing more (see :class:`LeaseLost`), and its
        remote task is cancelled unless the attempt that took the task over resumes it."""
        self._runs.mark_lost(ctx.run)
        logger.warning(
            "run stopped: its lease was lost",
            extra={"task_id": ctx.task.task_id, "run_id": ctx.run.run_id},
        )
        if not await self._taken_up_elsewhere(ctx):
            await self.cancel_remote(ctx.task, ctx.remote_task_id)

    async def _taken_up_elsewhere(self, ctx: RunContext) -> bool:
        """Whether the remote task of a run that lost its lease is (or will be) resumed by the
        task's next attempt: an agent that can resume it, a once task still open, and no other
        remote task recorded since (the task names this one, or none: then the next attempt
        finds it by its context id). Cancelling it would cancel the resumed work."""
        task, remote = ctx.task, ctx.remote_task_id
        if not remote or task.pattern is not TaskPattern.ONCE:
            return False
        try:
            client = self._registry.get(task.agent_name)
            if not can_resume(client) or getattr(client, "served_here", False):
                return False  # no other process can reach it (an in-process or demo agent)
            current = await self._store.load(task.task_id)
        except Exception as exc:  # the store is out: leave it to the next attempt
            logger.info(
                "remote task left to the next attempt",
                extra={"task_id": task.task_id, "remote_task_id": remote, "error": repr(exc)},
            )
            return True
        if current is None or current.is_finished():
            return False
        return current.metadata.get(RESUMABLE_KEY) in (None, remote)

    async def cancel_remote(self, task: Task, remote_task_id: str | None) -> None:
        """Ask the agent to cancel ``remote_task_id`` (a failure is logged, not raised)."""
        await self._executor.cancel_remote(task, remote_task_id)

    # -- a task that nothing runs here ----------------------------------------------------

    async def cancel_idle(self, task: Task, reason: str) -> None:
        """Close what a task cancelled while no asyncio task runs it here (queued, waiting,
        or between runs) left open, and write its closing events.

        Its remote task is cancelled too: the one waiting for input, or the one an interrupted
        run left for the next attempt to resume."""
        remote = task.metadata.get(RESUMABLE_KEY) if task.pattern is TaskPattern.ONCE else None
        if task.status is TaskStatus.WAITING_INPUT and task.remote_task_ids:
            remote = task.remote_task_ids[-1]
        if remote:
            await self.cancel_remote(task, remote)
        statuses = [RunStatus.WAITING_INPUT, RunStatus.QUEUED]
        for run in await self._store.runs_in_status(statuses, task_id=task.task_id):
            await self.close_run(run, RunStatus.CANCELLED, reason)
        await self._emit_cancelled(task, reason)

    async def _emit_cancelled(self, task: Task, reason: str, run_id: str | None = None) -> None:
        factory = ResponseFactory(task, run_id)
        await self._log.emit(factory.task_cancelled(reason))
        await self._log.emit(factory.done())

    # -- recovery's writes ----------------------------------------------------------------

    async def interrupt(self, run: Run, reason: str, *, closer: str | None = None) -> bool:
        """Close ``run`` as interrupted with ``reason`` and requeue (or fail) its once task in
        one write under the run's fence; with ``closer`` (a takeover of another process's
        run) that process is recorded as its closer and the epoch bumped. Answers whether it
        closed the run (``run`` then says so); False if another process had taken it over
        meanwhile (for a run of this process, its closing events are then written if the
        task's log lacks them: its own settling write may have committed unanswered)."""
        changes: dict[str, Any] = closing(RunStatus.INTERRUPTED, reason, None)
        if closer is not None:
            changes |= {"closed_by": closer, "epoch": run.epoch + 1}
        task = await self._store.load(run.task_id)
        try:
            if task is None or task.pattern is not TaskPattern.ONCE:
                await self._store.update_run(run.run_id, changes, fence=run.fence)
            else:
                requeue = run.attempt < task.max_attempts
                await self._store.finish_run(
                    run.run_id,
                    changes,
                    task_id=task.task_id,
                    target=TaskStatus.PENDING if requeue else TaskStatus.FAILED,
                    expected=[TaskStatus.RUNNING],
                    task_changes=None if requeue else {"error_message": reason},
                    now=changes["finished_at"],
                    fence=run.fence,
                )
        except LeaseLost:
            if closer is None:
                # Closed already: by another process (which recovers it), or by this run's own
                # settling write whose answer was lost (its closing events may be missing).
                await self.close_log_of(run)
            return False
        RUNS.labels(outcome=RunStatus.INTERRUPTED.value).inc()
        run.finished_at = changes["finished_at"]
        if closer is not None:
            run.closed_by, run.epoch = closer, run.epoch + 1
        return True

    async def failed_by_recovery(self, task: Task, run: Run) -> None:
        """Write the closing events of a once task that the write closing ``run`` failed."""
        factory = ResponseFactory(task, run.run_id)
        await self._log.emit(factory.task_failed(task.error_message or INTERRUPTED))
        await self._log.emit(factory.done())

    async def close_log_of(self, run: Run) -> None:
        """Emit a finished once task's closing events if its log does not end with ``done``."""
        task = await self._store.load(run.task_id)
        if task is None or task.pattern is not TaskPattern.ONCE or not task.is_finished():
            return
        latest = (await self._store.list_runs(task.task_id, limit=1)).items
        if not latest or latest[0].run_id != run.run_id:
            return  # a later attempt settled the task: its own events close the log
        await self._log.flush()  # what this process emitted for it is in the log first
        last = await self._store.last_seq(task.task_id)
        tail = await self._store.read_events(task.task_id, after=max(0, last - 1))
        if tail and tail[-1].event is EventType.DONE:
            return
        factory = ResponseFactory(task, run.run_id)
        reason = task.error_message or task.status.value
        if task.status is TaskStatus.COMPLETED:
            await self._log.emit(factory.task_completed())
        elif task.status is TaskStatus.FAILED:
            await self._log.emit(factory.task_failed(reason))
        else:
            await self._log.emit(factory.task_cancelled(reason))
        await self._log.emit(factory.done())
        logger.warning(
            "closing events written for a task a dead process settled",
            extra={"task_id": task.task_id, "status": task.status.value},
        )
