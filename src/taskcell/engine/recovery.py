"""Recovery: runs that a dead (or cut-off) process left open, and tasks nobody runs.

At start-up, and then every half lease (the supervised ``recovery`` loop): runs whose lease
expired by the store's clock are taken over and closed as interrupted, each with its once task
requeued (run again here) or failed, in one write; dead processes are buried (the closing
events of tasks they settled in their last moments are written); pending once tasks nobody
runs are started. On a single-server store every run still open at start-up is an orphan. The
closing writes are the :class:`~taskcell.engine.settler.RunSettler`'s; this part decides which
runs and tasks they apply to.

Runs this process stopped for an outage (:meth:`RunTable.stop_for_outage`, or a run whose own
write met one) are recovered the same way, by :meth:`Recovery.recover_stopped_runs`, once the
store answers again and before any lease is renewed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from taskcell.abc import Store, TaskFilter
from taskcell.domain.models import Run, RunStatus, Task, TaskPattern
from taskcell.domain.state_machine import TaskStatus
from taskcell.engine.runs import INTERRUPTED, OUTAGE, RunTable
from taskcell.engine.settler import RunSettler
from taskcell.engine.supervisor import Supervisor
from taskcell.metrics import RUNS

logger = logging.getLogger(__name__)

_PAGE = 500


class Recovery:
    """See the module docstring. ``start_once`` runs a pending once task here unless it runs
    here already (answering whether it started); a process silent for ``dead_after`` is dead;
    ``lease`` is how long runs are leased (the loop looks every half lease)."""

    def __init__(
        self,
        store: Store,
        runs: RunTable,
        settler: RunSettler,
        supervisor: Supervisor,
        start_once: Callable[[Task], bool],
        *,
        owner: str,
        lease: timedelta,
        dead_after: timedelta,
        occurrences_freed: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._runs = runs
        self._settler = settler
        self._supervisor = supervisor
        self._start_once = start_once
        self._owner = owner
        self._lease = lease
        self._dead_after = dead_after
        #: Called when a recurring task's run was recovered: occurrences queued behind it
        #: (overlap buffer_*) may start now (the scheduler's pass starts them).
        self._occurrences_freed = occurrences_freed

    async def recover(self) -> None:
        """Close runs a dead process left running, then queue what must run again.

        On a single-server store every run still running at start-up is an orphan; on a
        shared database only those whose lease expired. A once task is retried if it has
        attempts left, else failed with the reason; a recurring task goes on at its next
        occurrence (the scheduler coalesces what it missed).
        """
        if self._store.single_server:
            for run in await self._store.runs_in_status([RunStatus.RUNNING, RunStatus.QUEUED]):
                if run.owner == self._owner:
                    continue  # started by this process since it started
                if run.status is RunStatus.QUEUED and run.owner is None:
                    continue  # an occurrence waiting its turn: the scheduler starts it
                # Closed in one write that takes the run over (this process its closer).
                if await self._settler.interrupt(run, INTERRUPTED, closer=self._owner):
                    await self._recover_task(run)
            # A single server: every other one is dead.
            await self.bury_dead_processes(timedelta(0))
            await self.resume_pending()
        else:
            await self.recover_expired()
            await self.bury_dead_processes(self._dead_after)
            await self.resume_pending(idle_for=self._lease)

    async def run(self) -> None:
        """The supervised ``recovery`` loop: every half lease, recover runs whose lease
        expired, (in a cluster) bury dead processes, and start orphaned pending tasks."""
        interval = self._lease.total_seconds() / 2
        weather = self._supervisor.weather
        while True:
            await asyncio.sleep(interval)  # start-up recovery comes separately
            await weather("recovery", self.recover_expired)
            if not self._store.single_server:
                await weather("recovery", lambda: self.bury_dead_processes(self._dead_after))
            # Pending tasks nobody runs (their process died, or an outage stopped their
            # start): claimed so that one process takes each.
            await weather("recovery", lambda: self.resume_pending(idle_for=self._lease))

    async def recover_expired(self) -> int:
        """Take over runs whose lease expired by the store's clock (their process died, stalled
        or could not reach the store) and recover their tasks: one write closes each run (its
        epoch bumped, so its old owner's writes are refused from then on; this process named as
        its closer) and requeues or fails its task. Answers how many."""
        runs = await self._store.interrupt_expired(INTERRUPTED, by=self._owner)
        for run in runs:
            RUNS.labels(outcome=RunStatus.INTERRUPTED.value).inc()
            await self._recover_task(run)
        return len(runs)

    async def recover_stopped_runs(self) -> int:
        """Recover the runs stopped here for an outage (see :attr:`RunTable.lapsed`), once the
        store answers again (before any lease is renewed, so theirs never are): each still
        open under this owner is closed as interrupted and its once task requeued (or failed),
        exactly as recovery after a crash would; a run another process recovered meanwhile is
        left to it (the guarded close refuses). Answers how many were closed here."""
        if not self._runs.lapsed:
            return 0
        closed = 0
        for run in self._runs.outage_stops():
            # Forgotten only once the guarded close answered (an outage retries it).
            if await self._settler.interrupt(run, OUTAGE):
                await self._recover_task(run)
                closed += 1
            self._runs.recovered(run.run_id)
        self._runs.lapsed = False
        return closed

    async def _recover_task(self, run: Run) -> None:
        """After the write that closed ``run`` and requeued or failed its task: run it again
        here, or write the closing events of a task it failed."""
        task = await self._store.load(run.task_id)
        if task is not None and task.pattern is TaskPattern.RECURRING:
            if self._occurrences_freed is not None:
                self._occurrences_freed()
            return  # a recurring task goes on at its next occurrence (or a queued one)
        if task is None:
            return
        logger.info(
            "interrupted run recovered", extra={"task_id": task.task_id, "run_id": run.run_id}
        )
        if task.status is TaskStatus.PENDING:
            self._start_once(task)
        elif task.status is TaskStatus.FAILED and task.completed_at == run.finished_at:
            await self._settler.failed_by_recovery(task, run)  # failed by the recovering write

    async def bury_dead_processes(self, silent_for: timedelta) -> int:
        """Tidy up after processes with no heartbeat for ``silent_for`` (by the store's clock);
        answers how many.

        Each dead process's record is claimed (deleted) by exactly one live process, which then
        looks at the runs the dead one ended in its last moments: a task it settled may lack
        its closing events, if the process died between the settling write and the event
        log's next append. Those events are written here, so every finished task's log ends
        with ``done`` and its streams end. (Runs it left open are closed by their leases.)
        """
        dead = await self._store.claim_dead_processes(silent_for, keep=self._owner)
        for process in dead:
            since = process.heartbeat_at - self._lease
            for run in await self._store.runs_finished_by(process.process_id, since):
                await self._settler.close_log_of(run)
            logger.info(
                "dead process buried",
                extra={"process_id": process.process_id, "last_heartbeat": process.heartbeat_at},
            )
        return len(dead)

    async def resume_pending(self, *, idle_for: timedelta | None = None) -> int:
        """Start pending once tasks that no run here handles; answers how many started.

        With ``idle_for`` (a cluster) only orphans (unchanged for that long by the store's
        clock), claimed so that one process takes each:
        a task just created, or waiting out a retry's back-off, belongs to the process that
        is about to run it.
        """
        started = 0
        if idle_for is not None:
            for task in await self._store.claim_pending(idle_for):
                started += self._start_once(task)
            return started
        cursor: str | None = None
        while True:
            page = await self._store.list_tasks(
                TaskFilter(status=TaskStatus.PENDING, pattern=TaskPattern.ONCE),
                limit=_PAGE,
                cursor=cursor,
            )
            for task in page.items:
                started += self._start_once(task)
            cursor = page.next_cursor
            if cursor is None:
                return started
