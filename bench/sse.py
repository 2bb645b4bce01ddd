"""SSE fan-out: many readers of one task's live events, beside a bare sse-starlette endpoint.

taskcell: ``create_app`` on an SQLite file, with an in-process agent ``ticker`` that yields one
chunk every 0.5 ms (2,000 a second) for 10 s, each chunk's text its emission time
(``time.monotonic()``, which on Linux is one clock for every process of the machine). 500 httpx
readers follow ``GET /api/v1/tasks/{id}/events``; every ``data:`` line's stamp gives a delivery
latency (time the reader's buffer arrived minus the stamp).

The baselines, in the same run: a minimal Starlette app with one sse-starlette
``EventSourceResponse`` endpoint; a producer paced the same way builds the same event JSON (same
shape and size, serialised once per event) and broadcasts it to one ``asyncio.Queue`` per reader.
Same readers, same measurement. Neither has storage, numbering, routing or replay.

- *fair* (the ratio's baseline): written the way taskcell writes, the best a hand-written
  endpoint does: each event's SSE frame is encoded once and the same bytes are queued for every
  reader; a reader's response sends everything its queue holds in one write.
- *bare* (naive, for context): the queue holds the JSON, and each reader's response builds a
  ``ServerSentEvent`` per event and sends one ASGI message per event.

Each server runs in its own process (multiprocessing, spawn), one after the other, so the
readers (all in this process) do not take the server's CPU time. The machine has 2 cores: one
for the server, one for the readers. CPU seconds used by each side are printed, to show which
side was the limit.

Then ``GET /api/v1/tasks?limit=50`` (first page, 100,000 tasks stored, filled directly into
the SQLite file first) from 50 concurrent clients for 5 s: requests/s and p50/p99, beside the
bare app answering the same bytes from memory (the HTTP floor).

Targets: taskcell >= 0.7 of the fair endpoint's delivered events/s, p99 delivery latency under
250 ms. ``--rounds N`` repeats all three with the order rotating and reports medians and spreads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing as mp
import os
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import httpx
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from results import Row, write_rows
from taskcell import SQLiteTaskStore, Task, TaskStatus
from taskcell.abc import TaskFilter
from taskcell.agents.local import AgentRequest
from taskcell.agents.registry import AgentRegistry
from taskcell.api.app import create_app
from taskcell.api.envelope import ok
from taskcell.api.routes_tasks import task_json
from taskcell.settings import Settings
from taskcell.testing import serve_app

USER = "default_user"  # every request is this user when no API keys are configured
GO_LIMIT = 120.0  # seconds a producer waits for the readers before it starts anyway
CHILD_LIMIT = 1800.0  # seconds a server process lives at most
CONNECT_LIMIT = 90.0  # seconds for every reader to connect
BUCKETS_PER_SECOND = 10_000  # latency histogram resolution: 0.1 ms
MAX_LATENCY = 120  # seconds; later deliveries count in the last bucket
STAMP = re.compile(rb'"content":"T(\d+\.\d+);')


# -- the stream both servers send -------------------------------------------------------------


async def wait_for_go(go: MpEvent) -> None:
    """Wait (at most GO_LIMIT) until the readers are connected."""
    await asyncio.to_thread(go.wait, GO_LIMIT)


async def paced(rate: int, seconds: float) -> AsyncIterator[str]:
    """``rate`` stamped chunks a second for ``seconds``: on schedule, catching up if late."""
    total = round(rate * seconds)
    start = time.monotonic()
    for index in range(total):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield f"T{time.monotonic():.6f};"


def ticker_agent(rate: int, seconds: float, go: MpEvent) -> Callable[[AgentRequest], Any]:
    async def ticker(request: AgentRequest) -> AsyncIterator[str]:
        await wait_for_go(go)
        async for chunk in paced(rate, seconds):
            yield chunk

    return ticker


def event_json(seq: int, text: str, ids: dict[str, str]) -> str:
    """An event of the shape taskcell sends (see taskcell.domain.events.Event.to_dict)."""
    data = {
        **ids,
        "role": "agent",
        "agent_name": "ticker",
        "payload": {"content": text},
        "metadata": {},
    }
    body = {
        "seq": seq,
        "event": "message_chunk",
        "data": data,
        "created_at": datetime.now(UTC).isoformat(),
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


_SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


class NaiveBroadcast:
    """Each reader's queue holds the event JSON; its response builds a ``ServerSentEvent`` per
    event and sends one ASGI message per event."""

    def __init__(self) -> None:
        self.readers: set[asyncio.Queue[tuple[int, str] | None]] = set()

    def publish(self, seq: int, body: str) -> None:
        for queue in self.readers:
            queue.put_nowait((seq, body))

    def end(self) -> None:
        for queue in self.readers:
            queue.put_nowait(None)

    async def _stream(self, queue: asyncio.Queue[tuple[int, str] | None]) -> AsyncIterator[Any]:
        try:
            while (message := await queue.get()) is not None:
                yield ServerSentEvent(data=message[1], id=str(message[0]))
        finally:
            self.readers.discard(queue)

    def response(self) -> EventSourceResponse:
        queue: asyncio.Queue[tuple[int, str] | None] = asyncio.Queue()
        self.readers.add(queue)
        return EventSourceResponse(self._stream(queue), ping=15, headers=_SSE_HEADERS)


class FairBroadcast:
    """As taskcell does it: each event's frame is encoded once and the same bytes go to every
    reader's queue; a reader's response sends everything its queue holds in one write."""

    def __init__(self) -> None:
        self.readers: set[asyncio.Queue[bytes | None]] = set()

    def publish(self, seq: int, body: str) -> None:
        frame = f"id: {seq}\r\ndata: {body}\r\n\r\n".encode()
        for queue in self.readers:
            queue.put_nowait(frame)

    def end(self) -> None:
        for queue in self.readers:
            queue.put_nowait(None)

    async def _stream(self, queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
        try:
            while True:
                frames = [await queue.get()]
                while not queue.empty():
                    frames.append(queue.get_nowait())
                body = b"".join(frame for frame in frames if frame is not None)
                if body:
                    yield body
                if frames[-1] is None:
                    return
        finally:
            self.readers.discard(queue)

    def response(self) -> EventSourceResponse:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.readers.add(queue)
        return EventSourceResponse(self._stream(queue), ping=15, headers=_SSE_HEADERS)


def bare_app(rate: int, seconds: float, go: MpEvent, page: bytes, fair: bool) -> Starlette:
    """The bare sse-starlette endpoint, naive or fair (see the module docstring)."""
    broadcast = FairBroadcast() if fair else NaiveBroadcast()
    ids = {
        name: uuid.uuid4().hex
        for name in ("conversation_id", "thread_id", "task_id", "run_id", "item_id")
    }

    async def produce() -> None:
        await wait_for_go(go)
        seq = 0
        async for text in paced(rate, seconds):
            seq += 1
            broadcast.publish(seq, event_json(seq, text, ids))
        broadcast.end()

    async def events(request: Request) -> EventSourceResponse:
        return broadcast.response()

    async def tasks(request: Request) -> Response:
        return Response(page, media_type="application/json")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        producer = asyncio.create_task(produce())
        yield
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer

    return Starlette(
        routes=[Route("/events", events), Route("/api/v1/tasks", tasks)], lifespan=lifespan
    )


def taskcell_app(db: Path, rate: int, seconds: float, go: MpEvent) -> Any:
    settings = Settings(database_url=f"sqlite:///{db}", demo_agents=False, log_level="WARNING")

    def register(registry: AgentRegistry) -> None:
        registry.register_local("ticker", ticker_agent(rate, seconds, go))

    return create_app(settings, register_agents=register)


async def _serve(kind: str, args: dict[str, Any], conn: Connection, stop: MpEvent) -> None:
    if kind in ("bare", "fair"):
        app = bare_app(args["rate"], args["seconds"], args["go"], args["page"], kind == "fair")
    else:
        app = taskcell_app(args["db"], args["rate"], args["seconds"], args["go"])
    async with serve_app(app) as base_url:
        conn.send(base_url)
        await asyncio.to_thread(stop.wait, CHILD_LIMIT)


def server_process(kind: str, args: dict[str, Any], conn: Connection, stop: MpEvent) -> None:
    """The body of a server process (spawned): serve until ``stop`` is set."""
    # Readers cut off at the time limit leave writes to closed sockets: one warning each.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    asyncio.run(_serve(kind, args, conn, stop))


@contextlib.contextmanager
def server(kind: str, args: dict[str, Any], stop: MpEvent) -> Iterator[tuple[str, int]]:
    """Start a server process; yields its base URL and pid; stops it on exit."""
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    process = ctx.Process(target=server_process, args=(kind, args, theirs, stop), daemon=True)
    process.start()
    try:
        if not ours.poll(60):
            raise RuntimeError(f"the {kind} server did not start")
        yield ours.recv(), process.pid or 0
    finally:
        stop.set()
        process.join(20)
        if process.is_alive():
            process.terminate()
            process.join(5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- readers ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Delivery:
    """What every reader received, pooled: counts and a latency histogram."""

    readers: int
    histogram: list[int] = field(
        default_factory=lambda: [0] * (MAX_LATENCY * BUCKETS_PER_SECOND + 1)
    )
    events: int = 0
    connected: int = 0
    finished: int = 0
    last_receive: float = 0.0
    all_connected: asyncio.Event = field(default_factory=asyncio.Event)

    def connect(self) -> None:
        self.connected += 1
        if self.connected >= self.readers:
            self.all_connected.set()

    def record(self, now: float, stamps: list[bytes]) -> None:
        if not stamps:
            return
        histogram, top = self.histogram, len(self.histogram) - 1
        for stamp in stamps:
            bucket = int((now - float(stamp)) * BUCKETS_PER_SECOND)
            histogram[min(max(bucket, 0), top)] += 1
        self.events += len(stamps)
        self.last_receive = now

    def percentile_ms(self, fraction: float) -> float:
        wanted = fraction * self.events
        seen = 0
        for bucket, count in enumerate(self.histogram):
            seen += count
            if count and seen >= wanted:
                return bucket * 1000 / BUCKETS_PER_SECOND
        return float("nan")


async def read_stream(client: httpx.AsyncClient, url: str, delivery: Delivery) -> None:
    """Read one SSE stream to its end, recording the stamp of every event."""
    async with client.stream("GET", url, headers={"Accept": "text/event-stream"}) as response:
        response.raise_for_status()
        delivery.connect()
        tail = b""
        async for raw in response.aiter_raw():
            now = time.monotonic()
            data = tail + raw if tail else raw
            cut = data.rfind(b"\n") + 1  # a stamp never spans a line end
            delivery.record(now, STAMP.findall(data, 0, cut))
            tail = data[cut:]
    delivery.finished += 1


async def read_stream_raw(url: str, delivery: Delivery) -> None:
    """Like :func:`read_stream` on a bare asyncio connection: far less client CPU per read."""
    address = httpx.URL(url)
    host, port = address.host, address.port or 80
    reader, writer = await asyncio.open_connection(host, port)
    try:
        target = address.raw_path.decode()
        request = (
            f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n"
        )
        writer.write(request.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"GET {url}: {head[:100]!r}")
        delivery.connect()
        tail = b""
        while raw := await reader.read(262_144):
            now = time.monotonic()
            data = tail + raw if tail else raw
            cut = data.rfind(b"\n") + 1
            delivery.record(now, STAMP.findall(data, 0, cut))
            tail = data[cut:]
            if data.endswith(b"\n0\r\n\r\n") or data == b"0\r\n\r\n":
                break  # the last chunk of a chunked body
        delivery.finished += 1
    finally:
        writer.close()


@dataclass(slots=True)
class FanOut:
    delivery: Delivery
    seconds: float
    server_cpu: float
    client_cpu: float
    expected: int
    answer_after: float = 0.0

    @property
    def rate(self) -> float:
        return self.delivery.events / self.seconds


async def fan_out(
    url: str, pid: int, go: MpEvent, opts: Options, expected: int, limit: float
) -> FanOut:
    """``readers`` readers of ``url``; ``go`` once all are connected; read for ``limit`` s."""
    readers = opts.readers
    delivery = Delivery(readers)
    limits = httpx.Limits(max_connections=readers + 10, max_keepalive_connections=readers + 10)
    timeout = httpx.Timeout(connect=CONNECT_LIMIT, read=GO_LIMIT, write=30.0, pool=CONNECT_LIMIT)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        tasks = [
            asyncio.create_task(
                read_stream_raw(url, delivery)
                if opts.client == "raw"
                else read_stream(client, url, delivery)
            )
            for _ in range(readers)
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(delivery.all_connected.wait(), CONNECT_LIMIT)
        if delivery.connected < readers:
            print(f"  only {delivery.connected} of {readers} readers connected")
        server_cpu, client_cpu = cpu_seconds(pid), time.process_time()
        start = time.monotonic()
        go.set()
        _, cut = await asyncio.wait(tasks, timeout=limit)
        end = time.monotonic()
        server_cpu, client_cpu = cpu_seconds(pid) - server_cpu, time.process_time() - client_cpu
        for task in cut:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    seconds = (end if cut else delivery.last_receive) - start
    return FanOut(delivery, seconds, server_cpu, client_cpu, expected)


# -- GET /tasks ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Requests:
    latencies: list[float]
    seconds: float
    server_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


async def hammer(url: str, clients: int, seconds: float) -> Requests:
    """``clients`` concurrent loops of GET ``url`` for ``seconds``."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        await client.get(url)  # warm up: a connection, the route, the statement cache
        start = time.monotonic()
        end = start + seconds

        async def loop() -> None:
            while time.monotonic() < end:
                began = time.perf_counter()
                response = await client.get(url)
                response.raise_for_status()
                latencies.append(time.perf_counter() - began)

        await asyncio.gather(*(loop() for _ in range(clients)))
        return Requests(latencies, time.monotonic() - start)


