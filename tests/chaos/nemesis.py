"""The nemesis: injects one fault at a time, and a monitor that notices deaths.

Each fault's ``inject`` runs in a worker thread (the workload keeps running in the event loop)
and returns when the fault is over: the process restarted or resumed, the database back. How
long a fault lasts (a pause past the lease, a 20 s outage) is the fault itself; everything else
waits on conditions. A process that exits without the nemesis asking is a death: the monitor
records it (it violates "every process alive") and restarts the process so the run goes on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import httpx

from pg_instance import PgInstance

from .checker import ALIVE, Violation
from .nodes import Node
from .report import Phase

OUTAGE_SECONDS = 20.0
CLOCK_OFFSET = "+30s"
#: How long a process may take to start, or to answer again after a fault, before the nemesis
#: goes on without it (noted in the report; one still not answering at the end is a violation).
HEALTHY_TIMEOUT = 60.0
KILL_AFTER_BURST = 0.4


class FullDisk:
    """A small tmpfs the SQLite file lives on, which ``fill`` fills to the last byte."""

    def __init__(self, mountpoint: Path, size: str = "256m") -> None:
        self.mountpoint = mountpoint
        self.filler = mountpoint / "filler"
        mountpoint.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mountpoint)],
            check=True,
            capture_output=True,
        )

    def fill(self) -> None:
        """Write zeros until the file system has no byte left (ENOSPC)."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for size in (1 << 20, 4096, 1):
                chunk = b"\0" * size
                try:
                    while os.write(fd, chunk):
                        pass
                except OSError:
                    pass
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        self.free()
        subprocess.run(["umount", "-l", str(self.mountpoint)], check=False, capture_output=True)


def _last_words(node: Node) -> str:
    """The line of its output that best says why a process ended."""
    lines = [line for line in node.log_tail(8000).splitlines() if line.strip()]
    critical = [line for line in lines if " CRITICAL " in line]
    # The last line of a traceback: "module.Error: message", not indented, not a log record.
    raised = [line for line in lines if not line[0].isspace() and not line.startswith("20")]
    return (critical or raised or lines or ["(no output)"])[-1][:200]


def _story(node: Node, lines: int = 12) -> str:
    """The end of a dead life's output (log records and tracebacks' last lines), for the report."""
    told = [
        line[:220]
        for line in node.log_tail(20000).splitlines()
        if line.strip() and not line[0].isspace() and "retrying" not in line
    ]
    return "\n".join(f"    {line}" for line in told[-lines:])


