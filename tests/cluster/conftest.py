"""Three real ``taskcell serve`` processes on one PostgreSQL database."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from pg import run_sync

LEASE_SECONDS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Node:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def owner_pid(self) -> str:
        return f":{self.process.pid}:"


async def _empty(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "DELETE FROM runs; DELETE FROM tasks; DELETE FROM events;"
            " DELETE FROM conversation_items; DELETE FROM conversations; DELETE FROM processes"
        )
    finally:
        await conn.close()


def start_node(name: str, database: str, folder: Path) -> Node:
    port = free_port()
    env = {
        **os.environ,
        "TASKCELL_DATABASE_URL": database,
        "TASKCELL_LEASE_SECONDS": str(LEASE_SECONDS),
        "TASKCELL_RETRY_BASE_SECONDS": "0.05",
        "TASKCELL_LOG_LEVEL": "WARNING",
        "TASKCELL_AGENTS": json.dumps({"instant": {"entry": "taskcell.agents.samples:instant"}}),
    }
    log = folder / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "taskcell.cli", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Node(name, f"http://127.0.0.1:{port}", process, log)


def wait_healthy(node: Node, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{node.url}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert node.process.poll() is None, node.log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{node.name} did not start"
        time.sleep(0.1)


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
            wait_healthy(node)
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