async def fill(db: Path, count: int) -> bytes:
    """Store ``count`` finished tasks; answers the JSON body of ``GET /tasks?limit=50``."""
    store = SQLiteTaskStore(db)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    batch: list[Task] = []
    for i in range(count):
        status = TaskStatus.COMPLETED if i % 25 else TaskStatus.FAILED
        created = base + timedelta(milliseconds=i)
        batch.append(
            Task(
                query="stored", agent_name="ticker", user_id=USER, status=status, created_at=created
            )
        )
        if len(batch) == 2000 or i == count - 1:
            await asyncio.gather(*(store.save(t) for t in batch))
            batch = []
    page = await store.list_tasks(TaskFilter(user_id=USER), limit=50)
    await store.close()
    return bytes(
        ok({"items": [task_json(t) for t in page.items], "next_cursor": page.next_cursor}).body
    )


# -- the run ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    readers: int
    rate: int
    seconds: float
    drain: float
    stored: int
    clients: int
    list_seconds: float
    client: str


async def answer_time(url: str) -> float:
    """Seconds until the server answers ``url`` (after the readers stopped); inf after 120 s."""
    start = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=120.0) as client:
            (await client.get(url)).raise_for_status()
    except httpx.HTTPError:
        return float("inf")
    return time.monotonic() - start


