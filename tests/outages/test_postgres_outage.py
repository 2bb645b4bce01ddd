"""A PostgreSQL outage is weather: the server stays up, says so, and carries on afterwards.

A real ``taskcell serve`` on a PostgreSQL server of the test's own (tests/pg_instance.py),
which the test stops for longer than a lease and starts again.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from pg_instance import PgInstance, own_postgres
from serving import start_serve, wait_healthy

from .agents import SLEEPY_SECONDS

__all__ = ["own_postgres"]

pytestmark = pytest.mark.timeout(300)

LEASE_SECONDS = 4
#: Down for longer than a lease: runs going when it began must stop and be recovered.
DOWN_SECONDS = LEASE_SECONDS + 2
TESTS = Path(__file__).resolve().parents[1]


async def eventually(
    what: str,
    check: Callable[[], Awaitable[Any]],
    ok: Callable[[Any], bool] = bool,
    *,
    within: float = 60.0,
) -> Any:
    """Poll ``check`` until ``ok`` of its answer; fail saying ``what`` and what it saw last.

    The bound is an order of magnitude above what it waits for (a few seconds here), so a
    busy machine does not fail it.
    """
    deadline = time.monotonic() + within
    seen: Any = None
    while time.monotonic() < deadline:
        try:
            seen = await check()
        except httpx.TransportError as exc:
            seen = exc
        else:
            if ok(seen):
                return seen
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {within} s; last saw {seen!r}")


async def read_stream(client: httpx.AsyncClient, task_id: str, seen: list[int]) -> None:
    """Append the ``seq`` of each event the task's stream sends to ``seen`` (until cancelled)."""
    timeout = httpx.Timeout(10, read=None)
    async with client.stream("GET", f"/tasks/{task_id}/events", timeout=timeout) as answer:
        assert answer.status_code == 200
        async for line in answer.aiter_lines():
            if line.startswith("data:"):
                # One by one, while the stream is open (the test reads it meanwhile).
                seen.append(int(json.loads(line[5:])["seq"]))  # noqa: PERF401


async def stored_seqs(url: str, task_id: str) -> list[int]:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        rows = await conn.fetch("SELECT seq FROM events WHERE task_id = $1 ORDER BY seq", task_id)
    finally:
        await conn.close()
    return [int(row[0]) for row in rows]


def tail(log: Path, size: int = 3000) -> str:
    """The end of the server's output (a small file: read at once)."""
    return log.read_text(errors="replace")[-size:]


async def sql(url: str, statement: str, *args: object) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(statement, *args)
    finally:
        await conn.close()


