"""Edits while three ``taskcell serve`` processes on one PostgreSQL database fire the tasks.

Forty recurring tasks on minute crons are edited through all three processes, a few hundred
times, at random moments (edits land just before, at and after the fires), for two minute
marks; each edit changes the schedule or only the title. Then, for every task, each occurrence
of the schedule in force at each instant (a schedule is in force from its edit's instant, which
the edit answers as the task's ``updated_at``, to the next edit's) has exactly one run, and no
run serves anything else. Crons fire on the minute, so the edits' instants (the database's
clock) decide exactly which schedule each occurrence belongs to.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from cluster.conftest import Node, nodes
from pg import EMPTY_ALL, run_sync

pytestmark = pytest.mark.timeout(360)

CRONS = ["* * * * *", "*/2 * * * *", "*/3 * * * *", "1-59/2 * * * *"]
TASKS = 40
MINUTE = timedelta(minutes=1)


def minute_marks(cron: str, start: datetime, end: datetime) -> list[datetime]:
    """The fires of one of :data:`CRONS` in ``(start, end]`` (this file's own arithmetic)."""
    spec = cron.split()[0]
    first, step = 0, 1
    if "/" in spec:
        base, step_text = spec.split("/")
        step = int(step_text)
        first = 0 if base == "*" else int(base.split("-")[0])
    at = start.replace(second=0, microsecond=0) + MINUTE
    found = []
    while at <= end:
        if at.minute >= first and (at.minute - first) % step == 0:
            found.append(at)
        at += MINUTE
    return found


async def _empty(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(EMPTY_ALL)
    finally:
        await conn.close()


async def _database_now(url: str) -> datetime:
    conn = await asyncpg.connect(url)
    try:
        now: datetime = await conn.fetchval("SELECT clock_timestamp()")
    finally:
        await conn.close()
    return now.astimezone(UTC)


@pytest.fixture
def cluster(postgres_database: str, tmp_path: Path) -> Iterator[list[Node]]:
    run_sync(lambda: _empty(postgres_database))
    with nodes(postgres_database, tmp_path, "ABC") as started:
        yield started


async def test_edits_while_three_processes_fire(
    cluster: list[Node], postgres_database: str
) -> None:
    rng = random.Random(16)
    async with httpx.AsyncClient(timeout=30) as client:
        created = []
        for i in range(TASKS):
            body = {
                "query": f"tick {i}",
                "agent_name": "instant",
                "pattern": "recurring",
                "schedule_config": {"cron": CRONS[i % len(CRONS)], "timezone": "UTC"},
                "run_immediately": False,
            }
            response = await client.post(f"{cluster[i % 3].url}/api/v1/tasks", json=body)
            assert response.status_code == 201, response.text
            created.append(response.json()["data"])
        # Each task's schedules in force: (version, from instant, cron).
        history: dict[str, list[tuple[int, datetime, str]]] = {
            t["task_id"]: [
                (1, datetime.fromisoformat(t["created_at"]), t["schedule_config"]["cron"])
            ]
            for t in created
        }
        ids = list(history)
        start = await _database_now(postgres_database)
        stop_at = start.replace(second=0, microsecond=0) + 2 * MINUTE + timedelta(seconds=3)
        edits = Counter[str]()

        async def editor(worker: int) -> None:
            while await _database_now(postgres_database) < stop_at:
                task_id = rng.choice(ids)
                node = cluster[rng.randrange(3)]
                body: dict[str, Any] = {"title": f"edited by {worker}"}
                if rng.random() < 0.7:
                    body["schedule_config"] = {"cron": rng.choice(CRONS), "timezone": "UTC"}
                response = await client.patch(f"{node.url}/api/v1/tasks/{task_id}", json=body)
                assert response.status_code == 200, response.text
                task = response.json()["data"]
                history[task_id].append(
                    (
                        task["version"],
                        datetime.fromisoformat(task["updated_at"]),
                        task["schedule_config"]["cron"],
                    )
                )
                edits[node.name] += 1
                await asyncio.sleep(rng.uniform(0, 0.3))

        await asyncio.gather(*(editor(w) for w in range(6)))
        assert set(edits) == {"A", "B", "C"} and sum(edits.values()) >= 200, edits
        # Every fire up to the last minute mark has had time to be claimed and run.
        end = stop_at.replace(second=0, microsecond=0)
        deadline = time.monotonic() + 60
        while True:
            runs = {
                t: (
                    await client.get(
                        f"{cluster[0].url}/api/v1/tasks/{t}/runs", params={"limit": 500}
                    )
                ).json()["data"]["items"]
                for t in ids
            }
            settled = all(
                r["status"] not in ("queued", "running") for rs in runs.values() for r in rs
            )
            if settled and await _database_now(postgres_database) > end + timedelta(seconds=5):
                break
            assert time.monotonic() < deadline, "runs did not settle"
            await asyncio.sleep(0.5)

    for task_id in ids:
        spans = sorted(history[task_id])
        assert [v for v, _, _ in spans] == list(range(1, len(spans) + 1)), spans
        expected: list[datetime] = []
        bounds = [at for _, at, _ in spans[1:]] + [end]
        for (_, since, cron), until in zip(spans, bounds, strict=True):
            expected += minute_marks(cron, since, min(until, end))
        fired = Counter(
            datetime.fromisoformat(r["scheduled_for"])
            for r in runs[task_id]
            if datetime.fromisoformat(r["scheduled_for"]) <= end
        )
        assert not [at for at, n in fired.items() if n > 1], (task_id, fired)
        assert sorted(fired) == expected, (task_id, sorted(fired), expected, spans)
        assert all(r["status"] == "completed" for r in runs[task_id]), runs[task_id]
        versions = [r["version"] for r in sorted(runs[task_id], key=lambda r: r["scheduled_for"])]
        assert versions == sorted(versions), versions
