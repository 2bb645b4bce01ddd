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
import logging
import os
import random
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from taskcell.abc import Store, TaskFilter
from taskcell.agents.base import AgentError, TransientAgentError
from taskcell.agents.demo.door import acting_for
from taskcell.agents.registry import AgentRegistry
from taskcell.domain.events import Event, EventType
from taskcell.domain.models import (
    OPEN_RUN_STATUSES,
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
from taskcell.engine.executor import CONTEXT_KEY, Outcome, OutcomeKind, RunContext, TaskExecutor
from taskcell.engine.plan import ExecutionPlan, PlanResult, execute_plan
from taskcell.engine.responses import CONTROLLER, ResponseFactory
from taskcell.engine.scheduler import Scheduler
from taskcell.engine.supervisor import Supervisor
from taskcell.metrics import RUNS
from taskcell.service import TaskNotFound, TaskService, conversation_title

logger = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the server stopped while it ran"
#: Why runs stop when this process cannot renew their leases (they write nothing more).
OUTAGE = "interrupted: the store was unavailable and the run's lease could not be renewed"
CANCELLED_BY_USER = "cancelled by the user"
_REMOTE_CANCEL_TIMEOUT = 2.0
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
        #: Runs stopped because their leases could not be renewed, by run id: their rows
        #: stay open under this owner until :meth:`recover_stopped_runs` closes them.
        self._stopped_for_outage: dict[str, Run] = {}
        self.lease = timedelta(seconds=lease_seconds)
        #: A process with no heartbeat for this long is dead (it heartbeats every half lease).
        self.dead_after = 2 * self.lease
        self.cluster = Coordinator(self)

    # -- life cycle -----------------------------------------------------------------------

    async def start(self, *, recover: bool = True, schedule: bool = True) -> None:
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

    async def stop(self) -> None:
        """Stop runs (they are closed as interrupted and queued again), then the loops."""
        runs = [t for t in self._runs.values() if not t.done()]
        for task in runs:
            task.cancel()
        if runs:
            await asyncio.wait(runs, timeout=_STOP_GRACE)
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
        """Recover the runs :meth:`stop_runs_for_outage` stopped, now that a lease renewal
        succeeded again: each still open under this owner is closed as interrupted and its
        once task requeued (or failed), exactly as recovery after a crash would; a run another
        process recovered meanwhile is left to it (the guarded close refuses). Answers how many
        were closed here."""
        closed = 0
        while self._stopped_for_outage:
            _, run = self._stopped_for_outage.popitem()
            if not await self.store.update_run(
                run.run_id,
                _closing(RunStatus.INTERRUPTED, OUTAGE, None),
                expected=[RunStatus.RUNNING, RunStatus.QUEUED],
            ):
                continue
            RUNS.labels(outcome=RunStatus.INTERRUPTED.value).inc()
            closed += 1
            await self._recover_task(run)
        return closed

    def _stopped_by_outage(self, task_id: str) -> bool:
        return self._cancelling.get(task_id) == OUTAGE

    def is_running_here(self, task_id: str) -> bool:
        run = self._runs.get(task_id)
        return run is not None and not run.done()

    def _spawn(self, task_id: str, coro: Coroutine[Any, Any, None]) -> None:
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
    async def run_slot(self, task: Task) -> AsyncIterator[None]:
        """Hold a run slot for ``task``: first one of its agent's own (see
        ``AgentRegistry.run_limit``; waiting for it holds no engine slot), then one of the
        engine's ``max_concurrent_runs``."""
        name = task.agent_name
        limit = self._agent_slots.get(name)
        if limit is None and (count := self.registry.run_limit(name, self._max_runs)):
            limit = self._agent_slots[name] = asyncio.Semaphore(count)
        async with limit or contextlib.nullcontext(), self._slots:
            yield

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
                if not await self.store.start_run(run, now=now):
                    return  # no longer pending: cancelled, or another process runs it
                task.attempt, task.status = attempt, TaskStatus.RUNNING
                delay = await self._attempt(RunContext(task, run))
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
        """Run one attempt and settle it; answers the back-off delay when it should retry."""
        try:
            outcome = await self.executor.execute(ctx, reply=reply)
        except TransientAgentError as exc:
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
            await self.store.update_run(run.run_id, {"status": RunStatus.WAITING_INPUT})
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
            ):
                await emit(factory.task_completed())
                await emit(factory.done())
            return
        if outcome.kind is OutcomeKind.CANCELLED:
            changes = {"error_message": outcome.text, **ctx.remote_changes()}
            if await self.finish_run(
                run, RunStatus.CANCELLED, TaskStatus.CANCELLED, error=outcome.text, changes=changes
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
            run, RunStatus.FAILED, TaskStatus.FAILED, error=reason, changes=changes
        ):
            await self.log.emit(factory.task_failed(reason))
            await self.update_controllers(task, task_status="failed", last_error=reason)
            await self.log.emit(factory.done())

    async def _transient_failure(self, ctx: RunContext, reason: str) -> float | None:
        task, run = ctx.task, ctx.run
        if run.attempt >= task.max_attempts:
            plural = "s" if run.attempt != 1 else ""
            await self._fail_task(
                task, run, f"{reason} (gave up after {run.attempt} attempt{plural})", error=reason
            )
            return None
        if not await self.finish_run(
            run,
            RunStatus.FAILED,
            TaskStatus.PENDING,
            error=reason,
            expected=[TaskStatus.RUNNING],
            changes=ctx.remote_changes(),
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
        self, task: Task, run: Run | None, reason: str, *, error: str | None = None
    ) -> None:
        """Fail the task with ``reason``; a still open ``run`` is closed as failed with
        ``error`` (default: the reason) in the same write."""
        factory = ResponseFactory(task, run.run_id if run else None)
        changes = {"error_message": reason}
        if run is None:
            failed = await self.store.transition(task.task_id, TaskStatus.FAILED, changes=changes)
        else:
            failed = await self.finish_run(
                run, RunStatus.FAILED, TaskStatus.FAILED, error=error or reason, changes=changes
            )
        if failed:
            await self.log.emit(factory.task_failed(reason))
            await self.log.emit(factory.done())

    async def close_run(
        self,
        run: Run,
        status: RunStatus,
        error: str | None = None,
        *,
        result: str | None = None,
    ) -> None:
        """End ``run`` with ``status`` if it is still open (its task is left as it is)."""
        changes = _closing(status, error, result)
        if await self.store.update_run(run.run_id, changes, expected=OPEN_RUN_STATUSES):
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
    ) -> bool:
        """End ``run`` with ``status`` and move its task to ``target`` in one write; answers
        whether the task moved (the run is closed either way, if it was still open)."""
        closed, moved = await self.store.finish_run(
            run.run_id,
            _closing(status, error, result),
            task_id=run.task_id,
            target=target,
            expected=expected,
            task_changes=changes,
        )
        if closed:
            RUNS.labels(outcome=status.value).inc()
        return moved

    # -- stopping a run -------------------------------------------------------------------

    async def stopped(self, ctx: RunContext) -> None:
        """A run's asyncio task was cancelled: by a user's cancel, by shutdown, or by an
        outage (then it writes nothing: see :meth:`stop_runs_for_outage`)."""
        reason = self._cancelling.get(ctx.task.task_id)
        if reason == OUTAGE:
            self._stopped_for_outage[ctx.run.run_id] = ctx.run
            return
        if ctx.remote_changed:
            await self.store.update(ctx.task.task_id, ctx.remote_changes())
        if reason is not None:
            await self.cancel_remote(ctx.task, ctx.remote_task_id)
            await self.close_run(ctx.run, RunStatus.CANCELLED, reason)
            factory = ResponseFactory(ctx.task, ctx.run.run_id)
            await self.log.emit(factory.task_cancelled(reason))
            await self.log.emit(factory.done())
            return
        await self.close_run(ctx.run, RunStatus.INTERRUPTED, INTERRUPTED)
        if ctx.task.pattern is TaskPattern.ONCE:
            await self._requeue_or_fail(ctx.task, ctx.run)

    async def _stopped_between_attempts(self, task: Task) -> None:
        reason = self._cancelling.get(task.task_id)
        if reason is not None and reason != OUTAGE:
            factory = ResponseFactory(task)
            await self.log.emit(factory.task_cancelled(reason))
            await self.log.emit(factory.done())

    async def _requeue_or_fail(self, task: Task, run: Run) -> None:
        if run.attempt < task.max_attempts:
            await self.store.transition(
                task.task_id, TaskStatus.PENDING, expected=[TaskStatus.RUNNING]
            )
        else:
            await self._fail_task(task, run, INTERRUPTED)

    async def cancel_remote(self, task: Task, remote_task_id: str | None) -> None:
        if not remote_task_id:
            return
        try:
            client = self.registry.get(task.agent_name)
            with acting_for(task.user_id):
                await asyncio.wait_for(client.cancel(remote_task_id), _REMOTE_CANCEL_TIMEOUT)
        except (AgentError, LookupError, TimeoutError) as exc:
            logger.warning(
                "remote cancel failed",
                extra={
                    "task_id": task.task_id,
                    "remote_task_id": remote_task_id,
                    "error": str(exc),
                },
            )

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
        """Cancel a task that no asyncio task runs here (queued, waiting, or between runs)."""
        if task.status is TaskStatus.WAITING_INPUT and task.remote_task_ids:
            await self.cancel_remote(task, task.remote_task_ids[-1])
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
        async with self.run_slot(ctx.task):
            try:
                outcome = await self.execute_with_retries(ctx, reply=text)
            except asyncio.CancelledError:
                await asyncio.shield(self.stopped(ctx))
                raise
            await self._settle(ctx, outcome)

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
        run). Giving up answers a FAILED outcome that says after how many attempts.
        """
        limit = ctx.task.max_attempts
        for attempt in range(1, limit + 1):
            try:
                return await self.executor.execute(ctx, reply=reply, emit_routed=emit_routed)
            except TransientAgentError as exc:
                if attempt == limit:
                    plural = "s" if attempt != 1 else ""
                    reason = f"{exc} (gave up after {attempt} attempt{plural})"
                    return Outcome(OutcomeKind.FAILED, reason)
                if count_attempts:
                    ctx.run.attempt = attempt + 1
                    await self.store.update_run(ctx.run.run_id, {"attempt": ctx.run.attempt})
                await asyncio.sleep(self.retry.delay(attempt))
            except AgentError as exc:
                return Outcome(OutcomeKind.FAILED, str(exc))
        raise AssertionError("unreachable: max_attempts is at least 1")

    async def update_controllers(
        self, task: Task, *, durable: bool = True, **changes: Any
    ) -> list[str]:
        """Update every controller component of ``task`` in place (found by task id)."""
        return await recurring.update_controllers(self, task, durable=durable, **changes)

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
        """Close runs whose lease expired by the store's clock (their process died, or could
        not reach the store) and recover their tasks."""
        runs = await self.store.interrupt_expired(INTERRUPTED)
        for run in runs:
            RUNS.labels(outcome=RunStatus.INTERRUPTED.value).inc()
            await self._recover_task(run)
        return len(runs)

    async def _recover_task(self, run: Run) -> None:
        task = await self.store.load(run.task_id)
        if task is None or task.pattern is TaskPattern.RECURRING:
            return  # a recurring task goes on at its next occurrence
        if task.status is TaskStatus.RUNNING:
            await self._requeue_or_fail(task, run)
            logger.info(
                "interrupted run recovered", extra={"task_id": task.task_id, "run_id": run.run_id}
            )
            requeued = await self.store.load(task.task_id)
            if requeued is not None and requeued.status is TaskStatus.PENDING:
                if not self.is_running_here(task.task_id):
                    self._spawn(task.task_id, self._run_once(requeued))

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
                await self.close_run(run, RunStatus.INTERRUPTED, INTERRUPTED)
                await self._recover_task(run)
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
