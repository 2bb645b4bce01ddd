"""InMemoryTaskStore: the store contract held in dictionaries, for tests and scripts.

Nothing survives the process. Operations run to completion without awaiting, so each one is
atomic with respect to other coroutines, which is this store's form of a guarded write.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import copy
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from taskcell.abc import (
    DuplicateTask,
    EventConflict,
    LeaseLost,
    LogClosed,
    LogCut,
    OccurrenceRuns,
    Page,
    ProcessInfo,
    Pruned,
    TaskFilter,
)
from taskcell.domain.events import ConversationItem, Event, EventType
from taskcell.domain.models import (
    OPEN_RUN_STATUSES,
    Fence,
    Run,
    RunStatus,
    Task,
    TaskPattern,
    utcnow,
)
from taskcell.domain.policies import CANCELLED_BY_NEWER
from taskcell.domain.state_machine import FINAL_STATUSES, TaskStatus, enter, sources_of
from taskcell.domain.webhooks import (
    Delivery,
    DeliveryStatus,
    Webhook,
    controller_ids,
    disabled_reason,
    paused_in,
    plan_deliveries,
    worthy_task_ids,
)
from taskcell.stores.cursor import ITEMS, RUNS, Position, keyset_page, position
from taskcell.stores.rules import (
    admit_runs,
    apply_changes,
    check_changes,
    check_run_changes,
    lease_lost,
    log_cut,
)

_Key = tuple[datetime, str]
T = TypeVar("T")
_LEASED = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})


def _matches(task: Task, flt: TaskFilter) -> bool:
    return (
        (flt.user_id is None or task.user_id == flt.user_id)
        and (flt.conversation_id is None or task.conversation_id == flt.conversation_id)
        and (flt.status is None or task.status is flt.status)
        and (flt.pattern is None or task.pattern is flt.pattern)
        and (flt.agent_name is None or task.agent_name == flt.agent_name)
    )


def apply_transition_fields(
    task: Task, target: TaskStatus, now: datetime, changes: Mapping[str, Any] | None
) -> None:
    """Set what a transition sets on ``task`` (its effects, then ``changes``)."""
    enter(task, target, now)
    apply_changes(task, changes or {})


def copy_task(task: Task) -> Task:
    """A copy of ``task`` that shares nothing mutable with it.

    Four times faster than ``model_copy(deep=True)``: only ``remote_task_ids`` and ``metadata``
    are mutable (``schedule_config`` is frozen; the rest are strings, numbers, enums and
    datetimes), so only they are copied.
    """
    metadata = copy.deepcopy(task.metadata) if task.metadata else {}
    return task.model_copy(
        update={"remote_task_ids": list(task.remote_task_ids), "metadata": metadata}
    )


class InMemoryTaskStore:
    """See :class:`taskcell.abc.TaskStore` for the contract."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._order: list[_Key] = []  # (created_at, task_id), ascending
        self._runs: dict[str, Run] = {}
        self._runs_by_task: dict[str, list[str]] = {}
        self._events: dict[str, list[Event]] = {}
        self._items: dict[str, ConversationItem] = {}
        self._conversations: dict[tuple[str, str], str] = {}  # (user, id) -> title
        self._processes: dict[str, ProcessInfo] = {}
        self._closed_logs: set[str] = set()
        self._webhooks: dict[str, Webhook] = {}
        self._deliveries: dict[str, Delivery] = {}
        self._pruned_seq: dict[str, int] = {}  # task id -> highest seq retention removed
        self._retention_done: set[str] = set()
        #: run id -> its task's last seq when the run was made (the stores' ``log_from``)
        self._log_from: dict[str, int] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def check(self) -> str | None:
        return None

    async def save(self, task: Task) -> None:
        """Insert a new task alone (no conversation); :class:`~taskcell.abc.DuplicateTask`
        when its id is taken. Beyond the protocol: for scripts, benchmarks and tests that
        fill a store (the service creates tasks with ``create``)."""
        if task.task_id in self._tasks:
            raise DuplicateTask(f"task {task.task_id} exists already")
        self._tasks[task.task_id] = copy_task(task)
        bisect.insort(self._order, (task.created_at, task.task_id))

    async def create(self, task: Task, *, conversation_title: str) -> bool:
        await self.save(task)
        return await self.ensure_conversation(
            task.conversation_id, title=conversation_title, user_id=task.user_id
        )

    async def load(self, task_id: str) -> Task | None:
        task = self._tasks.get(task_id)
        return copy_task(task) if task is not None else None

    async def delete(self, task_id: str) -> bool:
        task = self._tasks.pop(task_id, None)
        if task is None:
            return False
        self._order.remove((task.created_at, task.task_id))
        for run_id in self._runs_by_task.pop(task_id, []):
            self._runs.pop(run_id, None)
            self._log_from.pop(run_id, None)
        self._events.pop(task_id, None)
        self._closed_logs.discard(task_id)
        self._pruned_seq.pop(task_id, None)
        self._retention_done.discard(task_id)
        for item_id in [i.item_id for i in self._items.values() if i.task_id == task_id]:
            del self._items[item_id]
        return True

    async def list_tasks(
        self, flt: TaskFilter, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Task]:
        after = position(cursor)
        end = len(self._order) if after is None else bisect.bisect_left(self._order, after)
        fetched: list[Task] = []  # newest first, as TASKS orders them
        for index in range(end - 1, -1, -1):
            task = self._tasks[self._order[index][1]]
            if _matches(task, flt):
                fetched.append(task)
                if len(fetched) > limit:
                    break
        return keyset_page(fetched, limit, decode=_copied_tasks, key=_task_position)

    async def transition(
        self,
        task_id: str,
        target: TaskStatus,
        *,
        expected: Collection[TaskStatus] | None = None,
        changes: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> bool:
        check_changes(changes or {})
        task = self._tasks.get(task_id)
        allowed = sources_of(target) if expected is None else set(expected) & sources_of(target)
        if task is None or task.status not in allowed:
            return False
        apply_transition_fields(task, target, now or utcnow(), changes)
        return True

    async def update(
        self,
        task_id: str,
        changes: Mapping[str, Any],
        *,
        expected: Collection[TaskStatus] | None = None,
        now: datetime | None = None,
        fence: Fence | None = None,
        version: int | None = None,
    ) -> bool:
        check_changes(changes)
        if fence is not None and not self._holds(fence, settling=False):
            raise lease_lost(fence)
        task = self._tasks.get(task_id)
        if task is None or (expected is not None and task.status not in expected):
            return False
        if version is not None and task.version != version:
            return False
        apply_changes(task, copy.deepcopy(dict(changes)))
        task.updated_at = now or utcnow()
        return True

    async def edit(
        self, task_id: str, change: Callable[[Task, datetime], Mapping[str, Any]]
    ) -> Task | None:
        task = self._tasks.get(task_id)
        if task is None:
            return None
        now = utcnow()
        changes = copy.deepcopy(dict(change(copy_task(task), now)))
        check_changes(changes)
        apply_changes(task, changes)
        task.updated_at = now
        task.version += 1
        return copy_task(task)

    async def cancel_conversation(
        self, conversation_id: str, *, reason: str | None = None, now: datetime | None = None
    ) -> list[str]:
        moment = now or utcnow()
        cancelled = []
        for task in self._tasks.values():
            if task.conversation_id == conversation_id and task.status not in FINAL_STATUSES:
                changes = {"error_message": reason} if reason is not None else None
                apply_transition_fields(task, TaskStatus.CANCELLED, moment, changes)
                cancelled.append(task.task_id)
        return cancelled

    async def add_run(self, run: Run) -> bool:
        siblings = self._runs_by_task.setdefault(run.task_id, [])
        if run.run_id in self._runs or any(_same_slot(self._runs[r], run) for r in siblings):
            return False
        self._runs[run.run_id] = run.model_copy(deep=True)
        self._log_from[run.run_id] = self._last_seq(run.task_id)
        siblings.append(run.run_id)
        return True

    async def start_run(self, run: Run, *, now: datetime | None = None) -> bool:
        task = self._tasks.get(run.task_id)
        if task is None or task.status is not TaskStatus.PENDING:
            return False
        if not await self.add_run(run):
            return False
        apply_transition_fields(task, TaskStatus.RUNNING, now or utcnow(), {"attempt": run.attempt})
        return True

    async def continue_run(
        self,
        run_id: str,
        *,
        task_id: str,
        owner: str,
        lease_expires_at: datetime,
        now: datetime | None = None,
    ) -> bool:
        task, run = self._tasks.get(task_id), self._runs.get(run_id)
        if task is None or run is None or run.task_id != task_id:
            return False
        if task.status is not TaskStatus.WAITING_INPUT or run.status is not RunStatus.WAITING_INPUT:
            return False
        apply_transition_fields(task, TaskStatus.RUNNING, now or utcnow(), None)
        run.status, run.owner, run.lease_expires_at = RunStatus.RUNNING, owner, lease_expires_at
        run.epoch += 1
        return True

    async def finish_run(
        self,
        run_id: str,
        changes: Mapping[str, Any],
        *,
        task_id: str,
        target: TaskStatus,
        expected: Collection[TaskStatus] | None = None,
        task_changes: Mapping[str, Any] | None = None,
        now: datetime | None = None,
        fence: Fence | None = None,
    ) -> tuple[bool, bool]:
        check_changes(task_changes or {})
        if fence is not None and not self._holds(fence, settling=True):
            raise lease_lost(fence)
        closed = await self.update_run(run_id, changes, expected=OPEN_RUN_STATUSES)
        moved = await self.transition(
            task_id, target, expected=expected, changes=task_changes, now=now
        )
        return closed, moved

    async def update_run(
        self,
        run_id: str,
        changes: Mapping[str, Any],
        *,
        expected: Collection[RunStatus] | None = None,
        fence: Fence | None = None,
    ) -> bool:
        if fence is not None and not self._holds(fence, settling=True):
            raise lease_lost(fence)
        run = self._runs.get(run_id)
        if run is None or (expected is not None and run.status not in expected):
            return False
        check_run_changes(changes)
        for name, value in changes.items():
            setattr(run, name, value)
        return True

    def _holds(self, fence: Fence, *, settling: bool) -> bool:
        """Whether the fence's run still has its owner and epoch (and is open, ``settling``)."""
        run = self._runs.get(fence.run_id)
        return (
            run is not None
            and run.owner == fence.owner
            and run.epoch == fence.epoch
            and (not settling or run.status in OPEN_RUN_STATUSES)
        )

    async def load_run(self, run_id: str) -> Run | None:
        run = self._runs.get(run_id)
        return run.model_copy(deep=True) if run is not None else None

    async def list_runs(
        self, task_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Run]:
        after = position(cursor)
        runs = sorted(
            (
                run
                for run in (self._runs[r] for r in self._runs_by_task.get(task_id, []))
                if after is None or RUNS.follows(_run_position(run), after)
            ),
            key=_run_position,
            reverse=RUNS.descending,
        )
        return keyset_page(runs[: limit + 1], limit, decode=_copied, key=_run_position)

    async def runs_in_status(
        self, statuses: Sequence[RunStatus], *, task_id: str | None = None
    ) -> list[Run]:
        wanted = set(statuses)
        pool = (
            self._runs.values()
            if task_id is None
            else [self._runs[r] for r in self._runs_by_task.get(task_id, [])]
        )
        found = sorted((r for r in pool if r.status in wanted), key=_run_position)
        return [r.model_copy(deep=True) for r in found]

    def _due_tasks(self, now: datetime, *, limit: int) -> list[Task]:
        due = sorted(
            (t for t in self._tasks.values() if _is_armed(t) and t.next_run_at <= now),  # type: ignore[operator]
            key=lambda t: (t.next_run_at, t.task_id),
        )
        return [copy_task(t) for t in due[:limit]]

    async def next_due_at(self) -> datetime | None:
        times = [t.next_run_at for t in self._tasks.values() if _is_armed(t)]
        return min((t for t in times if t is not None), default=None)

    async def read_ahead(self, due_before: datetime, *, limit: int = 500) -> int:
        times = [t.next_run_at for t in self._tasks.values() if _is_armed(t)]
        return min(limit, len([at for at in times if at is not None and at < due_before]))

    async def claim_occurrence(
        self, task_id: str, *, due: datetime, next_run_at: datetime | None
    ) -> bool:
        """Move an armed task's ``next_run_at`` from ``due`` to ``next_run_at`` in one
        guarded write; answers whether it did (of several claimers of one ``due``, exactly
        one wins). Beyond the protocol: the scheduler claims with ``start_due``; this is the
        one-at-a-time claim benchmarks compare it with."""
        task = self._tasks.get(task_id)
        if task is None or not _is_armed(task) or task.next_run_at != due:
            return False
        task.next_run_at = next_run_at
        task.updated_at = utcnow()
        return True

    async def _claim_due(
        self,
        now: datetime,
        next_time: Callable[[Task], datetime | None],
        *,
        limit: int,
    ) -> list[tuple[Task, datetime]]:
        claimed = []
        for task in self._due_tasks(now, limit=limit):
            due = task.next_run_at
            assert due is not None
            task.next_run_at = next_time(task)
            if await self.claim_occurrence(task.task_id, due=due, next_run_at=task.next_run_at):
                claimed.append((task, due))
        return claimed

    async def start_due(
        self,
        now: datetime,
        next_time: Callable[[Task], datetime | None],
        make_run: Callable[[Task, datetime], Run | Sequence[Run] | None],
        *,
        skipped_reason: str,
        limit: int = 500,
    ) -> list[tuple[Task, Run | None]]:
        started: list[tuple[Task, Run | None]] = []
        for task, due in await self._claim_due(now, next_time, limit=limit):
            made = make_run(task, due)
            runs = [] if made is None else [made] if isinstance(made, Run) else list(made)
            stored = self._admit(task, runs, now, skipped_reason) if runs else None
            answers: list[tuple[Task, Run | None]] = (
                [(task, r) for r in stored.runs] if stored else []
            )
            answers += [(task, r) for r in stored.replaced] if stored else []
            started += answers or [(task, None)]
        return started

    def _admit(
        self, task: Task, runs: Sequence[Run], now: datetime, skipped_reason: str
    ) -> OccurrenceRuns:
        """Store ``runs`` of ``task`` under its overlap policy (see ``admit_runs``)."""
        mine = [self._runs[i] for i in self._runs_by_task.get(task.task_id, [])]
        taken = {r.scheduled_for for r in mine}
        fresh = []
        for run in runs:
            if run.scheduled_for not in taken:
                taken.add(run.scheduled_for)
                fresh.append(run)
        running = [r for r in mine if _leased(r, now) and r.status is RunStatus.RUNNING]
        queued = [r for r in mine if r.status is RunStatus.QUEUED]
        admitted = admit_runs(
            task,
            fresh,
            running=len(running),
            queued=len(queued),
            now=now,
            skipped_reason=skipped_reason,
        )
        replaced = []
        if admitted.replace:
            for run in running + queued:
                run.status, run.finished_at = RunStatus.CANCELLED, now
                run.error, run.epoch = CANCELLED_BY_NEWER, run.epoch + 1
                replaced.append(run.model_copy(deep=True))
        stored = []
        for run in admitted.runs:
            self._runs[run.run_id] = run.model_copy(deep=True)
            self._log_from[run.run_id] = self._last_seq(task.task_id)
            self._runs_by_task.setdefault(task.task_id, []).append(run.run_id)
            stored.append(run)
        return OccurrenceRuns(stored, replaced)

    async def add_occurrences(self, task_id: str, runs: Sequence[Run]) -> OccurrenceRuns | None:
        task = self._tasks.get(task_id)
        if task is None or task.pattern is not TaskPattern.RECURRING:
            return None
        if task.status is not TaskStatus.RUNNING:
            return None
        return self._admit(copy_task(task), runs, utcnow(), "")

    async def start_queued(
        self, owner: str, lease: timedelta, *, limit: int = 100
    ) -> list[tuple[Task, Run]]:
        now = utcnow()
        started: list[tuple[Task, Run]] = []
        for task_id, run_ids in self._runs_by_task.items():
            task = self._tasks.get(task_id)
            if len(started) >= limit or task is None or not _is_live_schedule(task):
                continue
            mine = [self._runs[i] for i in run_ids]
            if any(r.status is RunStatus.RUNNING and _leased(r, now) for r in mine):
                continue
            waiting = [r for r in mine if r.status is RunStatus.QUEUED]
            if not waiting:
                continue
            run = min(waiting, key=lambda r: (r.scheduled_for or now, r.run_id))
            run.status, run.owner, run.started_at = RunStatus.RUNNING, owner, now
            run.lease_expires_at = now + lease
            started.append((copy_task(task), run.model_copy(deep=True)))
        return started

    async def claim_pending(self, idle_for: timedelta, *, limit: int = 100) -> list[Task]:
        older_than = utcnow() - idle_for
        orphans = sorted(
            (
                t
                for t in self._tasks.values()
                if t.status is TaskStatus.PENDING
                and t.pattern is TaskPattern.ONCE
                and t.updated_at < older_than
            ),
            key=lambda t: (t.created_at, t.task_id),
        )[:limit]
        now = utcnow()
        for task in orphans:
            task.updated_at = now
        return [copy_task(t) for t in orphans]

    async def count_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for task in self._tasks.values():
            counts[task.status.value] = counts.get(task.status.value, 0) + 1
        return counts

    # -- coordination (one process) --------------------------------------------------------

    single_server = True

    async def clock(self) -> datetime:
        return utcnow()

    async def heartbeat(self, process_id: str) -> None:
        now = utcnow()
        known = self._processes.get(process_id)
        started = known.started_at if known is not None else now
        self._processes[process_id] = ProcessInfo(process_id, started, now)

    async def live_processes(self, within: timedelta) -> list[ProcessInfo]:
        since = utcnow() - within
        live = [p for p in self._processes.values() if p.heartbeat_at >= since]
        return sorted(live, key=lambda p: (p.started_at, p.process_id))

    async def claim_dead_processes(self, silent_for: timedelta, *, keep: str) -> list[ProcessInfo]:
        before = utcnow() - silent_for
        dead = [
            p for p in self._processes.values() if p.heartbeat_at < before and p.process_id != keep
        ]
        for process in dead:
            del self._processes[process.process_id]
        return sorted(dead, key=lambda p: (p.started_at, p.process_id))

    async def runs_finished_by(self, owner: str, since: datetime) -> list[Run]:
        return [
            r.model_copy(deep=True)
            for r in self._runs.values()
            if (r.closed_by == owner or (r.owner == owner and r.closed_by is None))
            and r.finished_at is not None
            and r.finished_at >= since
        ]

    async def renew_leases(self, owner: str, lease: timedelta) -> int:
        until = utcnow() + lease
        active = [r for r in self._runs.values() if r.owner == owner and r.status in _LEASED]
        for run in active:
            run.lease_expires_at = until
        return len(active)

    async def interrupt_expired(self, reason: str, *, by: str | None = None) -> list[Run]:
        now = utcnow()
        expired = [
            r
            for r in self._runs.values()
            if r.status in _LEASED and r.lease_expires_at is not None and r.lease_expires_at < now
        ]
        for run in expired:
            run.status, run.finished_at, run.error = RunStatus.INTERRUPTED, now, reason
            run.epoch += 1
            if by is not None:
                run.closed_by = by
                task = self._tasks.get(run.task_id)
                if task is not None and task.pattern is TaskPattern.ONCE:
                    if task.status is TaskStatus.RUNNING:
                        requeue = run.attempt < task.max_attempts
                        target = TaskStatus.PENDING if requeue else TaskStatus.FAILED
                        changes = None if requeue else {"error_message": reason}
                        apply_transition_fields(task, target, now, changes)
        return [r.model_copy(deep=True) for r in expired]

    async def notify(self, message: str) -> None:
        return None

    async def listen(
        self, handler: Callable[[str], None], *, on_listening: Callable[[], None] | None = None
    ) -> None:
        await asyncio.Event().wait()  # nobody else to hear from

    # -- events and conversations ---------------------------------------------------------

    async def append_events(
        self,
        events: Sequence[Event],
        items: Sequence[ConversationItem],
        *,
        notices: Sequence[str] = (),
    ) -> None:
        lost = {
            e.fence.run_id for e in events if e.fence and not self._holds(e.fence, settling=False)
        }
        if lost:
            raise LeaseLost(f"runs no longer held: {sorted(lost)}", run_ids=lost)
        closing: dict[str, int] = {}
        refused: set[str] = set()
        for event in events:
            task = self._tasks.get(event.task_id)
            if event.task_id in self._closed_logs or event.seq > closing.get(
                event.task_id, event.seq
            ):
                refused.add(event.task_id)
            elif event.event is EventType.DONE and task is not None and task.is_finished():
                closing.setdefault(event.task_id, event.seq)
        if refused:
            raise LogClosed(f"logs closed: {sorted(refused)}", task_ids=refused)
        for event in events:
            event.to_json().encode("utf-8")  # what a database could not store, this refuses too
            log = self._events.setdefault(event.task_id, [])
            if log and log[-1].seq >= event.seq:
                raise EventConflict(f"event {event.task_id}/{event.seq} is not after the log's end")
        self._closed_logs.update(closing)
        self._write_outbox(events)
        for event in events:
            self._events[event.task_id].append(copy.deepcopy(event))
        for item in items:
            old = self._items.get(item.item_id)
            stored = copy.deepcopy(item)
            if old is not None:
                stored.created_at = old.created_at
            self._items[item.item_id] = stored

    async def read_events(self, task_id: str, *, after: int = 0, limit: int = 500) -> list[Event]:
        log = self._events.get(task_id, [])
        start = bisect.bisect_right([e.seq for e in log], after)
        return [copy.deepcopy(e) for e in log[start : start + limit]]

    async def last_seq(self, task_id: str) -> int:
        return self._last_seq(task_id)

    def _last_seq(self, task_id: str) -> int:
        log = self._events.get(task_id)
        return log[-1].seq if log else self._pruned_seq.get(task_id, 0)

    # -- retention ------------------------------------------------------------------------

    async def log_start(self, task_id: str) -> int:
        return self._pruned_seq.get(task_id, 0)

    async def once_tasks_to_prune(
        self,
        finished_before: datetime,
        *,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> list[tuple[datetime, str]]:
        found = sorted(
            (t.completed_at, t.task_id)
            for t in self._tasks.values()
            if t.pattern is TaskPattern.ONCE
            and t.completed_at is not None
            and t.completed_at < finished_before
            and t.task_id not in self._retention_done
            and (after is None or (t.completed_at, t.task_id) > after)
        )
        return found[:limit]

    async def recurring_log_cuts(
        self, keep: int, *, after: str | None = None, limit: int = 100
    ) -> list[LogCut]:
        keep = max(keep, 1)
        ids = sorted(
            t.task_id
            for t in self._tasks.values()
            if t.pattern is TaskPattern.RECURRING and (after is None or t.task_id > after)
        )[:limit]
        cuts = []
        for task_id in ids:
            runs = sorted(
                (self._runs[r] for r in self._runs_by_task.get(task_id, [])), key=_run_position
            )
            unfinished = [r for r in runs if r.status in OPEN_RUN_STATUSES]
            kept = runs[-keep] if len(runs) > keep else None
            cuts.append(
                log_cut(
                    task_id,
                    self._pruned_seq.get(task_id, 0),
                    None if kept is None else (kept.created_at, self._log_from.get(kept.run_id)),
                    None
                    if not unfinished
                    else (unfinished[0].created_at, self._log_from.get(unfinished[0].run_id)),
                    runs[0].created_at if runs else None,
                )
            )
        return cuts

    async def prune_events(
        self,
        task_id: str,
        *,
        through: int | None,
        limit: int,
        finished_before: datetime | None = None,
        dry_run: bool = False,
    ) -> int:
        task = self._tasks.get(task_id)
        if task is None or (
            finished_before is not None and not _finished_once_before(task, finished_before)
        ):
            return 0
        log = self._events.get(task_id, [])
        end = len(log) if through is None else bisect.bisect_right([e.seq for e in log], through)
        if dry_run:
            return end
        removed = log[: min(end, limit)]
        if removed:
            del log[: len(removed)]
            self._pruned_seq[task_id] = max(self._pruned_seq.get(task_id, 0), removed[-1].seq)
        return len(removed)

    async def prune_items(
        self, task_id: str, *, finished_before: datetime, dry_run: bool = False
    ) -> int | None:
        task = self._tasks.get(task_id)
        if (
            task is None
            or not _finished_once_before(task, finished_before)
            or task_id in self._retention_done
        ):
            return 0
        for other in self._tasks.values():
            if (
                other.conversation_id == task.conversation_id
                and other.user_id == task.user_id
                and (
                    other.completed_at is None
                    or other.completed_at >= finished_before
                    or other.created_at >= finished_before
                )
            ):
                return None
        gone = [i.item_id for i in self._items.values() if i.task_id == task_id]
        if dry_run:
            return len(gone)
        for item_id in gone:
            del self._items[item_id]
        if not self._events.get(task_id):
            self._retention_done.add(task_id)
        return len(gone)

    async def prune_logs(
        self, cuts: Sequence[tuple[str, int]], *, limit: int, dry_run: bool = False
    ) -> Pruned:
        done = removed = 0
        for task_id, through in cuts:
            task = self._tasks.get(task_id)
            log = self._events.get(task_id, [])
            end = bisect.bisect_right([e.seq for e in log], through)
            if task is None or task.pattern is not TaskPattern.RECURRING or end == 0:
                done += 1
                continue
            if dry_run:
                removed += end
                done += 1
                continue
            if removed >= limit:
                break
            gone = log[: min(end, limit - removed)]
            del log[: len(gone)]
            removed += len(gone)
            upto = through if len(gone) == end else gone[-1].seq
            self._pruned_seq[task_id] = max(self._pruned_seq.get(task_id, 0), upto)
            if len(gone) < end:
                break
            done += 1
        return Pruned(tasks=done, events=removed)

    async def prune_once_tasks(
        self,
        task_ids: Sequence[str],
        *,
        finished_before: datetime,
        limit: int,
        dry_run: bool = False,
    ) -> Pruned:
        done = events = items = kept = 0
        for task_id in task_ids:
            if events + items >= limit and not dry_run:
                break
            task = self._tasks.get(task_id)
            if (
                task is None
                or not _finished_once_before(task, finished_before)
                or task_id in self._retention_done
            ):
                done += 1
                continue
            budget = limit - events - items
            removed = await self.prune_events(
                task_id,
                through=None,
                limit=budget,
                finished_before=finished_before,
                dry_run=dry_run,
            )
            events += removed
            if removed == budget and not dry_run:
                break  # the limit reached: more may be left (the next call goes on)
            gone = await self.prune_items(task_id, finished_before=finished_before, dry_run=dry_run)
            if gone is None:
                kept += 1
            else:
                items += gone
            done += 1
        return Pruned(tasks=done, events=events, items=items, conversations_kept=kept)

    async def prune_runs(
        self,
        task_ids: Sequence[str],
        *,
        finished_before: datetime,
        limit: int,
        dry_run: bool = False,
    ) -> int:
        removed = 0
        for task_id in task_ids:
            task = self._tasks.get(task_id)
            if task is None or task.pattern is not TaskPattern.RECURRING:
                continue
            old = sorted(
                (
                    run
                    for run in (self._runs[r] for r in self._runs_by_task.get(task_id, []))
                    if run.status not in OPEN_RUN_STATUSES
                    and run.finished_at is not None
                    and run.finished_at < finished_before
                ),
                key=_run_position,
            )
            if dry_run:
                removed += len(old)
                continue
            gone = {run.run_id for run in old[: max(0, limit - removed)]}
            for run_id in gone:
                del self._runs[run_id]
                self._log_from.pop(run_id, None)
            self._runs_by_task[task_id] = [r for r in self._runs_by_task[task_id] if r not in gone]
            removed += len(gone)
        return removed

    async def prune_deliveries(
        self, *, created_before: datetime, limit: int, dry_run: bool = False
    ) -> int:
        ended = (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)
        old = sorted(
            (
                d
                for d in self._deliveries.values()
                if d.status in ended and d.created_at < created_before
            ),
            key=lambda d: d.created_at,
        )
        if dry_run:
            return len(old)
        for delivery in old[:limit]:
            del self._deliveries[delivery.delivery_id]
        return len(old[:limit])

    async def reclaim_space(self, *, max_pages: int) -> int:
        return 0

    async def database_size(self) -> int | None:
        return None

    @contextlib.asynccontextmanager
    async def retention_lock(self) -> AsyncIterator[bool]:
        yield True

    async def list_items(
        self,
        conversation_id: str,
        *,
        user_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[ConversationItem]:
        def mine(item: ConversationItem) -> bool:
            if user_id is None:
                return True
            task = self._tasks.get(item.task_id or "")
            return task is not None and task.user_id == user_id

        after = position(cursor)
        items = sorted(
            (
                i
                for i in self._items.values()
                if i.conversation_id == conversation_id
                and mine(i)
                and (after is None or ITEMS.follows(_item_position(i), after))
            ),
            key=_item_position,
            reverse=ITEMS.descending,
        )
        return keyset_page(items[: limit + 1], limit, decode=_copied, key=_item_position)

    async def task_items(
        self, task_id: str, *, component_type: str | None = None
    ) -> list[ConversationItem]:
        found = [
            copy.deepcopy(i)
            for i in self._items.values()
            if i.task_id == task_id
            and (component_type is None or i.component_type == component_type)
        ]
        return sorted(found, key=lambda i: (i.created_at, i.item_id))

    async def ensure_conversation(self, conversation_id: str, *, title: str, user_id: str) -> bool:
        """Create ``user_id``'s conversation record if missing; answers whether it did.
        Beyond the protocol (``create`` stores a task's conversation): for tests."""
        if (user_id, conversation_id) in self._conversations:
            return False
        self._conversations[(user_id, conversation_id)] = title
        return True

    async def has_conversation(self, conversation_id: str, *, user_id: str | None = None) -> bool:
        if user_id is not None:
            return (user_id, conversation_id) in self._conversations
        return any(key == conversation_id for _, key in self._conversations)

    # -- webhooks ---------------------------------------------------------------------------

    def _write_outbox(self, events: Sequence[Event]) -> None:
        """The deliveries of a batch (before its items are stored: a controller's previous
        state says whether its task was just paused)."""
        worthy = worthy_task_ids(events)
        if not worthy or not self._webhooks:
            return
        paused = {
            i: paused_in(self._items[i].payload) for i in controller_ids(events) if i in self._items
        }
        now = utcnow()
        for task_id in worthy:
            task = self._tasks.get(task_id)
            if task is None:
                continue
            planned = plan_deliveries(
                events, task, list(self._webhooks.values()), lambda i: paused.get(i, False), now
            )
            for delivery in planned:
                if not any(
                    d.webhook_id == delivery.webhook_id
                    and d.task_id == delivery.task_id
                    and d.seq == delivery.seq
                    for d in self._deliveries.values()
                ):
                    self._deliveries[delivery.delivery_id] = delivery

    async def add_webhook(self, webhook: Webhook) -> None:
        self._webhooks[webhook.webhook_id] = copy.deepcopy(webhook)

    async def load_webhook(self, webhook_id: str) -> Webhook | None:
        found = self._webhooks.get(webhook_id)
        return copy.deepcopy(found) if found else None

    async def list_webhooks(self, *, user_id: str | None = None) -> list[Webhook]:
        found = [w for w in self._webhooks.values() if user_id is None or w.user_id == user_id]
        found.sort(key=lambda w: (w.created_at or utcnow(), w.webhook_id))
        return _copied(found)

    async def delete_webhook(self, webhook_id: str) -> bool:
        if self._webhooks.pop(webhook_id, None) is None:
            return False
        for delivery_id in [
            d.delivery_id for d in self._deliveries.values() if d.webhook_id == webhook_id
        ]:
            del self._deliveries[delivery_id]
        return True

    async def rotate_webhook_secret(self, webhook_id: str, secret: str) -> bool:
        webhook = self._webhooks.get(webhook_id)
        if webhook is None:
            return False
        webhook.secret = secret
        return True

    def _blocked(self, delivery: Delivery, now: datetime) -> bool:
        """An earlier delivery of the same task and subscription is being sent or untried."""
        return any(
            d.webhook_id == delivery.webhook_id
            and d.task_id == delivery.task_id
            and d.seq < delivery.seq
            and (
                (d.status is DeliveryStatus.PENDING and d.attempts == 0)
                or (
                    d.status is DeliveryStatus.SENDING
                    and d.next_attempt_at is not None
                    and d.next_attempt_at > now
                )
            )
            for d in self._deliveries.values()
        )

    async def claim_deliveries(
        self, claim_for: timedelta, *, limit: int = 100
    ) -> list[tuple[Delivery, Webhook]]:
        now = utcnow()
        due = sorted(
            (
                d
                for d in self._deliveries.values()
                if d.status in (DeliveryStatus.PENDING, DeliveryStatus.SENDING)
                and d.next_attempt_at is not None
                and d.next_attempt_at <= now
                and self._webhooks[d.webhook_id].disabled_at is None
            ),
            key=lambda d: (d.next_attempt_at or now, d.created_at, d.seq),
        )
        claimed: list[Delivery] = []
        for delivery in due:
            if len(claimed) >= limit:
                break
            if self._blocked(delivery, now):
                continue
            claimed.append(delivery)
        for delivery in claimed:
            delivery.status = DeliveryStatus.SENDING
            delivery.attempts += 1
            delivery.last_attempt_at = now
            delivery.next_attempt_at = now + claim_for
        return [(copy.deepcopy(d), copy.deepcopy(self._webhooks[d.webhook_id])) for d in claimed]

    async def finish_delivery(
        self,
        delivery_id: str,
        *,
        attempt: int,
        status: DeliveryStatus,
        retry_in: timedelta | None = None,
        status_code: int | None = None,
        response: str | None = None,
        error: str | None = None,
        disable_after: timedelta,
    ) -> bool:
        delivery = self._deliveries.get(delivery_id)
        if (
            delivery is None
            or delivery.status is not DeliveryStatus.SENDING
            or delivery.attempts != attempt
        ):
            return False
        now = utcnow()
        delivery.status = status
        delivery.last_status_code = status_code
        delivery.last_response = response
        delivery.last_error = error
        delivery.next_attempt_at = (
            now + retry_in if status is DeliveryStatus.PENDING and retry_in is not None else None
        )
        webhook = self._webhooks.get(delivery.webhook_id)
        if status is DeliveryStatus.DELIVERED:
            delivery.delivered_at = now
            if webhook is not None:
                webhook.failing_since = None
            return True
        if webhook is None:
            return True
        if webhook.failing_since is None:
            webhook.failing_since = now
        if webhook.disabled_at is None and webhook.failing_since <= now - disable_after:
            webhook.disabled_at = now
            webhook.disabled_reason = disabled_reason(webhook.failing_since)
            for other in self._deliveries.values():
                if (
                    other.webhook_id == webhook.webhook_id
                    and other.status is DeliveryStatus.PENDING
                ):
                    other.status = DeliveryStatus.FAILED
                    other.next_attempt_at = None
                    other.last_error = webhook.disabled_reason
        return True

    async def list_deliveries(
        self, webhook_id: str, *, limit: int = 50, status: DeliveryStatus | None = None
    ) -> list[Delivery]:
        found = [
            d
            for d in self._deliveries.values()
            if d.webhook_id == webhook_id and (status is None or d.status is status)
        ]
        found.sort(key=lambda d: (d.created_at, d.delivery_id), reverse=True)
        return _copied(found[:limit])

    async def redeliver(self, webhook_id: str, delivery_id: str) -> Delivery | None:
        delivery = self._deliveries.get(delivery_id)
        if (
            delivery is None
            or delivery.webhook_id != webhook_id
            or delivery.status is DeliveryStatus.SENDING
        ):
            return None
        delivery.status = DeliveryStatus.PENDING
        delivery.attempts = 0
        delivery.next_attempt_at = utcnow()
        return copy.deepcopy(delivery)

    async def delivery_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for delivery in self._deliveries.values():
            if delivery.status in (DeliveryStatus.PENDING, DeliveryStatus.SENDING):
                counts[delivery.status.value] = counts.get(delivery.status.value, 0) + 1
        return counts


def _task_position(task: Task) -> Position:
    return task.created_at, task.task_id


def _run_position(run: Run) -> Position:
    return run.created_at, run.run_id


def _item_position(item: ConversationItem) -> Position:
    return item.created_at, item.item_id


def _copied_tasks(tasks: Sequence[Task]) -> list[Task]:
    return [copy_task(task) for task in tasks]


def _copied(records: Sequence[T]) -> list[T]:
    return [copy.deepcopy(record) for record in records]


def _same_slot(a: Run, b: Run) -> bool:
    """Whether two runs of a task serve the same occurrence (or, for a once task, attempt)."""
    if a.scheduled_for is None and b.scheduled_for is None:
        return a.attempt == b.attempt
    return a.scheduled_for == b.scheduled_for


def _leased(run: Run, now: datetime) -> bool:
    return run.lease_expires_at is not None and run.lease_expires_at > now


def _is_live_schedule(task: Task) -> bool:
    """A recurring task whose queued occurrences may start (running, not paused)."""
    return (
        task.pattern is TaskPattern.RECURRING
        and task.status is TaskStatus.RUNNING
        and not task.paused
    )


def _finished_once_before(task: Task, moment: datetime) -> bool:
    return (
        task.pattern is TaskPattern.ONCE
        and task.status in FINAL_STATUSES
        and task.completed_at is not None
        and task.completed_at < moment
    )


def _is_armed(task: Task) -> bool:
    return (
        task.pattern is TaskPattern.RECURRING
        and task.status is TaskStatus.RUNNING
        and not task.paused
        and task.next_run_at is not None
    )