async def start_task(base_url: str) -> str:
    async with httpx.AsyncClient(timeout=30.0) as client:
        response = await client.post(
            f"{base_url}/api/v1/tasks", json={"query": "tick", "agent_name": "ticker"}
        )
        response.raise_for_status()
        task_id: str = response.json()["data"]["task_id"]
        return task_id


async def run_kind(
    kind: str, opts: Options, db: Path, page: bytes, *, listing: bool = True
) -> tuple[FanOut, Requests | None]:
    """The fan-out, then (if ``listing``) GET /tasks on a fresh server process (a cut-off
    fan-out leaves the first one busy writing to closed connections)."""
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    args = {"rate": opts.rate, "seconds": opts.seconds, "go": go, "db": db, "page": page}
    with server(kind, args, ctx.Event()) as (base_url, pid):
        task_id = "" if kind != "taskcell" else await start_task(base_url)
        url = (
            f"{base_url}/events"
            if kind != "taskcell"
            else f"{base_url}/api/v1/tasks/{task_id}/events"
        )
        expected = round(opts.rate * opts.seconds) * opts.readers
        fan = await fan_out(url, pid, go, opts, expected, opts.seconds + opts.drain)
        fan.answer_after = await answer_time(f"{base_url}/api/v1/tasks?limit=1")
    if not listing:
        return fan, None
    # The next server recovers an unfinished ticker task and runs it again: with nothing to say.
    args["seconds"] = 0.0
    with server(kind, args, ctx.Event()) as (base_url, pid):
        server_cpu = cpu_seconds(pid)
        requests = await hammer(
            f"{base_url}/api/v1/tasks?limit=50", opts.clients, opts.list_seconds
        )
        requests.server_cpu = cpu_seconds(pid) - server_cpu
    return fan, requests


