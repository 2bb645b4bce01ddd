"""Chaos on a cluster: three ``taskcell serve`` processes on a PostgreSQL instance of our own.

A workload runs while the nemesis injects, in turn, SIGKILL (then restart), SIGSTOP past the
lease (then SIGCONT), a fast PostgreSQL restart, a 20 s PostgreSQL outage, and a process
restarted with its clock 30 s ahead; then the checker judges the end state. See
``scenario.py`` for the two lengths. The PostgreSQL server is one of the test's own
(``tests/pg_instance.py``), so the system one never sees these faults.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from pg_instance import PgInstance, own_postgres

from . import scenario
from .nemesis import Nemesis
from .nodes import Node, clues
from .snapshot import from_postgres
from .workload import Workload

LEASE_SECONDS = 4.0
FAULTS = ["sigkill", "sigstop", "postgres-restart", "postgres-outage", "clock+30s"]

pytestmark = pytest.mark.timeout(scenario.LENGTH.timeout)

__all__ = ["own_postgres"]  # the fixture, from tests/pg_instance.py


@pytest.fixture
def cluster(own_postgres: PgInstance, tmp_path: Path) -> Iterator[list[Node]]:
    env = {
        "TASKCELL_DATABASE_URL": own_postgres.create_database("chaos"),
        "TASKCELL_LEASE_SECONDS": str(LEASE_SECONDS),
        "TASKCELL_RETRY_BASE_SECONDS": "0.2",
        "TASKCELL_DATABASE_POOL_SIZE": "10",
        "TASKCELL_LOG_LEVEL": "INFO",  # the clues of a failed check
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
    cluster: list[Node], own_postgres: PgInstance
) -> None:
    url = own_postgres.database_url("chaos")

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
        nemesis = Nemesis(cluster, client, lease=LEASE_SECONDS, postgres=own_postgres)
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
    assert not violations, report + "\n" + clues(cluster, [v.subject for v in violations][:5])
