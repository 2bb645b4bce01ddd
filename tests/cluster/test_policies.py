"""Overlap policies across three real ``taskcell serve`` processes on one PostgreSQL database:
queued occurrences run exactly once, one at a time, whichever process starts them."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from .conftest import Node

pytestmark = pytest.mark.timeout(240)

TASKS = 20
OCCURRENCES = 5


async def post(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(url, json=body)
    assert response.status_code in (200, 201), response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def runs_of(client: httpx.AsyncClient, node: Node, task_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"{node.url}/api/v1/tasks/{task_id}/runs", params={"limit": 500})
    items: list[dict[str, Any]] = response.json()["data"]["items"]
    return items


def all_done(runs: list[dict[str, Any]]) -> bool:
    return len(runs) >= OCCURRENCES and all(r["status"] == "completed" for r in runs)


async def test_queued_occurrences_run_exactly_once_one_at_a_time(cluster: list[Node]) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        body = {
            "query": "stream for 0.3 seconds",
            "agent_name": "slow",
            "pattern": "recurring",
            "schedule_config": {"interval_minutes": 60},
            "run_immediately": False,
            "overlap": "buffer_all",
        }
        tasks = await asyncio.gather(
            *(post(client, f"{cluster[i % 3].url}/api/v1/tasks", body) for i in range(TASKS))
        )
        # Each task's backfill (through every process) starts one occurrence and queues the
        # others; the processes' schedulers start the queued ones as each run ends.
        answers = []
        for i, task in enumerate(tasks):
            armed = datetime.fromisoformat(task["next_run_at"])
            start = armed - timedelta(hours=OCCURRENCES + 1)
            window = {"start": start.isoformat(), "end": (armed - timedelta(hours=1)).isoformat()}
            url = f"{cluster[i % 3].url}/api/v1/tasks/{task['task_id']}/backfill"
            answers.append(post(client, url, window))
        for answer in await asyncio.gather(*answers):
            assert [r["status"] for r in answer["runs"]] == ["running"] + ["queued"] * (
                OCCURRENCES - 1
            )
        deadline = time.monotonic() + 150
        while True:
            found = await asyncio.gather(
                *(runs_of(client, cluster[0], t["task_id"]) for t in tasks)
            )
            if all(all_done(runs) for runs in found) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
    owners = set()
    for runs in found:
        assert all_done(runs), runs
        assert len(runs) == OCCURRENCES  # each occurrence ran once, and only once
        ordered = sorted(runs, key=lambda r: r["scheduled_for"])
        assert len({r["scheduled_for"] for r in ordered}) == OCCURRENCES
        for before, after in itertools.pairwise(ordered):
            # One at a time, in order: each started after the one before it ended.
            assert after["started_at"] >= before["finished_at"], (before, after)
        owners |= {r["owner"].split(":")[1] for r in runs}
    assert owners  # (which processes ran them is up to whoever looked first)
