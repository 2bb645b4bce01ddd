"""Recurring tasks: creation, one run per occurrence, the controller component, and controls.

A recurring task is ``running`` from creation until it is cancelled; ``paused`` is a flag beside
that. Each occurrence is a run with its own outcome: its messages are collected (reasoning and
tool calls left out) into one ``scheduled_task_result`` component, and a failed run fails only
itself. After :data:`FAILURES_BEFORE_PAUSE` failed runs in a row the schedule pauses itself and
says why. The ``scheduled_task_controller`` component is emitted at creation and updated in
place (same item id) on every run, pause, resume, cancel and failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from taskcell.abc import Store
from taskcell.domain.models import Run, RunStatus, Task, TaskPattern, new_id, utcnow
from taskcell.domain.schedule import next_fire_time, upcoming_fires
from taskcell.domain.state_machine import InvalidTransition, TaskConflict, TaskStatus
from taskcell.engine.attempts import Attempts
from taskcell.engine.controllers import Controllers
from taskcell.engine.eventlog import EventLog
from taskcell.engine.executor import Outcome, OutcomeKind, RunContext
from taskcell.engine.opening import open_task
from taskcell.engine.responses import RESULT, ResponseFactory
from taskcell.engine.runs import RunTable
from taskcell.engine.settler import RunSettler
from taskcell.metrics import SCHEDULER_LAG
from taskcell.service import TaskService

FAILURES_BEFORE_PAUSE = 3
NO_OUTPUT = "Task completed without output."


class NotRecurring(TaskConflict):
    """A schedule control on a once task (the API answers 409)."""

    def __init__(self, task: Task, action: str) -> None:
        message = f"task {task.task_id} is a once task; only a recurring task can {action}"
        super().__init__(task.task_id, message)


class RunInProgress(TaskConflict):
    """``run_now`` while a run of the task is still going (the API answers 409)."""

    def __init__(self, task: Task) -> None:
        message = f"task {task.task_id} has a run in progress; wait for it to end"
        super().__init__(task.task_id, message)


class UnusableSchedule(TaskConflict):
    """Resuming a task whose stored schedule cannot be used (the API answers 409)."""

    def __init__(self, task: Task, error: Exception, action: str = "be resumed") -> None:
        message = (
            f"task {task.task_id} cannot {action}: its stored schedule cannot be used ({error})"
        )
        super().__init__(task.task_id, message)


def occurrence_run(task: Task, scheduled_for: datetime, owner: str, lease: timedelta) -> Run:
    """The run of one occurrence of ``task``, owned by ``owner`` and leased for ``lease``."""
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
        version=task.version,
    )


class RecurringTasks:
    """See the module docstring. Also the scheduler's
    :class:`~taskcell.engine.scheduler.OccurrenceStarter`.

    ``has_live_run`` answers whether a run of a task goes on (here or in another live process);
    ``schedule_changed`` wakes the schedulers (this process's and the others')."""

    def __init__(
        self,
        store: Store,
        service: TaskService,
        log: EventLog,
        runs: RunTable,
        settler: RunSettler,
        attempts: Attempts,
        controllers: Controllers,
        *,
        owner: str,
        lease: timedelta,
        default_zone: str,
        has_live_run: Callable[[str], Awaitable[bool]],
        schedule_changed: Callable[[], Awaitable[None]],
    ) -> None:
        self._store = store
        self._service = service
        self._log = log
        self._runs = runs
        self._settler = settler
        self._attempts = attempts
        self._controllers = controllers
        self._owner = owner
        self._lease = lease
        self._default_zone = default_zone
        self._has_live_run = has_live_run
        self._schedule_changed = schedule_changed

    async def submit(self, task: Task, *, run_immediately: bool) -> Task:
        """Store a recurring task, emit its controller and ``done``, and arm its schedule."""
        schedule = task.schedule_config
        assert schedule is not None  # the model guarantees it for recurring tasks
        zone = self._default_zone
        if schedule.interval_minutes is None and schedule.timezone is None:
            # A wall-clock schedule (daily time or cron) keeps the zone it was created in.
            task.schedule_config = schedule.model_copy(update={"timezone": zone})
        now = utcnow()
        task.status, task.started_at = TaskStatus.RUNNING, now
        task.next_run_at = (
            now
            if run_immediately
            else next_fire_time(task.schedule_config, now=now, default_zone=zone)  # type: ignore[arg-type]
        )
        await open_task(self._service, self._log, task)
        await self._controllers.emit_new(task)
        await self._log.emit(ResponseFactory(task).done())
        await self._log.flush()  # the controller is in the history before the caller hears of it
        await self._schedule_changed()
        return task

    # -- occurrences (the scheduler's OccurrenceStarter) ----------------------------------

    def new_run(self, task: Task, scheduled_for: datetime) -> Run:
        """The run of a claimed occurrence (stored with the claim, owned here)."""
        return occurrence_run(task, scheduled_for, self._owner, self._lease)

    def start(self, task: Task, run: Run) -> None:
        """Run one occurrence here (its run is stored already)."""
        self._runs.spawn(task.task_id, self._occurrence(task, run))

    async def _occurrence(self, task: Task, run: Run) -> None:
        """Run one occurrence and record its result."""
        ctx = RunContext(task, run)
        async with self._settler.slot(task, ctx):
            if run.scheduled_for is not None and run.started_at is not None:
                SCHEDULER_LAG.observe((run.started_at - run.scheduled_for).total_seconds())
            # Its result is emitted when the block ends: nothing of it stays cached.
            async with self._settler.holding(ctx):
                try:
                    outcome = await self._attempts.execute_with_retries(
                        ctx, emit_routed=False, count_attempts=True
                    )
                except asyncio.CancelledError:
                    await asyncio.shield(self._settler.stopped(ctx))
                    raise
                await self._settler.to_the_end(ctx, self._finish(ctx, outcome))

    async def _finish(self, ctx: RunContext, outcome: Outcome) -> None:
        """Settle an occurrence: every write guarded by its run's fence (a run taken over
        publishes no result, updates no controller: :class:`LeaseLost`)."""
        task, run, fence = ctx.task, ctx.run, ctx.run.fence
        settler = self._settler
        if ctx.remote_changed:
            await self._store.update(task.task_id, ctx.remote_changes(), fence=fence)
        if outcome.kind is OutcomeKind.COMPLETED:
            await settler.close_run(run, RunStatus.COMPLETED, result=outcome.text, fence=fence)
            text, error, status = outcome.text or NO_OUTPUT, None, RunStatus.COMPLETED
        else:
            error = outcome.text
            if outcome.kind is OutcomeKind.WAITING_INPUT:
                await settler.cancel_remote(task, ctx.remote_task_id)
                error = f"the agent asked for input, which a scheduled run cannot give: {error}"
            cancelled = outcome.kind is OutcomeKind.CANCELLED
            status = RunStatus.CANCELLED if cancelled else RunStatus.FAILED
            await settler.close_run(run, status, error, fence=fence)
            text = f"Run failed: {error}"
        factory = ResponseFactory(task, run.run_id)
        result = {
            "result": text,
            "create_time": utcnow().isoformat(),
            "run_id": run.run_id,
            "status": status.value,
        }
        await self._log.emit(factory.component(RESULT, result, item_id=f"{run.run_id}:result"))
        extra: dict[str, Any] = {"last_error": error, "last_run_at": run.started_at}
        if error is not None and await self._failing_streak(task):
            reason = (
                f"paused after {FAILURES_BEFORE_PAUSE} failed runs in a row; last error: {error}"
            )
            await self._store.update(
                task.task_id,
                {"paused": True, "error_message": reason},
                expected=[TaskStatus.RUNNING],
                fence=fence,
            )
            extra["last_error"] = reason
            await self._schedule_changed()
        await self._controllers.update(task, fence=fence, **extra)

    async def _failing_streak(self, task: Task) -> bool:
        runs = (await self._store.list_runs(task.task_id, limit=FAILURES_BEFORE_PAUSE)).items
        return len(runs) == FAILURES_BEFORE_PAUSE and all(
            r.status is RunStatus.FAILED for r in runs
        )

    # -- controls -------------------------------------------------------------------------

    async def _recurring(self, task_id: str, action: str) -> Task:
        task = await self._service.require_task(task_id)
        if task.pattern is not TaskPattern.RECURRING:
            raise NotRecurring(task, action)
        if task.status is not TaskStatus.RUNNING:
            raise InvalidTransition(task_id, task.status, TaskStatus.RUNNING)
        return task

    def upcoming(self, task: Task, count: int, *, now: datetime | None = None) -> list[datetime]:
        """The next ``count`` fire times of a recurring task, in UTC (empty once it has ended).

        They start at the armed ``next_run_at``; for a paused task, or one whose armed time
        has passed, at the time a resume at ``now`` would arm. Raises :class:`NotRecurring`
        for a once task, :class:`UnusableSchedule` for a schedule that cannot be used.
        """
        if task.pattern is not TaskPattern.RECURRING:
            raise NotRecurring(task, "list upcoming fire times")
        if task.status is not TaskStatus.RUNNING or task.next_run_at is None:
            return []
        if task.schedule_config is None:  # a stored schedule that could not be read
            raise UnusableSchedule(task, ValueError("no readable schedule"), "list its fire times")
        moment = now or utcnow()
        first = task.next_run_at
        try:
            if task.paused or first <= moment:
                first = next_fire_time(
                    task.schedule_config,
                    now=moment,
                    previous=first,
                    default_zone=self._default_zone,
                )
            return upcoming_fires(
                task.schedule_config, first=first, count=count, default_zone=self._default_zone
            )
        except (ValueError, LookupError, TypeError) as exc:
            raise UnusableSchedule(task, exc, "list its fire times") from exc

    async def pause(self, task_id: str) -> Task:
        task = await self._recurring(task_id, "be paused")
        if not await self._store.update(task_id, {"paused": True}, expected=[TaskStatus.RUNNING]):
            raise InvalidTransition(task_id, None, TaskStatus.RUNNING)
        await self._controllers.update(task)
        await self._schedule_changed()
        return await self._service.require_task(task_id)

    async def resume(self, task_id: str) -> Task:
        """Resume a paused schedule; its next time is computed from now (nothing missed
        runs)."""
        task = await self._recurring(task_id, "be resumed")
        now = utcnow()
        if task.schedule_config is None:  # a stored schedule that could not be read
            raise UnusableSchedule(task, ValueError("the task has no readable schedule"))
        upcoming = task.next_run_at
        if upcoming is None or upcoming <= now:  # occurrences missed while paused are dropped
            try:
                upcoming = next_fire_time(
                    task.schedule_config,
                    now=now,
                    previous=upcoming,
                    default_zone=self._default_zone,
                )
            except (ValueError, LookupError, TypeError) as exc:
                raise UnusableSchedule(task, exc) from exc
        changes = {"paused": False, "next_run_at": upcoming, "error_message": None}
        if not await self._store.update(task_id, changes, expected=[TaskStatus.RUNNING]):
            raise InvalidTransition(task_id, None, TaskStatus.RUNNING)
        await self._controllers.update(task, last_error=None)
        await self._schedule_changed()
        return await self._service.require_task(task_id)

    async def run_now(self, task_id: str) -> Run:
        """One extra run outside the schedule (allowed while paused)."""
        task = await self._recurring(task_id, "be run now")
        if await self._has_live_run(task_id):
            raise RunInProgress(task)
        run = self.new_run(task, utcnow())
        if not await self._store.add_run(run):
            raise RunInProgress(task)
        self.start(task, run)
        return run
