"""One chaos run: workload on, faults in turn, workload off, drain, check, report.

Lengths: the short run (every fault once) is part of the normal suite; the long one (``make
chaos``, or ``TASKCELL_CHAOS_LONG=1``) injects each fault ``LONG_ROUNDS`` times over 20+ minutes.
The report is printed and written to ``test-output/chaos-<name>.txt``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from . import checker
from .checker import Violation
from .nemesis import Nemesis
from .report import render
from .snapshot import Snapshot

__all__ = ["Snapshot", "run"]
from .workload import Workload

LONG = os.environ.get("TASKCELL_CHAOS_LONG", "") not in {"", "0"}
LONG_ROUNDS = 6
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


@dataclass
class Length:
    rounds: int
    #: Once tasks acknowledged between two faults (the workload runs on a recovered system).
    calm_tasks: int
    #: The workload runs at least this long (recurring tasks get several occurrences).
    seconds: float
    timeout: float


SHORT = Length(rounds=1, calm_tasks=6, seconds=150, timeout=1200)
LONG_LENGTH = Length(rounds=LONG_ROUNDS, calm_tasks=30, seconds=20 * 60, timeout=3 * 3600)
LENGTH = LONG_LENGTH if LONG else SHORT
PACE = 1.0  # seconds between once tasks
CLOCK_SETTLE = 35.0
#: How long to wait for the calm tasks (a cluster that refuses them does not hold the run up).
CALM_PATIENCE = 60.0
#: After the faults: how long once tasks may take to finish, and then their readers to end.
DRAIN_SECONDS = 120.0
READERS_SECONDS = 30.0


async def _until(condition: Callable[[], bool], patience: float) -> bool:
    deadline = time.monotonic() + patience
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)


async def run(
    name: str,
    workload: Workload,
    nemesis: Nemesis,
    faults: list[str],
    *,
    recurring: int,
    unfinished: Callable[[], Awaitable[int]],
    snapshot: Callable[[], Awaitable[Snapshot]],
    lease: float,
) -> tuple[str, list[Violation]]:
    """Run the scenario; answer the report and every violation found."""
    stop_submitting, stop_monitor = asyncio.Event(), asyncio.Event()
    await workload.start_recurring(recurring)
    nemesis.next_burst = workload.next_burst
    submitting = asyncio.create_task(workload.run(stop_submitting, PACE), name="workload")
    monitoring = asyncio.create_task(nemesis.monitor(stop_monitor), name="monitor")
    started = time.monotonic()

    def calm(before: int) -> Callable[[], bool]:
        return lambda: len(workload.acked) >= before + LENGTH.calm_tasks

    clock_back = 0.0
    try:
        for _ in range(LENGTH.rounds):
            for fault in faults:
                await _until(calm(len(workload.acked)), CALM_PATIENCE)
                await asyncio.sleep(max(0.0, clock_back - time.monotonic()))
                await nemesis.inject(fault)
                if fault.startswith("clock"):
                    # The skewed process dated its events 30 s ahead: let that pass before the
                    # next fault, so its violations are charged to it.
                    clock_back = time.monotonic() + CLOCK_SETTLE
        await _until(calm(len(workload.acked)), CALM_PATIENCE)
        await _until(lambda: time.monotonic() - started > LENGTH.seconds, LENGTH.seconds)
        stop_submitting.set()
        await submitting
        # Drain: every once task finishes (or waits for a reply nobody could give).
        deadline = time.monotonic() + DRAIN_SECONDS
        while True:
            if not await unfinished() or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        await workload.wait_readers(READERS_SECONDS)
        end_state = await nemesis.final_check()
    finally:
        stop_submitting.set()
        stop_monitor.set()
        await asyncio.gather(submitting, monitoring, return_exceptions=True)
        await workload.close()
    snap = await snapshot()
    violations = [
        *checker.occurrences(snap, settle=timedelta(seconds=20)),
        *checker.settled(snap),
        *checker.concurrent(snap),
        *checker.logs(snap, workload.acked),
        *checker.stuck(snap, timedelta(seconds=lease)),
        *nemesis.deaths,
        *end_state,
        *checker.streams(snap, workload.streams),
    ]
    waiting = [t for t, task in snap.tasks.items() if task["status"] == "waiting_input"]
    once = sum(1 for a in workload.acked.values() if a.pattern == "once")
    runs = sum(len(r) for r in snap.runs.values())
    notes = [
        f"{once} once tasks and {recurring} recurring tasks acknowledged, {runs} runs, "
        f"{sum(len(e) for e in snap.events.values())} events, {len(workload.streams)} streams "
        f"read, in {time.monotonic() - started:.0f} s ({'long' if LONG else 'short'} run)",
        f"requests refused or failed during faults (not violations): "
        f"{dict(workload.failures.most_common()) or 'none'}",
        f"tasks still waiting for a reply at the end: {len(waiting)}",
        *nemesis.notes,
    ]
    report = render(f"chaos: {name}", nemesis.phases, violations, notes)
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / f"chaos-{name}.txt").write_text(report + "\n")
    print(report)
    return report, violations