def report_fan(label: str, fan: FanOut) -> None:
    d = fan.delivery
    print(
        f"  {label:9s} {d.events:10,d} of {fan.expected:,} delivered ({d.finished} of"
        f" {d.readers} streams read to the end) in {fan.seconds:5.1f} s ="
        f" {fan.rate:9,.0f} events/s   latency p50 {d.percentile_ms(0.5):7.1f} ms"
        f" p99 {d.percentile_ms(0.99):7.1f} ms   CPU s: server {fan.server_cpu:.1f},"
        f" readers {fan.client_cpu:.1f}; answered a request {fan.answer_after:.1f} s after"
    )


def report_list(label: str, listing: Requests) -> None:
    print(
        f"  {label:9s} {listing.rate:7,.0f} requests/s   p50 {listing.percentile_ms(0.5):6.1f} ms"
        f"   p99 {listing.percentile_ms(0.99):6.1f} ms   ({len(listing.latencies):,} requests,"
        f" server CPU {listing.server_cpu * 1000 / len(listing.latencies):.2f} ms each)"
    )


KINDS = ("bare", "fair", "taskcell")


def _spread(values: list[float], digits: int = 2) -> str:
    return (
        f"{statistics.median(values):.{digits}f}"
        f" ({min(values):.{digits}f} - {max(values):.{digits}f})"
    )


