"""Coordination between the processes that share a database (a cluster).

Each process heartbeats, renews the leases of its runs at half their length, and recovers runs
whose lease expired (their process died). Every such decision is made by the database's clock,
never this process's (see ``taskcell.abc.Coordination``). An outage is waited out: if the
leases go unrenewed for :data:`LEASE_SAFETY` of their length, this process stops its runs
(writing nothing more) before the leases expire, so whoever recovers them never meets a live
writer. Processes wake each other with notifications
(PostgreSQL LISTEN/NOTIFY): a schedule changed, events were appended (readers elsewhere read
the log), a cancel must reach the process that runs a task, or a reply must reach the process
that waits for it. Messages are
``owner|kind|argument``; a process ignores its own. On a single-server store (SQLite) the
notifications are no-ops and only the lease loop runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from taskcell.domain.models import Run, RunStatus, Task, utcnow
from taskcell.domain.state_machine import InvalidTransition, TaskStatus
from taskcell.engine.responses import ResponseFactory
from taskcell.engine.weather import is_outage
from taskcell.service import TaskNotFound

if TYPE_CHECKING:
    from taskcell.engine.engine import Engine

logger = logging.getLogger(__name__)

#: PostgreSQL's NOTIFY payload limit is 8000 bytes.
NOTIFY_CHUNK = 7000
#: In a cluster, how often the scheduler and idle stream readers look anyway.
CLUSTER_POLL_SECONDS = 5.0
STOP_GRACE_SECONDS = 5.0
_RECENT_RUNS = 10
#: Past this fraction of a lease without a successful renewal, this process's runs stop.
LEASE_SAFETY = 0.8


class Coordinator:
    """The cluster side of one engine (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._background: set[asyncio.Task[None]] = set()
        self._lease_guard: asyncio.TimerHandle | None = None
        #: Loop time of the last renewal that succeeded (sent then), None before the first.
        self.renewed_at: float | None = None
        #: Runs were stopped for an outage: close and recover them before renewing anything.
        self._lapsed = False
        #: A renewal failed (an outage) since the last one that succeeded.
        self._failing = False
        #: Loop time from which failing renewals stop this process's runs.
        self._deadline = float("inf")
        #: The store's clock minus this process's, as last read (at each lease renewal).
        self.clock_offset = timedelta(0)
        if not engine.store.single_server:
            engine.log.poll_seconds = CLUSTER_POLL_SECONDS
            engine.log.notices_for = self.event_notices
            engine.scheduler.fallback_poll_seconds = CLUSTER_POLL_SECONDS

    @property
    def clustered(self) -> bool:
        return not self.engine.store.single_server

    def message(self, kind: str, argument: str = "") -> str:
        return f"{self.engine.owner}|{kind}|{argument}"

    # -- telling the others -------------------------------------------------------------

    async def schedule_changed(self) -> None:
        """Wake this process's scheduler and, in a cluster, the others'."""
        self.engine.scheduler.wake()
        if self.clustered:
            await self.engine.store.notify(self.message("schedule"))

    def event_notices(self, task_ids: set[str]) -> list[str]:
        """The notices that tell the others a batch of these tasks' events is stored (sent
        with the batch, in its transaction)."""
        notices = []
        batch: list[str] = []
        size = 0
        for task_id in sorted(task_ids):
            if batch and size + len(task_id) + 1 > NOTIFY_CHUNK:
                notices.append(self.message("events", ",".join(batch)))
                batch, size = [], 0
            batch.append(task_id)
            size += len(task_id) + 1
        if batch:
            notices.append(self.message("events", ",".join(batch)))
        return notices

    def _in_background(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run what a notice asks for without holding up the listener; failures are logged."""
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "acting on a notice failed",
                extra={"step": task.get_name()},
                exc_info=task.exception(),
            )

    # -- hearing from them --------------------------------------------------------------

    async def listen(self) -> None:
        """The supervised ``notifications`` loop: listens, and after a lost connection listens
        again (waiting out the outage) and catches up on what it may have missed."""
        while True:
            await self.engine.supervisor.weather("notifications", self._listen_once)

    async def _listen_once(self) -> None:
        listening = False

        def started() -> None:
            nonlocal listening
            listening = True
            self.engine.supervisor.recovered("notifications")
            self.caught_up()

        try:
            await self.engine.store.listen(self.on_notice, on_listening=started)
        except Exception as exc:
            if not (listening and is_outage(exc)):
                raise
            logger.warning(
                "notification connection lost; listening again", extra={"error": str(exc)}
            )

    def caught_up(self) -> None:
        """Listening (again): look at what notices may have said meanwhile (schedules, logs)."""
        self.engine.scheduler.wake()
        self.engine.log.wake_all_readers()

    def on_notice(self, message: str) -> None:
        owner, _, rest = message.partition("|")
        kind, _, argument = rest.partition("|")
        if owner == self.engine.owner:
            return
        if kind == "schedule":
            self.engine.scheduler.wake()
        elif kind == "events":
            log = self.engine.log
            for task_id in filter(None, argument.split(",")):
                log.wake_readers(task_id)
                log.appended_elsewhere(task_id)  # so this process numbers after those events
        elif kind == "cancel":
            self._in_background(self._cancel_here(argument), f"cancel {argument}")
        elif kind == "input":
            task_id, seq, target = [*argument.split(",", 2), "", ""][:3]
            if target == self.engine.owner and seq.isdigit():
                self._in_background(self._answer_here(task_id, int(seq)), f"reply {task_id}")

    async def _cancel_here(self, task_id: str) -> None:
        engine = self.engine
        if not engine.is_running_here(task_id):
            return
        task = await engine.store.load(task_id)
        if task is None or task.status is not TaskStatus.CANCELLED:
            return  # an old notice: the task runs again, or was never cancelled
        engine.stop_run_here(task_id, task.error_message or None)

    async def _answer_here(self, task_id: str, seq: int) -> None:
        """Continue a task waiting here with the reply another process wrote at ``seq``."""
        engine = self.engine
        engine.log.appended_elsewhere(task_id)
        found = await engine.store.read_events(task_id, after=seq - 1, limit=1)
        if not found or found[0].seq != seq or found[0].payload is None:
            logger.warning("forwarded reply not found", extra={"task_id": task_id, "seq": seq})
            return
        text = str(found[0].payload.get("content", ""))
        try:
            await engine.answer_here(task_id, text, said=True)
        except (InvalidTransition, TaskNotFound) as exc:  # answered already, or deleted
            logger.info("forwarded reply not taken", extra={"task_id": task_id, "why": str(exc)})

    # -- runs elsewhere -------------------------------------------------------------------

    async def has_live_run(self, task_id: str) -> bool:
        """Whether a run of the task goes on, here or (in a cluster) in a live process."""
        engine = self.engine
        if engine.is_running_here(task_id):
            return True
        if not self.clustered:
            return False
        return await self._live_run_elsewhere(task_id) is not None

    async def _live_run_elsewhere(self, task_id: str) -> Run | None:
        """A running run of the task whose lease holds (among its latest runs: a skipped
        occurrence may have been recorded after it)."""
        now = utcnow() + self.clock_offset  # the store's clock, as last read (no round trip)
        for run in (await self.engine.store.list_runs(task_id, limit=_RECENT_RUNS)).items:
            live = run.lease_expires_at is not None and run.lease_expires_at > now
            if run.status is RunStatus.RUNNING and live:
                return run
        return None

    async def forward_input(self, task: Task, text: str) -> bool:
        """Hand a reply to the live process that waits for it; answers whether it was handled.

        The reply is written to the task's log here as the user's message (so no size limit
        applies to it), then its ``seq`` is sent to the waiting process, which continues the
        task; this waits (up to a few seconds) until the task is no longer waiting, and answers
        the task here if it still waits then. False, and nothing written, when no other live
        process waits for the task: the caller answers it itself.
        """
        engine = self.engine
        if not self.clustered or task.status is not TaskStatus.WAITING_INPUT:
            return False
        runs = (await engine.store.list_runs(task.task_id, limit=1)).items
        if not runs or runs[0].status is not RunStatus.WAITING_INPUT:
            return False
        run = runs[0]
        if run.owner is None or run.owner == engine.owner:
            return False
        alive = await engine.store.live_processes(engine.dead_after)
        if run.owner not in {p.process_id for p in alive}:
            return False
        said = await engine.log.emit(ResponseFactory(task, run.run_id).user_message(text))
        await engine.log.flush()
        engine.log.appended_elsewhere(task.task_id)  # the owner numbers what follows
        await engine.store.notify(self.message("input", f"{task.task_id},{said.seq},{run.owner}"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_GRACE_SECONDS
        while loop.time() < deadline:
            current = await engine.store.load(task.task_id)
            if current is None or current.status is not TaskStatus.WAITING_INPUT:
                return True
            await asyncio.sleep(0.01)
        # Its notification was lost, or it is stuck: answer here rather than leave the reply
        # unread (an agent whose waiting state lived there then fails, and says so).
        logger.warning("reply not taken by its process", extra={"task_id": task.task_id})
        try:
            await engine.answer_here(task.task_id, text, said=True)
        except InvalidTransition:
            pass  # it took the reply after all, just now
        return True

    async def cancel_elsewhere(self, task_id: str) -> bool:
        """Signal the process whose run holds a live lease on the task; wait until it stopped.

        Answers False when no other process runs the task (or it did not stop in time), so
        the caller closes it here.
        """
        store = self.engine.store
        if not self.clustered:
            return False
        run = await self._live_run_elsewhere(task_id)
        if run is None or run.owner == self.engine.owner:
            return False
        await store.notify(self.message("cancel", task_id))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_GRACE_SECONDS
        while loop.time() < deadline:
            current = await store.load_run(run.run_id)
            if current is None or current.status is not RunStatus.RUNNING:
                return True
            await asyncio.sleep(0.01)
        logger.warning("remote run did not stop in time", extra={"task_id": task_id})
        return False

    # -- leases ---------------------------------------------------------------------------

    async def keep_leases(self) -> None:
        """The supervised ``leases`` loop: heartbeat and renew this process's leases every half
        lease (by the store's clock), waiting out outages; see :meth:`_arm_lease_guard`."""
        interval = self.engine.lease.total_seconds() / 2
        self._arm_lease_guard(asyncio.get_running_loop().time())
        try:
            while True:
                await self.engine.supervisor.weather(
                    "leases",
                    self._renew,
                    cap_seconds=max(interval / 4, 0.05),
                    on_outage=self._renewal_failed,
                )
                await asyncio.sleep(interval)
        finally:
            if self._lease_guard is not None:
                self._lease_guard.cancel()

    async def _renew(self) -> None:
        engine = self.engine
        sent = asyncio.get_running_loop().time()
        if self._lapsed:
            # Never renew the leases of runs stopped for the outage: recover them first.
            await engine.recover_stopped_runs()
            self._lapsed = False
        await engine.store.heartbeat(engine.owner)
        await engine.store.renew_leases(engine.owner, engine.lease)
        if self.clustered:
            self.clock_offset = await engine.store.clock() - utcnow()
        self.renewed_at, self._failing = sent, False
        self._arm_lease_guard(sent)

    def _renewal_failed(self, _: BaseException) -> None:
        self._failing = True
        if asyncio.get_running_loop().time() >= self._deadline:
            self._leases_lost()

    def _arm_lease_guard(self, renewed: float) -> None:
        """From :data:`LEASE_SAFETY` of a lease after ``renewed`` (loop time the last renewal
        was sent) on, stop this process's runs as soon as renewals fail (an outage), unless
        one succeeds first. A renewal that is merely late (a busy event loop, a slow statement)
        stops nothing; one that hangs fails at the statement time-out."""
        if self._lease_guard is not None:
            self._lease_guard.cancel()
        self._deadline = renewed + LEASE_SAFETY * self.engine.lease.total_seconds()
        loop = asyncio.get_running_loop()
        self._lease_guard = loop.call_at(self._deadline, self._guard)

    def _guard(self) -> None:
        self._lease_guard = None
        if self._failing:
            self._leases_lost()

    def recover_before_renewing(self) -> None:
        """A run stopped for an outage here: the next renewal recovers the stopped runs first
        (so their leases are never renewed)."""
        self._lapsed = True

    def _leases_lost(self) -> None:
        if self._lapsed:
            return  # stopped already; nothing renews until the store answers again
        stopped = self.engine.stop_runs_for_outage()
        self._lapsed = True
        if stopped:
            logger.error(
                "leases not renewed in time (the store is unavailable): runs stopped",
                extra={"runs": stopped, "lease_s": self.engine.lease.total_seconds()},
            )

    async def recover_forever(self) -> None:
        """The supervised ``recovery`` loop: every half lease, recover runs whose lease expired,
        (in a cluster) bury dead processes, and start orphaned pending tasks."""
        engine = self.engine
        interval = engine.lease.total_seconds() / 2
        while True:
            await asyncio.sleep(interval)  # start-up recovery comes separately
            await engine.supervisor.weather("recovery", engine.recover_expired)
            if self.clustered:
                await engine.supervisor.weather(
                    "recovery", lambda: engine.bury_dead_processes(engine.dead_after)
                )
            # Pending tasks nobody runs (their process died, or an outage stopped their
            # start): claimed so that one process takes each.
            await engine.supervisor.weather(
                "recovery", lambda: engine.resume_pending(idle_for=engine.lease)
            )
