"""The Engine: runs tasks, cancels them, answers them, and keeps their schedules.

It owns the event log's writer loop and the scheduler (both supervised), and one asyncio task
per task that runs here. Every state change goes through the store's guarded writes; the engine
only decides what to do next. Cancellation is a signal, not a poll: ``cancel`` marks the task
cancelled in the store and cancels the asyncio task that runs it, which cancels the remote
agent's task, emits ``task_cancelled`` and ``done``, and ends its run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from taskcell.abc import LeaseLost, Store, TaskFilter
from taskcell.agents.base import AgentError, TransientAgentError, can_resume
from taskcell.agents.registry import AgentRegistry
from taskcell.domain.events import Event, EventType
from taskcell.domain.models import (
    OPEN_RUN_STATUSES,
    Fence,
    Run,
    RunStatus,
    Task,
    TaskPattern,
    new_id,
    utcnow,
)
from taskcell.domain.schedule import resolve_zone_name
from taskcell.domain.state_machine import InvalidTransition, TaskStatus
from taskcell.engine import recurring
from taskcell.engine.cluster import Coordinator
from taskcell.engine.eventlog import EventLog
from taskcell.engine.executor import (
    CONTEXT_KEY,
    RESUMABLE_KEY,
    Outcome,
    OutcomeKind,
    RunContext,
    TaskExecutor,
)
from taskcell.engine.plan import ExecutionPlan, PlanResult, execute_plan
from taskcell.engine.responses import CONTROLLER, ResponseFactory
from taskcell.engine.scheduler import Scheduler
from taskcell.engine.supervisor import Supervisor
from taskcell.metrics import RUNS
from taskcell.outages import is_outage
from taskcell.service import TaskNotFound, TaskService, conversation_title

logger = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the server stopped while it ran"
#: Why runs stop when this process cannot renew their leases (they write nothing more).
OUTAGE = "interrupted: the store was unavailable and the run's lease could not be renewed"
CANCELLED_BY_USER = "cancelled by the user"
_STOP_GRACE = 5.0


@dataclass(frozen=True, slots=True)
class CancelResult:
    task_id: str
    success: bool
    updated_component_ids: list[str]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential back-off with jitter between attempts of a transient failure."""

    base_seconds: float = 0.5
    cap_seconds: float = 30.0

    def delay(self, attempt: int) -> float:
        raw = min(self.cap_seconds, self.base_seconds * 2.0 ** (attempt - 1))
        return float(raw * (0.5 + random.random() / 2))


def _closing(status: RunStatus, error: str | None, result: str | None) -> dict[str, Any]:
    """The changes that end a run."""
    changes: dict[str, Any] = {"status": status, "finished_at": utcnow()}
    if error is not None:
        changes["error"] = error
    if result is not None:
        changes["result"] = result
    return changes


