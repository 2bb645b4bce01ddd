"""The workload: once tasks of four demo agents, recurring tasks, replies, and SSE readers.

Everything a client was told is recorded for the checker: the tasks acknowledged with 201
(``acked``) and, for every once task, what a reader on another process than the one that runs it
streamed (``streams``), reconnecting with ``Last-Event-ID`` wherever it can when its process
goes away. Requests that fail while a fault is on are counted, not judged: the checker judges
what was acknowledged and stored.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from .nodes import Node

#: (agent, query) of the once tasks, in turn.
ONCE_KINDS = [
    ("echo", "chaos is a ladder of small words"),
    ("slow", "stream for 4 seconds"),
    ("asker", "Say hello"),
    ("flaky", "fail 1 times"),
]
#: (agent, query) of the recurring tasks (every minute), in turn: mostly quick, so that many
#: occurrences fall due together (a burst, which the SIGKILL aims at), and a few long ones.
RECURRING_KINDS = [("slow", "stream for 3 seconds"), *[("echo", "tick tock")] * 5]
RECURRING_SECONDS = 60.0

WRITE_TIMEOUT = httpx.Timeout(15.0)
#: Longer than the servers' 15 s keep-alive comments, so a silent stream means a stuck server.
READ_TIMEOUT = httpx.Timeout(10.0, read=40.0)


@dataclass
class Acked:
    task_id: str
    agent: str
    pattern: str
    node: str
    at: float


@dataclass
class Stream:
    """What one reader of one task saw, in order (duplicates and gaps included)."""

    task_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    ended: bool = False


class Workload:
    """Drives the nodes with a mixed workload from the test's event loop."""

    def __init__(self, nodes: list[Node], client: httpx.AsyncClient) -> None:
        self.nodes = nodes
        self.client = client
        self.acked: dict[str, Acked] = {}
        self.streams: dict[str, Stream] = {}
        self.failures: Counter[str] = Counter()
        self.unanswered: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._turn = itertools.count()
        self._grid: float | None = None

    def _spawn(self, coroutine: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coroutine, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _order(self, first: int) -> list[Node]:
        return [self.nodes[(first + i) % len(self.nodes)] for i in range(len(self.nodes))]

    async def _create(self, body: dict[str, Any], first: int) -> Acked | None:
        """POST /tasks to the first node that answers 201 (trying each once)."""
        for node in self._order(first):
            try:
                response = await self.client.post(
                    f"{node.url}/api/v1/tasks", json=body, timeout=WRITE_TIMEOUT
                )
            except httpx.HTTPError as exc:
                self.failures[f"create: {type(exc).__name__}"] += 1
                continue
            if response.status_code != 201:
                self.failures[f"create: HTTP {response.status_code}"] += 1
                continue
            task_id = str(response.json()["data"]["task_id"])
            acked = Acked(
                task_id, body["agent_name"], body.get("pattern", "once"), node.name, time.time()
            )
            self.acked[task_id] = acked
            return acked
        return None

    async def start_recurring(self, count: int) -> None:
        """Create ``count`` recurring tasks (interval one minute), spread over the nodes."""
        for i in range(count):
            agent, query = RECURRING_KINDS[i % len(RECURRING_KINDS)]
            body = {
                "query": query,
                "agent_name": agent,
                "pattern": "recurring",
                "schedule_config": {"interval_minutes": 1},
            }
            acked = await self._create(body, i)
            assert acked is not None, "no node accepted a recurring task"
            if self._grid is None:
                self._grid = acked.at

    def next_burst(self) -> float | None:
        """When the recurring tasks fall due next (wall clock, about: they share one grid)."""
        if self._grid is None:
            return None
        passed = (time.time() - self._grid) // RECURRING_SECONDS + 1
        return self._grid + passed * RECURRING_SECONDS

    async def submit_once(self) -> None:
        """Submit the next once task in turn; read it elsewhere; answer it if it asks."""
        turn = next(self._turn)
        agent, query = ONCE_KINDS[turn % len(ONCE_KINDS)]
        first = turn % len(self.nodes)
        acked = await self._create({"query": query, "agent_name": agent}, first)
        if acked is None:
            return
        where = next(i for i, n in enumerate(self.nodes) if n.name == acked.node)
        self._spawn(self._read(acked.task_id, where + 1), f"reader {acked.task_id}")
        if agent == "asker":
            self._spawn(self._answer(acked.task_id, where), f"answer {acked.task_id}")

    async def run(self, stop: asyncio.Event, pace: float) -> None:
        """Submit once tasks every ``pace`` seconds until ``stop`` is set."""
        while not stop.is_set():
            self._spawn(self.submit_once(), "submit")
            try:
                await asyncio.wait_for(stop.wait(), pace)
            except TimeoutError:
                pass

    async def _status(self, task_id: str, first: int) -> str | None:
        for node in self._order(first):
            try:
                response = await self.client.get(
                    f"{node.url}/api/v1/tasks/{task_id}", timeout=WRITE_TIMEOUT
                )
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                return str(response.json()["data"]["status"])
        return None

    async def _answer(self, task_id: str, runner: int) -> None:
        """Wait until the task asks, then answer it through another node than its runner; for
        as long as the workload runs (:meth:`close` ends it): a task recovered after a fault
        may ask again, long after it was created."""
        self.unanswered.add(task_id)
        while True:
            status = await self._status(task_id, runner + 1)
            if status in {"completed", "failed", "cancelled"}:
                self.unanswered.discard(task_id)
                return
            if status == "waiting_input":
                for node in self._order(runner + 1):
                    if len(self.nodes) > 1 and node is self.nodes[runner % len(self.nodes)]:
                        continue  # in a cluster, the reply goes through another process
                    try:
                        response = await self.client.post(
                            f"{node.url}/api/v1/tasks/{task_id}/input",
                            json={"text": "Ada"},
                            timeout=WRITE_TIMEOUT,
                        )
                    except httpx.HTTPError as exc:
                        self.failures[f"input: {type(exc).__name__}"] += 1
                        continue
                    if response.status_code == 200:
                        self.unanswered.discard(task_id)
                        break  # and go on watching: a recovered attempt may ask again
                    self.failures[f"input: HTTP {response.status_code}"] += 1
            await asyncio.sleep(0.3)

    async def _read(self, task_id: str, first: int) -> None:
        """Stream the task's events to the end, resuming after the last seq on any node."""
        stream = self.streams.setdefault(task_id, Stream(task_id))
        index = first
        while not stream.ended:
            node = self.nodes[index % len(self.nodes)]
            last = stream.events[-1]["seq"] if stream.events else 0
            headers = {"Last-Event-ID": str(last)} if last else {}
            try:
                url = f"{node.url}/api/v1/tasks/{task_id}/events"
                async with self.client.stream(
                    "GET", url, headers=headers, timeout=READ_TIMEOUT
                ) as response:
                    if response.status_code != 200:
                        raise httpx.HTTPStatusError(
                            "refused", request=response.request, response=response
                        )
                    stream.nodes.append(node.name)
                    async for line in response.aiter_lines():
                        if line.startswith("data:"):
                            stream.events.append(json.loads(line[5:]))
                if stream.events and stream.events[-1]["event"] == "done":
                    status = await self._status(task_id, index)
                    stream.ended = status in {"completed", "failed", "cancelled"}
            except httpx.HTTPError:
                index += 1  # that node is down, paused or refusing: try the next
            if not stream.ended:
                await asyncio.sleep(0.5)

    async def wait_readers(self, patience: float) -> None:
        """Wait until every reader saw its stream end, or ``patience`` s; then stop them all."""
        readers = [t for t in self._background if t.get_name().startswith("reader")]
        if readers:
            await asyncio.wait(readers, timeout=patience)
        await self.close()

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
