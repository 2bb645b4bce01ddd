"""Cluster throughput on PostgreSQL: taskcell through 1 and 3 processes, beside procrastinate.

taskcell: N real ``taskcell serve`` processes (N = 1, then 3) on one PostgreSQL database, each
with the in-process agent ``instant`` (``taskcell.agents.samples:instant``, answers at once).
The client, this process, submits M once tasks with ``POST /api/v1/tasks`` round-robin over the
processes (task n to process n mod N), 64 requests in flight by default: one kept-alive
HTTP/1.1 connection per request in flight, each bound to one process (see ``Poster``).
Timed from the first POST until ``SELECT count(*) FROM tasks WHERE status = 'completed'``
(asyncpg, polled every 50 ms) counts all M. tasks/s = M / elapsed.

The HTTP path is the only honest one: inserting the M tasks straight into the database would not
measure the cluster, since a process runs only the tasks submitted to it (plus runs orphaned for
longer than a lease), so directly inserted tasks would sit pending.

procrastinate (a benchmark-only dependency), in the same run on the same PostgreSQL server and
the same database (its tables are all named ``procrastinate_*``; taskcell's are ``tasks``,
``runs``, ``events``, ``conversations``, ``conversation_items``, ``processes`` and
``schema_version``, so nothing collides): one worker process (``run_worker_async``,
LISTEN/NOTIFY on, a pool of 22 connections: taskcell's 20, its listener and one spare) running
a no-op async task, with as many jobs at once as taskcell has run slots: concurrency 64, the
default ``max_concurrent_runs``. The client, this process, defers M jobs with
``batch_defer_async`` (one statement). Timed the same way: from the first defer until
``procrastinate_jobs`` counts all M ``succeeded``. The worker is started (and warmed) before the
first defer, as the taskcell processes are before the first POST. Second line: both at one job
at a time (taskcell with ``TASKCELL_MAX_CONCURRENT_RUNS=1``, procrastinate concurrency 1). Extra
line: concurrency 64 fed by single ``defer_async`` calls (as many in flight as taskcell's POSTs),
the enqueue path closest to taskcell's.

Every measured configuration is first warmed (a few tasks or jobs per process, not counted),
then measured ``--repeat`` times; the best is kept and all are printed. CPU milliseconds per
task of the client, the servers or worker, and all ``postgres`` processes of the machine during
the best run are printed, with the load average: the machine has 2 cores, shared by all of them
(and by whatever else runs), so the CPU per task is the steadier figure.

Targets: taskcell with one process at least as fast as procrastinate with one worker, both with
64 jobs at once; three processes at least 1.5 times one.

Two more lines, after the procrastinate ones: a ceiling, and a workload the CPU does not bound.
Three processes can only beat one by what the machine has left over while one runs. The
ceiling line prints the CPU milliseconds per task of the one-process run (client, server and
PostgreSQL together) and the rate at which they would keep every core busy: no number of
processes can go past it, so on 2 cores it caps the 3 / 1 ratio. The extra workload uses the
in-process agent ``pause`` (answers after 50 ms) with 8 runs at once per process
(``TASKCELL_MAX_CONCURRENT_RUNS=8``), half as many tasks: each process is then bound by its own
run slots (8 / 50 ms = 160 tasks/s at most), and the 3 / 1 ratio shows whether the processes
share the work without getting in each other's way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import procrastinate
import psycopg

from results import Row, write_rows
from taskcell.settings import DEFAULT_POOL_SIZE

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
DATABASE = "taskcell_bench_cluster"
POLL_SECONDS = 0.05
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
WARM_PER_PROCESS = 20
RUN_SLOTS = 64  # taskcell's default max_concurrent_runs: procrastinate gets the same concurrency
QUEUE = "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TASKCELL_TABLES = "runs, tasks, events, conversation_items, conversations, processes"
PROCRASTINATE_TABLES = "procrastinate_jobs, procrastinate_events, procrastinate_workers"
HERE = Path(__file__).resolve()
#: A command the servers are started under, e.g. ``py-spy record -o FILE --`` (for profiling).
PROFILER = os.environ.get("TASKCELL_BENCH_PROFILER", "").split()

# procrastinate warns when an App is made in ``__main__``; the task is found by its name here.
logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)


# -- helpers -----------------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
    return pids


@dataclass(slots=True)
class CpuMeter:
    """CPU seconds of this process, of given children, and of all postgres processes."""

    children: list[int]
    name: str
    start: dict[str, float] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)

    def _sample(self) -> dict[str, float]:
        return {
            "client": time.process_time(),
            self.name: sum(cpu_of(pid) for pid in self.children),
            "postgres": sum(cpu_of(pid) for pid in postgres_pids()),
        }

    def __enter__(self) -> CpuMeter:
        self.start = self._sample()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._sample()
        self.used = {key: end[key] - self.start[key] for key in end}


@dataclass(slots=True)
class Result:
    label: str
    count: int
    seconds: list[float] = field(default_factory=list)
    cpu: list[dict[str, float]] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)

    def add(self, seconds: float, cpu: dict[str, float]) -> None:
        self.seconds.append(seconds)
        self.cpu.append(cpu)
        self.loads.append(os.getloadavg()[0])

    @property
    def best(self) -> float:
        return self.count / min(self.seconds)

    @property
    def cpu_ms_per_task(self) -> float:
        """CPU milliseconds per task of everything measured (client, servers, PostgreSQL) in
        the best run."""
        best = self.seconds.index(min(self.seconds))
        return sum(self.cpu[best].values()) * 1000 / self.count

    def line(self, unit: str) -> str:
        rates = ", ".join(f"{self.count / s:,.0f}" for s in self.seconds)
        best = self.seconds.index(min(self.seconds))
        cpu = ", ".join(
            f"{key} {value * 1000 / self.count:.2f}" for key, value in self.cpu[best].items()
        )
        return (
            f"{self.label:<60} {self.best:6,.0f} {unit}/s\n    runs: {rates} {unit}/s;"
            f" best run: CPU ms per {unit[:-1]}: {cpu}; load average {self.loads[best]:.2f}"
        )


async def execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def wait_count(
    conn: asyncpg.Connection,
    sql: str,
    target: int,
    alive: Callable[[], None],
    deadline: float,
) -> None:
    """Poll ``sql`` (a count) every 50 ms until it reaches ``target``."""
    while True:
        done: int = await conn.fetchval(sql)
        if done >= target:
            return
        alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{done} of {target} done when the time limit was reached")
        await asyncio.sleep(POLL_SECONDS)


async def timed(
    submit: Callable[[], Coroutine[Any, Any, None]],
    conn: asyncpg.Connection,
    count_sql: str,
    target: int,
    alive: Callable[[], None],
    time_limit: float,
) -> float:
    """Seconds from the start of ``submit`` until ``count_sql`` reaches ``target``."""
    start = time.perf_counter()
    submitting = asyncio.create_task(submit())

    def check() -> None:
        alive()
        if submitting.done():
            submitting.result()  # raises at once if a submission failed

    try:
        await wait_count(conn, count_sql, target, check, time.monotonic() + time_limit)
        await submitting  # it has finished (all are done)
    finally:
        submitting.cancel()
    return time.perf_counter() - start


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def checker(processes: list[subprocess.Popen[bytes]], logs: list[Path]) -> Callable[[], None]:
    def alive() -> None:
        for process, log in zip(processes, logs, strict=True):
            if process.poll() is not None:
                raise RuntimeError(f"{log.name} exited:\n{log.read_text()[-3000:]}")

    return alive


# -- taskcell ----------------------------------------------------------------------------------


AGENTS = {
    "instant": {"entry": "taskcell.agents.samples:instant"},
    "pause": {"entry": "taskcell.agents.samples:pause"},
}


def start_serve(
    url: str, log: Path, settings: dict[str, str]
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "TASKCELL_DATABASE_URL": url,
        "TASKCELL_HOST": "127.0.0.1",
        "TASKCELL_LOG_LEVEL": "WARNING",
        "TASKCELL_AGENTS": json.dumps(AGENTS),
        **settings,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*PROFILER, sys.executable, "-m", "taskcell.cli", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, f"http://127.0.0.1:{port}"


async def wait_healthy(client: httpx.AsyncClient, base: str, alive: Callable[[], None]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with contextlib.suppress(httpx.TransportError):
            if (await client.get(f"{base}/api/v1/health")).status_code == 200:
                return
        alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{base} did not start")
        await asyncio.sleep(0.1)


@contextlib.contextmanager
def serve_processes(
    url: str, count: int, folder: Path, settings: dict[str, str]
) -> Iterator[tuple[list[subprocess.Popen[bytes]], list[str]]]:
    started = [start_serve(url, folder / f"serve-{count}-{i}.log", settings) for i in range(count)]
    try:
        yield [p for p, _ in started], [base for _, base in started]
    finally:
        stop([p for p, _ in started])


class Poster:
    """One kept-alive HTTP/1.1 connection that POSTs JSON bodies and reads the answers.

    A few lines of asyncio streams instead of httpx: the client shares the machine's 2 cores
    with the servers it measures, and httpx costs about 1.4 ms of CPU per request here. A
    connection the server closed while idle (uvicorn's keep-alive time-out) is opened again,
    and the request sent again: the server never saw it.
    """

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                return await self._exchange(path, body)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, path: str, body: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readuntil(b"\r\n")
        if not status_line:
            raise ConnectionError("closed")
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def post_tasks(
    posters: list[Poster], bases: list[str], first: int, count: int, agent: str
) -> None:
    """POST tasks ``first`` to ``first + count - 1``, task n to process n mod N (round-robin).

    Each poster sends one request at a time, always to the same process (poster i to process
    i mod N), taking the next task number of that process.
    """
    numbers = [
        iter(range(first + (base - first) % len(bases), first + count, len(bases)))
        for base in range(len(bases))
    ]

    async def sender(index: int, poster: Poster) -> None:
        base = index % len(bases)
        for number in numbers[base]:
            body = json.dumps({"query": f"bench task {number}", "agent_name": agent})
            status, answer = await poster.post("/api/v1/tasks", body.encode())
            if status != 201:
                raise RuntimeError(f"POST /api/v1/tasks: {status} {answer[:300]!r}")

    await asyncio.gather(*(sender(i, poster) for i, poster in enumerate(posters)))


async def bench_taskcell(
    url: str,
    nodes: int,
    count: int,
    repeat: int,
    in_flight: int,
    folder: Path,
    *,
    agent: str = "instant",
    runs_at_once: int | None = None,
) -> Result:
    await execute(
        url,
        "DO $$ BEGIN IF to_regclass('tasks') IS NOT NULL THEN"
        f" TRUNCATE {TASKCELL_TABLES} CASCADE; END IF; END $$",
    )
    label = f"taskcell, {nodes} process{'es' if nodes > 1 else ''}"
    if agent != "instant":
        label += f", agent {agent!r}"
    settings = {}
    if runs_at_once is not None:
        settings["TASKCELL_MAX_CONCURRENT_RUNS"] = str(runs_at_once)
    label += f", {runs_at_once or RUN_SLOTS} run slots each"
    result = Result(label, count)
    count_sql = "SELECT count(*) FROM tasks WHERE status = 'completed'"
    with serve_processes(url, nodes, folder, settings) as (processes, bases):
        logs = [folder / f"serve-{nodes}-{i}.log" for i in range(nodes)]
        alive = checker(processes, logs)
        async with contextlib.AsyncExitStack() as stack:
            health = await stack.enter_async_context(httpx.AsyncClient(timeout=60))
            for base in bases:
                await wait_healthy(health, base, alive)
            clients = [Poster(bases[i % len(bases)]) for i in range(max(in_flight, nodes))]
            for poster in clients:
                stack.push_async_callback(poster.close)
            conn = await asyncpg.connect(url)
            stack.push_async_callback(conn.close)
            sent = max(WARM_PER_PROCESS * nodes, in_flight)  # opens every client's connections
            await timed(
                partial(post_tasks, clients, bases, 0, sent, agent),
                conn,
                count_sql,
                sent,
                alive,
                START_TIMEOUT,
            )
            for _ in range(repeat):
                first = sent
                sent += count
                with CpuMeter([p.pid for p in processes], "servers") as meter:
                    seconds = await timed(
                        partial(post_tasks, clients, bases, first, count, agent),
                        conn,
                        count_sql,
                        sent,
                        alive,
                        time_limit(count),
                    )
                result.add(seconds, meter.used)
    return result


# -- procrastinate -----------------------------------------------------------------------------


async def noop() -> None:
    """The job: does nothing."""


def taskcell_pool_size() -> int:
    """The pool of each taskcell process (``--pool-size``, passed on in the environment)."""
    return int(os.environ.get("TASKCELL_DATABASE_POOL_SIZE", DEFAULT_POOL_SIZE))


def procrastinate_app(url: str, pool_size: int) -> procrastinate.App:
    # As many connections as a taskcell process: its pool, one listener and one spare.
    pool_size = min(pool_size, taskcell_pool_size() + 2)
    connector = procrastinate.PsycopgConnector(conninfo=url, min_size=pool_size, max_size=pool_size)
    app = procrastinate.App(connector=connector)
    app.task(name="noop", queue=QUEUE)(noop)
    return app


async def run_worker(url: str, concurrency: int) -> None:
    """The worker process (``--procrastinate-worker``): runs until SIGTERM."""
    app = procrastinate_app(url, concurrency + 2)
    async with app.open_async():
        await app.run_worker_async(queues=[QUEUE], concurrency=concurrency, wait=True)


def start_worker(url: str, concurrency: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                str(HERE),
                "--procrastinate-worker",
                url,
                "--worker-concurrency",
                str(concurrency),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def defer_batch(app: procrastinate.App, count: int) -> None:
    await app.tasks["noop"].batch_defer_async(*({} for _ in range(count)))


async def defer_single(app: procrastinate.App, count: int, in_flight: int) -> None:
    task = app.tasks["noop"]
    remaining = iter(range(count))

    async def deferrer() -> None:
        for _ in remaining:
            await task.defer_async()

    await asyncio.gather(*(deferrer() for _ in range(min(in_flight, count))))


async def bench_procrastinate(
    url: str, concurrency: int, single: int, count: int, repeat: int, folder: Path
) -> Result:
    """One worker of ``concurrency``; deferred in one batch, or ``single`` at a time if > 0."""
    await execute(url, f"TRUNCATE {PROCRASTINATE_TABLES} CASCADE")
    how = f"single defers, {single} in flight" if single else "batch defer"
    result = Result(f"procrastinate, 1 worker, concurrency {concurrency}, {how}", count)
    log = folder / f"worker-{concurrency}-{single}.log"
    worker = start_worker(url, concurrency, log)
    alive = checker([worker], [log])
    count_sql = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
    app = procrastinate_app(url, min(max(single, 1), 16))
    try:
        async with app.open_async():
            conn = await asyncpg.connect(url)
            try:
                sent = WARM_PER_PROCESS
                await timed(
                    partial(defer_batch, app, sent), conn, count_sql, sent, alive, START_TIMEOUT
                )
                for _ in range(repeat):
                    sent += count
                    submit = (
                        partial(defer_single, app, count, single)
                        if single
                        else partial(defer_batch, app, count)
                    )
                    with CpuMeter([worker.pid], "worker") as meter:
                        seconds = await timed(
                            submit, conn, count_sql, sent, alive, time_limit(count)
                        )
                    result.add(seconds, meter.used)
            finally:
                await conn.close()
    finally:
        stop([worker])
    return result


# -- main --------------------------------------------------------------------------------------


def time_limit(count: int) -> float:
    return 60.0 + count / 20  # seconds for one measured run: far above any expected rate


@contextlib.asynccontextmanager
async def scratch_database(admin_url: str) -> AsyncIterator[str]:
    drop = f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"
    await execute(admin_url, drop)
    await execute(admin_url, f"CREATE DATABASE {DATABASE}")
    try:
        yield with_database(admin_url, DATABASE)
    finally:
        await execute(admin_url, drop)


async def main(
    admin_url: str,
    count: int,
    repeat: int,
    in_flight: int,
    only: str | None,
    json_path: Path | None,
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="taskcell-bench-cluster-"))
    print(
        f"{count:,} tasks/jobs per run, best of {repeat}; load average before:"
        f" {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs"
    )
    print(
        f"client: this process, one asyncio loop. taskcell: {in_flight} kept-alive HTTP/1.1"
        " connections (asyncio streams), one POST in flight each, round-robin over the"
        " processes. procrastinate:"
        f" its PsycopgConnector (psycopg {psycopg.__version__}, {psycopg.pq.__impl__}"
        " implementation). Completion counted with asyncpg every 50 ms."
    )
    async with scratch_database(admin_url) as url:
        app = procrastinate_app(url, 1)
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
        taskcell_1 = await bench_taskcell(url, 1, count, repeat, in_flight, folder)
        print(taskcell_1.line("tasks"))
        if only == "taskcell-1":
            return
        base = await bench_procrastinate(url, RUN_SLOTS, 0, count, repeat, folder)
        print(base.line("jobs"))
        taskcell_serial = await bench_taskcell(
            url, 1, count, repeat, in_flight, folder, runs_at_once=1
        )
        print(taskcell_serial.line("tasks"))
        base_serial = await bench_procrastinate(url, 1, 0, count, repeat, folder)
        print(base_serial.line("jobs"))
        taskcell_3 = await bench_taskcell(url, 3, count, repeat, in_flight, folder)
        print(taskcell_3.line("tasks"))
        single = await bench_procrastinate(url, RUN_SLOTS, in_flight, count, repeat, folder)
        print(single.line("jobs"))
        # Extra: a workload bound by each process's run slots rather than by the CPU.
        waits = [
            await bench_taskcell(
                url, n, count // 2, repeat, in_flight, folder, agent="pause", runs_at_once=8
            )
            for n in (1, 3)
        ]
        for result in waits:
            print(result.line("tasks"))
    one_to_base = taskcell_1.best / base.best
    serial_to_base = taskcell_serial.best / base_serial.best
    three_to_one = taskcell_3.best / taskcell_1.best
    cpus = os.cpu_count() or 1
    ceiling = cpus * 1000 / taskcell_1.cpu_ms_per_task
    print(
        f"ratio taskcell 1 process / procrastinate 1 worker, {RUN_SLOTS} at once:"
        f" {one_to_base:5.2f}"
        f"   (target >= 1.0: {'met' if one_to_base >= 1 else 'NOT met'})"
    )
    print(
        f"ratio taskcell 1 process / procrastinate 1 worker, 1 at a time:  {serial_to_base:5.2f}"
        f"   (target >= 1.0: {'met' if serial_to_base >= 1 else 'NOT met'})"
    )
    print(
        f"ratio taskcell 3 processes / taskcell 1 process:                 {three_to_one:5.2f}"
        f"   (target >= 1.5: {'met' if three_to_one >= 1.5 else 'NOT met'})"
    )
    print(
        f"    this machine's ceiling: {taskcell_1.cpu_ms_per_task:.2f} CPU ms per task (client,"
        f" server, PostgreSQL) on {cpus} CPUs is {ceiling:,.0f} tasks/s with every core busy,"
        f" {ceiling / taskcell_1.best:.2f} times one process"
    )
    pause_ratio = waits[1].best / waits[0].best
    print(
        "ratio 3 / 1 processes, agent 'pause' (50 ms), 8 runs at once each:"
        f" {pause_ratio:5.2f}   (extra: a workload the CPU does not bound)"
    )
    write_rows(
        json_path,
        [
            Row(
                measure=f"cluster, 1 process, {RUN_SLOTS} at once",
                taskcell=taskcell_1.best,
                unit="tasks/s",
                baseline=base.best,
                baseline_name=f"procrastinate, concurrency {RUN_SLOTS}",
                ratio=one_to_base,
                target="ratio >= 1.0",
                met=one_to_base >= 1,
            ),
            Row(
                measure="cluster, 1 process, 1 at a time",
                taskcell=taskcell_serial.best,
                unit="tasks/s",
                baseline=base_serial.best,
                baseline_name="procrastinate, concurrency 1",
                ratio=serial_to_base,
                target="ratio >= 1.0",
                met=serial_to_base >= 1,
            ),
            Row(
                measure="cluster, 3 processes vs 1",
                taskcell=taskcell_3.best,
                unit="tasks/s",
                baseline=taskcell_1.best,
                baseline_name="taskcell, 1 process",
                ratio=three_to_one,
                target="ratio >= 1.5",
                met=three_to_one >= 1.5,
            ),
            Row(
                measure="cluster, agent 'pause', 3 processes vs 1",
                taskcell=waits[1].best,
                unit="tasks/s",
                baseline=waits[0].best,
                baseline_name="taskcell, 1 process",
                ratio=pause_ratio,
            ),
        ],
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; logs: {folder}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000, help="tasks (and jobs) per run")
    parser.add_argument("--quick", action="store_true", help="300 tasks, one run each")
    parser.add_argument("--repeat", type=int, default=2, help="measured runs per line")
    parser.add_argument("--in-flight", type=int, default=64, help="concurrent requests")
    parser.add_argument("--admin-url", default=ADMIN_URL, help="a database to create ours from")
    parser.add_argument(
        "--only", choices=["taskcell-1"], help="measure only this line (for quick checks)"
    )
    parser.add_argument("--json", type=Path, help="write the summary rows to this file")
    parser.add_argument(
        "--pool-size",
        type=int,
        help="database connections per taskcell process (default 20) and per procrastinate"
        " worker (2 more); lower it on a PostgreSQL server other programs use too",
    )
    parser.add_argument("--procrastinate-worker", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--worker-concurrency", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pool_size is not None:
        os.environ["TASKCELL_DATABASE_POOL_SIZE"] = str(args.pool_size)  # servers and worker
    if args.procrastinate_worker:
        asyncio.run(run_worker(args.procrastinate_worker, args.worker_concurrency))
    else:
        quick = args.quick
        asyncio.run(
            main(
                args.admin_url,
                300 if quick else args.tasks,
                1 if quick else args.repeat,
                args.in_flight,
                args.only,
                args.json,
            )
        )
