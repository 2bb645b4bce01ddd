"""The scheduler: one per process, sleeping until the earliest due time.

It never polls per task. It sleeps until the store's earliest ``next_run_at`` (or until woken:
a task created, cancelled, paused or resumed), claims every due occurrence and stores its run
(owner and lease) in one transaction (so an occurrence fires once however many processes watch
the store, and one claimed by a process that dies is recovered by its lease), and starts it.
Occurrences missed while nothing ran are coalesced into that one run; an occurrence that comes
due while the previous run still runs is recorded as skipped.

A stored schedule the scheduler cannot use (a daily time that does not parse, a zone this
machine does not know) never stops it: the task is disarmed in the claiming write, then paused
with the reason in ``error_message``, a system message and its controller say why, and the
other tasks are served as usual.

Time is the store's clock (on PostgreSQL the database server's, see
``taskcell.abc.Coordination``): a process whose clock is off neither fires early nor late. An
outage is waited out (each pass retried with back-off); the pass after it coalesces what was
missed meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Protocol

from taskcell.abc import Store
from taskcell.domain.models import Run, RunStatus, Task
from taskcell.domain.schedule import missed_occurrences, next_fire_time
from taskcell.domain.state_machine import TaskStatus
from taskcell.engine.controllers import Controllers
from taskcell.engine.eventlog import EventLog
from taskcell.engine.responses import ResponseFactory
from taskcell.engine.runs import LiveRuns
from taskcell.engine.supervisor import Supervisor

logger = logging.getLogger(__name__)

SKIPPED_REASON = "skipped: the previous run was still running"
UNUSABLE_PREFIX = "paused: the stored schedule cannot be used"
_BATCH = 500


class OccurrenceStarter(Protocol):
    """Makes and starts the runs of claimed occurrences."""

    def new_run(self, task: Task, scheduled_for: datetime) -> Run:
        """The run of an occurrence of ``task`` due at ``scheduled_for``, owned by this
        process (stored by the claim that takes the occurrence; no I/O here)."""
        ...

    def start(self, task: Task, run: Run) -> None:
        """Start ``run`` (stored already) in this process; it settles itself."""
        ...


class Scheduler:
    """See the module docstring. ``run`` is the supervised loop; ``fire_due`` one pass.

    Skipped occurrences are recorded as runs of ``owner``. With nothing due it looks again
    after ``fallback_poll_seconds`` anyway (a lost wake-up, another process's change)."""

    def __init__(
        self,
        store: Store,
        supervisor: Supervisor,
        log: EventLog,
        controllers: Controllers,
        live: LiveRuns,
        starter: OccurrenceStarter,
        *,
        owner: str,
        default_zone: str,
        fallback_poll_seconds: float = 60.0,
    ) -> None:
        self._store = store
        self._supervisor = supervisor
        self._log = log
        self._controllers = controllers
        self._live = live
        self._starter = starter
        self._owner = owner
        self._default_zone = default_zone
        self.fallback_poll_seconds = fallback_poll_seconds
        self._wakeup = asyncio.Event()
        self.passes = 0

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        supervisor = self._supervisor
        while True:
            self._wakeup.clear()
            await supervisor.weather("scheduler", self.fire_due)
            delay = await supervisor.weather("scheduler", self.seconds_until_next)
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=delay)
            except TimeoutError:
                pass

    async def seconds_until_next(self) -> float:
        upcoming = await self._store.next_due_at()
        if upcoming is None:
            return self.fallback_poll_seconds
        wait = (upcoming - await self._store.clock()).total_seconds()
        return min(max(wait, 0.0), self.fallback_poll_seconds)

    async def fire_due(self, now: datetime | None = None) -> int:
        """Claim and start every occurrence due at ``now``; answers how many runs started."""
        self.passes += 1
        moment = now or await self._store.clock()

        unusable: dict[str, str] = {}

        def upcoming(task: Task) -> datetime | None:
            """The next time, or None (disarmed) for a schedule that cannot be used."""
            try:
                if task.schedule_config is None:
                    raise ValueError("the recurring task has no schedule")
                return next_fire_time(
                    task.schedule_config,
                    now=moment,
                    previous=task.next_run_at,
                    default_zone=self._default_zone,
                )
            except Exception as exc:
                unusable[task.task_id] = f"{UNUSABLE_PREFIX}: {exc or type(exc).__name__}"
                return None

        def make_run(task: Task, due: datetime) -> Run | None:
            if task.task_id in unusable:
                return None  # disarmed as it was claimed: paused below, no run
            if self._live.is_running_here(task.task_id):
                return Run(
                    task_id=task.task_id,
                    scheduled_for=due,
                    status=RunStatus.SKIPPED,
                    finished_at=moment,
                    error=SKIPPED_REASON,
                    owner=self._owner,
                    version=task.version,
                )
            return self._occurrence(task, due, moment)

        started = 0
        while True:
            claimed = await self._store.start_due(
                moment, upcoming, make_run, skipped_reason=SKIPPED_REASON, limit=_BATCH
            )
            for task, run in claimed:
                if task.task_id in unusable:
                    await self._pause(task, unusable[task.task_id])
                    continue
                if run is None:
                    continue
                if run.status is RunStatus.SKIPPED:
                    logger.info("occurrence skipped", extra={"task_id": task.task_id})
                    continue
                self._starter.start(task, run)
                started += 1
            if len(claimed) < _BATCH:
                return started

    async def _pause(self, task: Task, reason: str) -> int:
        """Pause a task whose stored schedule cannot be used (it was disarmed as it was
        claimed), saying why; answers 0 runs started."""
        logger.error(
            "unusable schedule: task paused", extra={"task_id": task.task_id, "reason": reason}
        )
        changes = {"paused": True, "error_message": reason}
        if await self._store.update(task.task_id, changes, expected=[TaskStatus.RUNNING]):
            task.paused, task.error_message = True, reason
            await self._log.emit(ResponseFactory(task).system_message(reason))
            await self._controllers.update(task, last_error=reason)
        return 0

    def _occurrence(self, task: Task, due_at: datetime, now: datetime) -> Run:
        """The run of a claimed occurrence (stored with the claim)."""
        schedule = task.schedule_config
        assert schedule is not None  # claimed with a usable schedule
        missed = missed_occurrences(
            schedule, previous=due_at, now=now, default_zone=self._default_zone
        )
        scheduled_for = due_at
        if missed and schedule.interval_minutes and task.next_run_at is not None:
            # Coalesced: the run serves the latest missed occurrence.
            scheduled_for = task.next_run_at - timedelta(minutes=schedule.interval_minutes)
            logger.info(
                "missed occurrences coalesced", extra={"task_id": task.task_id, "missed": missed}
            )
        return self._starter.new_run(task, scheduled_for)
