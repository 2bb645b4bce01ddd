"""The scheduler: one per process, sleeping until the earliest due time.

It never polls per task. It sleeps until the store's earliest ``next_run_at`` (or until woken:
a task created, cancelled, paused or resumed), claims every due occurrence and stores its run
(owner and lease) in one transaction (so an occurrence fires once however many processes watch
the store, and one claimed by a process that dies is recovered by its lease), and starts it.
Occurrences missed while nothing ran are coalesced into that one run; an occurrence that comes
due while the previous run still runs is recorded as skipped.

Those are the default policies of a task; each task may choose others (see
:mod:`taskcell.domain.policies`). Its catch-up policy says which of the occurrences a claim finds
due run and which are recorded skipped (``make_run`` answers those runs, in order, to the
claiming write); its overlap policy how each is stored beside the runs in progress: started,
queued, skipped, or replacing them (the store decides, in the same write). Each pass then starts
the queued occurrences whose turn came (``start_queued``: the earliest of each task with no
run in progress), so a waiting occurrence starts in whichever process looks first, once.

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
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol

from taskcell.abc import Store
from taskcell.domain.models import Run, RunStatus, Task
from taskcell.domain.policies import SKIPPED_RUNNING, OverlapPolicy, catch_up
from taskcell.domain.schedule import next_fire_time
from taskcell.domain.state_machine import TaskStatus
from taskcell.engine.controllers import Controllers
from taskcell.engine.eventlog import EventLog
from taskcell.engine.responses import ResponseFactory
from taskcell.engine.runs import LiveRuns
from taskcell.engine.supervisor import Supervisor

logger = logging.getLogger(__name__)

SKIPPED_REASON = SKIPPED_RUNNING
UNUSABLE_PREFIX = "paused: the stored schedule cannot be used"
_BATCH = 500
#: This long before the earliest due time, the scheduler reads ahead what claiming the
#: occurrences due then will read (``Store.read_ahead``), so the claim does not wait for the
#: disk task by task when a large database's pages are not in memory.
READ_AHEAD_SECONDS = 2.0


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
        lease: timedelta = timedelta(seconds=30),
        replaced: Callable[[list[Run]], Awaitable[None]] | None = None,
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
        self._lease = lease
        #: Stops runs in progress that a newer occurrence replaced (overlap cancel_other).
        self._replaced = replaced
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
            if delay > READ_AHEAD_SECONDS:
                if await self._sleep(delay - READ_AHEAD_SECONDS):
                    continue  # woken: look again
                delay = await supervisor.weather("scheduler", self.seconds_until_next)
                if delay > READ_AHEAD_SECONDS:
                    continue  # a fallback poll, the due time still further off: look again
                await self.read_ahead()
            await self._sleep(delay)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; answers whether something woke the scheduler."""
        try:
            async with asyncio.timeout(seconds):
                await self._wakeup.wait()
        except TimeoutError:
            return False
        return True

    async def read_ahead(self) -> int:
        """Read ahead what claiming the occurrences due within the next
        :data:`READ_AHEAD_SECONDS` (and as long again) will read; answers how many tasks. Only
        a speed-up: a failure is logged, and the claim reads what it needs itself."""
        try:
            before = await self._store.clock() + timedelta(seconds=2 * READ_AHEAD_SECONDS)
            return await self._store.read_ahead(before, limit=_BATCH)
        except Exception:
            logger.warning("read-ahead failed", exc_info=True)
            return 0

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

        def make_run(task: Task, due: datetime) -> Run | list[Run] | None:
            if task.task_id in unusable:
                return None  # disarmed as it was claimed: paused below, no run
            if task.overlap is OverlapPolicy.SKIP and self._live.is_running_here(task.task_id):
                return Run(
                    task_id=task.task_id,
                    scheduled_for=due,
                    status=RunStatus.SKIPPED,
                    finished_at=moment,
                    error=SKIPPED_REASON,
                    owner=self._owner,
                    version=task.version,
                )
            return self._occurrences(task, due, moment)

        started = 0
        while True:
            claimed = await self._store.start_due(
                moment, upcoming, make_run, skipped_reason=SKIPPED_REASON, limit=_BATCH
            )
            started += await self._take(claimed, unusable)
            if len({task.task_id for task, _ in claimed}) < _BATCH:
                return started + await self.start_queued()

    async def _take(self, claimed: list[tuple[Task, Run | None]], unusable: dict[str, str]) -> int:
        """Start the runs a claim stored to start here, pause the tasks whose schedule cannot be
        used, and stop the runs the claim replaced; answers how many started."""
        started = 0
        replaced: list[Run] = []
        for task, run in claimed:
            if task.task_id in unusable:
                await self._pause(task, unusable[task.task_id])
                continue
            if run is None:
                continue
            if run.status is RunStatus.RUNNING:
                self._starter.start(task, run)
                started += 1
                continue
            if run.status is RunStatus.CANCELLED and run.started_at is not None:
                replaced.append(run)
            logger.info(
                "occurrence not started",
                extra={"task_id": task.task_id, "status": run.status.value, "why": run.error},
            )
        if replaced and self._replaced is not None:
            await self._replaced(replaced)
        return started

    async def start_queued(self) -> int:
        """Start the queued occurrences whose turn came (see the module docstring); answers
        how many."""
        started = 0
        while True:
            waiting = await self._store.start_queued(self._owner, self._lease, limit=_BATCH)
            for task, run in waiting:
                self._starter.start(task, run)
            started += len(waiting)
            if len(waiting) < _BATCH:
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

    def _occurrences(self, task: Task, due_at: datetime, now: datetime) -> list[Run]:
        """The runs of a claimed task's due occurrences, in order, as its catch-up policy
        says (stored with the claim): those that run, and records of those skipped."""
        schedule = task.schedule_config
        assert schedule is not None  # claimed with a usable schedule
        try:
            plan = catch_up(
                schedule,
                due=due_at,
                now=now,
                policy=task.catchup,
                window_seconds=task.catchup_window_seconds,
                default_zone=self._default_zone,
            )
        except Exception:  # never a poison pill: the occurrence runs as without policies
            logger.exception(
                "catch-up failed; the due occurrence runs", extra={"task_id": task.task_id}
            )
            return [self._starter.new_run(task, due_at)]
        if plan.unrecorded or plan.coalesced or len(plan.run) + len(plan.skipped) > 1:
            logger.info(
                "missed occurrences caught up",
                extra={
                    "task_id": task.task_id,
                    "catchup": task.catchup.value,
                    "run": len(plan.run),
                    "skipped": len(plan.skipped),
                    "unrecorded": plan.unrecorded,
                    "coalesced": plan.coalesced,
                },
            )
        skipped = dict(plan.skipped)
        runs = []
        for at in sorted({*plan.run, *skipped}):
            if at in skipped:
                runs.append(
                    Run(
                        task_id=task.task_id,
                        scheduled_for=at,
                        status=RunStatus.SKIPPED,
                        finished_at=now,
                        error=skipped[at],
                        owner=self._owner,
                    )
                )
            else:
                runs.append(self._starter.new_run(task, at))
        return runs
