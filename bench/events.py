"""Event throughput of the engine: in-process, and from a remote agent over A2A.

1. An in-process agent yields 100,000 message chunks; the Engine (on an SQLite file) persists
   every event and delivers it to one subscriber (``engine.subscribe``). Timed from ``submit``
   to the subscriber receiving ``done``; the log is then checked to hold every event. Baseline,
   in the same process: the *same event bodies* (read back from the engine's log) written with
   raw ``sqlite3`` ``executemany`` in committed batches of 5,000 (the engine's batch bound) into a
   table of the same shape, each batch then handed through an ``asyncio.Queue`` to one consumer:
   the floor of "persist then deliver", without the engine's routing, numbering, JSON and merging.
2. The bundled ``slow`` demo agent on a real uvicorn on 127.0.0.1, asked to "emit 5000 updates":
   (a) the raw a2a-sdk client reading the stream to its end; (b) the Engine with a
   RemoteAgentClient running a task against the same agent, until its subscriber gets ``done``.
   Each runs twice, alternating order, and the better run is kept. Server and clients share this
   process (and its event loop), as a taskcell server and its demo agents do. The server is
   ``taskcell.testing.serve_app`` (uvicorn on 127.0.0.1).

Targets: >= 20,000 events/s persisted and delivered in-process; over A2A >= 0.8 of the raw
client's rate.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
from a2a.client import ClientConfig, ClientFactory
from a2a.types import Message, Part, Role, SendMessageRequest
from a2a.utils.constants import TransportProtocol

from results import Row, write_rows
from taskcell import SQLiteTaskStore, Task
from taskcell.agents.demo import create_demo_app, demo_agent_url
from taskcell.agents.http import aclose_shared_http_clients
from taskcell.agents.local import AgentRequest
from taskcell.agents.registry import AgentRegistry
from taskcell.agents.remote import RemoteAgentClient
from taskcell.domain.events import EventType
from taskcell.engine.engine import Engine
from taskcell.testing import serve_app

BASELINE_BATCH = 5_000
TIME_LIMIT = 300.0  # seconds, for any one measured run


@dataclass(slots=True)
class Measured:
    events: int
    seconds: float
    chunks: int = 0

    @property
    def rate(self) -> float:
        return self.events / self.seconds


async def count_until_done(engine: Engine, task_id: str, started: asyncio.Event) -> Measured:
    """Subscribe to ``task_id`` and count its events until ``done`` (the caller times it)."""
    events = chunks = 0
    stream = engine.subscribe(task_id)
    try:
        first = asyncio.ensure_future(anext(stream))  # registers before the task is submitted
        started.set()
        event = await first
        while True:
            events += 1
            chunks += event.event is EventType.MESSAGE_CHUNK
            if event.event is EventType.DONE:
                break
            event = await anext(stream)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return Measured(events, 0.0, chunks)


async def run_engine_task(engine: Engine, agent: str, query: str) -> Measured:
    """Submit a task and count its events to ``done``: timed from submit to ``done``."""
    task = Task(query=query, agent_name=agent)
    subscribed = asyncio.Event()
    counter = asyncio.create_task(count_until_done(engine, task.task_id, subscribed))
    await subscribed.wait()
    start = time.perf_counter()
    async with asyncio.timeout(TIME_LIMIT):
        await engine.submit(task)
        measured = await counter
    measured.seconds = time.perf_counter() - start
    await engine.wait_idle()
    stored = await engine.store.last_seq(task.task_id)
    if stored != measured.events:
        raise AssertionError(f"the log holds {stored} events, the subscriber got {measured.events}")
    return measured


def chunk_agent(count: int) -> Callable[[AgentRequest], AsyncIterator[str]]:
    async def agent(request: AgentRequest) -> AsyncIterator[str]:
        for index in range(count):
            yield f"chunk {index} "

    return agent


async def in_process(folder: Path, chunks: int) -> tuple[Measured, list[str]]:
    store = SQLiteTaskStore(folder / "events.db")
    registry = AgentRegistry()
    registry.register_local("chunks", chunk_agent(chunks))
    engine = Engine(store, registry)
    await engine.start(recover=False, schedule=False)
    try:
        measured = await run_engine_task(engine, "chunks", "stream chunks")
        if measured.chunks != chunks:
            raise AssertionError(f"{measured.chunks} chunks delivered, {chunks} yielded")
        rows = store.conn.execute("SELECT body FROM events ORDER BY task_id, seq").fetchall()
    finally:
        await engine.stop()
    return measured, [row[0] for row in rows]


async def raw_baseline(path: Path, bodies: list[str]) -> Measured:
    """The same bodies: executemany in committed batches, each batch then queued to a reader."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE events (task_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,"
        " PRIMARY KEY (task_id, seq)) WITHOUT ROWID"
    )
    task_id = uuid.uuid4().hex
    queue: asyncio.Queue[list[str] | None] = asyncio.Queue()

    async def consume() -> int:
        received = 0
        while (batch := await queue.get()) is not None:
            received += len(batch)
        return received

    consumer = asyncio.create_task(consume())
    start = time.perf_counter()
    for first in range(0, len(bodies), BASELINE_BATCH):
        batch = bodies[first : first + BASELINE_BATCH]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO events (task_id, seq, body) VALUES (?, ?, ?)",
            [(task_id, first + i + 1, body) for i, body in enumerate(batch)],
        )
        conn.execute("COMMIT")
        queue.put_nowait(batch)
        await asyncio.sleep(0)
    queue.put_nowait(None)
    received = await consumer
    elapsed = time.perf_counter() - start
    conn.close()
    return Measured(received, elapsed)


# -- over A2A ---------------------------------------------------------------------------------


