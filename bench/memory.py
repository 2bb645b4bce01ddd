"""Memory over a long run: resident memory stays flat across recurring runs and demo-agent tasks.

Two phases, each in a fresh process (so one's garbage does not weigh on the other):

1. **recurring**: 100 recurring tasks of an in-process agent that answers at once (a tool call,
   two chunks); each gets one extra run (``run_now``) per round, all 100 at once, until 30,000
   runs have finished. Each run writes its run, a connect tool call and its result component,
   and updates the task's controller: what a year of a schedule does.
2. **demo**: 12,000 tasks sent to the bundled ``echo`` demo agent, a real A2A server on loopback
   in the same process (its A2A task store is what grew), 50 at a time, by taskcell's A2A
   client (each stream read to its end), as the engine does for a once task.

Resident memory (``VmRSS`` of ``/proc/self/status``) is read after ``gc.collect()`` once the
first 1,000 runs (tasks) have finished, the baseline, and then every 1,000; the figure is the
last reading against the baseline (target: within 20 %, ratio <= 1.20). The SQLite store lets
its page cache grow to 64 MiB as the file grows (a fixed bound, but it would hide what this
measures), so the recurring phase caps it at ``--sqlite-cache-mib`` (default 2); pass 64 to see
the store's own setting. ``--no-eviction`` runs
the same with the caches as they were before they were bounded (the event log keeps every
ended run's items; the demo agents keep every A2A task), to show what the bound buys.

Run: ``.venv/bin/python bench/memory.py`` (about 10 minutes on a quiet machine), ``--quick``
(3,000 runs and 3,000 tasks), ``--compare`` (also the ``--no-eviction`` run, after).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from taskcell import Task, TaskPattern
from taskcell.agents.base import UpdateKind
from taskcell.agents.demo import create_demo_app, demo_agent_url, task_store
from taskcell.agents.http import aclose_shared_http_clients
from taskcell.agents.local import AgentRequest, event
from taskcell.agents.registry import AgentRegistry
from taskcell.agents.remote import RemoteAgentClient
from taskcell.engine.engine import Engine
from taskcell.engine.eventlog import EventLog
from taskcell.stores.sqlite import SQLiteTaskStore
from taskcell.testing import serve_app

RECURRING_TASKS = 100
DEMO_PARALLEL = 50
STEP = 1_000


def rss_mib() -> float:
    """This process's resident memory in MiB, after a full collection."""
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def disable_eviction() -> None:
    """The caches as they were before they were bounded (for ``--no-eviction``)."""

    def keep(self: EventLog, run_id: str) -> None:
        return None

    EventLog.run_ended = keep  # type: ignore[method-assign]
    task_store.DEFAULT_KEEP_FINISHED = 10**9
    task_store.DEFAULT_KEEP_SECONDS = math.inf
    original = task_store.ForgetfulTaskStore.__init__

    def keeping(self: task_store.ForgetfulTaskStore, **kwargs: object) -> None:
        original(self, keep_seconds=math.inf, keep_finished=10**9)

    task_store.ForgetfulTaskStore.__init__ = keeping  # type: ignore[method-assign]


class Readings:
    """RSS after each ``STEP`` finished units; the first is the baseline."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.values: list[tuple[int, float]] = []
        self.started = time.perf_counter()

    def take(self, done: int) -> None:
        value = rss_mib()
        self.values.append((done, value))
        rate = done / (time.perf_counter() - self.started)
        print(f"  {self.label}: {done:>6,} done  RSS {value:7.1f} MiB  ({rate:,.0f}/s)", flush=True)

    def summary(self) -> str:
        (_, first), (done, last) = self.values[0], self.values[-1]
        return (
            f"{self.label}: RSS after {self.values[0][0]:,} {first:.1f} MiB, after {done:,}"
            f" {last:.1f} MiB: ratio {last / first:.3f} (target <= 1.20)"
        )


async def chatty(request: AgentRequest) -> object:
    yield event("tool_call_started", tool_call_id="t", tool_name="lookup")
    yield event("tool_call_completed", tool_call_id="t", tool_name="lookup", tool_result="ok")
    yield "the answer, "
    yield "in two chunks"


async def recurring_phase(folder: Path, runs: int, cache_mib: int) -> Readings:
    registry = AgentRegistry()
    registry.register_local("chatty", chatty)  # type: ignore[arg-type]
    store = SQLiteTaskStore(folder / "recurring.db")
    engine = Engine(store, registry, default_zone="UTC")
    await engine.start(schedule=False)  # runs come from run_now, as fast as they go
    store.conn.execute(f"PRAGMA cache_size = -{cache_mib * 1024}")
    readings = Readings("recurring runs")
    try:
        tasks = [
            await engine.submit(
                Task(
                    query=f"tick {i}",
                    agent_name="chatty",
                    pattern=TaskPattern.RECURRING,
                    schedule_config={"interval_minutes": 1440},
                ),
                run_immediately=False,
            )
            for i in range(RECURRING_TASKS)
        ]
        done = 0
        while done < runs:
            for task in tasks:
                await engine.run_now(task.task_id)
            await engine.wait_idle()
            done += len(tasks)
            if done % STEP == 0:
                readings.take(done)
    finally:
        await engine.stop()
    return readings


async def demo_phase(count: int) -> Readings:
    readings = Readings("demo-agent tasks")
    async with serve_app(app_factory=create_demo_app) as base_url:
        client = RemoteAgentClient("echo", demo_agent_url(base_url, "echo"))

        async def one(index: int) -> None:
            kinds = [
                update.kind async for update in client.send(f"hello number {index}", metadata={})
            ]
            assert kinds[-1] is UpdateKind.COMPLETED, kinds

        try:
            done = 0
            while done < count:
                await asyncio.gather(*(one(done + i) for i in range(DEMO_PARALLEL)))
                done += DEMO_PARALLEL
                if done % STEP == 0:
                    readings.take(done)
        finally:
            await client.aclose()
            await aclose_shared_http_clients()
    return readings


def run_phase(phase: str, scale: float, no_eviction: bool, cache_mib: int) -> None:
    if no_eviction:
        disable_eviction()
    with tempfile.TemporaryDirectory(prefix="taskcell-memory-") as folder:
        if phase == "recurring":
            runs = int(30_000 * scale)
            readings = asyncio.run(recurring_phase(Path(folder), runs, cache_mib))
        else:
            readings = asyncio.run(demo_phase(int(12_000 * max(scale, 0.25))))
    kind = "caches as before (no eviction)" if no_eviction else "taskcell"
    print(f"RESULT {kind}: {readings.summary()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3,000 runs and 3,000 tasks")
    parser.add_argument("--compare", action="store_true", help="also run with no eviction")
    parser.add_argument("--sqlite-cache-mib", type=int, default=2, help="SQLite page cache cap")
    parser.add_argument("--phase", choices=["recurring", "demo"], help=argparse.SUPPRESS)
    parser.add_argument("--no-eviction", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    if args.phase is not None:
        run_phase(args.phase, scale, args.no_eviction, args.sqlite_cache_mib)
        return
    modes = [False, True] if args.compare else [False]
    for no_eviction in modes:
        for phase in ("recurring", "demo"):
            command = [sys.executable, __file__, "--phase", phase]
            command += ["--quick"] if args.quick else []
            command += ["--no-eviction"] if no_eviction else []
            command += ["--sqlite-cache-mib", str(args.sqlite_cache_mib)]
            print(f"== {phase}{' (no eviction)' if no_eviction else ''}", flush=True)
            subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
