"""Random edits interleaved with fires never give a duplicate or a lost occurrence (hypothesis).

A real engine (SQLite file or memory store, an in-process agent) serves two recurring tasks;
the test drives its scheduler (``fire_due``) and moves time with time-machine. Each step runs
a batch of edits and fires concurrently at one instant, or moves the clock.

What "no duplicate, no loss" means, precisely. A schedule is in force from the instant of the
edit that set it (the task's creation for the first) to the instant of the next edit that
changes it; the occurrences of the schedule in force over ``(from, to]`` are the task's
occurrences (an occurrence at the very instant of an edit is the old schedule's). After every
step, each of those occurrences up to the last fire is the ``scheduled_for`` of exactly one
run of the task, and no run serves anything else.

The scheduler is never late here (the clock never passes a due occurrence before a fire at
it): a late scheduler coalesces missed occurrences into one run by design, which this
definition does not describe. The occurrences are computed by this file's own arithmetic
(intervals, daily times and minute/hour crons in UTC), not by taskcell's schedule code.
PostgreSQL is not here: its claims read the database's clock, which time-machine cannot move;
tests/edits/test_cluster_edits.py edits while three processes fire on it.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from taskcell.abc import TaskStore
from taskcell.agents.local import AgentRequest
from taskcell.agents.registry import AgentRegistry
from taskcell.domain.models import ScheduleConfig, Task, TaskPattern
from taskcell.engine.engine import Engine, RetryPolicy
from taskcell.stores.memory import InMemoryTaskStore
from taskcell.stores.sqlite import SQLiteTaskStore

START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)

INTERVALS = [1, 5, 7, 60, 90, 1440]
DAILY = ["00:00", "09:30", "23:59"]
CRONS = ["*/5 * * * *", "*/15 * * * *", "30 * * * *", "0 9 * * *", "45 */6 * * *"]

SCHEDULES = st.one_of(
    st.sampled_from(INTERVALS).map(lambda n: ScheduleConfig(interval_minutes=n)),
    st.sampled_from(DAILY).map(lambda t: ScheduleConfig(daily_time=t, timezone="UTC")),
    st.sampled_from(CRONS).map(lambda c: ScheduleConfig(cron=c, timezone="UTC")),
)
#: What one action of a batch does: fire, or edit a task (a new schedule or only its title).
ACTIONS = st.one_of(
    st.just(("fire", 0, None)),
    st.tuples(st.just("edit"), st.integers(0, 1), st.one_of(st.none(), SCHEDULES)),
)

#: Edits made over the whole run (the module's last test reads it).
EDITS_MADE: list[int] = []


# -- the oracle: occurrences of a schedule, by plain arithmetic --------------------------------


def _field_matches(spec: str, value: int) -> bool:
    if spec == "*":
        return True
    if spec.startswith("*/"):
        return value % int(spec[2:]) == 0
    return value == int(spec)


def occurrences(schedule: ScheduleConfig, start: datetime, end: datetime) -> list[datetime]:
    """The schedule's occurrences in ``(start, end]``, UTC; an interval counts from ``start``."""
    if end <= start:
        return []
    if schedule.interval_minutes is not None:
        step = timedelta(minutes=schedule.interval_minutes)
        count = (end - start) // step
        return [start + k * step for k in range(1, count + 1)]
    if schedule.daily_time is not None:
        hour, minute = map(int, schedule.daily_time.split(":"))
        day = start.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
        found = []
        while day <= end:
            at = day.replace(hour=hour, minute=minute)
            if start < at <= end:
                found.append(at)
            day += timedelta(days=1)
        return found
    assert schedule.cron is not None
    minute_spec, hour_spec, *_ = schedule.cron.split()
    at = start.replace(second=0, microsecond=0) + MINUTE
    found = []
    while at <= end:  # minute by minute: a brute-force oracle
        if _field_matches(minute_spec, at.minute) and _field_matches(hour_spec, at.hour):
            found.append(at)
        at += MINUTE
    return found


@dataclass
class Expected:
    """One task's schedules in force: (from instant, schedule), in order."""

    spans: list[tuple[datetime, ScheduleConfig]] = field(default_factory=list)

    def edit(self, at: datetime, schedule: ScheduleConfig) -> None:
        if schedule != self.spans[-1][1]:
            self.spans.append((at, schedule))

    def up_to(self, end: datetime) -> list[datetime]:
        found: list[datetime] = []
        bounds = [at for at, _ in self.spans[1:]] + [end]
        for (start, schedule), stop in zip(self.spans, bounds, strict=True):
            found += occurrences(schedule, start, min(stop, end))
        return found


# -- the machine -----------------------------------------------------------------------------


async def quick(request: AgentRequest) -> str:
    return "done"


