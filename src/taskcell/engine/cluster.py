"""Coordination between the processes that share a database (a cluster).

Processes wake each other with notifications (PostgreSQL LISTEN/NOTIFY): a schedule changed,
events were appended (readers elsewhere read the log), a cancel must reach the process that
runs a task, or a reply must reach the process that waits for it. Messages are
``owner|kind|argument``; a process ignores its own. What a notice makes this process do is not
this module's business: the handlers are passed to :meth:`Coordinator.listen`
(:class:`NoticeHandlers`). On a single-server store (SQLite) the notifications are no-ops and
the ``notifications`` loop does not run. Leases are kept by :mod:`taskcell.engine.leases`,
recovery by :mod:`taskcell.engine.recovery`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from taskcell.abc import Store
from taskcell.domain.models import Run, RunStatus, Task
from taskcell.domain.state_machine import TaskStatus
from taskcell.engine.eventlog import EventLog
from taskcell.engine.responses import ResponseFactory
from taskcell.engine.runs import STOP_GRACE_SECONDS, LiveRuns
from taskcell.engine.supervisor import Supervisor
from taskcell.engine.weather import is_outage

logger = logging.getLogger(__name__)

#: PostgreSQL's NOTIFY payload limit is 8000 bytes.
NOTIFY_CHUNK = 7000
#: In a cluster, how often the scheduler and idle stream readers look anyway.
CLUSTER_POLL_SECONDS = 5.0
_RECENT_RUNS = 10


def message(owner: str, kind: str, argument: str = "") -> str:
    return f"{owner}|{kind}|{argument}"


def event_notices(owner: str, task_ids: set[str]) -> list[str]:
    """The notices that tell the others a batch of these tasks' events is stored (sent with
    the batch, in its transaction), each within :data:`NOTIFY_CHUNK`."""
    notices = []
    batch: list[str] = []
    size = 0
    for task_id in sorted(task_ids):
        if batch and size + len(task_id) + 1 > NOTIFY_CHUNK:
            notices.append(message(owner, "events", ",".join(batch)))
            batch, size = [], 0
        batch.append(task_id)
        size += len(task_id) + 1
    if batch:
        notices.append(message(owner, "events", ",".join(batch)))
    return notices


@dataclass(frozen=True, slots=True)
class NoticeHandlers:
    """What this process does when another one tells it something."""

    #: A schedule changed: wake the scheduler.
    schedule: Callable[[], None]
    #: Events of this task were appended elsewhere: its readers read the log.
    events: Callable[[str], None]
    #: The task was cancelled elsewhere: stop its run if it runs here.
    cancel: Callable[[str], Coroutine[Any, Any, None]]
    #: Continue this waiting task with the reply another process wrote at ``seq``.
    reply: Callable[[str, int], Coroutine[Any, Any, None]]
    #: Listening (again): look at what notices may have said meanwhile.
    caught_up: Callable[[], None]
    #: These runs were closed by another process (replaced by a newer occurrence, overlap
    #: cancel_other): stop those that run here, writing nothing more.
    stop_runs: Callable[[frozenset[str]], None] | None = None


class Forwarded(enum.Enum):
    """What became of a reply :meth:`Coordinator.forward_input` was given."""

    #: No other live process waits for the task: nothing written, answer it here.
    NO = "no"
    #: Written to the task's log and taken by the process that waits for it.
    TAKEN = "taken"
    #: Written to the task's log (as the user's message), but not taken in time: continue
    #: the task here with it (said already).
    NOT_TAKEN = "not taken"


class Coordinator:
    """The cluster side of one process (see the module docstring): ``owner`` is its name,
    ``live`` what runs here, ``store_now`` the store's clock as last read, ``dead_after`` how
    long a process may be silent before it counts as dead."""

    def __init__(
        self,
        store: Store,
        log: EventLog,
        supervisor: Supervisor,
        live: LiveRuns,
        *,
        owner: str,
        dead_after: timedelta,
        store_now: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._log = log
        self._supervisor = supervisor
        self._live = live
        self._owner = owner
        self._dead_after = dead_after
        self._store_now = store_now
        self._background: set[asyncio.Task[None]] = set()

    @property
    def clustered(self) -> bool:
        return not self._store.single_server

    def message(self, kind: str, argument: str = "") -> str:
        return message(self._owner, kind, argument)

    # -- telling the others -------------------------------------------------------------

    async def schedule_changed(self) -> None:
        """In a cluster, wake the other processes' schedulers."""
        if self.clustered:
            await self._store.notify(self.message("schedule"))

    async def stop_runs_elsewhere(self, run_ids: list[str]) -> None:
        """In a cluster, tell the process that runs each of these runs to stop it (the store
        closed them already: their writes are refused anyway, this makes it prompt)."""
        if not self.clustered:
            return
        batch: list[str] = []
        for run_id in run_ids:
            if batch and sum(len(r) + 1 for r in batch) + len(run_id) > NOTIFY_CHUNK:
                await self._store.notify(self.message("stop-runs", ",".join(batch)))
                batch = []
            batch.append(run_id)
        if batch:
            await self._store.notify(self.message("stop-runs", ",".join(batch)))

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

    async def listen(self, handlers: NoticeHandlers) -> None:
        """The supervised ``notifications`` loop: listens, and after a lost connection listens
        again (waiting out the outage) and catches up on what it may have missed; each notice
        goes to its handler."""
        while True:
            await self._supervisor.weather("notifications", lambda: self._listen_once(handlers))

    async def _listen_once(self, handlers: NoticeHandlers) -> None:
        listening = False

        def started() -> None:
            nonlocal listening
            listening = True
            self._supervisor.recovered("notifications")
            handlers.caught_up()

        def on_notice(notice: str) -> None:
            self._on_notice(notice, handlers)

        try:
            await self._store.listen(on_notice, on_listening=started)
        except Exception as exc:
            if not (listening and is_outage(exc)):
                raise
            logger.warning(
                "notification connection lost; listening again", extra={"error": str(exc)}
            )

    def _on_notice(self, notice: str, handlers: NoticeHandlers) -> None:
        owner, _, rest = notice.partition("|")
        kind, _, argument = rest.partition("|")
        if owner == self._owner:
            return
        if kind == "schedule":
            handlers.schedule()
        elif kind == "events":
            for task_id in filter(None, argument.split(",")):
                handlers.events(task_id)
        elif kind == "cancel":
            self._in_background(handlers.cancel(argument), f"cancel {argument}")
        elif kind == "stop-runs" and handlers.stop_runs is not None:
            handlers.stop_runs(frozenset(filter(None, argument.split(","))))
        elif kind == "input":
            task_id, seq, target = [*argument.split(",", 2), "", ""][:3]
            if target == self._owner and seq.isdigit():
                self._in_background(handlers.reply(task_id, int(seq)), f"reply {task_id}")

    # -- runs elsewhere -------------------------------------------------------------------

    async def has_live_run(self, task_id: str) -> bool:
        """Whether a run of the task goes on, here or (in a cluster) in a live process."""
        if self._live.is_running_here(task_id):
            return True
        if not self.clustered:
            return False
        return await self._live_run_elsewhere(task_id) is not None

    async def _live_run_elsewhere(self, task_id: str) -> Run | None:
        """A running run of the task whose lease holds (among its latest runs: a skipped
        occurrence may have been recorded after it)."""
        now = self._store_now()  # the store's clock, as last read (no round trip)
        for run in (await self._store.list_runs(task_id, limit=_RECENT_RUNS)).items:
            live = run.lease_expires_at is not None and run.lease_expires_at > now
            if run.status is RunStatus.RUNNING and live:
                return run
        return None

    async def forward_input(self, task: Task, text: str) -> Forwarded:
        """Hand a reply to the live process that waits for it.

        The reply is written to the task's log here as the user's message (so no size limit
        applies to it), then its ``seq`` is sent to the waiting process, which continues the
        task; this waits (up to a few seconds) until the task is no longer waiting. Answers
        :class:`Forwarded`: NO, and nothing written, when no other live process waits for the
        task (the caller answers it itself); NOT_TAKEN when it still waits after that time (the
        caller continues it here, the reply said already).
        """
        if not self.clustered or task.status is not TaskStatus.WAITING_INPUT:
            return Forwarded.NO
        runs = (await self._store.list_runs(task.task_id, limit=1)).items
        if not runs or runs[0].status is not RunStatus.WAITING_INPUT:
            return Forwarded.NO
        run = runs[0]
        if run.owner is None or run.owner == self._owner:
            return Forwarded.NO
        alive = await self._store.live_processes(self._dead_after)
        if run.owner not in {p.process_id for p in alive}:
            return Forwarded.NO
        said = await self._log.emit(ResponseFactory(task, run.run_id).user_message(text))
        await self._log.flush()
        self._log.appended_elsewhere(task.task_id)  # the owner numbers what follows
        notice = self.message("input", f"{task.task_id},{said.seq},{run.owner}")
        await self._store.notify(notice)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_GRACE_SECONDS
        while loop.time() < deadline:
            current = await self._store.load(task.task_id)
            if current is None or current.status is not TaskStatus.WAITING_INPUT:
                return Forwarded.TAKEN
            await asyncio.sleep(0.01)
        # Its notification was lost, or it is stuck: answer here rather than leave the reply
        # unread (an agent whose waiting state lived there then fails, and says so).
        logger.warning("reply not taken by its process", extra={"task_id": task.task_id})
        return Forwarded.NOT_TAKEN

    async def cancel_elsewhere(self, task_id: str) -> bool:
        """Signal the process whose run holds a live lease on the task; wait until it stopped.

        Answers False when no other process runs the task (or it did not stop in time), so
        the caller closes it here.
        """
        store = self._store
        if not self.clustered:
            return False
        run = await self._live_run_elsewhere(task_id)
        if run is None or run.owner == self._owner:
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