def process_id() -> str:
    """This process's name in run ownership: host, pid, and a token (a pid can come back)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Engine:
    """See the module docstring. ``start`` before use, ``stop`` at the end."""

    def __init__(
        self,
        store: Store,
        registry: AgentRegistry,
        *,
        retry: RetryPolicy | None = None,
        max_concurrent_runs: int = 64,
        default_zone: str | None = None,
        owner: str | None = None,
        lease_seconds: float = 30.0,
        on_failure: Callable[[str, BaseException | None], None] | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.service = TaskService(store)
        self.log = EventLog(store)
        self.default_zone = default_zone or resolve_zone_name(None)
        self.executor = TaskExecutor(store, registry, self.log, default_zone=self.default_zone)
        self.retry = retry or RetryPolicy()
        self.owner = owner or process_id()
        self.supervisor = Supervisor(on_failure)
        self.scheduler = Scheduler(self)
        self._slots = asyncio.Semaphore(max_concurrent_runs)
        self._max_runs = max_concurrent_runs
        self._agent_slots: dict[str, asyncio.Semaphore] = {}
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._cancelling: dict[str, str] = {}
        #: Runs of this process whose lease was lost (a write refused): they stop, writing
        #: nothing more. By run id, with the task id the run belongs to.
        self._lost: dict[str, str] = {}
        self._held: dict[str, str] = {}  # run id -> task id, for the runs holding a fence here
        #: Set when a graceful stop begins: no run starts any more, and a run whose agent
        #: connection is cut waits to be stopped (interrupted) instead of failing.
        self.stopping = False
        #: Runs stopped because their leases could not be renewed, by run id: their rows
        #: stay open under this owner until :meth:`recover_stopped_runs` closes them.
        self._stopped_for_outage: dict[str, Run] = {}
        self.lease = timedelta(seconds=lease_seconds)
        #: A process with no heartbeat for this long is dead (it heartbeats every half lease).
        self.dead_after = 2 * self.lease
        self.cluster = Coordinator(self)
        self.log.on_lease_lost = self.leases_lost

    # -- life cycle -----------------------------------------------------------------------

    async def start(self, *, recover: bool = True, schedule: bool = True) -> None:
        self.stopping = False
        await self.store.open()
        self.supervisor.start("event-log-writer", self.log.run)
        if recover:
            await self.recover()
        self.supervisor.start("leases", self.cluster.keep_leases)
        self.supervisor.start("recovery", self.cluster.recover_forever)
        if self.cluster.clustered:
            self.supervisor.start("notifications", self.cluster.listen)
        if schedule:
            self.supervisor.start("scheduler", self.scheduler.run)

    def begin_stop(self) -> None:
        """A graceful stop begins (the server was told to exit): see :attr:`stopping`."""
        if not self.stopping:
            logger.info("graceful stop begins", extra={"runs": len(self._runs)})
        self.stopping = True

    async def interrupt_runs(self) -> None:
        """Stop this process's runs: each is closed as interrupted and its task queued again
        (a remote A2A task is left running, to be resumed by the next attempt). The server
        calls this before it stops serving, while the demo agents it serves still answer."""
        self.begin_stop()
        runs = [t for t in self._runs.values() if not t.done()]
        for task in runs:
            task.cancel()
        if runs:
            await asyncio.wait(runs, timeout=_STOP_GRACE)

    async def stop(self) -> None:
        """Stop runs (they are closed as interrupted and queued again), then the loops."""
        await self.interrupt_runs()
        try:
            await asyncio.wait_for(self.log.flush(), _STOP_GRACE)
        except TimeoutError:
            logger.error("events still queued at shutdown were not written")
        await self.supervisor.stop()
        await self.store.close()

    async def wait_idle(self) -> None:
        """Wait until no run of this process is going (tests and benchmarks use it)."""
        while self._runs:
            await asyncio.wait(list(self._runs.values()))
        await self.log.flush()

    async def has_live_run(self, task_id: str) -> bool:
        """Whether a run of the task goes on, here or in another live process."""
        return await self.cluster.has_live_run(task_id)

    async def schedule_changed(self) -> None:
        """Wake the schedulers (this process's and, in a cluster, the others')."""
        await self.cluster.schedule_changed()

    def stop_run_here(self, task_id: str, reason: str | None) -> asyncio.Task[None] | None:
        """Cancel the run of ``task_id`` in this process (a user's cancel, with ``reason``)."""
        runner = self._runs.get(task_id)
        if runner is None or runner.done():
            return None
        self._cancelling[task_id] = reason or CANCELLED_BY_USER
        runner.cancel()
        return runner

    def stop_runs_for_outage(self) -> list[str]:
        """Cancel every run of this process because its lease cannot be renewed: they stop
        without writing anything more (their leases lapse and whoever holds the store when it
        returns recovers them). Answers their task ids."""
        stopped = []
        for task_id, runner in list(self._runs.items()):
            if not runner.done():
                self._cancelling[task_id] = OUTAGE
                runner.cancel()
                stopped.append(task_id)
        return stopped

    async def recover_stopped_runs(self) -> int:
        """Recover the runs :meth:`stop_runs_for_outage` stopped, once the store answers again
        (before any lease is renewed, so theirs never are): each still open under this owner
        is closed as interrupted and its once task requeued (or failed), exactly as recovery
        after a crash would; a run another process recovered meanwhile is left to it (the
        guarded close refuses). Answers how many were closed here."""
        closed = 0
        for run_id, run in list(self._stopped_for_outage.items()):
            # Forgotten only once the guarded close answered (an outage retries it).
            closed += await self._close_and_recover(run, OUTAGE, takeover=False)
            del self._stopped_for_outage[run_id]
        return closed

    def _stopped_by_outage(self, task_id: str) -> bool:
        return self._cancelling.get(task_id) == OUTAGE

    def is_running_here(self, task_id: str) -> bool:
        run = self._runs.get(task_id)
        return run is not None and not run.done()

    def _spawn(self, task_id: str, coro: Coroutine[Any, Any, None]) -> None:
        if self.stopping:
            coro.close()  # it stays queued: the next start (or another process) runs it
            logger.info("run not started: the server is stopping", extra={"task_id": task_id})
            return
        runner = asyncio.create_task(coro, name=f"run {task_id}")
        self._runs[task_id] = runner

        def ended(done: asyncio.Task[None]) -> None:
            if self._runs.get(task_id) is done:
                del self._runs[task_id]
            self._cancelling.pop(task_id, None)
            if not done.cancelled() and done.exception() is not None:
                logger.error("run crashed", extra={"task_id": task_id}, exc_info=done.exception())

        runner.add_done_callback(ended)

    # -- creating -------------------------------------------------------------------------

    async def submit(self, task: Task, *, run_immediately: bool = True) -> Task:
        """Store a new task, emit its opening events, and run it (or schedule it)."""
        self.registry.get(task.agent_name)  # UnknownAgent before anything is stored
        if task.pattern is TaskPattern.RECURRING:
            return await recurring.submit(self, task, run_immediately=run_immediately)
        await self.open_task(task)
        self._spawn(task.task_id, self._run_once(task))
        await self.log.flush()  # the opening events are durable before the caller hears of it
        return task

    async def open_task(self, task: Task) -> None:
        """Store a new task and emit its opening events (its conversation, if new, then its
        thread)."""
        new_conversation = await self.service.add_task(task)
        self.log.new_task(task.task_id)
        factory = ResponseFactory(task)
        if new_conversation:
            await self.log.emit(factory.conversation_started())
        await self.log.emit(factory.thread_started(conversation_title(task)))
        await self.log.emit(factory.user_message(task.query))

    # -- once tasks -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def run_slot(self, task: Task, ctx: RunContext | None = None) -> AsyncIterator[None]:
        """Hold a run slot for ``task``: first one of its agent's own (see
        ``AgentRegistry.run_limit``; waiting for it holds no engine slot), then one of the
        engine's ``max_concurrent_runs``.

        Cancelled while it waits (a user's cancel, a stop, an outage), it settles what waits
        before it re-raises: the stored run ``ctx`` (a reply taken up, an occurrence) as
        :meth:`stopped` does, or, with no run yet, a cancelled task's closing events."""
        name = task.agent_name
        limit = self._agent_slots.get(name)
        if limit is None and (count := self.registry.run_limit(name, self._max_runs)):
            limit = self._agent_slots[name] = asyncio.Semaphore(count)
        held: list[asyncio.Semaphore] = []
        try:
            for semaphore in (limit, self._slots):
                if semaphore is not None:
                    await semaphore.acquire()
                    held.append(semaphore)
        except asyncio.CancelledError:
            for semaphore in held:
                semaphore.release()
            await asyncio.shield(self._stopped_waiting(task, ctx))
            raise
        try:
            yield
        finally:
            for semaphore in held:
                semaphore.release()

    async def _stopped_waiting(self, task: Task, ctx: RunContext | None) -> None:
        """A run cancelled while it waited for a slot: see :meth:`run_slot`."""
        logger.info(
            "run stopped while it waited for a slot",
            extra={"task_id": task.task_id, "reason": self._cancelling.get(task.task_id)},
        )
        if ctx is None:
            await self._stopped_between_attempts(task)
            return
        with self.fenced(ctx):
            try:
                await self.stopped(ctx)
            finally:
                self.log.run_ended(ctx.run.run_id)

    async def _run_once(self, task: Task) -> None:
        async with self.run_slot(task):
            while True:
                attempt = task.attempt + 1
                now = utcnow()
                run = Run(
                    task_id=task.task_id,
                    attempt=attempt,
                    started_at=now,
                    created_at=now,
                    owner=self.owner,
                    lease_expires_at=now + self.lease,
                )
                # An outage is waited out here: the task stays pending, never orphaned.
                if not await self.supervisor.weather(
                    f"run {task.task_id}", functools.partial(self.store.start_run, run, now=now)
                ):
                    return  # no longer pending: cancelled, or another process runs it
                task.attempt, task.status = attempt, TaskStatus.RUNNING
                ctx = RunContext(task, run)
                with self.fenced(ctx):
                    try:
                        delay = await self._attempt(ctx)
                    except LeaseLost:
                        await self.lease_lost(ctx)
                        return
                    except Exception as exc:
                        if not is_outage(exc):
                            raise
                        self.run_hit_outage(ctx, exc)
                        return
                    finally:
                        self.log.run_ended(run.run_id)
                if delay is None:
                    return
                try:
                    await asyncio.sleep(delay)
                except asyncio.CancelledError:
                    await asyncio.shield(self._stopped_between_attempts(task))
                    raise
                reloaded = await self.store.load(task.task_id)
                if reloaded is None or reloaded.status is not TaskStatus.PENDING:
                    return
                task = reloaded

    async def _attempt(self, ctx: RunContext, reply: str | None = None) -> float | None:
        """Run one attempt and settle it; answers the back-off delay when it should retry.

        A later attempt of a once task takes up the remote task an earlier one left, if any
        (see :mod:`taskcell.engine.executor`)."""
        resume = None
        if reply is None and ctx.task.pattern is TaskPattern.ONCE:
            resume = ctx.task.metadata.get(RESUMABLE_KEY) or None
        try:
            outcome = await self.executor.execute(
                ctx, reply=reply, resume=resume, after_attempt=ctx.run.attempt > 1
            )
        except TransientAgentError as exc:
            if self.stopping:
                await self._until_stopped(ctx)
            return await self._transient_failure(ctx, str(exc))
        except AgentError as exc:
            outcome = Outcome(OutcomeKind.FAILED, str(exc))
        except asyncio.CancelledError:
            await asyncio.shield(self.stopped(ctx))
            raise
        await self._settle(ctx, outcome)
        return None

    async def _settle(self, ctx: RunContext, outcome: Outcome) -> None:
        task, run = ctx.task, ctx.run
        factory = ResponseFactory(task, run.run_id)
        emit = self.log.emit
        if outcome.kind is OutcomeKind.WAITING_INPUT:
            # The question's events are written under this epoch before anyone can take the
            # run up (a reply bumps the epoch: events of the old one would be refused).
            await self.log.flush()
            waiting: dict[str, Any] = {"status": RunStatus.WAITING_INPUT}
            await self.store.update_run(run.run_id, waiting, fence=run.fence)
            await self.store.transition(
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
            await self.log.emit(factory.task_failed(reason))
            await self.update_controllers(
                task, task_status="failed", last_error=reason, fence=run.fence
            )
            await self.log.emit(factory.done())

    async def _transient_failure(self, ctx: RunContext, reason: str) -> float | None:
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
        await self.log.emit(ResponseFactory(task, run.run_id).system_message(note))
        return delay

    async def _fail_task(
        self,
        task: Task,
        run: Run | None,
        reason: str,
        *,
        error: str | None = None,
        changes: dict[str, Any] | None = None,
        fence: Fence | None = None,
        status: RunStatus = RunStatus.FAILED,
    ) -> None:
        """Fail the task with ``reason``; a still open ``run`` is closed (as ``status``, with
        ``error``, default the reason) in the same write, guarded by ``fence``. The once task's
        remote task, which may still run (an interrupted or cut-off last attempt), is
        cancelled."""
        factory = ResponseFactory(task, run.run_id if run else None)
        changes = {**(changes or {}), "error_message": reason}
        if run is None:
            failed = await self.store.transition(task.task_id, TaskStatus.FAILED, changes=changes)
        else:
            failed = await self.finish_run(
                run,
                status,
                TaskStatus.FAILED,
                error=error or reason,
                changes=changes,
                fence=fence,
            )
        if failed:
            await self.log.emit(factory.task_failed(reason))
            await self.log.emit(factory.done())
            if task.pattern is TaskPattern.ONCE and task.metadata.get(RESUMABLE_KEY):
                await self.cancel_remote(task, task.metadata[RESUMABLE_KEY])

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
        changes = _closing(status, error, result)
        if await self.store.update_run(
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
        closed, moved = await self.store.finish_run(
            run.run_id,
            _closing(status, error, result),
            task_id=run.task_id,
            target=target,
            expected=expected,
            task_changes=changes,
            fence=fence,
        )
        if closed:
            RUNS.labels(outcome=status.value).inc()
        return moved

    # -- stopping a run -------------------------------------------------------------------

    async def _wait_for_stop(self, ctx: RunContext) -> NoReturn:
        """During a graceful stop a cut agent connection is the stop's doing (the agents this
        server serves stop with it): the run waits for the stop to cancel it, to be closed as
        interrupted like every other run, not failed."""
        logger.info(
            "agent connection lost while stopping",
            extra={"task_id": ctx.task.task_id, "run_id": ctx.run.run_id},
        )
        await asyncio.Event().wait()  # until the stop cancels this run
        raise AssertionError("unreachable: nothing sets the event")

    async def _until_stopped(self, ctx: RunContext) -> NoReturn:
        """:meth:`_wait_for_stop`, then :meth:`stopped`."""
        try:
            await self._wait_for_stop(ctx)
        except asyncio.CancelledError:
            await asyncio.shield(self.stopped(ctx))
            raise

    async def stopped(self, ctx: RunContext) -> None:
        """A run's asyncio task was cancelled: by a user's cancel, by shutdown, by an outage,
        or because its lease was lost (for the last two it writes nothing: another process
        owns the task now, or will: see :meth:`stop_runs_for_outage`).

        At shutdown the run is closed as interrupted and its task queued again; its remote
        A2A task goes on, and the next attempt resumes it (or cancels it, where the agent
        cannot resume). A task with no attempt left fails, and its remote task is cancelled.
        """
        if ctx.run.run_id in self._lost:
            await self.lease_lost(ctx)
            return
        if self._cancelling.get(ctx.task.task_id) == OUTAGE:
            self._stopped_for_outage[ctx.run.run_id] = ctx.run
            return
        try:
            await self._stopped(ctx)
        except LeaseLost:
            await self.lease_lost(ctx)

    async def _stopped(self, ctx: RunContext) -> None:
        task, run, fence = ctx.task, ctx.run, ctx.run.fence
        reason = self._cancelling.get(task.task_id)
        if reason is not None:
            if ctx.remote_changed:
                await self.store.update(task.task_id, ctx.remote_changes(), fence=fence)
            await self.cancel_remote(task, ctx.remote_task_id)
            await self.close_run(run, RunStatus.CANCELLED, reason, fence=fence)
            factory = ResponseFactory(task, run.run_id)
            await self.log.emit(factory.task_cancelled(reason))
            await self.log.emit(factory.done())
            return
        if task.pattern is not TaskPattern.ONCE:
            if ctx.remote_changed:
                await self.store.update(task.task_id, ctx.remote_changes(), fence=fence)
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

    def fenced(self, ctx: RunContext) -> contextlib.AbstractContextManager[None]:
        """While the block runs, the run's events are appended under its fence."""
        return _Holding(self, ctx.run)

    def leases_lost(self, run_ids: frozenset[str]) -> None:
        """The store refused writes of these runs (their leases were taken over): each stops
        at once, writing nothing more (the event log calls this)."""
        for run_id in run_ids:
            task_id = self._held.get(run_id)
            if task_id is None:
                continue
            self._lost[run_id] = task_id
            runner = self._runs.get(task_id)
            if runner is not None and not runner.done():
                runner.cancel()

    def run_hit_outage(self, ctx: RunContext, exc: BaseException) -> None:
        """A write of the run (its settling, say) failed for an outage: the run stops here as
        if its lease had lapsed, and is recovered (closed and requeued in one fenced write, or,
        if the failed write committed after all, its closing events written) once the store
        answers again, before any lease is renewed."""
        logger.warning(
            "run stopped: the store was unavailable for its write",
            extra={"task_id": ctx.task.task_id, "run_id": ctx.run.run_id, "error": repr(exc)},
        )
        self._stopped_for_outage[ctx.run.run_id] = ctx.run
        self.cluster.recover_before_renewing()

    async def lease_lost(self, ctx: RunContext) -> None:
        """A run lost its lease: it writes nothing more (see :class:`LeaseLost`), and its
        remote task is cancelled unless the attempt that took the task over resumes it."""
        self._lost[ctx.run.run_id] = ctx.task.task_id
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
            client = self.registry.get(task.agent_name)
            if not can_resume(client) or getattr(client, "served_here", False):
                return False  # no other process can reach it (an in-process or demo agent)
            current = await self.store.load(task.task_id)
        except Exception as exc:  # the store is out: leave it to the next attempt
            logger.info(
                "remote task left to the next attempt",
                extra={"task_id": task.task_id, "remote_task_id": remote, "error": repr(exc)},
            )
            return True
        if current is None or current.is_finished():
            return False
        return current.metadata.get(RESUMABLE_KEY) in (None, remote)

    async def _stopped_between_attempts(self, task: Task) -> None:
        reason = self._cancelling.get(task.task_id)
        if reason is not None and reason != OUTAGE:
            factory = ResponseFactory(task)
            await self.log.emit(factory.task_cancelled(reason))
            await self.log.emit(factory.done())

    async def cancel_remote(self, task: Task, remote_task_id: str | None) -> None:
        """Ask the agent to cancel ``remote_task_id`` (a failure is logged, not raised)."""
        await self.executor.cancel_remote(task, remote_task_id)

    # -- controls -------------------------------------------------------------------------

    async def cancel(self, task_id: str, *, reason: str = CANCELLED_BY_USER) -> CancelResult:
        """Cancel a task: its run here, its remote task, its schedule, its controllers.

        Idempotent for a cancelled task; :class:`InvalidTransition` for a completed or failed
        one; :class:`TaskNotFound` for an unknown one.
        """
        task = await self.service.require_task(task_id)
        changes: dict[str, Any] = {"error_message": reason, "next_run_at": None}
        changed = await self.store.transition(task_id, TaskStatus.CANCELLED, changes=changes)
        if not changed:
            current = await self.service.require_task(task_id)
            if current.status is not TaskStatus.CANCELLED:
                raise InvalidTransition(task_id, current.status, TaskStatus.CANCELLED)
            items = await self.store.task_items(task_id, component_type=CONTROLLER)
            return CancelResult(task_id, True, [i.item_id for i in items])
        ids = await self.update_controllers(task, next_run_at=None)
        runner = self.stop_run_here(task_id, reason)
        if runner is not None:
            await asyncio.wait([runner], timeout=_STOP_GRACE)
        elif not await self.cluster.cancel_elsewhere(task_id):
            await self._cancel_idle(task, reason)
        await self.schedule_changed()
        await self.log.flush()
        logger.info("task cancelled", extra={"task_id": task_id, "components": len(ids)})
        return CancelResult(task_id, True, ids)

    async def _cancel_idle(self, task: Task, reason: str) -> None:
        """Cancel a task that no asyncio task runs here (queued, waiting, or between runs).

        Its remote task is cancelled too: the one waiting for input, or the one an interrupted
        run left for the next attempt to resume."""
        remote = task.metadata.get(RESUMABLE_KEY) if task.pattern is TaskPattern.ONCE else None
        if task.status is TaskStatus.WAITING_INPUT and task.remote_task_ids:
            remote = task.remote_task_ids[-1]
        if remote:
            await self.cancel_remote(task, remote)
        for run in await self.store.runs_in_status([RunStatus.WAITING_INPUT, RunStatus.QUEUED]):
            if run.task_id == task.task_id:
                await self.close_run(run, RunStatus.CANCELLED, reason)
        factory = ResponseFactory(task)
        await self.log.emit(factory.task_cancelled(reason))
        await self.log.emit(factory.done())

    async def provide_input(self, task_id: str, text: str) -> Task:
        """Answer a task that waits for input; it continues the same remote task.

        In a cluster, a task waiting in another live process is answered there (its waiting
        state may live in that process's memory): the reply is forwarded to it.
        """
        task = await self.service.require_task(task_id)
        if await self.cluster.forward_input(task, text):
            return await self.service.require_task(task_id)
        return await self.answer_here(task_id, text)

    async def answer_here(self, task_id: str, text: str, *, said: bool = False) -> Task:
        """Continue a waiting task in this process with ``text`` (``said``: the user's message
        is in its log already, written by the process that took the reply)."""
        task = await self.service.require_task(task_id)
        runs = (await self.store.list_runs(task_id, limit=1)).items
        lease_until = utcnow() + self.lease
        if not runs or not await self.store.continue_run(
            runs[0].run_id, task_id=task_id, owner=self.owner, lease_expires_at=lease_until
        ):
            current = await self.service.require_task(task_id)
            raise InvalidTransition(task_id, current.status, TaskStatus.RUNNING)
        run = runs[0]
        run.status, run.owner, run.lease_expires_at = RunStatus.RUNNING, self.owner, lease_until
        run.epoch += 1  # continue_run took the run over
        task.status = TaskStatus.RUNNING
        if not said:
            await self.log.emit(ResponseFactory(task, run.run_id).user_message(text))
        ctx = RunContext(
            task,
            run,
            remote_task_id=task.remote_task_ids[-1] if task.remote_task_ids else None,
            context_id=task.metadata.get(CONTEXT_KEY),
        )
        self._spawn(task_id, self._continue(ctx, text))
        return await self.service.require_task(task_id)

    async def _continue(self, ctx: RunContext, text: str) -> None:
        async with self.run_slot(ctx.task, ctx):
            with self.fenced(ctx):
                try:
                    try:
                        outcome = await self.execute_with_retries(ctx, reply=text)
                    except asyncio.CancelledError:
                        await asyncio.shield(self.stopped(ctx))
                        raise
                    await self._settle(ctx, outcome)
                except LeaseLost:
                    await self.lease_lost(ctx)
                except Exception as exc:
                    if not is_outage(exc):
                        raise
                    self.run_hit_outage(ctx, exc)
                finally:
                    self.log.run_ended(ctx.run.run_id)

    async def execute_with_retries(
        self,
        ctx: RunContext,
        *,
        reply: str | None = None,
        emit_routed: bool = True,
        count_attempts: bool = False,
    ) -> Outcome:
        """Execute within one run, retrying transient failures with back-off.

        Used where a new run per attempt is not possible: a reply continuing a waiting task,
        and an occurrence of a recurring task (``count_attempts`` records the attempt on the
        run). Giving up answers a FAILED outcome that says after how many attempts. An
        occurrence's retry resumes the remote task the failed attempt started, if any.
        """
        limit = ctx.task.max_attempts
        resume: str | None = None
        for attempt in range(1, limit + 1):
            try:
                return await self.executor.execute(
                    ctx, reply=reply, emit_routed=emit_routed, resume=resume
                )
            except TransientAgentError as exc:
                if self.stopping:
                    await self._wait_for_stop(ctx)  # the caller closes it when cancelled
                if reply is None:
                    # The remote task a cut attempt started is taken up again (or cancelled,
                    # where the agent cannot), not started a second time.
                    resume = ctx.remote_task_id
                if attempt == limit:
                    await self.cancel_remote(ctx.task, resume)
                    plural = "s" if attempt != 1 else ""
                    reason = f"{exc} (gave up after {attempt} attempt{plural})"
                    return Outcome(OutcomeKind.FAILED, reason)
                if count_attempts:
                    ctx.run.attempt = attempt + 1
                    changes = {"attempt": ctx.run.attempt}
                    await self.store.update_run(ctx.run.run_id, changes, fence=ctx.run.fence)
                await asyncio.sleep(self.retry.delay(attempt))
            except AgentError as exc:
                return Outcome(OutcomeKind.FAILED, str(exc))
        raise AssertionError("unreachable: max_attempts is at least 1")

    async def update_controllers(
        self, task: Task, *, durable: bool = True, fence: Fence | None = None, **changes: Any
    ) -> list[str]:
        """Update every controller component of ``task`` in place (found by task id); with
        ``fence``, as a write of that run (refused once its lease is lost)."""
        return await recurring.update_controllers(
            self, task, durable=durable, fence=fence, **changes
        )

    # -- recurring controls (see taskcell.engine.recurring) --------------------------------

    async def pause(self, task_id: str) -> Task:
        return await recurring.pause(self, task_id)

    async def resume(self, task_id: str) -> Task:
        return await recurring.resume(self, task_id)

    async def run_now(self, task_id: str) -> Run:
        return await recurring.run_now(self, task_id)

    def spawn_occurrence(self, task: Task, run: Run) -> None:
        self._spawn(task.task_id, recurring.run_occurrence(self, task, run))

    @property
    def slots(self) -> asyncio.Semaphore:
        return self._slots

    async def execute_plan(self, plan: ExecutionPlan) -> PlanResult:
        """Run an execution plan (see :mod:`taskcell.engine.plan`)."""
        return await execute_plan(self, plan)

    # -- reading --------------------------------------------------------------------------

    def subscribe(self, task_id: str, *, after: int = 0) -> AsyncIterator[Event]:
        """The task's events after ``after``: replayed from the log, then live."""
        return self.log.subscribe(task_id, after=after)

    def subscribe_batches(self, task_id: str, *, after: int = 0) -> AsyncIterator[list[Event]]:
        """Like :meth:`subscribe`, in runs of consecutive events."""
        return self.log.subscribe_batches(task_id, after=after)

    async def recover_expired(self) -> int:
        """Take over runs whose lease expired by the store's clock (their process died, stalled
        or could not reach the store) and recover their tasks: one write closes each run (its
        epoch bumped, so its old owner's writes are refused from then on; this process named as
        its closer) and requeues or fails its task."""
        runs = await self.store.interrupt_expired(INTERRUPTED, by=self.owner)
        for run in runs:
            RUNS.labels(outcome=RunStatus.INTERRUPTED.value).inc()
            await self._recover_task(run)
        return len(runs)

    async def _recover_task(self, run: Run) -> None:
        """After the write that closed ``run`` and requeued or failed its task: run it again
        here, or write the closing events of a task it failed."""
        task = await self.store.load(run.task_id)
        if task is None or task.pattern is TaskPattern.RECURRING:
            return  # a recurring task goes on at its next occurrence
        logger.info(
            "interrupted run recovered", extra={"task_id": task.task_id, "run_id": run.run_id}
        )
        if task.status is TaskStatus.PENDING:
            if not self.is_running_here(task.task_id):
                self._spawn(task.task_id, self._run_once(task))
        elif task.status is TaskStatus.FAILED and task.completed_at == run.finished_at:
            factory = ResponseFactory(task, run.run_id)  # failed by the recovering write
            await self.log.emit(factory.task_failed(task.error_message or INTERRUPTED))
            await self.log.emit(factory.done())

    async def _recover_orphan(self, run: Run) -> None:
        """Single server: close a run a dead process left open and requeue (or fail) its task,
        in one write that takes the run over (this process its closer, the epoch bumped)."""
        await self._close_and_recover(run, INTERRUPTED, takeover=True)

    async def _close_and_recover(self, run: Run, reason: str, *, takeover: bool) -> int:
        """Close ``run`` as interrupted with ``reason`` and requeue (or fail) its once task in
        one write under the run's fence (``takeover``: a run of another process, this one
        recorded as its closer and the epoch bumped); then recover the task. Answers 1 if it
        closed the run, 0 if another process had taken it over meanwhile."""
        changes: dict[str, Any] = _closing(RunStatus.INTERRUPTED, reason, None)
        if takeover:
            changes |= {"closed_by": self.owner, "epoch": run.epoch + 1}
        task = await self.store.load(run.task_id)
        try:
            if task is None or task.pattern is not TaskPattern.ONCE:
                await self.store.update_run(run.run_id, changes, fence=run.fence)
            else:
                requeue = run.attempt < task.max_attempts
                await self.store.finish_run(
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
            if not takeover:
                # Closed already: by another process (which recovers it), or by this run's own
                # settling write whose answer was lost (its closing events may be missing).
                await self._close_log_of(run)
            return 0
        RUNS.labels(outcome=RunStatus.INTERRUPTED.value).inc()
        run.finished_at = changes["finished_at"]
        if takeover:
            run.closed_by, run.epoch = self.owner, run.epoch + 1
        await self._recover_task(run)
        return 1

    async def bury_dead_processes(self, silent_for: timedelta) -> int:
        """Tidy up after processes with no heartbeat for ``silent_for`` (by the store's clock);
        answers how many.

        Each dead process's record is claimed (deleted) by exactly one live process, which then
        looks at the runs the dead one ended in its last moments: a task it settled may lack
        its closing events, if the process died between the settling write and the event
        log's next append. Those events are written here, so every finished task's log ends
        with ``done`` and its streams end. (Runs it left open are closed by their leases.)
        """
        dead = await self.store.claim_dead_processes(silent_for, keep=self.owner)
        for process in dead:
            since = process.heartbeat_at - self.lease
            for run in await self.store.runs_finished_by(process.process_id, since):
                await self._close_log_of(run)
            logger.info(
                "dead process buried",
                extra={"process_id": process.process_id, "last_heartbeat": process.heartbeat_at},
            )
        return len(dead)

    async def _close_log_of(self, run: Run) -> None:
        """Emit a finished once task's closing events if its log does not end with ``done``."""
        task = await self.store.load(run.task_id)
        if task is None or task.pattern is not TaskPattern.ONCE or not task.is_finished():
            return
        latest = (await self.store.list_runs(task.task_id, limit=1)).items
        if not latest or latest[0].run_id != run.run_id:
            return  # a later attempt settled the task: its own events close the log
        await self.log.flush()  # what this process emitted for it is in the log first
        last = await self.store.last_seq(task.task_id)
        tail = await self.store.read_events(task.task_id, after=max(0, last - 1))
        if tail and tail[-1].event is EventType.DONE:
            return
        factory = ResponseFactory(task, run.run_id)
        reason = task.error_message or task.status.value
        if task.status is TaskStatus.COMPLETED:
            await self.log.emit(factory.task_completed())
        elif task.status is TaskStatus.FAILED:
            await self.log.emit(factory.task_failed(reason))
        else:
            await self.log.emit(factory.task_cancelled(reason))
        await self.log.emit(factory.done())
        logger.warning(
            "closing events written for a task a dead process settled",
            extra={"task_id": task.task_id, "status": task.status.value},
        )

    # -- recovery -------------------------------------------------------------------------

    async def recover(self) -> None:
        """Close runs a dead process left running, then queue what must run again.

        On a single-server store every run still running at start-up is an orphan; on a
        shared database only those whose lease expired. A once task is retried if it has
        attempts left, else failed with the reason; a recurring task goes on at its next
        occurrence (the scheduler coalesces what it missed).
        """
        if self.store.single_server:
            for run in await self.store.runs_in_status([RunStatus.RUNNING, RunStatus.QUEUED]):
                if run.owner == self.owner:
                    continue  # started by this process since it started
                await self._recover_orphan(run)
            # A single server: every other one is dead.
            await self.bury_dead_processes(timedelta(0))
            await self.resume_pending()
        else:
            await self.recover_expired()
            await self.bury_dead_processes(self.dead_after)
            await self.resume_pending(idle_for=self.lease)

    async def resume_pending(self, *, idle_for: timedelta | None = None) -> int:
        """Start pending once tasks that no run here handles.

        With ``idle_for`` (a cluster) only orphans (unchanged for that long by the store's
        clock), claimed so that one process takes each:
        a task just created, or waiting out a retry's back-off, belongs to the process that
        is about to run it.
        """
        started = 0
        if idle_for is not None:
            for task in await self.store.claim_pending(idle_for):
                if not self.is_running_here(task.task_id):
                    self._spawn(task.task_id, self._run_once(task))
                    started += 1
            return started
        cursor: str | None = None
        while True:
            page = await self.store.list_tasks(
                TaskFilter(status=TaskStatus.PENDING, pattern=TaskPattern.ONCE),
                limit=500,
                cursor=cursor,
            )
            for task in page.items:
                if not self.is_running_here(task.task_id):
                    self._spawn(task.task_id, self._run_once(task))
                    started += 1
            cursor = page.next_cursor
            if cursor is None:
                return started


class _Holding(contextlib.AbstractContextManager[None]):
    """A run holds its fence in the event log (and the engine knows it) while this is open."""

    def __init__(self, engine: Engine, run: Run) -> None:
        self._engine = engine
        self._run = run

    def __enter__(self) -> None:
        self._engine._held[self._run.run_id] = self._run.task_id
        self._engine.log.hold(self._run.fence)

    def __exit__(self, *_: object) -> None:
        self._engine._held.pop(self._run.run_id, None)
        self._engine._lost.pop(self._run.run_id, None)
        self._engine.log.release(self._run.run_id)


def occurrence_run(task: Task, scheduled_for: datetime, owner: str, lease: timedelta) -> Run:
    now = utcnow()
    return Run(
        lease_expires_at=now + lease,
        run_id=new_id(),
        task_id=task.task_id,
        attempt=1,
        scheduled_for=scheduled_for,
        started_at=now,
        created_at=now,
        owner=owner,
    )


__all__ = ["CancelResult", "Engine", "RetryPolicy", "TaskNotFound", "occurrence_run"]