class Nemesis:
    """Faults on the nodes (and the database), in turn, with a record of what was injected."""

    def __init__(
        self,
        nodes: list[Node],
        client: httpx.AsyncClient,
        *,
        lease: float,
        postgres: PgInstance | None = None,
        disk: FullDisk | None = None,
    ) -> None:
        self.nodes = nodes
        self.client = client
        self.lease = lease
        self.postgres = postgres
        self.disk = disk
        self.phases: list[Phase] = []
        self.deaths: list[Violation] = []
        self.notes: list[str] = []
        self._victim = 0
        #: When many recurring occurrences fall due next (wall clock), if known.
        self.next_burst: Callable[[], float | None] = lambda: None

    # -- the faults (each runs in a worker thread and returns when the fault is over) --

    def _next_victim(self) -> Node:
        node = self.nodes[self._victim % len(self.nodes)]
        self._victim += 1
        return node

    def _on_victim(self, body: Callable[[Node], None]) -> None:
        node = self._next_victim()
        with node.lock:
            body(node)

    def sigkill(self) -> None:
        burst = self.next_burst()
        if burst is not None:
            # Aim at the moment the schedulers claim a burst of due occurrences.
            time.sleep(max(0.0, burst + KILL_AFTER_BURST - time.time()))

        def body(node: Node) -> None:
            node.kill()
            node.start()
            node.wait_healthy(HEALTHY_TIMEOUT)

        self._on_victim(body)

    def sigstop(self) -> None:
        def body(node: Node) -> None:
            node.signal(signal.SIGSTOP)
            time.sleep(2.5 * self.lease + 1)  # the fault: paused well past its lease
            node.signal(signal.SIGCONT)

        self._on_victim(body)

    def clock_skew(self) -> None:
        def body(node: Node) -> None:
            node.terminate()
            node.start(clock_offset=CLOCK_OFFSET)
            node.wait_healthy(HEALTHY_TIMEOUT)
            time.sleep(max(20.0, 5 * self.lease))  # the fault: serving with its clock off
            node.terminate()
            node.start()
            node.wait_healthy(HEALTHY_TIMEOUT)

        self._on_victim(body)

    def postgres_restart(self) -> None:
        assert self.postgres is not None
        self.postgres.restart()

    def postgres_outage(self) -> None:
        assert self.postgres is not None
        self.postgres.stop()
        try:
            time.sleep(OUTAGE_SECONDS)  # the fault: the database away for 20 s
        finally:
            self.postgres.start()

    def disk_full(self) -> None:
        assert self.disk is not None
        self.disk.fill()
        try:
            time.sleep(10.0)  # the fault: no byte left for 10 s while the workload writes
        finally:
            self.disk.free()

    FAULTS: ClassVar[dict[str, str]] = {
        "sigkill": "sigkill",
        "sigstop": "sigstop",
        "postgres-restart": "postgres_restart",
        "postgres-outage": "postgres_outage",
        "clock+30s": "clock_skew",
        "disk-full": "disk_full",
    }

    async def inject(self, fault: str) -> None:
        """Inject ``fault`` (a key of ``FAULTS``), then wait until every node answers again."""
        self.phases.append(Phase(fault, datetime.now(UTC)))
        action: Callable[[], None] = getattr(self, self.FAULTS[fault])
        await asyncio.to_thread(action)
        sick = await self.wait_healthy(HEALTHY_TIMEOUT)
        for node in sick:
            self.notes.append(
                f"{HEALTHY_TIMEOUT:.0f} s after {fault}, {node.name}: {await self._health(node)}"
            )

    # -- health and deaths --

    async def _healthy(self, node: Node) -> bool:
        if not node.alive():
            return False
        try:
            response = await self.client.get(f"{node.url}/api/v1/health", timeout=5)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def wait_healthy(self, patience: float) -> list[Node]:
        """Wait until every node answers health with 200; answers those that never did."""
        deadline = time.monotonic() + patience
        while True:
            sick = [n for n in self.nodes if not await self._healthy(n)]
            if not sick or time.monotonic() > deadline:
                return sick
            await asyncio.sleep(0.5)

    def _revive(self, node: Node, patience: float) -> None:
        """Restart a dead node until it answers (the database may still be away)."""
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            if not node.alive():
                node.start()
            if node.wait_healthy(30):
                return
            time.sleep(1)

    async def monitor(self, stop: asyncio.Event) -> None:
        """Record every death the nemesis did not cause, and bring the node back."""
        while not stop.is_set():
            for node in self.nodes:
                if node.alive() or node.expected_down or not node.lock.acquire(blocking=False):
                    continue
                try:
                    if node.alive() or node.expected_down:
                        continue
                    code = node.process.returncode if node.process else None
                    self.deaths.append(
                        Violation(
                            ALIVE,
                            node.name,
                            f"{node.name} (pid {node.pid}) exited with {code}: {_last_words(node)}",
                            datetime.now(UTC),
                        )
                    )
                    self.notes.append(f"{node.name} (pid {node.pid}) died; its output ended:")
                    self.notes.append(_story(node))
                    starts = node.lives
                    await asyncio.to_thread(self._revive, node, 300)
                    if node.lives - starts > 1:
                        self.notes.append(
                            f"{node.name} took {node.lives - starts} starts to come back "
                            "(a start that cannot reach the database exits)"
                        )
                finally:
                    node.lock.release()
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass

    async def final_check(self) -> list[Violation]:
        """Every node alive and answering at the end (given a while to recover)."""
        sick = await self.wait_healthy(HEALTHY_TIMEOUT)
        return [
            Violation(ALIVE, node.name, f"{node.name} at the end: {await self._health(node)}")
            for node in sick
        ]

    async def _health(self, node: Node) -> str:
        """What a node's health answers (or why it does not), for the report."""
        if not node.alive():
            return f"exited: {_last_words(node)}"
        try:
            response = await self.client.get(f"{node.url}/api/v1/health", timeout=5)
        except httpx.HTTPError as exc:
            return f"health unanswered ({type(exc).__name__})"
        problem = response.json().get("data", {}).get("problem")
        return f"health {response.status_code}: {problem}"


def can_mount() -> str | None:
    """Why a tmpfs cannot be mounted here (to fill a disk), or None."""
    if os.geteuid() != 0:
        return "not root: cannot mount a small tmpfs to fill"
    return None
