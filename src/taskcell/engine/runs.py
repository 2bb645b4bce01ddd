"""The run table: what runs in this process, its run slots, and stopping it.

One asyncio task per task that runs here, by task id; a recurring task whose overlap policy
lets occurrences run side by side (``allow_all``, and ``cancel_other`` while the replaced run
stops) has one per run. A run is stopped by cancelling its asyncio task; the table remembers
why (:meth:`RunTable.reason`), so that the code that settles the cancelled run
(:mod:`taskcell.engine.settler`) knows whether a user cancelled it, the server stops, or the
store is out. It also keeps which runs hold a fence here, which of those lost their lease
(they stop and write nothing more), and which were stopped for an outage (they are recovered
once the store answers again, before any lease is renewed).

The table does no I/O: it depends on nothing but the agent registry (for an agent's own run
limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Protocol

from taskcell.agents.registry import AgentRegistry
from taskcell.domain.models import Run, Task

logger = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the server stopped while it ran"
#: Why runs stop when this process cannot renew their leases (they write nothing more).
OUTAGE = "interrupted: the store was unavailable and the run's lease could not be renewed"
CANCELLED_BY_USER = "cancelled by the user"
#: How long a stop waits for the runs it cancelled to settle.
STOP_GRACE_SECONDS = 5.0


class LiveRuns(Protocol):
    """What runs in this process, as the scheduler and the coordinator see it (the
    :class:`RunTable` is one)."""

    def is_running_here(self, task_id: str) -> bool:
        """Whether a run of the task goes on in this process now."""
        ...


class RunTable:
    """See the module docstring. ``max_runs`` bounds the runs that hold a slot at once."""

    def __init__(self, registry: AgentRegistry, *, max_runs: int = 64) -> None:
        self._registry = registry
        self._max_runs = max_runs
        self._slots = asyncio.Semaphore(max_runs)
        self._agent_slots: dict[str, asyncio.Semaphore] = {}
        #: The asyncio tasks by key: the task id, or for an occurrence "task id/run id".
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._keys: dict[str, set[str]] = {}  # task id -> its keys in ``_runs``
        self._task_of: dict[str, str] = {}  # key -> task id
        self._cancelling: dict[str, str] = {}
        #: Runs of this process whose lease was lost (a write refused): they stop, writing
        #: nothing more. By run id, with the task id the run belongs to.
        self._lost: dict[str, str] = {}
        self._held: dict[str, str] = {}  # run id -> task id, for the runs holding a fence here
        #: Runs stopped because their leases could not be renewed (or whose own write met an
        #: outage), by run id: their rows stay open under this owner until recovered.
        self._stopped_for_outage: dict[str, Run] = {}
        #: Runs were stopped for an outage: recover them before renewing any lease (and stop
        #: nothing more meanwhile).
        self.lapsed = False
        #: Set when a graceful stop begins: no run starts any more, and a run whose agent
        #: connection is cut waits to be stopped (interrupted) instead of failing.
        self.stopping = False

    # -- what runs here -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._runs)

    def is_running_here(self, task_id: str) -> bool:
        return any(not self._runs[key].done() for key in self._keys.get(task_id, ()))

    def _runners(self, task_id: str) -> list[asyncio.Task[None]]:
        return [r for key in self._keys.get(task_id, ()) if not (r := self._runs[key]).done()]

    def spawn(
        self, task_id: str, coro: Coroutine[Any, Any, None], *, run_id: str | None = None
    ) -> None:
        """Run ``coro`` as the run of ``task_id`` (not while stopping: it stays queued). With
        ``run_id`` (an occurrence), beside the task's other runs here."""
        if self.stopping:
            coro.close()  # it stays queued: the next start (or another process) runs it
            logger.info("run not started: the server is stopping", extra={"task_id": task_id})
            return
        key = task_id if run_id is None else f"{task_id}/{run_id}"
        runner = asyncio.create_task(coro, name=f"run {key}")
        self._runs[key] = runner
        self._keys.setdefault(task_id, set()).add(key)
        self._task_of[key] = task_id

        def ended(done: asyncio.Task[None]) -> None:
            if self._runs.get(key) is done:
                del self._runs[key]
                del self._task_of[key]
                keys = self._keys[task_id]
                keys.discard(key)
                if not keys:
                    del self._keys[task_id]
            if task_id not in self._keys:
                self._cancelling.pop(task_id, None)
            if not done.cancelled() and done.exception() is not None:
                logger.error("run crashed", extra={"task_id": task_id}, exc_info=done.exception())

        runner.add_done_callback(ended)

    async def wait_idle(self) -> None:
        """Wait until no run of this process is going."""
        while self._runs:
            await asyncio.wait(list(self._runs.values()))

    # -- stopping -------------------------------------------------------------------------

    def reason(self, task_id: str) -> str | None:
        """Why the run of ``task_id`` is being cancelled (None: a stop, or not cancelled)."""
        return self._cancelling.get(task_id)

    def stop(self, task_id: str, reason: str | None) -> asyncio.Task[None] | None:
        """Cancel the runs of ``task_id`` here (a user's cancel, with ``reason``); answers
        the asyncio task of one, or None if none runs here (:meth:`stop_all` answers all)."""
        runners = self.stop_all(task_id, reason)
        return runners[0] if runners else None

    def stop_all(self, task_id: str, reason: str | None) -> list[asyncio.Task[None]]:
        """Cancel every run of ``task_id`` here (a user's cancel, with ``reason``); answers
        their asyncio tasks (none if none runs here)."""
        runners = self._runners(task_id)
        if runners:
            self._cancelling[task_id] = reason or CANCELLED_BY_USER
        for runner in runners:
            runner.cancel()
        return runners

    def begin_stop(self) -> None:
        """A graceful stop begins: see :attr:`stopping`."""
        if not self.stopping:
            logger.info("graceful stop begins", extra={"runs": len(self._runs)})
        self.stopping = True

    async def interrupt_all(self) -> None:
        """Begin the stop and cancel every run (each settles itself as interrupted); wait
        for them up to :data:`STOP_GRACE_SECONDS`."""
        self.begin_stop()
        runs = [t for t in self._runs.values() if not t.done()]
        for task in runs:
            task.cancel()
        if runs:
            await asyncio.wait(runs, timeout=STOP_GRACE_SECONDS)

    def stop_for_outage(self) -> list[str]:
        """Cancel every run here because its lease cannot be renewed: they stop without
        writing anything more (their leases lapse, and whoever holds the store when it
        returns recovers them). Answers their task ids; nothing if runs were stopped for an
        outage already (see :attr:`lapsed`)."""
        if self.lapsed:
            return []
        stopped = []
        for key, runner in list(self._runs.items()):
            if not runner.done():
                task_id = self._task_of[key]
                self._cancelling[task_id] = OUTAGE
                runner.cancel()
                stopped.append(task_id)
        self.lapsed = True
        return stopped

    def stopped_for_outage(self, run: Run) -> None:
        """``run`` stopped here for an outage: it is recovered before any lease is renewed."""
        self._stopped_for_outage[run.run_id] = run
        self.lapsed = True

    def outage_stops(self) -> list[Run]:
        """The runs stopped for an outage and not recovered yet."""
        return list(self._stopped_for_outage.values())

    def recovered(self, run_id: str) -> None:
        """A run stopped for an outage was recovered (or found closed by another process)."""
        self._stopped_for_outage.pop(run_id, None)

    # -- fences ---------------------------------------------------------------------------

    def hold(self, run: Run) -> None:
        """``run`` holds its fence here (its writes are fenced) until :meth:`release`."""
        self._held[run.run_id] = run.task_id

    def release(self, run_id: str) -> None:
        self._held.pop(run_id, None)
        self._lost.pop(run_id, None)

    def lost(self, run_id: str) -> bool:
        """Whether the run lost its lease (it writes nothing more)."""
        return run_id in self._lost

    def mark_lost(self, run: Run) -> None:
        self._lost[run.run_id] = run.task_id

    def leases_lost(self, run_ids: frozenset[str]) -> None:
        """The store refused writes of these runs (their leases were taken over): each one
        held here stops at once, writing nothing more (the event log calls this)."""
        for run_id in run_ids:
            task_id = self._held.get(run_id)
            if task_id is None:
                continue
            self._lost[run_id] = task_id
            runner = self._runs.get(f"{task_id}/{run_id}") or self._runs.get(task_id)
            if runner is not None and not runner.done():
                runner.cancel()

    # -- slots ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def slot(
        self, task: Task, *, on_cancelled: Callable[[], Awaitable[None]]
    ) -> AsyncIterator[None]:
        """Hold a run slot for ``task``: first one of its agent's own (see
        ``AgentRegistry.run_limit``; waiting for it holds no engine slot), then one of the
        table's ``max_runs``. Cancelled while it waits, it releases what it holds and awaits
        ``on_cancelled`` (shielded) before it re-raises."""
        name = task.agent_name
        limit = self._agent_slots.get(name)
        if limit is None and (count := self._registry.run_limit(name, self._max_runs)):
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
            await asyncio.shield(on_cancelled())
            raise
        try:
            yield
        finally:
            for semaphore in held:
                semaphore.release()
