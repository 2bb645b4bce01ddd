"""Webhook deliveries: throughput, lag, and what they cost the tasks that cause them.

An Engine on an SQLite file runs once tasks of an in-process agent that answers at once; each
task's ``task_completed`` makes one delivery per subscription. The receiver is a separate
process (a small uvicorn app on 127.0.0.1 that answers 200 and notes each ``webhook-id``, when
it came and the event's timestamp), so its work does not weigh on the engine's process.

Measured, in rounds that alternate (the machine is shared):

- task throughput without any subscription (the baseline) and with ``--subscriptions`` of them
  (the dispatcher sending meanwhile, in the same process): tasks/s from the first submit until
  every task settled; the ratio with/without (target > 0.9);
- deliveries/s: every delivery of a round (``--tasks`` x ``--subscriptions``: 10,000 tasks
  with one subscription by default) from the first submit until the receiver has the last;
  each ``webhook-id`` must arrive exactly once;
- the lag from event to receipt, p50 and p99 (target: p99 under 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from results import Row, write_rows
from taskcell import SQLiteTaskStore, Task
from taskcell.agents.local import AgentRequest
from taskcell.agents.registry import AgentRegistry
from taskcell.domain.models import DEFAULT_USER
from taskcell.engine.engine import Engine
from taskcell.webhooks.dispatcher import DispatcherConfig
from taskcell.webhooks.safety import parse_allow

TIME_LIMIT = 600.0  # seconds, for any one measured run
SUBMITTERS = 50


async def instant(request: AgentRequest) -> str:
    return f"done: {request.query}"


# -- the receiver (its own process) ----------------------------------------------------------


def receive() -> None:
    """Serve the receiver on 127.0.0.1 (port printed on stdout) until stdin closes."""
    import socket
    import threading
    from datetime import datetime

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    seen: dict[str, int] = {}
    lags: list[float] = []
    last = [0.0]

    async def hook(request: Request) -> Response:
        body = json.loads(await request.body())
        now = time.time()
        message = request.headers["webhook-id"]
        seen[message] = seen.get(message, 0) + 1
        lags.append(now - datetime.fromisoformat(body["timestamp"]).timestamp())
        last[0] = now
        return Response(status_code=204)

    async def stats(_: Request) -> Response:
        duplicates = sum(n - 1 for n in seen.values())
        return JSONResponse(
            {"count": len(lags), "unique": len(seen), "duplicates": duplicates, "last": last[0]}
        )

    async def lag(_: Request) -> Response:
        return JSONResponse(lags)

    async def reset(_: Request) -> Response:
        seen.clear()
        lags.clear()
        return Response(status_code=204)

    routes = [
        Route("/hook", hook, methods=["POST"]),
        Route("/stats", stats),
        Route("/lags", lag),
        Route("/reset", reset, methods=["POST"]),
    ]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(Starlette(routes=routes), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    threading.Thread(target=lambda: (sys.stdin.read(), setattr(server, "should_exit", True)),
                     daemon=True).start()  # fmt: skip
    server.run(sockets=[sock])


# -- the measures ------------------------------------------------------------------------------


@dataclass(slots=True)
class Round:
    tasks_per_second: float
    deliveries_per_second: float | None = None
    lags: list[float] | None = None


async def run_tasks(engine: Engine, count: int) -> float:
    """Submit ``count`` tasks from :data:`SUBMITTERS` coroutines; seconds until all settled."""
    queue = list(range(count))

    async def submitter() -> None:
        while queue:
            n = queue.pop()
            await engine.submit(Task(query=f"task {n}", agent_name="instant"))

    started = time.perf_counter()
    async with asyncio.timeout(TIME_LIMIT):
        await asyncio.gather(*(submitter() for _ in range(SUBMITTERS)))
        await engine.wait_idle()
    return time.perf_counter() - started


async def one_round(
    folder: Path, name: str, tasks: int, receiver: str | None, subscriptions: int
) -> Round:
    store = SQLiteTaskStore(folder / f"{name}.db")
    registry = AgentRegistry()
    registry.register_local("instant", instant)
    config = DispatcherConfig(allow=parse_allow("127.0.0.1/32"))
    engine = Engine(store, registry, webhooks=config)
    await engine.start(recover=False, schedule=False)
    try:
        if receiver is None:
            return Round(tasks / await run_tasks(engine, tasks))
        async with httpx.AsyncClient(base_url=receiver, timeout=30) as client:
            await client.post("/reset")
            for _ in range(subscriptions):
                await engine.webhooks.create(
                    user_id=DEFAULT_USER, url=f"{receiver}/hook", event_types=["task_completed"]
                )
            wall = time.time()
            seconds = await run_tasks(engine, tasks)
            expected = tasks * subscriptions
            async with asyncio.timeout(TIME_LIMIT):
                while True:
                    stats = (await client.get("/stats")).json()
                    if stats["count"] >= expected:
                        break
                    await asyncio.sleep(0.1)
            if stats["unique"] != expected or stats["duplicates"]:
                raise AssertionError(f"deliveries not each once: {stats}")
            lags = (await client.get("/lags")).json()
            return Round(tasks / seconds, expected / (stats["last"] - wall), lags)
    finally:
        await engine.stop()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def start_receiver() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--receive"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


async def main(tasks: int, subscriptions: int, rounds: int, json_path: Path | None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="taskcell-bench-webhooks-"))
    process = start_receiver()
    try:
        assert process.stdout is not None
        receiver = f"http://127.0.0.1:{process.stdout.readline().strip()}"
        without: list[Round] = []
        with_: list[Round] = []
        for n in range(rounds):
            order = [False, True] if n % 2 == 0 else [True, False]
            for hooks in order:
                name = f"{'with' if hooks else 'without'}-{n}"
                measured = await one_round(
                    folder, name, tasks, receiver if hooks else None, subscriptions
                )
                (with_ if hooks else without).append(measured)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        await asyncio.to_thread(process.wait, 10)
    base = statistics.median(r.tasks_per_second for r in without)
    hooked = statistics.median(r.tasks_per_second for r in with_)
    ratio = hooked / base
    rates = statistics.median(r.deliveries_per_second or 0.0 for r in with_)
    lags = [lag for r in with_ for lag in (r.lags or [])]
    p50, p99 = percentile(lags, 0.5) * 1000, percentile(lags, 0.99) * 1000
    deliveries = tasks * subscriptions
    print(f"once tasks of an instant in-process agent, SQLite file, medians of {rounds} rounds:")
    print(f"  without webhooks: {base:8,.0f} tasks/s")
    print(
        f"  with {subscriptions} subscriptions ({deliveries:,} deliveries a round):"
        f" {hooked:8,.0f} tasks/s   ratio {ratio:.2f} (target > 0.9:"
        f" {'met' if ratio > 0.9 else 'NOT met'})"
    )
    print(f"  deliveries: {rates:8,.0f} /s, each webhook-id received once")
    print(
        f"  lag from event to receipt: p50 {p50:,.0f} ms, p99 {p99:,.0f} ms"
        f" (target p99 < 1,000 ms: {'met' if p99 < 1000 else 'NOT met'})"
    )
    write_rows(
        json_path,
        [
            Row(
                measure=f"task throughput with {subscriptions} webhook subscriptions",
                taskcell=hooked,
                unit="tasks/s",
                baseline=base,
                baseline_name="the same tasks without webhooks",
                ratio=ratio,
                target="ratio > 0.9",
                met=ratio > 0.9,
            ),
            Row(measure=f"webhook deliveries ({deliveries:,})", taskcell=rates, unit="/s"),
            Row(
                measure="webhook lag event -> receipt, p99",
                taskcell=p99,
                unit="ms",
                target="p99 < 1,000 ms",
                met=p99 < 1000,
            ),
        ],
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks a round")
    parser.add_argument("--subscriptions", type=int, default=1, help="deliveries per task")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="1,000 tasks, 2 rounds")
    parser.add_argument("--json", type=Path, help="write the summary rows to this file")
    parser.add_argument("--receive", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receive:
        receive()
        sys.exit(0)
    if args.quick:
        args.tasks, args.rounds = 1_000, 2
    asyncio.run(main(args.tasks, args.subscriptions, args.rounds, args.json))
