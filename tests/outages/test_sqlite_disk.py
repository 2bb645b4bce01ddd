"""Disk faults on a single server (SQLite): writes answer 503 with the reason, reads go on,
``/health`` says degraded, the server stays up and carries on once the disk is back.

The full disk is a real one: a 16 MB tmpfs mounted for the test (root only), filled with a
file, then emptied. Elsewhere the database is capped with ``PRAGMA max_page_count`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskcell.agents.http import aclose_shared_http_clients
from taskcell.api.app import create_app
from taskcell.engine.engine import Engine
from taskcell.settings import Settings
from taskcell.stores.sqlite import SQLiteTaskStore
from taskcell.testing import serve_app

pytestmark = pytest.mark.timeout(120)

AGENTS = {"instant": {"entry": "taskcell.agents.samples:instant"}}


class Disk:
    """Where the database lives, and a way to fill that place up and empty it again."""

    def __init__(self, folder: Path, *, tmpfs: bool) -> None:
        self.folder = folder
        self.tmpfs = tmpfs
        self.filler = folder / "filler"
        self.store: SQLiteTaskStore | None = None  # for max_page_count: the server's store

    def fill(self) -> None:
        if self.tmpfs:
            fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:
                for size in (1 << 20, 1 << 12, 1):  # megabytes, then the last few bytes
                    with contextlib.suppress(OSError):
                        while True:
                            os.write(fd, b"\0" * size)
            finally:
                os.close(fd)
        else:
            assert self.store is not None
            pages = self.store.conn.execute("PRAGMA page_count").fetchone()[0]
            self.store.conn.execute(f"PRAGMA max_page_count = {pages}")

    def free(self) -> None:
        if self.tmpfs:
            self.filler.unlink()
        else:
            assert self.store is not None
            self.store.conn.execute("PRAGMA max_page_count = 1073741823")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = False
    if os.geteuid() == 0 and shutil.which("mount"):
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)],
            capture_output=True,
            timeout=30,
        )
        mounted = done.returncode == 0
    try:
        yield Disk(folder, tmpfs=mounted)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


@contextlib.asynccontextmanager
async def server(db: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Engine]]:
    apps: list[Any] = []

    def build(base_url: str) -> Any:
        settings = Settings(
            database_url=f"sqlite:///{db}", public_url=base_url, agents=AGENTS, lease_seconds=2
        )
        made = create_app(settings)
        apps.append(made)
        return made

    try:
        async with (
            serve_app(app_factory=build) as url,
            httpx.AsyncClient(base_url=f"{url}/api/v1", timeout=20) as client,
        ):
            yield client, apps[0].state.engine
    finally:
        await aclose_shared_http_clients()


async def eventually(
    what: str, check: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], within: float = 30
) -> Any:
    """Poll until ``ok(check())``; the bound is far above the second or so it takes."""
    deadline = time.monotonic() + within
    seen: Any = None
    while time.monotonic() < deadline:
        seen = await check()
        if ok(seen):
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {within} s; last saw {seen!r}")


async def test_a_full_disk_refuses_writes_with_503_and_the_server_carries_on(disk: Disk) -> None:
    async with server(disk.folder / "tasks.db") as (client, engine):
        disk.store = engine.store  # type: ignore[assignment]

        async def create(query: str) -> httpx.Response:
            return await client.post("/tasks", json={"query": query, "agent_name": "instant"})

        async def status(task_id: str) -> str:
            answer = await client.get(f"/tasks/{task_id}")
            assert answer.status_code == 200, answer.text
            return str(answer.json()["data"]["status"])

        async def health() -> tuple[int, dict[str, Any]]:
            answer = await client.get("/health")
            return answer.status_code, answer.json()["data"]

        before = await create("before")
        assert before.status_code == 201, before.text
        first = before.json()["data"]["task_id"]
        await eventually("the first task done", lambda: status(first), lambda s: s == "completed")

        await asyncio.to_thread(disk.fill)
        acknowledged = [first]
        refused = None
        for attempt in range(200):  # until the writes reach the end of the space
            answer = await create(f"while full {attempt}")
            if answer.status_code == 201:
                acknowledged.append(answer.json()["data"]["task_id"])
                continue
            refused = answer
            break
        assert refused is not None, "no write was refused on a full disk"
        assert refused.status_code == 503, refused.text
        assert "full" in refused.json()["msg"], refused.text
        # Reads go on, the health check says why writes fail, and the server stays up.
        assert await status(first) == "completed"
        listed = await client.get("/tasks")
        assert listed.status_code == 200, listed.text
        code, body = await health()
        assert (code, body["status"]) == (503, "degraded"), body
        assert "full" in body["problem"], body

        await asyncio.to_thread(disk.free)
        after = await eventually(
            "a write once the disk has room",
            lambda: create("after"),
            lambda r: r.status_code == 201,
        )
        await eventually("health ok again", health, lambda h: h[0] == 200)
        task_id = after.json()["data"]["task_id"]
        await eventually("the task after done", lambda: status(task_id), lambda s: s == "completed")
        for acked in acknowledged:  # nothing acknowledged was lost: each ran to its end
            done = functools.partial(status, acked)
            await eventually(f"task {acked} done", done, lambda s: s == "completed")


async def test_a_database_file_deleted_or_replaced_under_the_server_refuses_writes(
    tmp_path: Path,
) -> None:
    db = tmp_path / "tasks.db"
    async with server(db) as (client, _):
        made = await client.post("/tasks", json={"query": "one", "agent_name": "instant"})
        assert made.status_code == 201, made.text
        for action in ("replaced", "deleted"):
            if action == "replaced":
                impostor = tmp_path / "other.db"
                impostor.write_bytes(db.read_bytes())
                os.replace(impostor, db)
            else:
                db.unlink()
            answer = await client.post("/tasks", json={"query": "two", "agent_name": "instant"})
            assert answer.status_code == 503, answer.text
            assert action in answer.json()["msg"], answer.text
            health = await client.get("/health")
            body = health.json()["data"]
            assert (health.status_code, body["status"]) == (503, "degraded"), body
            assert action in body["problem"], body
            # What the server had is still readable from the file it opened.
            task_id = made.json()["data"]["task_id"]
            assert (await client.get(f"/tasks/{task_id}")).status_code == 200
