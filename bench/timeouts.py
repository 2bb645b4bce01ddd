"""Run time-out benchmarks: what a deadline costs a run, and a process holding many.

Each figure is measured beside its baseline in the same run: the same work by tasks without a
``run_timeout_seconds`` (no deadline stored, nothing watched).

1. Throughput: once tasks of an in-process agent that answers at once, submitted and run to
   the end, with a one-hour run time-out against none. Each side runs twice, alternating, on
   its own SQLite file; the best pass of each counts (other work on a shared machine only ever
   slows a pass down). Target: with time-outs at least 0.9 of the throughput without.
2. Idle CPU while runs hold deadlines: process CPU (% of one core) over a window with N runs
   of an agent that holds until stopped, each under a one-hour deadline (the ``run-timeouts``
   loop looks at the clock once a second while it holds any), against the same N held runs
   without deadlines. Target: the difference under 0.5% of one core.

Run: ``.venv/bin/python bench/timeouts.py`` (2,000 tasks, 500 held runs, a 10 s window, under a
minute), ``--quick`` (a reduced scale), ``--json FILE`` to write the rows of ``make bench``'s
summary table.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from results import Row, write_rows
from schedule import AGENT, HoldingAgent, InstantAgent, bounded, cpu_over, in_chunks, started_engine
from taskcell import Task
from taskcell.engine.engine import Engine

HOUR = 3600
THROUGHPUT_TARGET = 0.9
IDLE_TARGET_POINTS = 0.5


async def run_all(engine: Engine, count: int, seconds: int | None) -> float:
    """Submit ``count`` once tasks and wait until every one has run; answers tasks/s."""
    began = time.perf_counter()
    tasks = [
        Task(query=f"q {i}", agent_name=AGENT, run_timeout_seconds=seconds) for i in range(count)
    ]
    await in_chunks(engine.submit(task) for task in tasks)
    await engine.wait_idle()
    return count / (time.perf_counter() - began)


async def throughput(folder: Path, count: int, seconds: int | None, tag: str) -> float:
    engine = await started_engine(folder / f"{tag}.db", InstantAgent(expected=count))
    try:
        return await bounded(run_all(engine, count, seconds), 600, f"running {tag}")
    finally:
        await engine.stop()


async def held_cpu(folder: Path, count: int, seconds: int | None, window: float, tag: str) -> float:
    """% of one core over ``window`` with ``count`` runs held (each under ``seconds``)."""
    agent = HoldingAgent()
    engine = await started_engine(folder / f"{tag}.db", agent, run_slots=count + 8)
    try:
        tasks = [
            Task(query=f"h {i}", agent_name=AGENT, run_timeout_seconds=seconds)
            for i in range(count)
        ]
        await in_chunks(engine.submit(task) for task in tasks)
        await bounded(
            asyncio.gather(
                *(agent.started.setdefault(t.query, asyncio.Event()).wait() for t in tasks)
            ),
            120,
            "holding the runs",
        )
        assert len(engine.deadlines) == (count if seconds else 0)
        await asyncio.sleep(1.0)  # the last writes and wake-ups settle
        cpu, wall = await cpu_over(window)
        return cpu / wall * 100
    finally:
        await engine.stop()


async def main(count: int, held: int, window: float) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bare: list[float] = []
        timed: list[float] = []
        for attempt in range(2):
            bare.append(await throughput(folder, count, None, f"bare{attempt}"))
            timed.append(await throughput(folder, count, HOUR, f"timed{attempt}"))
        best_bare, best_timed = max(bare), max(timed)
        ratio = best_timed / best_bare
        print(
            f"throughput, {count:,} once tasks: with a run time-out {best_timed:,.0f} tasks/s, "
            f"without {best_bare:,.0f} tasks/s (ratio {ratio:.2f}; target >= {THROUGHPUT_TARGET})"
        )
        rows.append(
            Row(
                measure=f"once tasks/s with a run time-out ({count:,})",
                taskcell=round(best_timed, 1),
                unit="tasks/s",
                baseline=round(best_bare, 1),
                baseline_name="no time-out",
                ratio=round(ratio, 3),
                target=f"ratio >= {THROUGHPUT_TARGET}",
                met=ratio >= THROUGHPUT_TARGET,
            )
        )
        without = await held_cpu(folder, held, None, window, "held-bare")
        with_deadlines = await held_cpu(folder, held, HOUR, window, "held-timed")
        extra = with_deadlines - without
        print(
            f"idle CPU, {held:,} held runs: with deadlines {with_deadlines:.2f}% of a core, "
            f"without {without:.2f}% (difference {extra:+.2f} points; target < "
            f"{IDLE_TARGET_POINTS})"
        )
        rows.append(
            Row(
                measure=f"CPU with {held:,} runs under deadlines",
                taskcell=round(with_deadlines, 3),
                unit="% of a core",
                baseline=round(without, 3),
                baseline_name="no deadlines",
                ratio=round(with_deadlines / without, 3) if without > 0 else None,
                target=f"difference < {IDLE_TARGET_POINTS} points",
                met=extra < IDLE_TARGET_POINTS,
            )
        )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a reduced scale")
    parser.add_argument("--json", type=Path, help="write the summary rows here")
    args = parser.parse_args()
    count, held, window = (300, 100, 3.0) if args.quick else (2000, 500, 10.0)
    write_rows(args.json, asyncio.run(main(count, held, window)))