class EditsAndFires(RuleBasedStateMachine):
    make_store: Any = None  # set by each store's subclass

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="taskcell-edits-"))
        self.traveller = time_machine.travel(START, tick=False)
        self.clock = self.traveller.start()
        self.loop = asyncio.new_event_loop()
        registry = AgentRegistry()
        registry.register_local("quick", quick)
        store: TaskStore = type(self).make_store(self.folder)
        self.engine = Engine(
            store,  # type: ignore[arg-type]
            registry,
            retry=RetryPolicy(0.01, 0.02),
            default_zone="UTC",
        )
        self.now = START
        self.last_fire: datetime | None = None
        self.edits = 0
        self.tasks: list[str] = []
        self.expected: dict[str, Expected] = {}
        self.loop.run_until_complete(self._start())

    async def _start(self) -> None:
        await self.engine.start(schedule=False)  # the machine drives the scheduler
        for schedule in (ScheduleConfig(interval_minutes=5), ScheduleConfig(cron="0 9 * * *")):
            task = Task(
                query="tick",
                agent_name="quick",
                pattern=TaskPattern.RECURRING,
                schedule_config=schedule,
            )
            made = await self.engine.submit(task, run_immediately=False)
            self.tasks.append(made.task_id)
            assert made.schedule_config is not None
            self.expected[made.task_id] = Expected([(START, made.schedule_config)])

    def teardown(self) -> None:
        try:
            self.loop.run_until_complete(self.engine.stop())
            self.loop.close()
        finally:
            self.traveller.stop()
            shutil.rmtree(self.folder, ignore_errors=True)
            EDITS_MADE.append(self.edits)

    async def _next_due(self) -> datetime | None:
        return await self.engine.store.next_due_at()

    @rule(batch=st.lists(ACTIONS, min_size=1, max_size=6))
    def act(self, batch: list[tuple[str, int, ScheduleConfig | None]]) -> None:
        """Fires and edits at one instant, as concurrent coroutines."""
        self.loop.run_until_complete(self._act(batch))

    async def _act(self, batch: list[tuple[str, int, ScheduleConfig | None]]) -> None:
        calls = []
        edits: list[tuple[str, ScheduleConfig | None]] = []
        for kind, index, schedule in batch:
            if kind == "fire":
                calls.append(self.engine.scheduler.fire_due())
                continue
            task_id = self.tasks[index]
            patch: dict[str, Any] = {"title": f"edit {self.edits + len(edits)}"}
            if schedule is not None:
                patch["schedule_config"] = schedule.model_dump()
            edits.append((task_id, schedule))
            calls.append(self.engine.edit(task_id, patch))
        results = await asyncio.gather(*calls)
        await self.engine.wait_idle()
        if any(kind == "fire" for kind, _, _ in batch):
            self.last_fire = self.now
        # The edits of a task were applied in the order of the versions they wrote.
        applied = [
            (result.version, task_id, schedule)
            for result, (kind, _, _) in zip(results, batch, strict=True)
            if kind == "edit"
            for task_id, schedule in [edits.pop(0)]
            if isinstance(result, Task)
        ]
        for _, task_id, schedule in sorted(applied, key=lambda a: (a[1], a[0])):
            if schedule is not None:
                self.expected[task_id].edit(self.now, schedule)
        self.edits += len(applied)

    @rule(seconds=st.integers(1, 3 * 86_400))
    def move_clock(self, seconds: int) -> None:
        """Time passes, but never past a due occurrence the scheduler has not fired."""
        due = self.loop.run_until_complete(self._next_due())
        target = self.now + timedelta(seconds=seconds)
        if due is not None:
            if due <= self.now:
                return  # due now: only a fire moves things on
            target = min(target, due)
        self.now = target
        self.clock.move_to(target)

    @invariant()
    def every_occurrence_ran_exactly_once(self) -> None:
        self.loop.run_until_complete(self._check())

    async def _check(self) -> None:
        store = self.engine.store
        for task_id in self.tasks:
            runs = (await store.list_runs(task_id, limit=10_000)).items
            fired = Counter(r.scheduled_for for r in runs)
            twice = sorted(str(at) for at, n in fired.items() if n > 1)
            assert not twice, f"occurrences run twice: {twice}"
            expected = (
                [] if self.last_fire is None else self.expected[task_id].up_to(self.last_fire)
            )
            assert sorted(fired) == expected, (
                f"lost: {sorted(set(expected) - set(fired))[:5]};"
                f" not of the schedule: {sorted(set(fired) - set(expected))[:5]}"  # type: ignore[type-var]
            )
            task = await store.load(task_id)
            assert task is not None
            versions = [r.version for r in sorted(runs, key=lambda r: r.scheduled_for)]  # type: ignore[arg-type, return-value]
            assert versions == sorted(versions) and all(v <= task.version for v in versions)


def _sqlite(folder: Path) -> TaskStore:
    return SQLiteTaskStore(folder / "tasks.db")


def _memory(folder: Path) -> TaskStore:
    return InMemoryTaskStore()


class SQLiteEdits(EditsAndFires):
    make_store = staticmethod(_sqlite)


class MemoryEdits(EditsAndFires):
    make_store = staticmethod(_memory)


RUN = settings(
    max_examples=12,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

TestSQLiteEdits = RUN(SQLiteEdits).TestCase
TestMemoryEdits = RUN(MemoryEdits).TestCase
for case in (TestSQLiteEdits, TestMemoryEdits):
    case.pytestmark = [pytest.mark.timeout(600)]  # type: ignore[attr-defined]


def test_over_a_thousand_edits_were_made() -> None:
    """The machines above (run first, in this module) made at least 1,000 edits together."""
    if len(EDITS_MADE) < 2 * RUN.max_examples:
        pytest.skip("run with the machines of this module")
    print("edits made:", sum(EDITS_MADE), EDITS_MADE)
    assert sum(EDITS_MADE) >= 1000, EDITS_MADE
