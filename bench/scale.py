"""Costs that stay flat: taskcell with a year of history beside taskcell with none.

The *large* database (``bench/scale_build.py``; reused when its manifest matches): 1,000,000
tasks, 10,000 of them recurring, 5,000,000 runs, 20,000,000 events, built straight into the
store's schema; ``--small`` a hundredth of it. The *empty* database, built anew each run, holds
only what the measures need: the same 10,000 armed recurring tasks (a hundred with ``--small``)
and the stream task with its 10,000 events, and no other history.

Both are served by real ``taskcell serve`` processes at once (each on its own port, output in
``test-output/scale/``), and every measure alternates request by request between the two, so
whatever else the machine does weighs on both alike. Figures, each large against empty:

- scheduler: idle CPU of each server over a window with nothing due (its loops only: heartbeat,
  leases, recovery, the scheduler's sleep), then lateness (a run's ``started_at`` minus its
  ``scheduled_for``) of ``--probes`` recurring tasks made due at one instant and every minute
  after: their first fire after start-up (nothing has read their pages since the file was
  written: cold), and their next one (a schedule that fires regularly; the target's figure);
- ``POST /tasks`` p99 (a once task for the ``echo`` demo agent, which then runs);
- ``GET /tasks?limit=50`` p99: the first page, and the page 500,000 tasks deep (half-way down the
  list with ``--small``) through a keyset cursor;
- ``GET /tasks/{id}`` p99, a random task each time; ``GET /metrics`` p99 (tasks by status);
- first byte of the stream of a task with 10,000 events (the first ``id:`` line), from the start
  and with ``?from=latest_run`` (median);
- resident memory (``VmRSS``) of each server after all of that;
- recovery after SIGKILL: ``--killed`` runs of the ``slow`` agent running on each server, the
  server killed, then restarted: seconds from the restart until every killed run reads
  ``interrupted`` through the API;
- start-up: seconds from ``taskcell serve`` starting to ``/api/v1/health`` answering 200, the
  median of ``--rounds`` starts (plus the one after the kill);
- the pruner's rows/s while the API serves (the server's own pruner, on a copy of the large
  database: a steady round over every task, then the default policy's first round over a
  year of history) and create p99 meanwhile, against create p99 on the same copy served with
  retention off: :func:`measure_pruner`.

Targets: every figure within 2x of the empty database's, start-up under 3 s. Before serving, the
large database is prepared: the store opens it (schema versions applied, so no start-up pays
for them), tasks an earlier run of this benchmark created are deleted, and every schedule is
armed a day ahead except the probes'.

``--postgres [URL]``: the same on PostgreSQL (``bench/scale_build_pg.py``), at a tenth of the
scale (100,000 tasks, 1,000 recurring, 500,000 runs, 2,000,000 events; the stream task keeps its
10,000 events; ``--small`` a hundredth), in the database URL names (default
``taskcell_scale`` on the local server, ``taskcell_scale_small`` with ``--small``; the empty one
is its name plus ``_empty``), both created by the benchmark. Every measure but the pruner's (it
copies an SQLite file).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

import scale_build_pg
from results import Row, write_rows
from scale_build import FULL, SMALL, TENTH, USER, Manifest, Scale, build_sqlite, built
from taskcell.stores import codec
from taskcell.stores.cursor import bind_cursor, encode_cursor
from taskcell.stores.postgres import PostgresTaskStore
from taskcell.stores.sqlite import SQLiteTaskStore

OUT = Path("test-output/scale")
#: What this benchmark's own tasks carry, so the next run deletes them.
MARK = {"bench": "scale"}
TARGET_RATIO = 2.0
#: The probes' schedule: every minute (see :func:`prepare`).
PROBE_MINUTES = 1
STARTUP_TARGET = 3.0  # seconds
#: The banner's "web page" line: ``http://127.0.0.1:PORT/``.
_BANNER_URL = re.compile(r"(http://127\.0\.0\.1:\d+)/")


# -- servers ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Server:
    """A ``taskcell serve`` process on one database (an SQLite file, or a PostgreSQL URL)."""

    name: str
    db: Path | str
    log: Path
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    started: float = 0.0
    log_offset: int = 0
    #: Settings of this server (environment variables), over the benchmark's own.
    env: dict[str, str] = field(default_factory=dict)
    startups: list[float] = field(default_factory=list)
    #: CPU seconds the process had used when its health check first answered, each start.
    startup_cpu: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        # The server's own pruner (retention, once in taskcell) stays off: it would change the
        # cached database and weigh on every figure; measure_pruner measures it on a copy.
        env = {
            **os.environ,
            "TASKCELL_LOG_LEVEL": "WARNING",
            "TASKCELL_RETENTION_ENABLED": "false",
            **self.env,
        }
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.started = time.monotonic()
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "taskcell.cli",
                    "serve",
                    "--port",
                    "0",
                    "--db",
                    str(self.db),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def wait_healthy(self, timeout: float = 300.0) -> float:
        """Wait until ``/api/v1/health`` answers 200; answers seconds since :meth:`start`."""
        assert self.process is not None
        deadline = self.started + timeout
        while not self.url:
            text = self.log.read_bytes()[self.log_offset :].decode(errors="replace")
            found = _BANNER_URL.findall(text)
            if found:
                self.url = found[-1]
                break
            self._alive(deadline)
            time.sleep(0.01)
        while True:
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=5).status_code == 200:
                    seconds = time.monotonic() - self.started
                    self.startup_cpu.append(self.cpu_seconds())
                    return seconds
            except httpx.TransportError:
                pass
            self._alive(deadline)
            time.sleep(0.01)

    def _alive(self, deadline: float) -> None:
        assert self.process is not None
        tail = self.log.read_text(errors="replace")[-3000:]
        if self.process.poll() is not None:
            raise RuntimeError(f"the {self.name} server exited:\n{tail}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {self.name} server did not answer:\n{tail}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process, self.url = None, ""

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")


@contextmanager
def serving(*servers: Server) -> Iterator[None]:
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.startups.append(server.wait_healthy())
        yield
    finally:
        for server in servers:
            server.stop()


# -- preparing a database -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probes:
    """What the measures read: the recurring tasks made due, when, and tasks to GET."""

    due_ids: list[str]
    due_at: datetime
    task_ids: list[str]


def prepare(
    db: Path | str, manifest: Manifest, *, probes: int, due_at: datetime, sample: int
) -> Probes:
    """Delete this benchmark's earlier tasks, arm every schedule a day ahead but ``probes`` of
    them, due at ``due_at``; pick ``sample`` tasks at random for ``GET /tasks/{id}``."""
    if isinstance(db, str):
        return asyncio.run(
            prepare_postgres(db, manifest, probes=probes, due_at=due_at, sample=sample)
        )
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        ((key, value),) = MARK.items()
        own = [
            row[0]
            for row in conn.execute(
                "SELECT task_id FROM tasks WHERE json_extract(metadata, ?) = ?", (f"$.{key}", value)
            )
        ]
        conn.execute("BEGIN IMMEDIATE")
        for task_id in own:
            for table in ("runs", "events", "conversation_items", "tasks"):
                conn.execute(f"DELETE FROM {table} WHERE task_id = ?", (task_id,))
        # The stream task never fires (its log stays at its 10,000 events); the probes are the
        # recurring tasks after it.
        due_ids = manifest.recurring_ids[1 : 1 + probes]
        later = datetime.now(UTC) + timedelta(days=1)
        conn.execute(
            "UPDATE tasks SET next_run_at = ?, paused = 0 WHERE pattern = 'recurring'",
            (codec.ts(later),),
        )
        # The probes fire every minute from ``due_at``: their first fire finds their pages
        # cold (nothing read them since the database was written), the next ones as a
        # schedule that fires regularly finds them.
        conn.executemany(
            "UPDATE tasks SET next_run_at = ?,"
            " schedule_config = json_set(schedule_config, '$.interval_minutes', ?)"
            " WHERE task_id = ?",
            [(codec.ts(due_at), PROBE_MINUTES, task_id) for task_id in due_ids],
        )
        conn.execute("COMMIT")
        top = conn.execute("SELECT MAX(rowid) FROM tasks").fetchone()[0]
        task_ids: list[str] = []
        while len(task_ids) < sample:
            row = conn.execute(
                "SELECT task_id FROM tasks WHERE rowid >= ? LIMIT 1", (random.randint(1, top),)
            ).fetchone()
            if row is not None:
                task_ids.append(row[0])
    finally:
        conn.close()
    return Probes(due_ids, due_at, task_ids)


async def prepare_postgres(
    url: str, manifest: Manifest, *, probes: int, due_at: datetime, sample: int
) -> Probes:
    """:func:`prepare` on the PostgreSQL database ``url`` names (tasks sampled by a random id:
    ids are random hexadecimal, so the first id after one is a task picked evenly)."""
    conn = await asyncpg.connect(url)
    try:
        ((key, value),) = MARK.items()
        due_ids = manifest.recurring_ids[1 : 1 + probes]
        async with conn.transaction():
            own = await conn.fetch(
                "SELECT task_id FROM tasks WHERE metadata ->> $1 = $2", key, value
            )
            for table in ("runs", "events", "conversation_items", "tasks"):
                await conn.execute(
                    f"DELETE FROM {table} WHERE task_id = ANY($1::text[])",
                    [row["task_id"] for row in own],
                )
            await conn.execute(
                "UPDATE tasks SET next_run_at = $1, paused = FALSE WHERE pattern = 'recurring'",
                datetime.now(UTC) + timedelta(days=1),
            )
            await conn.executemany(  # every minute from due_at (see prepare)
                "UPDATE tasks SET next_run_at = $1, schedule_config = jsonb_set("
                "schedule_config, '{interval_minutes}', to_jsonb($2::int)) WHERE task_id = $3",
                [(due_at, PROBE_MINUTES, task_id) for task_id in due_ids],
            )
        # What autovacuum does between two runs (this server may run without it): rows an
        # earlier run left dead would otherwise weigh on the reused large database only.
        await conn.execute("VACUUM (ANALYZE)")
        task_ids: list[str] = []
        while len(task_ids) < sample:
            found = await conn.fetchval(
                "SELECT task_id FROM tasks WHERE task_id >= $1 ORDER BY task_id LIMIT 1",
                f"{random.getrandbits(128):032x}",
            )
            if found is not None:
                task_ids.append(found)
    finally:
        await conn.close()
    return Probes(due_ids, due_at, task_ids)


async def _pg_open(url: str) -> None:
    store = PostgresTaskStore(url, min_size=1, max_size=1)
    try:
        await store.open()
    finally:
        await store.close()


def store_open(db: Path | str) -> None:
    """Open and close the store on ``db``: what a server does first (schema versions)."""
    if isinstance(db, str):
        asyncio.run(_pg_open(db))
        return
    store = SQLiteTaskStore(db)
    _ = store.conn
    store.conn.close()


def deep_cursor(manifest: Manifest) -> str:
    """The cursor ``GET /tasks`` hands out after the task half-way down its list (the same
    functions make it as the API does, for the same scope)."""
    created, task_id = manifest.middle
    scope = "tasks " + json.dumps([USER, None, None, None, None], ensure_ascii=True)
    cursor = bind_cursor(encode_cursor(datetime.fromisoformat(created), task_id), scope)
    assert cursor is not None
    return cursor


# -- measuring ----------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass(slots=True)
class Pair:
    """One measure on both servers, in seconds (or another unit)."""

    large: list[float] = field(default_factory=list)
    empty: list[float] = field(default_factory=list)


def alternate(
    servers: tuple[Server, Server], count: int, measure: Callable[[Server, int], float]
) -> Pair:
    """``count`` samples of ``measure`` on each server, alternating (the first one changing)."""
    pair = Pair()
    for index in range(count):
        order = servers if index % 2 == 0 else servers[::-1]
        for server in order:
            value = measure(server, index)
            (pair.large if server is servers[0] else pair.empty).append(value)
    return pair


def timed(call: Callable[[], httpx.Response]) -> float:
    began = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - began
    response.raise_for_status()
    return elapsed


def first_byte(client: httpx.Client, url: str, last: int) -> float:
    """Seconds until the first event of the stream at ``url`` arrives. The stream is then read
    on to its event ``last`` (the log's end), so the server is done with it before the next
    sample: a reader that hangs up at once would leave the server replaying to a closed
    connection while the next sample is taken."""
    began = time.perf_counter()
    first: float | None = None
    end = f"id: {last}\r\n".encode()
    tail = b""
    with client.stream("GET", url, headers={"Accept": "text/event-stream"}) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            if first is None and b"id:" in chunk:
                first = time.perf_counter() - began
            data = tail + chunk
            if end in data:
                break
            tail = data[-len(end) :]
    if first is None:
        raise RuntimeError(f"the stream at {url} ended with no event")
    return first


def runs_of(client: httpx.Client, url: str, task_id: str, limit: int = 1) -> list[dict[str, Any]]:
    response = client.get(f"{url}/api/v1/tasks/{task_id}/runs", params={"limit": limit})
    response.raise_for_status()
    runs: list[dict[str, Any]] = response.json()["data"]["items"]
    return runs


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def lateness(
    client: httpx.Client, server: Server, probes: Probes, timeout: float, *, occurrence: int = 0
) -> list[float]:
    """Seconds each probe's run started after its due time (waiting for them to fire): its
    first occurrence (0), or a later one."""
    due_at = probes.due_at + timedelta(minutes=PROBE_MINUTES * occurrence)
    late: list[float] = []
    for task_id in probes.due_ids:
        found: list[dict[str, Any]] = []

        def fired(task_id: str = task_id, found: list[dict[str, Any]] = found) -> bool:
            for run in runs_of(client, server.url, task_id, limit=3):
                scheduled = run["scheduled_for"]
                if scheduled is not None and abs(
                    datetime.fromisoformat(scheduled) - due_at
                ) < timedelta(seconds=1):
                    found.append(run)
                    return True
            return False

        wait_for(fired, timeout, f"the probe {task_id} to fire on the {server.name} server")
        run = found[0]
        started = datetime.fromisoformat(run["started_at"])
        late.append((started - datetime.fromisoformat(run["scheduled_for"])).total_seconds())
    return late


def pause_probes(client: httpx.Client, server: Server, probes: Probes) -> None:
    """Stop the probes firing (every minute) once measured: the next measures run without."""
    for task_id in probes.due_ids:
        client.post(f"{server.url}/api/v1/tasks/{task_id}/pause").raise_for_status()


def create_body(query: str, agent: str) -> dict[str, Any]:
    return {"query": query, "agent_name": agent, "metadata": MARK}


_REMOVED = re.compile(rb'^taskcell_retention_removed_total\{kind="\w+"\} ([0-9.e+]+)$', re.M)


def _sample(text: bytes, name: str) -> float:
    """One sample of ``/metrics`` (a series with no labels, or with the labels in ``name``)."""
    found = re.search(rb"^" + re.escape(name.encode()) + rb" ([0-9.e+-]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


@dataclass(slots=True)
class PrunerState:
    """The server's pruner as its ``/metrics`` shows it."""

    removed: float
    rounds: float
    round_seconds: float
    writes: float
    writes_within_50ms: float

    @classmethod
    def read(cls, client: httpx.Client, server: Server) -> PrunerState:
        response = client.get(f"{server.url}/metrics")
        response.raise_for_status()
        text = response.content
        return cls(
            removed=sum(float(value) for value in _REMOVED.findall(text)),
            rounds=_sample(text, "taskcell_retention_rounds_total"),
            round_seconds=_sample(text, "taskcell_retention_last_round_seconds"),
            writes=_sample(text, "taskcell_retention_batch_seconds_count"),
            writes_within_50ms=_sample(text, 'taskcell_retention_batch_seconds_bucket{le="0.05"}'),
        )


#: A steady round: the once tasks that finished more than 360 days ago and all but the last
#: 399 runs of each recurring task (about 100,000 rows at the full scale): what a round finds
#: on a database pruned before, every task looked at, a few rows each. Its pruner starts 5 s
#: after the server (its interval).
STEADY_SETTINGS = {
    "TASKCELL_RETENTION_ENABLED": "true",
    "TASKCELL_RETENTION_DAYS": "360",
    "TASKCELL_RETENTION_RUNS": "399",
    "TASKCELL_RETENTION_INTERVAL_SECONDS": "5",
}
#: The default policy (30 days, the last 100 runs) turned on over a year of history: its first
#: round removes most of the 20 million rows, so its pace is measured over a window.
DEFAULT_SETTINGS = {
    "TASKCELL_RETENTION_ENABLED": "true",
    "TASKCELL_RETENTION_INTERVAL_SECONDS": "5",
}


def measure_pruner(db: Path, requests: int, limit: float, window: float = 120.0) -> list[Row]:
    """The pruner's throughput (rows/s) while the API serves, and its effect on create p99.

    On a copy of the large database (pruning changes it; the cached one keeps its history),
    served alone: first with retention off (create p99, the baseline); then with the server's
    own pruner on, creating tasks all the while, (1) a whole steady round
    (:data:`STEADY_SETTINGS`: its rows and seconds from ``/metrics``), then (2) the first round
    of the default policy over ``window`` seconds (:data:`DEFAULT_SETTINGS`: rows removed by
    then over the window). Rows/s include the pauses the pruner leaves the API. A round still
    going after ``limit`` seconds is reported as such."""
    if importlib.util.find_spec("taskcell.engine.pruner") is None:
        print("  pruner: not measured (taskcell has no pruner)")
        return []
    copy = db.with_name(f"{db.stem}-prune.db")
    began = time.monotonic()
    shutil.copyfile(db, copy)
    print(f"  pruner: copied the database in {time.monotonic() - began:.0f} s")
    rows: list[Row] = []
    log = OUT / "logs" / "prune.log"
    body = create_body("hi", "echo")
    try:
        quiet_server = Server("prune", copy, log)
        with serving(quiet_server), httpx.Client(timeout=60) as client:
            url = f"{quiet_server.url}/api/v1/tasks"
            quiet = [timed(lambda: client.post(url, json=body)) for _ in range(requests)]
        steady = Server("prune", copy, log, env=STEADY_SETTINGS)
        with serving(steady), httpx.Client(timeout=60) as client:
            url = f"{steady.url}/api/v1/tasks"
            busy: list[float] = []
            started = time.monotonic()
            state = PrunerState.read(client, steady)
            looked = time.monotonic()
            while state.rounds < 1 and time.monotonic() - started < limit:
                busy.append(timed(lambda: client.post(url, json=body)))
                if time.monotonic() - looked > 0.5:
                    state, looked = PrunerState.read(client, steady), time.monotonic()
        if state.rounds < 1:
            print(
                f"  pruner, steady round: not over within {limit:g} s"
                f" ({state.removed:,.0f} rows removed by then)"
            )
        else:
            print(
                f"  pruner, steady round (360 days, last 399 runs): {state.removed:,.0f} rows in"
                f" {state.round_seconds:.1f} s; {state.writes:.0f} writes,"
                f" {state.writes_within_50ms:.0f} of them within 50 ms; {len(busy)} creates"
            )
            report(
                rows,
                Row(
                    measure="pruner, a steady round over every task (360 days, last 399 runs)",
                    taskcell=state.round_seconds,
                    unit="s",
                ),
            )
            report(
                rows,
                Row(
                    measure="pruner while the API serves, steady round",
                    taskcell=state.removed / max(state.round_seconds, 1e-9),
                    unit="rows/s",
                ),
            )
            latency_rows(
                rows,
                "POST /tasks during a steady round (baseline: not pruning)",
                Pair(large=busy, empty=quiet),
                names=("pruning", "not pruning"),
            )
        first = Server("prune", copy, log, env=DEFAULT_SETTINGS)
        with serving(first), httpx.Client(timeout=60) as client:
            url = f"{first.url}/api/v1/tasks"
            busy = []
            start = time.monotonic() + 5  # the first round: one interval after start-up
            while time.monotonic() - start < window:
                busy.append(timed(lambda: client.post(url, json=body)))
            state = PrunerState.read(client, first)
        print(
            f"  pruner, default policy's first round: {state.removed:,.0f} rows in its first"
            f" {window:.0f} s ({'over' if state.rounds else 'still going'}); {state.writes:.0f}"
            f" writes, {state.writes_within_50ms:.0f} of them within 50 ms; {len(busy)} creates"
        )
        report(
            rows,
            Row(
                measure="pruner while the API serves, default policy's first round",
                taskcell=state.removed / window,
                unit="rows/s",
            ),
        )
        report(
            rows,
            Row(
                measure="pruning writes within 50 ms, default policy's first round",
                taskcell=100 * state.writes_within_50ms / max(state.writes, 1),
                unit="%",
            ),
        )
        latency_rows(
            rows,
            "POST /tasks during the default policy's first round (baseline: not pruning)",
            Pair(large=busy, empty=quiet),
            names=("pruning", "not pruning"),
        )
    finally:
        for suffix in ("", "-wal", "-shm", ".serve.lock"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)
    return rows


# -- the run ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    scale: Scale
    #: The large database: an SQLite file, or a PostgreSQL URL.
    db: Path | str
    requests: int
    streams: int
    probes: int
    killed: int
    idle_seconds: float
    startup_allowance: float
    prune_seconds: float
    rounds: int
    rebuild: bool
    pruner: bool = True


def ensure_built(path: Path | str, scale: Scale, rebuild: bool, label: str) -> Manifest:
    manifest: Manifest | None = None
    if not rebuild:
        if isinstance(path, str):
            manifest = scale_build_pg.built(path, scale)
        else:
            manifest = built(path, scale)
    if manifest is not None:
        print(f"{label}: reusing {path} (built in {manifest.seconds:.0f} s at {manifest.built_at})")
        return manifest
    print(
        f"{label}: building {path}: {scale.tasks:,} tasks ({scale.recurring:,} recurring),"
        f" {scale.runs:,} runs, {scale.events:,} events...",
        flush=True,
    )
    if isinstance(path, str):
        manifest = scale_build_pg.build_postgres(path, scale, progress=True)
        size = scale_build_pg.size_bytes(path) / 2**30
    else:
        manifest = build_sqlite(path, scale, progress=True)
        size = path.stat().st_size / 2**30
    print(f"{label}: built in {manifest.seconds:.0f} s ({size:.1f} GiB)")
    return manifest


def empty_scale(scale: Scale) -> Scale:
    """The empty database: the armed schedules and the stream task, no other history."""
    stream_runs = scale.stream_events // 4
    return Scale(
        tasks=scale.recurring,
        recurring=scale.recurring,
        runs=stream_runs,
        events=scale.stream_events,
        stream_events=scale.stream_events,
    )


def ratio_row(
    measure: str,
    large: float,
    empty: float,
    unit: str,
    *,
    target: float = TARGET_RATIO,
    baseline_name: str = "empty database",
) -> Row:
    ratio = large / empty if empty else float("inf")
    return Row(
        measure=measure,
        taskcell=large,
        unit=unit,
        baseline=empty,
        baseline_name=baseline_name,
        ratio=ratio,
        target=f"ratio <= {target:g}",
        met=ratio <= target,
    )


def report(rows: list[Row], row: Row) -> None:
    rows.append(row)
    verdict = "" if row.met is None else ("  met" if row.met else "  NOT met")
    ratio = "" if row.ratio is None else f"  ratio {row.ratio:.2f}"
    name = "empty" if row.baseline_name == "empty database" else row.baseline_name
    baseline = "" if row.baseline is None else f"  {name} {row.baseline:,.2f} {row.unit}"
    which = "large " if row.baseline_name == "empty database" else ""
    print(f"  {row.measure:52s} {which}{row.taskcell:,.2f} {row.unit}{baseline}{ratio}{verdict}")


def ms(values: list[float], fraction: float) -> float:
    return percentile(values, fraction) * 1000


def latency_rows(
    rows: list[Row],
    label: str,
    pair: Pair,
    *,
    use: str = "p99",
    names: tuple[str, str] = ("large", "empty"),
) -> None:
    fraction = 0.99 if use == "p99" else 0.5
    print(
        f"  {label}: {names[0]} p50 {ms(pair.large, 0.5):.1f} ms p99 {ms(pair.large, 0.99):.1f}"
        f" ms; {names[1]} p50 {ms(pair.empty, 0.5):.1f} ms p99 {ms(pair.empty, 0.99):.1f} ms"
        f" ({len(pair.large)} and {len(pair.empty)})"
    )
    baseline_name = "empty database" if names[1] == "empty" else names[1]
    large, empty = ms(pair.large, fraction), ms(pair.empty, fraction)
    report(rows, ratio_row(f"{label} {use}", large, empty, "ms", baseline_name=baseline_name))


def api_measures(
    servers: tuple[Server, Server],
    manifests: tuple[Manifest, Manifest],
    probes: tuple[Probes, Probes],
    opts: Options,
) -> list[Row]:
    rows: list[Row] = []
    large, empty = servers
    cursors = {large.name: deep_cursor(manifests[0]), empty.name: deep_cursor(manifests[1])}
    sample = {large.name: probes[0].task_ids, empty.name: probes[1].task_ids}
    streams = {large.name: manifests[0].stream_task_id, empty.name: manifests[1].stream_task_id}
    with httpx.Client(timeout=60) as client:
        for server in servers:  # warm up: a connection, the routes, the statement cache
            client.get(f"{server.url}/api/v1/tasks", params={"limit": 1}).raise_for_status()
        creates = alternate(
            servers,
            opts.requests,
            lambda s, i: timed(
                lambda: client.post(f"{s.url}/api/v1/tasks", json=create_body("hi", "echo"))
            ),
        )
        latency_rows(rows, "POST /tasks", creates)
        first = alternate(
            servers,
            opts.requests,
            lambda s, i: timed(lambda: client.get(f"{s.url}/api/v1/tasks", params={"limit": 50})),
        )
        latency_rows(rows, "GET /tasks first page", first)
        depth = f"{manifests[0].scale.tasks // 2:,}"
        deep = alternate(
            servers,
            opts.requests,
            lambda s, i: timed(
                lambda: client.get(
                    f"{s.url}/api/v1/tasks", params={"limit": 50, "cursor": cursors[s.name]}
                )
            ),
        )
        latency_rows(rows, f"GET /tasks page {depth} deep (empty: half-way)", deep)
        one = alternate(
            servers,
            opts.requests,
            lambda s, i: timed(
                lambda: client.get(
                    f"{s.url}/api/v1/tasks/{sample[s.name][i % len(sample[s.name])]}"
                )
            ),
        )
        latency_rows(rows, "GET /tasks/{id}", one)
        scrapes = alternate(
            servers,
            max(10, opts.requests // 10),
            lambda s, i: timed(lambda: client.get(f"{s.url}/metrics")),
        )
        latency_rows(rows, "GET /metrics", scrapes)
        for start in ("start", "latest_run"):
            pair = alternate(
                servers,
                opts.streams,
                lambda s, i, start=start: first_byte(
                    client,
                    f"{s.url}/api/v1/tasks/{streams[s.name]}/events?from={start}",
                    manifests[0].scale.stream_events,
                ),
            )
            latency_rows(rows, f"SSE first event, 10,000 events, from={start}", pair, use="p50")
    return rows


def killed_runs(client: httpx.Client, server: Server, count: int) -> list[str]:
    """Start ``count`` long runs of the slow agent; answers their task ids once all run."""
    ids = []
    for _ in range(count):
        response = client.post(
            f"{server.url}/api/v1/tasks",
            json={**create_body("stream for 600 seconds", "slow"), "max_attempts": 1},
        )
        response.raise_for_status()
        ids.append(response.json()["data"]["task_id"])
    for task_id in ids:
        wait_for(
            lambda task_id=task_id: bool(
                (runs := runs_of(client, server.url, task_id)) and runs[0]["status"] == "running"
            ),
            60,
            "the slow runs to start",
        )
    return ids


def recovery(servers: tuple[Server, Server], opts: Options) -> tuple[Pair, Pair]:
    """Kill each server mid-run and restart it at once, one server after the other (the other
    one idle, then stopped); answers (recovery, start-up) seconds. Each is restarted right
    after its own kill: on PostgreSQL a killed run is recovered once its lease expires, so a
    server restarted later than its kill would find its leases expired already."""
    recovered, startup = Pair(), Pair()
    with httpx.Client(timeout=60) as client:
        for server in servers:
            victims = killed_runs(client, server, opts.killed)
            assert server.process is not None
            server.process.kill()
            server.process.wait()
            server.process, server.url = None, ""
            server.start()
            seconds = server.wait_healthy()
            (startup.large if server is servers[0] else startup.empty).append(seconds)
            for task_id in victims:
                wait_for(
                    lambda task_id=task_id, url=server.url: (
                        runs_of(client, url, task_id)[0]["status"] == "interrupted"
                    ),
                    300,
                    "the killed runs to be recovered",
                )
            seconds = time.monotonic() - server.started
            (recovered.large if server is servers[0] else recovered.empty).append(seconds)
            server.stop()
    return recovered, startup


def startups(servers: tuple[Server, Server], rounds: int) -> Pair:
    pair = Pair()
    for index in range(rounds):
        for server in servers if index % 2 == 0 else servers[::-1]:
            server.start()
            seconds = server.wait_healthy()
            (pair.large if server is servers[0] else pair.empty).append(seconds)
            server.stop()
    return pair


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def main(opts: Options, json_path: Path | None) -> None:
    began = time.monotonic()
    print(load())
    rows: list[Row] = []
    large_manifest = ensure_built(opts.db, opts.scale, opts.rebuild, "large")
    empty_db = (
        scale_build_pg.with_database(opts.db, scale_build_pg.database_name(opts.db) + "_empty")
        if isinstance(opts.db, str)
        else opts.db.with_name(opts.db.stem + "-empty.db")
    )
    empty_manifest = ensure_built(empty_db, empty_scale(opts.scale), True, "empty")
    rows.append(
        Row(measure="building the large database", taskcell=large_manifest.seconds, unit="s")
    )
    manifests = (large_manifest, empty_manifest)
    # The probes fall due after the servers start and the idle window ends.
    prepared = time.monotonic()
    for db in (opts.db, empty_db):
        store_open(db)  # schema versions a newer taskcell adds are applied here, not timed
    print(f"schema versions applied in {time.monotonic() - prepared:.1f} s")
    # The probes fall due once the servers have started and the idle window has ended.
    due_at = datetime.now(UTC) + timedelta(seconds=opts.idle_seconds + opts.startup_allowance)
    prepared = time.monotonic()
    probes = (
        prepare(opts.db, large_manifest, probes=opts.probes, due_at=due_at, sample=opts.requests),
        prepare(empty_db, empty_manifest, probes=opts.probes, due_at=due_at, sample=opts.requests),
    )
    print(f"prepared both databases in {time.monotonic() - prepared:.1f} s")
    logs = OUT / "logs"
    large = Server("large", opts.db, logs / "large.log")
    empty = Server("empty", empty_db, logs / "empty.log")
    servers = (large, empty)
    print(
        f"measuring (large: {opts.scale.tasks:,} tasks, {opts.scale.runs:,} runs,"
        f" {opts.scale.events:,} events; empty: {empty_manifest.scale.tasks:,} armed schedules"
        " and the stream task):"
    )
    with serving(*servers):
        time.sleep(2)  # start-up recovery runs once each server answers
        window = min(opts.idle_seconds, (due_at - datetime.now(UTC)).total_seconds() - 3)
        if window >= 3:
            cpu = {s.name: s.cpu_seconds() for s in servers}
            time.sleep(window)
            idle = {s.name: (s.cpu_seconds() - cpu[s.name]) / window * 100 for s in servers}
            print(f"  idle window {window:.0f} s, {opts.scale.recurring:,} armed schedules each")
            report(rows, ratio_row("scheduler idle CPU", idle["large"], idle["empty"], "%"))
        else:
            print("  scheduler idle CPU: not measured (the servers took their allowance to start)")
        with httpx.Client(timeout=60) as client:
            limit = (due_at - datetime.now(UTC)).total_seconds() + 120
            cold = Pair(
                lateness(client, large, probes[0], limit), lateness(client, empty, probes[1], limit)
            )
            latency_rows(
                rows, f"scheduler lateness, first fire after start-up, {opts.probes} at once,", cold
            )
            limit += 60 * PROBE_MINUTES
            late = Pair(
                *(
                    lateness(client, server, probe, limit, occurrence=1)
                    for server, probe in zip(servers, probes, strict=True)
                )
            )
            latency_rows(rows, f"scheduler lateness, {opts.probes} due at once,", late)
            for server, probe in zip(servers, probes, strict=True):
                pause_probes(client, server, probe)
        rows += api_measures(servers, manifests, probes, opts)
        rss = {s.name: s.rss_mib() for s in servers}
        report(rows, ratio_row("resident memory (VmRSS)", rss["large"], rss["empty"], "MiB"))
        recovered, after_kill = recovery(servers, opts)
    print(
        f"  recovery, from health answering to every killed run recovered: large"
        f" {recovered.large[0] - after_kill.large[0]:.2f} s,"
        f" empty {recovered.empty[0] - after_kill.empty[0]:.2f} s"
    )
    report(
        rows,
        ratio_row(
            f"recovery after SIGKILL ({opts.killed} runs)",
            recovered.large[0],
            recovered.empty[0],
            "s",
        ),
    )
    pair = startups(servers, opts.rounds)
    pruned: list[Row] = []
    if isinstance(opts.db, str):
        print("  pruner: not measured on PostgreSQL (its measure copies an SQLite file)")
    elif opts.pruner:
        try:
            pruned = measure_pruner(opts.db, opts.requests // 2, opts.prune_seconds)
        except Exception as exc:  # the other figures are still written
            print(f"  pruner: the measure failed: {exc!r}")
    pair.large += after_kill.large + large.startups
    pair.empty += after_kill.empty + empty.startups
    print(
        f"  start-up samples: large {', '.join(f'{s:.2f}' for s in pair.large)} s;"
        f" empty {', '.join(f'{s:.2f}' for s in pair.empty)} s; CPU seconds used by then:"
        f" large {', '.join(f'{s:.2f}' for s in large.startup_cpu)};"
        f" empty {', '.join(f'{s:.2f}' for s in empty.startup_cpu)}"
    )
    median = statistics.median(pair.large)
    report(
        rows,
        ratio_row("taskcell serve start-up (median)", median, statistics.median(pair.empty), "s"),
    )
    report(
        rows,
        Row(
            measure="taskcell serve start-up, large (median)",
            taskcell=median,
            unit="s",
            target=f"< {STARTUP_TARGET:g} s",
            met=median < STARTUP_TARGET,
        ),
    )
    report(
        rows,
        ratio_row(
            "start-up CPU seconds (median)",
            statistics.median(large.startup_cpu),
            statistics.median(empty.startup_cpu),
            "s",
        ),
    )
    rows += pruned
    print(f"  {load()}")
    missed = [row.measure for row in rows if row.met is False]
    print(
        f"{len(rows)} figures, {len(missed)} targets not met"
        + (f": {'; '.join(missed)}" if missed else "")
        + f" ({time.monotonic() - began:.0f} s in all)"
    )
    write_rows(json_path, rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a hundredth of the scale")
    parser.add_argument("--db", type=Path, help="the large database (built once, then reused)")
    parser.add_argument("--rebuild", action="store_true", help="build the large database anew")
    parser.add_argument("--requests", type=int, default=300, help="samples of each request")
    parser.add_argument("--streams", type=int, default=20, help="samples of each stream")
    parser.add_argument("--probes", type=int, default=50, help="schedules due at once")
    parser.add_argument("--killed", type=int, default=10, help="runs killed with the server")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument(
        "--startup-allowance",
        type=float,
        default=90.0,
        help="seconds the servers have to start before the idle window (then the probes)",
    )
    parser.add_argument(
        "--prune-seconds", type=float, default=300.0, help="longest the pruner's round may take"
    )
    parser.add_argument("--rounds", type=int, default=3, help="start-ups of each server")
    parser.add_argument(
        "--no-pruner", action="store_true", help="leave the pruner's measure out (no copy)"
    )
    parser.add_argument("--json", type=Path, help="write the summary rows to this file")
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=scale_build_pg.DEFAULT_URL,
        metavar="URL",
        help="on PostgreSQL, a tenth of the scale: the large database URL names, built and"
        f" reused (default {scale_build_pg.DEFAULT_URL}; its name plus _small with --small)",
    )
    args = parser.parse_args()
    db: Path | str
    if args.postgres:
        scale = SMALL if args.small else TENTH
        db = args.postgres
        if args.small and db == scale_build_pg.DEFAULT_URL:
            db = scale_build_pg.with_database(db, scale_build_pg.database_name(db) + "_small")
    else:
        scale = SMALL if args.small else FULL
        db = args.db or OUT / ("scale-small.db" if args.small else "scale-full.db")
    if args.small:
        args.requests, args.streams = min(args.requests, 100), min(args.streams, 20)
        args.probes, args.idle_seconds = min(args.probes, 20), min(args.idle_seconds, 10.0)
        args.startup_allowance = min(args.startup_allowance, 40.0)
    main(
        Options(
            scale=scale,
            db=db,
            requests=args.requests,
            streams=args.streams,
            probes=args.probes,
            killed=args.killed,
            idle_seconds=args.idle_seconds,
            startup_allowance=args.startup_allowance,
            prune_seconds=args.prune_seconds,
            rounds=args.rounds,
            rebuild=args.rebuild,
            pruner=not args.no_pruner,
        ),
        args.json,
    )
