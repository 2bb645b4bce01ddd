"""The Engine: the composition root of the engine's parts, and the façade the API talks to.

It builds the parts, each with one job and dependencies that point one way (see
docs/architecture.md, "The engine's parts"), hands each the settings and collaborators it
needs, starts and stops the supervised loops, and answers the API's and the CLI's calls by
delegating them. It holds no logic of its own beyond that wiring: running once tasks is
:mod:`~taskcell.engine.once`, recurring ones :mod:`~taskcell.engine.recurring`, ending runs
:mod:`~taskcell.engine.settler`, and so on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from taskcell.abc import Page, Store, TaskFilter
from taskcell.agents.base import AgentInfo
from taskcell.agents.registry import AgentRegistry
from taskcell.domain.events import ConversationItem, Event
from taskcell.domain.models import Run, Task, TaskPattern
from taskcell.domain.schedule import resolve_zone_name
from taskcell.domain.state_machine import InvalidTransition
from taskcell.engine.attempts import Attempts
from taskcell.engine.cancelling import Cancellation, CancelResult
from taskcell.engine.cluster import (
    CLUSTER_POLL_SECONDS,
    Coordinator,
    Forwarded,
    NoticeHandlers,
    event_notices,
)
from taskcell.engine.controllers import Controllers
from taskcell.engine.editing import Editing
from taskcell.engine.eventlog import EventLog
from taskcell.engine.executor import TaskExecutor
from taskcell.engine.health import Health, check_health
from taskcell.engine.leases import LeaseKeeper
from taskcell.engine.once import OnceTasks
from taskcell.engine.plan import ExecutionPlan, PlanResult, execute_plan
from taskcell.engine.pruner import Pruner, RetentionPolicy
from taskcell.engine.recovery import Recovery
from taskcell.engine.recurring import Backfilled, BadBackfill, RecurringTasks
from taskcell.engine.runs import CANCELLED_BY_USER, INTERRUPTED, STOP_GRACE_SECONDS, RunTable
from taskcell.engine.scheduler import Scheduler
from taskcell.engine.settler import RetryPolicy, RunSettler
from taskcell.engine.supervisor import Supervisor
from taskcell.engine.timeouts import Deadlines
from taskcell.service import TaskNotFound, TaskService
from taskcell.webhooks.dispatcher import Dispatcher, DispatcherConfig
from taskcell.webhooks.service import WebhookService

logger = logging.getLogger(__name__)


def process_id() -> str:
    """This process's name in run ownership: host, pid, and a token (a pid can come back)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Engine:
    """See the module docstring. ``start`` before use, ``stop`` at the end.

    ``lease_seconds``: how long a run's lease lasts (renewed every half lease; a process silent
    for two leases is dead). In a cluster (a store that is not single-server) the scheduler and
    idle stream readers look every ``cluster_poll_seconds`` anyway (a lost notification);
    alone, the scheduler looks every ``schedule_poll_seconds`` when nothing is due.
    """

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
        cluster_poll_seconds: float = CLUSTER_POLL_SECONDS,
        schedule_poll_seconds: float = 60.0,
        webhooks: DispatcherConfig | None = None,
        retention: RetentionPolicy | None = None,
        retention_interval_seconds: float = 3600.0,
    ) -> None:
        self.store, self.registry = store, registry
        self.owner = owner or process_id()
        self.default_zone = default_zone or resolve_zone_name(None)
        lease = timedelta(seconds=lease_seconds)
        #: A process with no heartbeat for this long is dead (it heartbeats every half lease).
        self.dead_after = 2 * lease
        clustered = not store.single_server
        retry = retry or RetryPolicy()

        self.service = TaskService(store)
        self.supervisor = Supervisor(on_failure)
        runs = self._runs = RunTable(registry, max_runs=max_concurrent_runs)
        self.log = log = EventLog(
            store,
            poll_seconds=cluster_poll_seconds if clustered else None,
            notices_for=(lambda ids: event_notices(self.owner, ids)) if clustered else None,
            on_lease_lost=runs.leases_lost,
        )
        #: Webhook subscriptions, and the dispatcher that sends their deliveries.
        self.webhooks = WebhookService(store, Dispatcher(store, webhooks))
        log.on_appended = self.webhooks.dispatcher.appended
        executor = TaskExecutor(store, registry, log, default_zone=self.default_zone)
        controllers = Controllers(store, log, default_zone=self.default_zone)
        settler = RunSettler(store, log, runs, executor, registry, controllers, retry=retry)
        attempts = Attempts(store, executor, runs, settler, retry=retry)
        #: The run time-outs of this process's runs (the ``run-timeouts`` loop).
        self.deadlines = deadlines = Deadlines()
        self._once = OnceTasks(
            store,
            self.service,
            log,
            executor,
            runs,
            settler,
            attempts,
            self.supervisor,
            deadlines,
            owner=self.owner,
            lease=lease,
        )
        self.recovery = Recovery(
            store,
            runs,
            settler,
            self.supervisor,
            self._once.start,
            owner=self.owner,
            lease=lease,
            dead_after=self.dead_after,
            occurrences_freed=lambda: self.scheduler.wake(),
        )
        self._leases = LeaseKeeper(
            store,
            self.supervisor,
            owner=self.owner,
            lease=lease,
            before_renewing=self.recovery.recover_stopped_runs,
            on_lapse=runs.stop_for_outage,
        )
        self._cluster = Coordinator(
            store,
            log,
            self.supervisor,
            runs,
            owner=self.owner,
            dead_after=self.dead_after,
            store_now=self._leases.store_now,
        )
        self._recurring = RecurringTasks(
            store,
            self.service,
            log,
            runs,
            settler,
            attempts,
            controllers,
            deadlines,
            owner=self.owner,
            lease=lease,
            default_zone=self.default_zone,
            has_live_run=self._cluster.has_live_run,
            schedule_changed=self._schedule_changed,
            wake_scheduler=lambda: self.scheduler.wake(),
            stop_elsewhere=self._cluster.stop_runs_elsewhere,
        )
        self.scheduler = Scheduler(
            store,
            self.supervisor,
            log,
            controllers,
            runs,
            self._recurring,
            owner=self.owner,
            default_zone=self.default_zone,
            fallback_poll_seconds=cluster_poll_seconds if clustered else schedule_poll_seconds,
            lease=lease,
            replaced=self._recurring.replaced,
        )
        self._cancellation = Cancellation(
            store,
            self.service,
            log,
            runs,
            settler,
            controllers,
            cancel_elsewhere=self._cluster.cancel_elsewhere,
            schedule_changed=self._schedule_changed,
        )
        self._editing = Editing(
            store,
            controllers,
            default_zone=self.default_zone,
            schedule_changed=self._schedule_changed,
        )
        self._notices = NoticeHandlers(
            schedule=self.scheduler.wake,
            events=self._appended_elsewhere,
            cancel=self._cancellation.cancelled_elsewhere,
            reply=self._once.answer_forwarded,
            caught_up=self._caught_up,
            stop_runs=runs.leases_lost,
        )
        #: Retention's background loop (None: the server does not prune; see engine.pruner).
        self.pruner = (
            Pruner(
                store,
                retention,
                self.supervisor,
                interval_seconds=retention_interval_seconds,
                reader_floor=log.reader_floor,
            )
            if retention is not None
            else None
        )

    # -- life cycle -----------------------------------------------------------------------

    async def start(self, *, recover: bool = True, schedule: bool = True) -> None:
        self._runs.stopping = False
        await self.store.open()
        self.supervisor.start("event-log-writer", self.log.run)
        if recover:
            await self.recovery.recover()
        self.supervisor.start("leases", self._leases.run)
        self.supervisor.start("recovery", self.recovery.run)
        self.supervisor.start("run-timeouts", self.deadlines.run)
        if self._cluster.clustered:
            self.supervisor.start("notifications", lambda: self._cluster.listen(self._notices))
        if schedule:
            self.supervisor.start("scheduler", self.scheduler.run)
        self.supervisor.start("webhook-dispatcher", self.webhooks.dispatcher.run)
        if self.pruner is not None:
            self.supervisor.start("pruner", self.pruner.run)

    async def recover(self) -> None:
        """Close runs a dead process left open and queue what must run again (see
        :meth:`Recovery.recover`)."""
        await self.recovery.recover()

    def begin_stop(self) -> None:
        """A graceful stop begins (the server was told to exit): no run starts any more, and a
        run whose agent connection is cut waits to be stopped instead of failing."""
        self._runs.begin_stop()

    async def interrupt_runs(self) -> None:
        """Stop this process's runs: each is closed as interrupted and its task queued again
        (a remote A2A task is left running, to be resumed by the next attempt). The server
        calls this before it stops serving, while the demo agents it serves still answer."""
        await self._runs.interrupt_all()

    async def stop(self) -> None:
        """Stop runs (they are closed as interrupted and queued again), then the loops."""
        await self.interrupt_runs()
        try:
            async with asyncio.timeout(STOP_GRACE_SECONDS):
                await self.log.flush()
        except TimeoutError:
            logger.error("events still queued at shutdown were not written")
        await self.supervisor.stop()
        await self.store.close()

    def end_subscriptions(self) -> None:
        """End every event stream (after :meth:`stop`, before the server closes)."""
        self.log.end_subscriptions()

    async def wait_idle(self) -> None:
        """Wait until no run of this process is going (tests and benchmarks use it)."""
        await self._runs.wait_idle()
        await self.log.flush()

    def is_running_here(self, task_id: str) -> bool:
        return self._runs.is_running_here(task_id)

    # -- tasks ----------------------------------------------------------------------------

    async def submit(self, task: Task, *, run_immediately: bool = True) -> Task:
        """Store a new task, emit its opening events, and run it (or schedule it)."""
        self.registry.get(task.agent_name)  # UnknownAgent before anything is stored
        if task.pattern is TaskPattern.RECURRING:
            return await self._recurring.submit(task, run_immediately=run_immediately)
        return await self._once.submit(task)

    async def cancel(self, task_id: str, *, reason: str = CANCELLED_BY_USER) -> CancelResult:
        """Cancel a task: see :meth:`Cancellation.cancel`."""
        return await self._cancellation.cancel(task_id, reason)

    async def provide_input(self, task_id: str, text: str) -> Task:
        """Answer a task that waits for input; it continues the same remote task.

        In a cluster, a task waiting in another live process is answered there (its waiting
        state may live in that process's memory): the reply is forwarded to it.
        """
        task = await self.service.require_task(task_id)
        forwarded = await self._cluster.forward_input(task, text)
        if forwarded is Forwarded.NO:
            return await self._once.answer_here(task_id, text)
        if forwarded is Forwarded.NOT_TAKEN:
            with contextlib.suppress(InvalidTransition):  # it took the reply after all
                await self._once.answer_here(task_id, text, said=True)
        return await self.service.require_task(task_id)

    async def edit(
        self, task_id: str, patch: Mapping[str, Any], *, if_version: int | None = None
    ) -> Task:
        """Edit a task's editable fields in one guarded write: see :class:`Editing`."""
        return await self._editing.edit(task_id, patch, if_version=if_version)

    async def pause(self, task_id: str, note: str | None = None) -> Task:
        return await self._recurring.pause(task_id, note)

    async def resume(self, task_id: str) -> Task:
        return await self._recurring.resume(task_id)

    async def run_now(self, task_id: str) -> Run:
        return await self._recurring.run_now(task_id)

    async def backfill(self, task_id: str, start: datetime, end: datetime) -> Backfilled:
        """Run the occurrences of ``[start, end)`` that have no run yet (see
        :meth:`RecurringTasks.backfill`)."""
        return await self._recurring.backfill(task_id, start, end)

    def upcoming(self, task: Task, count: int) -> list[datetime]:
        """The next ``count`` fire times of recurring ``task`` in UTC (see
        :meth:`RecurringTasks.upcoming`); 409 errors for a once task or an unusable schedule."""
        return self._recurring.upcoming(task, count)

    async def execute_plan(self, plan: ExecutionPlan) -> PlanResult:
        """Run an execution plan (see :mod:`taskcell.engine.plan`)."""
        return await execute_plan(self, plan)

    async def add_cancelled(self, task: Task, reason: str) -> Task:
        """Store a task that will never run, cancelled with ``reason``, with its closing
        events (a plan's task whose dependency did not complete); answers it as stored."""
        stored = await self._cancellation.add_cancelled(task, reason)
        await self.log.flush()
        return stored

    async def emit(self, *events: Event) -> None:
        """Append events that belong to no run of this process (a plan's own), durably."""
        for event in events:
            await self.log.emit(event)
        await self.log.flush()

    async def delete_task(self, task_id: str) -> bool:
        """Delete a finished task and its history; False if it is not finished."""
        return await self.service.delete_task(task_id)

    # -- reading --------------------------------------------------------------------------

    async def get_task(self, task_id: str) -> Task | None:
        return await self.store.load(task_id)

    async def require_task(self, task_id: str) -> Task:
        """The task; :class:`TaskNotFound` if there is none."""
        return await self.service.require_task(task_id)

    async def list_tasks(self, flt: TaskFilter, *, limit: int, cursor: str | None) -> Page[Task]:
        return await self.service.list_tasks(flt, limit=limit, cursor=cursor)

    async def list_runs(self, task_id: str, *, limit: int, cursor: str | None = None) -> Page[Run]:
        """The task's runs, newest first."""
        return await self.store.list_runs(task_id, limit=limit, cursor=cursor)

    async def load_run(self, run_id: str) -> Run | None:
        return await self.store.load_run(run_id)

    async def read_events(self, task_id: str, *, after: int, limit: int) -> list[Event]:
        """Up to ``limit`` of the task's stored events after ``after``, in order."""
        return await self.store.read_events(task_id, after=after, limit=limit)

    async def latest_result(self, task_id: str) -> str:
        """The result of the task's newest run ("" with none)."""
        runs = (await self.store.list_runs(task_id, limit=1)).items
        return (runs[0].result or "") if runs else ""

    async def last_seq(self, task_id: str) -> int:
        """The ``seq`` of the task's last stored event (0 with none), or the last one
        retention removed when that is higher."""
        return await self.store.last_seq(task_id)

    async def log_start(self, task_id: str) -> int:
        """The last ``seq`` retention removed from the task's log (0: none)."""
        return await self.store.log_start(task_id)

    async def database_size(self) -> int | None:
        """The database's size in bytes (None in memory)."""
        return await self.store.database_size()

    def subscribe(self, task_id: str, *, after: int = 0) -> AsyncIterator[Event]:
        """The task's events after ``after``: replayed from the log, then live."""
        return self.log.subscribe(task_id, after=after)

    def subscribe_batches(self, task_id: str, *, after: int = 0) -> AsyncIterator[list[Event]]:
        """Like :meth:`subscribe`, in runs of consecutive events."""
        return self.log.subscribe_batches(task_id, after=after)

    async def has_conversation(self, conversation_id: str, *, user_id: str | None) -> bool:
        return await self.store.has_conversation(conversation_id, user_id=user_id)

    async def list_items(
        self, conversation_id: str, *, user_id: str | None, limit: int, cursor: str | None
    ) -> Page[ConversationItem]:
        """A conversation's history, oldest first."""
        return await self.store.list_items(
            conversation_id, user_id=user_id, limit=limit, cursor=cursor
        )

    async def agents(self) -> list[AgentInfo]:
        return await self.registry.infos()

    async def health(self) -> Health:
        return await check_health(self.store, self.supervisor, self.dead_after)

    def loops_alive(self) -> dict[str, bool]:
        """Whether the scheduler and the event log writer run, as /health names them (no I/O:
        safe to call from another thread)."""
        alive = self.supervisor.alive
        return {"scheduler": alive("scheduler"), "event_log": alive("event-log-writer")}

    async def task_counts(self) -> dict[str, int]:
        """How many tasks there are in each status (by the status's value)."""
        return await self.store.count_by_status()

    async def webhook_counts(self) -> dict[str, int]:
        """How many webhook deliveries are pending and sending (the backlog)."""
        return await self.store.delivery_counts()

    @property
    def subscriber_count(self) -> int:
        return self.log.subscriber_count

    @property
    def events_appended(self) -> int:
        return self.log.appended_total

    # -- wiring ---------------------------------------------------------------------------

    async def _schedule_changed(self) -> None:
        """Wake the schedulers (this process's and, in a cluster, the others')."""
        self.scheduler.wake()
        await self._cluster.schedule_changed()

    def _appended_elsewhere(self, task_id: str) -> None:
        self.log.wake_readers(task_id)
        self.log.appended_elsewhere(task_id)  # so this process numbers after those events

    def _caught_up(self) -> None:
        self.scheduler.wake()
        self.log.wake_all_readers()


__all__ = [
    "INTERRUPTED",
    "BadBackfill",
    "CancelResult",
    "Engine",
    "RetentionPolicy",
    "RetryPolicy",
    "TaskNotFound",
]
