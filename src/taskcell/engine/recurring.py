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
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from taskcell.abc import Store
from taskcell.domain.models import Run, RunStatus, Task, TaskPattern, new_id, utcnow
from taskcell.domain.policies import (
    MAX_BACKFILL,
    OverlapPolicy,
    TooManyOccurrences,
    backfill_occurrences,
)
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
from taskcell.engine.timeouts import Deadlines, RunTimedOut, deadline_for
from taskcell.metrics import SCHEDULER_LAG
from taskcell.service import TaskService

logger = logging.getLogger(__name__)

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


class BadBackfill(ValueError):
    """A backfill range refused (the API answers 422 naming ``field``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Backfilled:
    """What a backfill did: the runs it stored, in order (running, queued, or skipped as the
    overlap policy decided), and the occurrences of the range that had a run already."""

    task_id: str
    runs: list[Run]
    already_run: list[datetime]


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
        deadline_at=deadline_for(task, now),
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
        deadlines: Deadlines,
        *,
        owner: str,
        lease: timedelta,
        default_zone: str,
        has_live_run: Callable[[str], Awaitable[bool]],
        schedule_changed: Callable[[], Awaitable[None]],
        wake_scheduler: Callable[[], None] | None = None,
        stop_elsewhere: Callable[[list[str]], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._service = service
        self._log = log
        self._runs = runs
        self._settler = settler
        self._attempts = attempts
        self._controllers = controllers
        self._deadlines = deadlines
        self._owner = owner
        self._lease = lease
        self._default_zone = default_zone
        self._has_live_run = has_live_run
        self._schedule_changed = schedule_changed
        #: Wakes this process's scheduler (a run ended: a queued occurrence may start).
        self._wake_scheduler = wake_scheduler
        #: Tells the other processes to stop these runs (replaced: overlap cancel_other).
        self._stop_elsewhere = stop_elsewhere

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
        """Run one occurrence here (its run is stored already), beside the task's others."""
        self._runs.spawn(task.task_id, self._occurrence(task, run), run_id=run.run_id)

    async def replaced(self, runs: list[Run]) -> None:
        """Stop runs in progress that a newer occurrence replaced (overlap cancel_other): the
        store closed them as cancelled, their epoch one higher, so they write nothing more;
        stopping, each cancels its remote task. Those of other processes are told to them."""
        here = frozenset(r.run_id for r in runs if r.owner == self._owner)
        if here:
            self._runs.leases_lost(here)
        elsewhere = [r.run_id for r in runs if r.owner != self._owner]
        if elsewhere and self._stop_elsewhere is not None:
            await self._stop_elsewhere(elsewhere)

    async def _occurrence(self, task: Task, run: Run) -> None:
        """Run one occurrence and record its result; then wake the scheduler, which starts
        an occurrence queued behind it (overlap buffer_*; the policy may have been edited
        since this run started, so any run's end wakes it)."""
        try:
            await self._run_occurrence(task, run)
        finally:
            if self._wake_scheduler is not None:
                self._wake_scheduler()

    async def _run_occurrence(self, task: Task, run: Run) -> None:
        ctx = RunContext(task, run)
        async with self._settler.slot(task, ctx):
            if run.scheduled_for is not None and run.started_at is not None:
                SCHEDULER_LAG.observe((run.started_at - run.scheduled_for).total_seconds())
            # Its result is emitted when the block ends: nothing of it stays cached.
            async with self._settler.holding(ctx):
                try:
                    try:
                        async with self._deadlines.bounded(task, run):
                            outcome = await self._attempts.execute_with_retries(
                                ctx, emit_routed=False, count_attempts=True
                            )
                    except RunTimedOut as exc:  # a failed run: it counts towards the pause
                        await self._settler.cancel_remote(task, ctx.remote_task_id)
                        outcome = Outcome(OutcomeKind.FAILED, str(exc))
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

    async def pause(self, task_id: str, note: str | None = None) -> Task:
        """Pause the schedule, with the user's ``note`` (None: no note; a paused task's note
        is replaced)."""
        task = await self._recurring(task_id, "be paused")
        changes = {"paused": True, "pause_note": note}
        if not await self._store.update(task_id, changes, expected=[TaskStatus.RUNNING]):
            raise InvalidTransition(task_id, None, TaskStatus.RUNNING)
        await self._controllers.update(task)
        await self._schedule_changed()
        return await self._service.require_task(task_id)

    async def resume(self, task_id: str) -> Task:
        """Resume a paused schedule; its next time is computed from now (nothing missed
        runs). The write is guarded by the version read: an edit of the schedule landing
        between the read and the write makes it read again and compute from the new one."""
        while True:
            task = await self._recurring(task_id, "be resumed")
            changes = self._resumed(task, utcnow())
            if await self._store.update(
                task_id, changes, expected=[TaskStatus.RUNNING], version=task.version
            ):
                break
            now_stored = await self._service.require_task(task_id)
            if now_stored.status is not TaskStatus.RUNNING or now_stored.version == task.version:
                raise InvalidTransition(task_id, None, TaskStatus.RUNNING)
        await self._controllers.update(task, last_error=None)
        await self._schedule_changed()
        return await self._service.require_task(task_id)

    def _resumed(self, task: Task, now: datetime) -> dict[str, Any]:
        """The fields a resume at ``now`` writes: unpaused, the next time from now."""
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
        return {
            "paused": False,
            "next_run_at": upcoming,
            "error_message": None,
            "pause_note": None,
        }

    async def run_now(self, task_id: str) -> Run:
        """One extra run outside the schedule (allowed while paused), stored under the task's
        overlap policy: with ``skip`` refused (:class:`RunInProgress`) while a run is in
        progress; otherwise started, queued, or replacing the runs in progress."""
        task = await self._recurring(task_id, "be run now")
        if task.overlap is OverlapPolicy.SKIP and await self._has_live_run(task_id):
            raise RunInProgress(task)
        stored = await self._store.add_occurrences(task_id, [self.new_run(task, utcnow())])
        if stored is None:
            raise InvalidTransition(task_id, None, TaskStatus.RUNNING)
        if not stored.runs or stored.runs[0].status is RunStatus.SKIPPED:
            raise RunInProgress(task)
        await self._started(task, stored.runs, stored.replaced)
        return stored.runs[0]

    async def backfill(self, task_id: str, start: datetime, end: datetime) -> Backfilled:
        """Run the occurrences of ``[start, end)`` that have no run yet, in order, under the
        task's overlap policy, each recorded with its ``scheduled_for``.

        :class:`BadBackfill` for a reversed range or one over :data:`MAX_BACKFILL`
        occurrences; :class:`NotRecurring` (409) for a once task, ``InvalidTransition`` (409)
        for a task that has ended; :class:`UnusableSchedule` for a schedule that cannot be
        used. Allowed while paused (the queued runs then wait for the resume)."""
        task = await self._recurring(task_id, "be backfilled")
        if end <= start:
            raise BadBackfill("end", "end must be after start")
        if task.schedule_config is None:
            raise UnusableSchedule(task, ValueError("no readable schedule"), "be backfilled")
        try:
            times = backfill_occurrences(
                task.schedule_config,
                start=start,
                end=end,
                anchor=task.next_run_at,
                default_zone=self._default_zone,
            )
        except TooManyOccurrences:
            message = f"the range holds more than {MAX_BACKFILL} occurrences; split it"
            raise BadBackfill("end", message) from None
        except OverflowError:  # a range at the edge of the calendar (year 1 or 9999)
            raise BadBackfill("start", "the range is outside the dates taskcell can use") from None
        except (ValueError, LookupError, TypeError) as exc:
            raise UnusableSchedule(task, exc, "be backfilled") from exc
        stored = await self._store.add_occurrences(
            task_id, [self.new_run(task, at) for at in times]
        )
        if stored is None:
            raise InvalidTransition(task_id, None, TaskStatus.RUNNING)
        await self._started(task, stored.runs, stored.replaced)
        done = {r.scheduled_for for r in stored.runs}
        logger.info(
            "backfill stored",
            extra={"task_id": task_id, "occurrences": len(times), "runs": len(stored.runs)},
        )
        return Backfilled(task_id, stored.runs, [at for at in times if at not in done])

    async def _started(self, task: Task, runs: list[Run], replaced: list[Run]) -> None:
        """Start the runs stored to start here; stop those they replaced."""
        for run in runs:
            if run.status is RunStatus.RUNNING:
                self.start(task, run)
        if any(r.started_at is not None for r in replaced):
            await self.replaced([r for r in replaced if r.started_at is not None])
