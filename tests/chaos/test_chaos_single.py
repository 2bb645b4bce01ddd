"""Chaos on one server with SQLite: SIGKILL (then restart), SIGSTOP past the lease (then
SIGCONT) and a full disk, under the same workload and checker as the cluster.

The database file lives on a small tmpfs of its own, which the full-disk fault fills to the last
byte for 10 s. Mounting needs root; elsewhere that fault is left out and the report says so.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from . import scenario
from .nemesis import FullDisk, Nemesis, can_mount
from .nodes import Node, clues
from .snapshot import from_sqlite
from .workload import Workload

LEASE_SECONDS = 4.0

pytestmark = pytest.mark.timeout(scenario.LENGTH.timeout)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[FullDisk | None]:
    if can_mount() is not None:
        yield None
        return
    made = FullDisk(tmp_path / "disk")
    try:
        yield made
    finally:
        made.unmount()


@pytest.fixture
def server(tmp_path: Path, disk: FullDisk | None) -> Iterator[Node]:
    folder = disk.mountpoint if disk is not None else tmp_path
    env = {
        "TASKCELL_DATABASE_URL": f"sqlite:///{folder / 'tasks.db'}",
        "TASKCELL_LEASE_SECONDS": str(LEASE_SECONDS),
        "TASKCELL_RETRY_BASE_SECONDS": "0.2",
        "TASKCELL_LOG_LEVEL": "INFO",  # the clues of a failed check
        "TASKCELL_CONFIG": str(tmp_path / "absent.toml"),
        "TASKCELL_AGENTS": json.dumps({}),
    }
    node = Node("S", env, tmp_path)
    try:
        node.start()
        assert node.wait_healthy(120), f"the server did not start:\n{node.log_tail()}"
        yield node
    finally:
        node.terminate(timeout=20)


async def test_one_sqlite_server_keeps_its_guarantees_under_the_nemesis(
    server: Node, disk: FullDisk | None, tmp_path: Path
) -> None:
    database = Path(server.env["TASKCELL_DATABASE_URL"].removeprefix("sqlite:///"))

    async def unfinished() -> int:
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
        try:
            row = conn.execute(
                "SELECT count(*) FROM tasks WHERE pattern = 'once'"
                " AND status IN ('pending', 'running')"
            ).fetchone()
        except sqlite3.Error:
            return -1
        finally:
            conn.close()
        return int(row[0])

    async def snapshot() -> scenario.Snapshot:
        return from_sqlite(database)

    faults = ["sigkill", "sigstop"] + (["disk-full"] if disk is not None else [])
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits) as client:
        nemesis = Nemesis([server], client, lease=LEASE_SECONDS, disk=disk)
        if disk is None:
            nemesis.notes.append(f"disk-full left out: {can_mount()}")
        report, violations = await scenario.run(
            "sqlite",
            Workload([server], client),
            nemesis,
            faults,
            recurring=12,
            unfinished=unfinished,
            snapshot=snapshot,
            lease=LEASE_SECONDS,
        )
    assert not violations, report + "\n" + clues([server], [v.subject for v in violations][:5])