async def test_the_server_waits_out_a_postgres_outage_and_carries_on(
    own_postgres: PgInstance, tmp_path: Path
) -> None:
    database = await asyncio.to_thread(own_postgres.create_database, "taskcell")
    log = tmp_path / "serve.log"
    env = {
        "TASKCELL_DATABASE_URL": database,
        "TASKCELL_LEASE_SECONDS": str(LEASE_SECONDS),
        "TASKCELL_RETRY_BASE_SECONDS": "0.05",
        "TASKCELL_LOG_LEVEL": "INFO",
        "TASKCELL_AGENTS": json.dumps(
            {
                "instant": {"entry": "taskcell.agents.samples:instant"},
                "sleepy": {"entry": "outages.agents:sleepy"},
            }
        ),
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    server = start_serve(["--port", "0"], env, log)
    try:
        url = await asyncio.to_thread(wait_healthy, server, log)
        async with httpx.AsyncClient(base_url=f"{url}/api/v1", timeout=10) as client:
            await outage_and_back(client, own_postgres, database, server, log)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except Exception:
            server.kill()
            server.wait(timeout=10)


async def outage_and_back(
    client: httpx.AsyncClient, pg: PgInstance, database: str, server: Any, log: Path
) -> None:
    async def create(body: dict[str, Any]) -> dict[str, Any]:
        answer = await client.post("/tasks", json=body)
        assert answer.status_code == 201, answer.text
        task: dict[str, Any] = answer.json()["data"]
        return task

    async def status(task_id: str) -> str:
        answer = await client.get(f"/tasks/{task_id}")
        assert answer.status_code == 200, answer.text
        return str(answer.json()["data"]["status"])

    async def runs(task_id: str) -> list[dict[str, Any]]:
        answer = await client.get(f"/tasks/{task_id}/runs", params={"limit": 100})
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["data"]["items"]
        return items

    async def completed_runs(task_id: str) -> int:
        return sum(r["status"] == "completed" for r in await runs(task_id))

    async def health() -> tuple[int, dict[str, Any]]:
        answer = await client.get("/health")
        return answer.status_code, answer.json()["data"]

    recurring = await create(
        {
            "query": "tick",
            "agent_name": "instant",
            "pattern": "recurring",
            "schedule_config": {"interval_minutes": 60},
        }
    )
    await eventually("the first occurrence", lambda: completed_runs(recurring["task_id"]))
    # A reader of the recurring task's stream, opened before the outage, kept through it.
    streamed: list[int] = []
    reader = asyncio.create_task(read_stream(client, recurring["task_id"], streamed))
    try:
        sleeper = await create({"query": "nap", "agent_name": "sleepy"})
        await eventually(
            "the sleepy task running", lambda: status(sleeper["task_id"]), lambda s: s == "running"
        )

        # -- the outage ----------------------------------------------------------------------
        down_at = time.monotonic()
        await asyncio.to_thread(pg.stop)
        code, body = await eventually(
            "health saying degraded", health, lambda h: h[1]["status"] == "degraded"
        )
        assert code == 503 and body["problem"], body
        refused = await client.post("/tasks", json={"query": "now?", "agent_name": "instant"})
        assert refused.status_code == 503, refused.text
        assert "unavailable" in refused.json()["msg"], refused.text
        listed = await client.get("/tasks")
        assert listed.status_code == 503, listed.text
        await asyncio.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_at)))
        assert server.poll() is None, tail(log)
        await asyncio.to_thread(pg.start)

        # -- back --------------------------------------------------------------------------
        await eventually("health ok again", health, lambda h: h[0] == 200)
        assert server.poll() is None, tail(log)
        assert "leases not renewed in time" in tail(log, 10**7), tail(log)

        # The run the outage stopped is recovered by its lease and the task done by a new one.
        await eventually(
            "the sleepy task completed after recovery",
            lambda: status(sleeper["task_id"]),
            lambda s: s == "completed",
            within=60 + SLEEPY_SECONDS,
        )
        outcomes = sorted(r["status"] for r in await runs(sleeper["task_id"]))
        assert outcomes == ["completed", "interrupted"], outcomes

        # New work runs, and the scheduler fires again (its occurrence made due now, by NOTIFY).
        once = await create({"query": "after", "agent_name": "instant"})
        await eventually(
            "a once task after the outage",
            lambda: status(once["task_id"]),
            lambda s: s == "completed",
        )
        await sql(
            database,
            "UPDATE tasks SET next_run_at = now() WHERE task_id = $1",
            recurring["task_id"],
        )
        await sql(database, "SELECT pg_notify('taskcell', 'test|schedule|')")
        await eventually(
            "a second occurrence after the outage",
            lambda: completed_runs(recurring["task_id"]),
            lambda n: n >= 2,
        )
        # The stream opened before the outage carries every event of the log, in order, once.
        stored = await eventually(
            "the stream caught up with the log",
            lambda: stored_seqs(database, recurring["task_id"]),
            lambda seqs: seqs == streamed,
        )
        assert stored == list(range(1, len(stored) + 1)), stored
        assert not reader.done(), reader
        assert server.poll() is None, tail(log)
    finally:
        reader.cancel()
