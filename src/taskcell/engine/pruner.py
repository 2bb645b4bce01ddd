"""Retention: what of a long history is removed, and the background loop that removes it.

The rules (README, "Configuration"; docs/architecture.md, "Retention"):

- A finished once task keeps its events for ``days`` after it finished; then they are removed,
  and its conversation items with them unless its conversation is newer (another task of that
  user's conversation unfinished, or created or finished within ``days``: the items then stay
  until the conversation is as old).
- A recurring task (any status) keeps the events of its latest ``runs`` runs, and of every run
  still open; its closed runs are removed ``days`` after they finished.
- Webhook deliveries that ended (delivered or failed) are removed ``days`` after they were
  made; one still to be sent never is.
- Tasks are never removed (only ``DELETE /tasks/{id}`` removes one), nor a once task's runs.
- A log only loses its oldest events: a task's stored events are always those after its
  :meth:`~taskcell.abc.RetentionStore.log_start`. Nothing a live stream of this process has
  yet to send is removed (the cut stops at its readers' lowest position, and a once task with a
  reader keeps its items this round); a reader elsewhere (another process of a cluster) that
  finds events gone is told so by a ``history_truncated`` event.

How. :func:`prune` reads the candidates a page at a time (a recurring task's cut comes from
its runs' ``log_from``, read from run indexes: no event is read) and removes in small writes
over many tasks each, of at most the batch size in rows and in tasks (at most
``batch_rows``); the batch shrinks when a write takes longer than
:data:`TARGET_BATCH_SECONDS`, so a write (on SQLite, the time the write lock is held) stays
well under 50 ms whatever the rows cost, and grows back when writes are quick. A round runs
under the store's retention lock (on PostgreSQL a session advisory lock: one process at a
time; the others skip the round). Then freed space goes back to the file system in small
steps (SQLite with incremental vacuum).

:func:`prune` is the whole round, usable from a script or a benchmark::

    report = await prune(store, RetentionPolicy(days=30, runs=100))

:class:`Pruner` runs it every ``interval`` seconds as the engine's supervised ``pruner`` loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from taskcell.abc import LogCut, Pruned, Store
from taskcell.domain.models import utcnow
from taskcell.engine.supervisor import Supervisor
from taskcell.metrics import (
    DATABASE_BYTES,
    RETENTION_BATCH_SECONDS,
    RETENTION_REMOVED,
    RETENTION_ROUND_SECONDS,
    RETENTION_ROUNDS,
)
from taskcell.outages import is_outage

logger = logging.getLogger(__name__)

T = TypeVar("T")
W = TypeVar("W")

#: A pruning write longer than this halves the next batch (half the ~50 ms bound, for noise).
TARGET_BATCH_SECONDS = 0.02
#: The smallest batch a slow write shrinks to.
MIN_BATCH_ROWS = 10
#: The first batch of a round (it grows while writes stay quick).
FIRST_BATCH_ROWS = 100
#: Candidates read per page (tasks; reads hold no write lock).
PAGE = 200
#: Free pages handed back per write, for each row of the current batch size (the same
#: adaptation keeps these writes short too).
PAGES_PER_ROW = 2
#: Events written this long before a kept run was created are kept too: event times come from
#: the process that wrote them, run times from the one that created the run.
CLOCK_MARGIN = timedelta(seconds=10)

ReaderFloor = Callable[[str], int | None]
Progress = Callable[["PruneReport"], None]


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """What retention keeps (see the module docstring)."""

    days: float = 30.0
    runs: int = 100
    batch_rows: int = 500

    def __post_init__(self) -> None:
        if not self.days > 0:
            raise ValueError(f"retention days must be above 0, not {self.days}")
        if self.runs < 1:
            raise ValueError(f"retention runs must be at least 1, not {self.runs}")
        if self.batch_rows < 1:
            raise ValueError(f"retention batch rows must be at least 1, not {self.batch_rows}")


@dataclass(slots=True)
class PruneReport:
    """What a round removed (or, dry, would remove), and how long its writes took."""

    dry_run: bool = False
    events: int = 0
    items: int = 0
    runs: int = 0
    #: Webhook deliveries that ended (delivered or failed) before the cut-off.
    deliveries: int = 0
    pages: int = 0
    tasks: int = 0
    #: Tasks whose log a live reader of this process held back this round.
    held_for_readers: int = 0
    #: Once tasks whose items stayed because their conversation is newer.
    conversations_kept: int = 0
    #: Tasks skipped for an error that is not an outage (logged).
    failed: int = 0
    #: Another process held the retention lock: nothing was done.
    skipped: bool = False
    batches: int = 0
    longest_batch_seconds: float = 0.0
    seconds: float = 0.0
    batch_seconds: list[float] = field(default_factory=list, repr=False)

    @property
    def removed(self) -> dict[str, int]:
        return {
            "events": self.events,
            "items": self.items,
            "runs": self.runs,
            "deliveries": self.deliveries,
        }

    @property
    def rows(self) -> int:
        return self.events + self.items + self.runs + self.deliveries


class _Batches:
    """The batch size, adapted to how long the writes take, and their timings."""

    def __init__(self, report: PruneReport, most: int, pause_ratio: float) -> None:
        self.report = report
        self.most = most
        self.size = max(1, min(most, FIRST_BATCH_ROWS))
        self.pause_ratio = pause_ratio

    async def write(self, step: Callable[[int], Awaitable[T]]) -> T:
        """One pruning write of at most :attr:`size` rows, timed; then a pause (a share of
        the writer's time left to everyone else)."""
        size = self.size
        started = time.perf_counter()
        result = await step(size)
        elapsed = time.perf_counter() - started
        report = self.report
        report.batches += 1
        report.batch_seconds.append(elapsed)
        report.longest_batch_seconds = max(report.longest_batch_seconds, elapsed)
        if not report.dry_run:
            RETENTION_BATCH_SECONDS.observe(elapsed)
        if elapsed > TARGET_BATCH_SECONDS:
            self.size = max(MIN_BATCH_ROWS, min(size, self.size) // 2)
        elif elapsed < TARGET_BATCH_SECONDS / 2:
            self.size = min(self.most, self.size * 2)
        if self.pause_ratio > 0:
            await asyncio.sleep(elapsed * self.pause_ratio)
        return result


async def first_seq_from(store: Store, task_id: str, moment: datetime) -> int:
    """The seq of the task's first stored event written at or after ``moment`` (its log's
    end plus one when there is none), found by halves in a few one-event reads."""
    low = await store.log_start(task_id)
    high = await store.last_seq(task_id)
    found = high + 1
    while low < high:
        middle = (low + high) // 2
        events = await store.read_events(task_id, after=middle, limit=1)
        if not events:
            break
        event = events[0]
        if event.created_at >= moment:
            found = event.seq
            high = event.seq - 1
        else:
            low = event.seq
    return found


async def prune(
    store: Store,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    reader_floor: ReaderFloor | None = None,
    pause_ratio: float = 0.0,
    progress: Progress | None = None,
) -> PruneReport:
    """One retention round over ``store`` (see the module docstring); answers its report.

    ``now`` defaults to this process's clock (retention counts days: a shared database's own
    clock is not needed). ``dry_run`` counts what would go and changes nothing.
    ``reader_floor(task_id)``: the lowest position of live readers of the task, if any.
    ``pause_ratio``: after each write, pause that many times as long as it took.
    ``progress`` hears the report after each task.
    """
    report = PruneReport(dry_run=dry_run)
    started = time.perf_counter()
    async with store.retention_lock() as allowed:
        if not allowed:
            report.skipped = True
            logger.info("retention round skipped: another process prunes")
            return report
        cutoff = (now or utcnow()) - timedelta(days=policy.days)
        batches = _Batches(report, policy.batch_rows, pause_ratio)
        round_ = _Round(store, policy, cutoff, batches, reader_floor or _no_readers, progress)
        await round_.once_tasks()
        await round_.recurring_tasks()
        await round_.deliveries()
        if not dry_run:
            await round_.reclaim()
            size = await store.database_size()
            if size is not None:
                DATABASE_BYTES.set(size)
    report.seconds = time.perf_counter() - started
    return report


def _no_readers(task_id: str) -> int | None:
    return None


class _Round:
    def __init__(
        self,
        store: Store,
        policy: RetentionPolicy,
        cutoff: datetime,
        batches: _Batches,
        reader_floor: ReaderFloor,
        progress: Progress | None,
    ) -> None:
        self.store, self.policy, self.cutoff = store, policy, cutoff
        self.batches, self.report = batches, batches.report
        self.dry_run = batches.report.dry_run
        self.reader_floor, self.progress = reader_floor, progress

    async def once_tasks(self) -> None:
        after: tuple[datetime, str] | None = None
        while True:
            page = await self.store.once_tasks_to_prune(self.cutoff, after=after, limit=PAGE)
            free = []
            for _, task_id in page:
                if self.reader_floor(task_id) is None:
                    free.append(task_id)
                else:
                    await self._guarded([task_id], self._held_once_task)
            await self._in_batches(free, self._once_batch)
            if len(page) < PAGE:
                return
            after = page[-1]

    async def recurring_tasks(self) -> None:
        after: str | None = None
        while True:
            page = await self.store.recurring_log_cuts(self.policy.runs, after=after, limit=PAGE)
            cuts: list[tuple[str, int]] = []
            for cut in page:
                through = await self._through(cut)
                if through is not None and through > cut.log_start:
                    cuts.append((cut.task_id, through))
            await self._in_batches(cuts, self._log_batch)
            old = [
                cut.task_id
                for cut in page
                if cut.oldest_run_at is not None and cut.oldest_run_at < self.cutoff
            ]
            while old:
                chunk, old = old[: self.batches.size], old[self.batches.size :]
                await self._guarded(chunk, self._runs_of)
            self.report.tasks += len(page)
            self._progressed()
            if len(page) < PAGE:
                return
            after = page[-1].task_id

    async def deliveries(self) -> None:
        """Webhook deliveries that ended before the cut-off, oldest first, in batches."""

        def step(limit: int) -> Awaitable[int]:
            return self.store.prune_deliveries(
                created_before=self.cutoff, limit=limit, dry_run=self.dry_run
            )

        while True:
            limit = self.batches.size
            removed = await self.batches.write(step)
            self.report.deliveries += removed
            self._counted("deliveries", removed)
            if self.dry_run or removed < limit:
                return

    async def reclaim(self) -> None:
        while True:
            pages = await self.batches.write(
                lambda size: self.store.reclaim_space(max_pages=size * PAGES_PER_ROW)
            )
            self.report.pages += pages
            if pages == 0:
                return

    async def _through(self, cut: LogCut) -> int | None:
        """The highest seq of the task's log to remove now (None: nothing), held back for this
        process's live readers of it."""
        through = cut.through
        if through is None and cut.kept_from is not None:  # runs made before ``log_from``
            through = (
                await first_seq_from(self.store, cut.task_id, cut.kept_from - CLOCK_MARGIN) - 1
            )
        if through is None:
            return None
        floor = self.reader_floor(cut.task_id)
        if floor is not None and floor < through:
            self.report.held_for_readers += 1
            through = floor
        return through

    async def _in_batches(
        self, work: list[W], step: Callable[[Sequence[W], int], Awaitable[Pruned]]
    ) -> None:
        """``work`` done by ``step`` in writes of at most the batch size (tasks and rows),
        each resumed where the last one stopped. A write failing for another reason than an
        outage is retried task by task, so one bad task is skipped (logged), not the others."""
        while work:
            taken = work[: self.batches.size]
            try:
                pruned = await self.batches.write(partial(step, taken))
            except Exception as exc:
                if is_outage(exc) or len(taken) == 1:
                    raise
                for item in taken:
                    await self._guarded([item], lambda one: self._until_done(one, step))
                work = work[len(taken) :]
                continue
            self._account(pruned)
            done = len(taken) if self.dry_run else max(pruned.tasks, 1 if not pruned.rows else 0)
            work = work[done:]

    async def _until_done(
        self, work: list[W], step: Callable[[Sequence[W], int], Awaitable[Pruned]]
    ) -> None:
        while work:
            pruned = await self.batches.write(partial(step, work))
            self._account(pruned)
            if self.dry_run or pruned.tasks or not pruned.rows:
                return

    async def _guarded(self, work: list[W], step: Callable[[list[W]], Awaitable[None]]) -> None:
        """Work on one task or a few: an outage goes to the loop (it waits it out); any other
        error skips them only (no poison pill), logged."""
        try:
            await step(work)
        except Exception as exc:
            if is_outage(exc):
                raise
            self.report.failed += len(work)
            logger.exception("retention skipped tasks", extra={"tasks": [str(w) for w in work]})

    def _account(self, pruned: Pruned) -> None:
        report = self.report
        report.events += pruned.events
        report.items += pruned.items
        report.conversations_kept += pruned.conversations_kept
        self._counted("events", pruned.events)
        self._counted("items", pruned.items)

    def _progressed(self) -> None:
        if self.progress is not None:
            self.progress(self.report)

    def _counted(self, kind: str, rows: int) -> None:
        """``/metrics`` counts removed rows as each write commits (a first round over a long
        history takes a while: its progress shows), never a dry run's."""
        if rows and not self.dry_run:
            RETENTION_REMOVED.labels(kind=kind).inc(rows)

    def _once_batch(self, task_ids: Sequence[str], limit: int) -> Awaitable[Pruned]:
        return self._once_written(
            self.store.prune_once_tasks(
                task_ids, finished_before=self.cutoff, limit=limit, dry_run=self.dry_run
            )
        )

    async def _once_written(self, writing: Awaitable[Pruned]) -> Pruned:
        pruned = await writing
        self.report.tasks += pruned.tasks
        self._progressed()
        return pruned

    def _log_batch(self, cuts: Sequence[tuple[str, int]], limit: int) -> Awaitable[Pruned]:
        return self.store.prune_logs(cuts, limit=limit, dry_run=self.dry_run)

    async def _held_once_task(self, task_ids: list[str]) -> None:
        """A once task a live reader of this process reads: its events up to the reader's
        position only, and its items wait for it."""
        (task_id,) = task_ids
        floor = self.reader_floor(task_id)
        self.report.held_for_readers += 1

        def step(limit: int) -> Awaitable[int]:
            return self.store.prune_events(
                task_id,
                through=floor,
                limit=limit,
                finished_before=self.cutoff,
                dry_run=self.dry_run,
            )

        while True:
            limit = self.batches.size
            removed = await self.batches.write(step)
            self.report.events += removed
            self._counted("events", removed)
            if self.dry_run or removed < limit:
                break
        self.report.tasks += 1
        self._progressed()

    async def _runs_of(self, task_ids: list[str]) -> None:
        """The closed runs of these recurring tasks that finished before the cut-off."""

        def step(limit: int) -> Awaitable[int]:
            return self.store.prune_runs(
                task_ids, finished_before=self.cutoff, limit=limit, dry_run=self.dry_run
            )

        while True:
            limit = self.batches.size
            removed = await self.batches.write(step)
            self.report.runs += removed
            self._counted("runs", removed)
            if self.dry_run or removed < limit:
                return


class Pruner:
    """The engine's ``pruner`` loop: a retention round every ``interval_seconds`` (the first
    one ``first_after_seconds`` after start), its writes paced to leave the writer mostly to
    the service. A round an outage interrupts is started again once the store answers (its
    writes are guarded: what was removed stays removed, nothing is removed twice)."""

    def __init__(
        self,
        store: Store,
        policy: RetentionPolicy,
        supervisor: Supervisor,
        *,
        interval_seconds: float,
        reader_floor: ReaderFloor,
        first_after_seconds: float = 60.0,
    ) -> None:
        self._store, self.policy, self._supervisor = store, policy, supervisor
        self.interval_seconds = interval_seconds
        self.first_after_seconds = min(first_after_seconds, interval_seconds)
        self._reader_floor = reader_floor
        self.last_report: PruneReport | None = None

    async def run(self) -> None:
        await asyncio.sleep(self.first_after_seconds)
        while True:
            await self._supervisor.weather("pruner", self.round)
            await asyncio.sleep(self.interval_seconds)

    async def round(self) -> PruneReport:
        report = await prune(
            self._store, self.policy, reader_floor=self._reader_floor, pause_ratio=1.0
        )
        self.last_report = report
        if not report.skipped:
            RETENTION_ROUNDS.inc()
            RETENTION_ROUND_SECONDS.set(report.seconds)
            logger.info(
                "retention round done",
                extra={
                    **report.removed,
                    "pages_reclaimed": report.pages,
                    "tasks": report.tasks,
                    "held_for_readers": report.held_for_readers,
                    "batches": report.batches,
                    "longest_batch_ms": round(report.longest_batch_seconds * 1000, 2),
                    "seconds": round(report.seconds, 3),
                },
            )
        return report
