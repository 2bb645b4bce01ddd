"""Chaos on a cluster: three ``taskcell serve`` processes on a PostgreSQL instance of our own.

A workload runs while the nemesis injects, in turn, SIGKILL (then restart), SIGSTOP past the
lease (then SIGCONT), a fast PostgreSQL restart, a 20 s PostgreSQL outage, and a process
restarted with its clock 30 s ahead; then the checker judges the end state. See
``scenario.py`` for the two lengths.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from pg import run_sync

from . import pg_instance, scenario
from .nemesis import Nemesis
from .nodes import Node
from .pg_instance import PostgresInstance
from .snapshot import from_postgres
from .workload import Workload

LEASE_SECONDS = 4.0
FAULTS = ["sigkill", "sigstop", "postgres-restart", "postgres-outage", "clock+30s"]

pytestmark = pytest.mark.timeout(scenario.LENGTH.timeout)


@pytest.fixture
def postgres() -> Iterator[PostgresInstance]:
    reason = pg_instance.available()
    if reason is not None:
        pytest.skip(reason)
    instance = PostgresInstance()
    try:
        instance.create()
        instance.start()
        yield instance
    finally:
        instance.destroy()


async def _create_database(url: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute("CREATE DATABASE chaos")
    finally:
        await conn.close()


@pytest.fixture
def cluster(postgres: PostgresInstance, tmp_path: Path) -> Iterator[list[Node]]:
    run_sync(lambda: _create_database(postgres.url()))
    env = {
        "TASKCELL_DATABASE_URL": postgres.url("chaos"),
        "TASKCELL_LEASE_SECONDS": str(LEASE_SECONDS),
        "TASKCELL_RETRY_BASE_SECONDS": "0.2",
        "TASKCELL_DATABASE_POOL_SIZE": "10",
        "TASKCELL_LOG_LEVEL": "WARNING",
        "TASKCELL_CONFIG": str(tmp_path / "absent.toml"),
        "TASKCELL_AGENTS": json.dumps({}),
    }
    nodes = [Node(name, env, tmp_path) for name in "ABC"]
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            assert node.wait_healthy(120), f"{node.name} did not start:\n{node.log_tail()}"
        yield nodes
    finally:
        for node in nodes:
            node.terminate(timeout=20)


async def test_a_cluster_keeps_its_guarantees_under_the_nemesis(
    cluster: list[Node], postgres: PostgresInstance
) -> None:
    url = postgres.url("chaos")

    async def unfinished() -> int:
        try:
            conn = await asyncpg.connect(url, timeout=5)
        except (OSError, asyncpg.PostgresError):
            return -1
        try:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM tasks WHERE pattern = 'once'"
                " AND status IN ('pending', 'running')"
            )
            return count
        finally:
            await conn.close()

    faults = FAULTS if shutil.which("faketime") else FAULTS[:-1]
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits) as client:
        nemesis = Nemesis(cluster, client, lease=LEASE_SECONDS, postgres=postgres)
        if faults != FAULTS:
            nemesis.notes.append("clock+30s left out: faketime is not installed")
        report, violations = await scenario.run(
            "cluster",
            Workload(cluster, client),
            nemesis,
            faults,
            recurring=24,
            unfinished=unfinished,
            snapshot=lambda: from_postgres(url),
            lease=LEASE_SECONDS,
        )
    assert not violations, report
