"""Webhooks across real ``taskcell serve`` processes: a SIGKILL between an event and its
delivery, and three processes on one PostgreSQL database sending each delivery once."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving import start_serve, wait_healthy
from taskcell.testing import bind_loopback
from webhooks.receiver import Receiver

INSTANT = json.dumps({"instant": {"entry": "taskcell.agents.samples:instant"}})


def env_for(database: str, **extra: str) -> dict[str, str]:
    return {
        "TASKCELL_DATABASE_URL": database,
        "TASKCELL_LEASE_SECONDS": "5",
        "TASKCELL_RETRY_BASE_SECONDS": "0.05",
        "TASKCELL_LOG_LEVEL": "WARNING",
        "TASKCELL_AGENTS": INSTANT,
        "TASKCELL_WEBHOOK_ALLOW": "127.0.0.1/32",
        **extra,
    }


@asynccontextmanager
async def served(
    database: str, folder: Path, name: str
) -> AsyncIterator[tuple[subprocess.Popen[bytes], str]]:
    log = folder / f"{name}.log"
    process = start_serve(["--port", "0"], env_for(database), log)
    try:
        url = await asyncio.to_thread(wait_healthy, process, log)
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            await asyncio.to_thread(process.wait, 20)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 5)


async def deliveries(client: httpx.AsyncClient, hook_id: str) -> list[dict[str, Any]]:
    answer = await client.get(f"/api/v1/webhooks/{hook_id}/deliveries?limit=500")
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["data"]["items"]
    return items


async def all_delivered(client: httpx.AsyncClient, hook_id: str, count: int) -> None:
    async with asyncio.timeout(60):
        while True:
            found = await deliveries(client, hook_id)
            if len(found) == count and all(d["status"] == "delivered" for d in found):
                return
            await asyncio.sleep(0.1)


@pytest.mark.timeout(300)  # two server start-ups, each up to serving.START_TIMEOUT_S
async def test_a_sigkill_between_event_and_delivery_delivers_after_restart_once(
    tmp_path: Path,
) -> None:
    database = f"sqlite:///{tmp_path / 'killed.db'}"
    receiver = Receiver()
    sock = bind_loopback(listen=False)  # the receiver's port: refusing until it serves
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    async with served(database, tmp_path, "first") as (process, base):
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            made = await client.post("/api/v1/webhooks", json={"url": url})
            hook = made.json()["data"]
            receiver.secrets.append(hook["secret"])
            task = await client.post("/api/v1/tasks", json={"query": "x", "agent_name": "instant"})
            assert task.status_code == 201
            # The event is stored with its delivery, which could not be made (the receiver
            # refuses connections): it waits for its retry, as the process is killed.
            async with asyncio.timeout(30):
                while True:
                    found = await deliveries(client, hook["webhook_id"])
                    if found and found[0]["status"] == "pending" and found[0]["attempts"] == 1:
                        break
                    await asyncio.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait, 10)
    async with receiver.serving(sock), served(database, tmp_path, "second") as (_, base):
        [got] = await receiver.wait_for(1)
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            await all_delivered(client, hook["webhook_id"], 1)
        assert got.webhook_id == found[0]["delivery_id"]
        assert got.body["data"]["task"]["task_id"] == task.json()["data"]["task_id"]
    assert len(receiver.received) == 1 and receiver.forged == []


@pytest.mark.timeout(480)  # three server start-ups, then 300 tasks
async def test_three_processes_on_postgresql_send_each_delivery_once(
    postgres_database: str, tmp_path: Path
) -> None:
    receiver = Receiver()
    async with (
        receiver.serving(),
        served(postgres_database, tmp_path, "A") as (_, a),
        served(postgres_database, tmp_path, "B") as (_, b),
        served(postgres_database, tmp_path, "C") as (_, c),
    ):
        clients = [httpx.AsyncClient(base_url=u, timeout=30) for u in (a, b, c)]
        try:
            made = await clients[0].post(
                "/api/v1/webhooks", json={"url": receiver.url, "event_types": ["task_completed"]}
            )
            hook = made.json()["data"]
            receiver.secrets.append(hook["secret"])
            gate = asyncio.Semaphore(30)

            async def one(n: int) -> None:
                async with gate:
                    body = {"query": f"task {n}", "agent_name": "instant"}
                    answer = await clients[n % 3].post("/api/v1/tasks", json=body)
                    assert answer.status_code == 201, answer.text

            await asyncio.gather(*(one(n) for n in range(300)))
            await receiver.wait_for(300)
            await all_delivered(clients[1], hook["webhook_id"], 300)
        finally:
            for client in clients:
                await client.aclose()
    counts = Counter(r.webhook_id for r in receiver.received)
    assert len(counts) == 300
    assert max(counts.values()) == 1, counts.most_common(3)
    assert receiver.forged == []
    tasks = Counter(r.body["data"]["task"]["task_id"] for r in receiver.received)
    assert len(tasks) == 300