async def main(opts: Options, rounds: int, json_path: Path | None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="taskcell-bench-sse-"))
    db = folder / "sse.db"
    start = time.perf_counter()
    page = await fill(db, opts.stored)
    print(f"filled {opts.stored:,} tasks in {time.perf_counter() - start:.1f} s")
    print(
        f"{opts.readers} SSE readers, one stream of {opts.rate:,} events/s for {opts.seconds:g} s"
        f" (server in its own process, {opts.client} readers in this one), {rounds} round(s);"
        " bare = naive sse-starlette endpoint, fair = the same endpoint encoding once and"
        " writing a queue's contents at once:"
    )
    fans: dict[str, list[FanOut]] = {kind: [] for kind in KINDS}
    lists: dict[str, list[Requests]] = {"bare": [], "taskcell": []}
    for round_ in range(rounds):
        shift = round_ % len(KINDS)
        for kind in KINDS[shift:] + KINDS[:shift]:
            fan, requests = await run_kind(kind, opts, db, page, listing=kind in lists)
            report_fan(kind, fan)
            fans[kind].append(fan)
            if requests is not None:
                lists[kind].append(requests)
    fair_ratios = [
        tc.rate / fair.rate for tc, fair in zip(fans["taskcell"], fans["fair"], strict=True)
    ]
    naive_ratios = [
        tc.rate / bare.rate for tc, bare in zip(fans["taskcell"], fans["bare"], strict=True)
    ]
    p99s = [fan.delivery.percentile_ms(0.99) for fan in fans["taskcell"]]
    fair_p99s = [fan.delivery.percentile_ms(0.99) for fan in fans["fair"]]
    ratio, p99 = statistics.median(fair_ratios), statistics.median(p99s)
    print(
        f"  ratio taskcell/fair delivered events/s: {_spread(fair_ratios)}"
        f" (target >= 0.7: {'met' if ratio >= 0.7 else 'NOT met'});"
        f" taskcell/naive bare: {_spread(naive_ratios)};"
        f" taskcell p99 {_spread(p99s, 1)} ms (target < 250 ms:"
        f" {'met' if p99 < 250 else 'NOT met'}); fair p99 {_spread(fair_p99s, 1)} ms"
    )
    print(
        f"GET /api/v1/tasks?limit=50, {opts.stored:,} tasks stored, {opts.clients} clients,"
        f" {opts.list_seconds:g} s:"
    )
    for kind, measured in lists.items():
        for requests in measured:
            report_list(kind, requests)
    list_ratios = [
        tc.rate / bare.rate for tc, bare in zip(lists["taskcell"], lists["bare"], strict=True)
    ]
    print(f"  ratio taskcell/bare requests/s: {_spread(list_ratios)}")

    def median_rate(items: list[FanOut] | list[Requests]) -> float:
        return statistics.median(item.rate for item in items)

    write_rows(
        json_path,
        [
            Row(
                measure=f"SSE fan-out to {opts.readers} readers",
                taskcell=median_rate(fans["taskcell"]),
                unit="events/s",
                baseline=median_rate(fans["fair"]),
                baseline_name="fair sse-starlette endpoint",
                ratio=ratio,
                target="ratio >= 0.7",
                met=ratio >= 0.7,
            ),
            Row(
                measure=f"SSE fan-out to {opts.readers} readers, vs naive endpoint",
                taskcell=median_rate(fans["taskcell"]),
                unit="events/s",
                baseline=median_rate(fans["bare"]),
                baseline_name="naive sse-starlette endpoint",
                ratio=statistics.median(naive_ratios),
            ),
            Row(
                measure="SSE delivery latency p99",
                taskcell=p99,
                unit="ms",
                baseline=statistics.median(fair_p99s),
                baseline_name="fair endpoint",
                target="< 250 ms",
                met=p99 < 250,
            ),
            Row(
                measure=f"GET /tasks?limit=50, {opts.clients} clients",
                taskcell=median_rate(lists["taskcell"]),
                unit="requests/s",
                baseline=median_rate(lists["bare"]),
                baseline_name="same bytes from memory",
                ratio=statistics.median(list_ratios),
            ),
        ],
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=500)
    parser.add_argument("--rate", type=int, default=2000, help="events per second emitted")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the agent emits")
    parser.add_argument(
        "--drain", type=float, default=30.0, help="seconds after emission to finish delivery"
    )
    parser.add_argument("--stored", type=int, default=100_000, help="tasks stored for GET /tasks")
    parser.add_argument("--clients", type=int, default=50, help="concurrent GET /tasks clients")
    parser.add_argument("--list-seconds", type=float, default=5.0)
    parser.add_argument(
        "--quick", action="store_true", help="100 readers, 3 s, 20,000 tasks stored"
    )
    parser.add_argument(
        "--client",
        choices=("httpx", "raw"),
        default="httpx",
        help="SSE readers: httpx streams, or bare asyncio connections (less client CPU)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="rounds, the order rotating")
    parser.add_argument("--json", type=Path, help="write the summary rows to this file")
    args = parser.parse_args()
    if args.quick:
        args.readers, args.seconds, args.stored = 100, 3.0, 20_000
    asyncio.run(
        main(
            Options(
                readers=args.readers,
                rate=args.rate,
                seconds=args.seconds,
                drain=args.drain,
                stored=args.stored,
                clients=args.clients,
                list_seconds=args.list_seconds,
                client=args.client,
            ),
            max(1, args.rounds),
            args.json,
        )
    )