async def raw_a2a(url: str, query: str) -> Measured:
    """The raw a2a-sdk client: send the query and read the stream to its end."""
    bindings = [TransportProtocol.JSONRPC.value, TransportProtocol.HTTP_JSON.value]
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0)) as http:
        config = ClientConfig(
            streaming=True, httpx_client=http, supported_protocol_bindings=bindings
        )
        client = await ClientFactory(config).create_from_url(url)
        message = Message(
            role=Role.ROLE_USER, message_id=str(uuid.uuid4()), parts=[Part(text=query)]
        )
        items = 0
        start = time.perf_counter()
        async with asyncio.timeout(TIME_LIMIT):
            async for _ in client.send_message(SendMessageRequest(message=message)):
                items += 1
        elapsed = time.perf_counter() - start
        await client.close()
    return Measured(items, elapsed)


async def taskcell_a2a(folder: Path, url: str, query: str, round_no: int) -> Measured:
    store = SQLiteTaskStore(folder / f"a2a-{round_no}.db")
    registry = AgentRegistry()
    registry.register(RemoteAgentClient("slow", url))
    engine = Engine(store, registry)
    await engine.start(recover=False, schedule=False)
    try:
        # Read the card once first, as the raw client does before its clock starts.
        await registry.get("slow").info()
        return await run_engine_task(engine, "slow", query)
    finally:
        await engine.stop()
        await registry.aclose()


async def over_a2a(folder: Path, updates: int, rounds: int) -> tuple[Measured, Measured]:
    query = f"emit {updates} updates"
    best_raw: Measured | None = None
    best_tc: Measured | None = None
    serving = serve_app
    async with serving(app_factory=create_demo_app) as base_url:
        url = demo_agent_url(base_url, "slow")
        for round_no in range(rounds):
            runs: list[tuple[str, Callable[[], Awaitable[Measured]]]] = [
                ("raw a2a-sdk", partial(raw_a2a, url, query)),
                ("taskcell", partial(taskcell_a2a, folder, url, query, round_no)),
            ]
            if round_no % 2:
                runs.reverse()
            for label, run in runs:
                measured = await run()
                print(
                    f"  round {round_no + 1} {label:12s} {measured.events:7,d} items in"
                    f" {measured.seconds:6.2f} s = {measured.rate:7,.0f}/s"
                )
                if label == "taskcell":
                    best_tc = (
                        measured if best_tc is None or measured.rate > best_tc.rate else best_tc
                    )
                elif best_raw is None or measured.rate > best_raw.rate:
                    best_raw = measured
        await aclose_shared_http_clients()
    assert best_raw is not None and best_tc is not None
    return best_raw, best_tc


async def main(chunks: int, updates: int, rounds: int, json_path: Path | None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="taskcell-bench-events-"))
    measured, bodies = await in_process(folder, chunks)
    baseline = await raw_baseline(folder / "raw.db", bodies)
    print(f"in-process agent, {chunks:,} chunks, SQLite file, one subscriber:")
    print(
        f"  baseline raw sqlite3 executemany + asyncio.Queue, same {baseline.events:,} bodies:"
        f" {baseline.rate:9,.0f} events/s"
    )
    print(
        f"  taskcell Engine, submit -> subscriber gets done, {measured.events:,} events:"
        f"   {measured.rate:9,.0f} events/s"
        f"   ratio to baseline: {measured.rate / baseline.rate:.2f}"
        f"   (target >= 20,000 events/s: {'met' if measured.rate >= 20_000 else 'NOT met'})"
    )
    print(f"slow demo agent over A2A, 'emit {updates} updates', best of {rounds}:")
    raw, tc = await over_a2a(folder, updates, rounds)
    # Both carry the same agent updates; compare the time each needs for them.
    ratio = raw.seconds / tc.seconds
    print(
        f"  raw a2a-sdk client: {raw.events:,} stream items in {raw.seconds:.2f} s ="
        f" {raw.rate:7,.0f} items/s"
    )
    print(
        f"  taskcell Engine + RemoteAgentClient: {tc.events:,} events ({tc.chunks:,} chunks) in"
        f" {tc.seconds:.2f} s = {tc.rate:7,.0f} events/s"
    )
    print(
        f"  ratio taskcell/raw (same {updates:,} updates, by time): {ratio:.2f}"
        f"   (target >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'})"
    )
    rows = [
        Row(
            measure="events persisted and delivered, in-process agent",
            taskcell=measured.rate,
            unit="events/s",
            baseline=baseline.rate,
            baseline_name="raw sqlite3 + asyncio.Queue",
            ratio=measured.rate / baseline.rate,
            target=">= 20,000/s",
            met=measured.rate >= 20_000,
        ),
        Row(
            measure=f"A2A stream of {updates:,} updates (by time)",
            taskcell=tc.seconds * 1000,
            unit="ms",
            baseline=raw.seconds * 1000,
            baseline_name="raw a2a-sdk client",
            ratio=ratio,
            target="ratio >= 0.8",
            met=ratio >= 0.8,
        ),
    ]
    write_rows(json_path, rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="in-process agent's chunks")
    parser.add_argument("--updates", type=int, default=5_000, help="updates of the slow agent")
    parser.add_argument("--rounds", type=int, default=2, help="A2A runs of each, best kept")
    parser.add_argument(
        "--quick", action="store_true", help="10,000 chunks, 1,000 updates, two rounds"
    )
    parser.add_argument("--json", type=Path, help="write the summary rows to this file")
    args = parser.parse_args()
    if args.quick:
        args.chunks, args.updates = 10_000, 1_000
    asyncio.run(main(args.chunks, args.updates, max(1, args.rounds), args.json))
