"""Run time-outs: a run still going ``run_timeout_seconds`` after its start is stopped.

A task's ``run_timeout_seconds`` becomes each of its runs' ``deadline_at`` (stored with the
run's start, so the clock is the run's start wherever the run goes on: a reply continued by
another process keeps it, and a once task's attempt that resumes the remote task of an
interrupted run takes that run's deadline). :class:`Deadlines` watches the runs of this
process: one supervised loop, ``run-timeouts``, sleeps until the earliest deadline of the runs
it holds (looking again at least every :data:`RECHECK_SECONDS` while it holds any, since a
deadline is wall-clock time, which can jump), and cancels the asyncio task of each run whose
deadline has passed. :meth:`Deadlines.bounded`, around the run's work with its agent, turns
that cancellation into :class:`RunTimedOut` (as :func:`asyncio.timeout` turns its own into
``TimeoutError``: a cancel that was not the deadline's, a user's or a stop's, goes on as a
cancel). The caller then cancels the remote task and records the run failed, "timed out after
N s" (see :mod:`taskcell.engine.once` and :mod:`taskcell.engine.recurring`).

Time waiting for a person's reply does not count: the run's work is not going on then, and
a reply's continuation gets a new deadline, N s from the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from taskcell.domain.models import Run, Task, utcnow

logger = logging.getLogger(__name__)

#: While any deadline is held, the loop looks at the clock at least this often (seconds).
RECHECK_SECONDS = 1.0


def timed_out_reason(seconds: int) -> str:
    """The error of a run that timed out."""
    return f"timed out after {seconds} s"


def deadline_for(task: Task, start: datetime) -> datetime | None:
    """When a run of ``task`` that starts at ``start`` times out (None: it never does)."""
    if task.run_timeout_seconds is None:
        return None
    return start + timedelta(seconds=task.run_timeout_seconds)


class RunTimedOut(Exception):
    """A run's deadline passed while it ran (its work was cancelled)."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        super().__init__(timed_out_reason(seconds))


@dataclass(order=True)
class _Watch:
    deadline: datetime
    run_id: str = field(compare=True)
    runner: asyncio.Task[object] | None = field(default=None, compare=False)
    fired: bool = field(default=False, compare=False)
    done: bool = field(default=False, compare=False)


class Deadlines:
    """See the module docstring."""

    def __init__(self, *, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self._recheck = recheck_seconds
        self._heap: list[_Watch] = []
        self._changed = asyncio.Event()
        self._held = 0  # watches not done
        #: How many runs timed out here (tests and metrics read it).
        self.fired = 0

    def __len__(self) -> int:
        """How many runs of this process run under a deadline now."""
        return self._held

    def wake(self) -> None:
        """Look at the deadlines now (a test that moved the clock; a new deadline)."""
        self._changed.set()

    @contextlib.asynccontextmanager
    async def bounded(self, task: Task, run: Run) -> AsyncIterator[None]:
        """Run the block under ``run``'s deadline: past it, the block is cancelled and
        :class:`RunTimedOut` raised instead (at once if the deadline has passed already). A
        run without a deadline runs unbounded."""
        deadline, seconds = run.deadline_at, task.run_timeout_seconds
        if deadline is None or seconds is None:
            yield
            return
        if deadline <= utcnow():
            raise RunTimedOut(seconds)
        runner = asyncio.current_task()
        assert runner is not None  # called from a run's coroutine
        watch = _Watch(deadline, run.run_id, runner)
        heapq.heappush(self._heap, watch)
        self._held += 1
        self._changed.set()
        before = runner.cancelling()
        try:
            yield
        except asyncio.CancelledError:
            # The deadline's own cancel only (not a user's cancel or a stop besides it).
            if watch.fired and runner.uncancel() <= before:
                raise RunTimedOut(seconds) from None
            raise
        finally:
            watch.done = True
            self._held -= 1
            if len(self._heap) > 2 * self._held + 64:  # ended runs' far deadlines: drop them
                self._heap = [w for w in self._heap if not w.done]
                heapq.heapify(self._heap)

    async def run(self) -> None:
        """The ``run-timeouts`` loop (supervised): see the module docstring."""
        while True:
            self._changed.clear()
            self.fire_due()
            if not self._heap:
                await self._changed.wait()
                continue
            wait = (self._heap[0].deadline - utcnow()).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(0.0, min(wait, self._recheck)))

    def fire_due(self) -> int:
        """Cancel every held run whose deadline has passed (by the clock now); answers how
        many. The loop calls it; a test that moved the clock may too."""
        now, fired = utcnow(), 0
        while self._heap and (self._heap[0].done or self._heap[0].deadline <= now):
            watch = heapq.heappop(self._heap)
            if watch.done or watch.runner is None or watch.runner.done():
                continue
            watch.fired = True
            self.fired += 1
            fired += 1
            logger.warning(
                "run timed out",
                extra={"run_id": watch.run_id, "deadline": watch.deadline.isoformat()},
            )
            watch.runner.cancel()
        return fired
