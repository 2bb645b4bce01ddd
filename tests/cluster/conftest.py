"""Three real ``taskcell serve`` processes on one PostgreSQL database."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from pg import EMPTY_ALL, run_sync
from serving import start_serve, wait_healthy

#: Short, so a dead process's runs are recovered within seconds; not shorter, since a process
#: that cannot renew its leases in time (a busy machine) stops its runs.
LEASE_SECONDS = 5


@dataclass
class Node:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""  # known once it serves

    @property
    def owner_pid(self) -> str:
        return f":{self.process.pid}:"


async def _empty(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(EMPTY_ALL)
    finally:
        await conn.close()


def start_node(name: str, database: str, folder: Path) -> Node:
    env = {
        "TASKCELL_DATABASE_URL": database,
        "TASKCELL_LEASE_SECONDS": str(LEASE_SECONDS),
        "TASKCELL_RETRY_BASE_SECONDS": "0.05",
        "TASKCELL_LOG_LEVEL": "WARNING",
        "TASKCELL_AGENTS": json.dumps({"instant": {"entry": "taskcell.agents.samples:instant"}}),
    }
    log = folder / f"{name}.log"
    process = start_serve(["--port", "0"], env, log)
    return Node(name, process, log)


@pytest.fixture
def cluster(postgres_database: str, tmp_path: Path) -> Iterator[list[Node]]:
    """Three processes (A, B, C) on this module's database, emptied first."""
    run_sync(lambda: _empty(postgres_database))
    with nodes(postgres_database, tmp_path, "ABC") as started:
        yield started


@contextmanager
def nodes(database: str, folder: Path, names: str) -> Iterator[list[Node]]:
    started = [start_node(name, database, folder) for name in names]
    try:
        for node in started:
            node.url = wait_healthy(node.process, node.log)
        yield started
    finally:
        for node in started:
            if node.process.poll() is None:
                node.process.terminate()
        for node in started:
            try:
                node.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(timeout=5)
