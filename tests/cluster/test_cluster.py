"""Cluster mode: three real ``taskcell serve`` processes on one PostgreSQL database."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from taskcell.engine.runs import STOP_GRACE_SECONDS

from .conftest import LEASE_SECONDS, Node

pytestmark = pytest.mark.timeout(240)


async def create(client: httpx.AsyncClient, node: Node, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"{node.url}/api/v1/tasks", json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def runs_of(client: httpx.AsyncClient, node: Node, task_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"{node.url}/api/v1/tasks/{task_id}/runs", params={"limit": 500})
    items: list[dict[str, Any]] = response.json()["data"]["items"]
    return items


async def events_of(client: httpx.AsyncClient, node: Node, task_id: str) -> list[dict[str, Any]]:
    async with client.stream("GET", f"{node.url}/api/v1/tasks/{task_id}/events") as response:
        lines = [line async for line in response.aiter_lines()]
    return [json.loads(line[5:]) for line in lines if line.startswith("data:")]


def owner_node(run: dict[str, Any], nodes: list[Node]) -> str:
    for node in nodes:
        if node.owner_pid in str(run["owner"]):
            return node.name
    raise AssertionError(f"unknown owner {run['owner']}")


async def live_nodes(client: httpx.AsyncClient, node: Node, cluster: list[Node]) -> list[Node]:
    """The nodes ``node``'s health answer lists as live processes of the database."""
    health = (await client.get(f"{node.url}/api/v1/health")).json()["data"]
    ids = [p["process_id"] for p in health["processes"]]
    return [n for n in cluster if any(n.owner_pid in i for i in ids)]


def both_finished(runs: list[dict[str, Any]]) -> bool:
    """Two runs or more, none of them still going."""
    return len(runs) >= 2 and all(r["status"] not in {"running", "pending"} for r in runs)


async def test_recurring_occurrences_run_exactly_once_spread_over_processes(
    cluster: list[Node],
) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        body = {
            "query": "tick",
            "agent_name": "instant",
            "pattern": "recurring",
            "schedule_config": {"interval_minutes": 1},
        }
        created = await asyncio.gather(*(create(client, cluster[i % 3], body) for i in range(300)))
        ids = [t["task_id"] for t in created]
        # Until every task's two occurrences have finished (the third is a minute away).
        deadline = time.monotonic() + 100
        while True:
            counts = await asyncio.gather(*(runs_of(client, cluster[0], t) for t in ids))
            if all(both_finished(runs) for runs in counts) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
    owners: Counter[str] = Counter()
    for task_id, runs in zip(ids, counts, strict=True):
        seen = [(r["scheduled_for"], r["status"], r["error"]) for r in runs]
        assert len(runs) == 2, (task_id, seen)  # two occurrences, each exactly once
        assert len({r["scheduled_for"] for r in runs}) == 2, (task_id, seen)
        assert all(r["status"] == "completed" for r in runs), (task_id, seen)
        owners.update(owner_node(r, cluster) for r in runs)
    assert set(owners) == {"A", "B", "C"}, owners  # spread over the processes


async def test_a_thousand_once_tasks_each_run_exactly_once(cluster: list[Node]) -> None:
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=60)) as client:
        semaphore = asyncio.Semaphore(50)

        async def one(i: int) -> str:
            async with semaphore:
                task = await create(
                    client, cluster[i % 3], {"query": f"n{i}", "agent_name": "instant"}
                )
                return str(task["task_id"])

        ids = await asyncio.gather(*(one(i) for i in range(1000)))
        deadline = time.monotonic() + 60
        while True:
            page = await client.get(
                f"{cluster[1].url}/api/v1/tasks", params={"status": "completed", "limit": 500}
            )
            done = len(page.json()["data"]["items"])
            if done >= 500 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)

        # Each task until its run completed, within two minutes in all (a busy machine).
        deadline = time.monotonic() + 120

        async def settled(task_id: str) -> list[dict[str, Any]]:
            async with semaphore:
                while True:
                    runs = await runs_of(client, cluster[2], task_id)
                    if (runs and runs[0]["status"] == "completed") or time.monotonic() > deadline:
                        return runs
                    await asyncio.sleep(0.1)

        all_runs = await asyncio.gather(*(settled(t) for t in ids))
    for task_id, runs in zip(ids, all_runs, strict=True):
        seen = [(r["attempt"], r["status"], r["error"], r["owner"], r["started_at"]) for r in runs]
        assert [(r["attempt"], r["status"]) for r in runs] == [(1, "completed")], (task_id, seen)


async def test_cancel_through_a_stops_a_run_on_b_and_c_streams_it(cluster: list[Node]) -> None:
    a, b, c = cluster
    async with httpx.AsyncClient(timeout=30) as client:
        task = await create(client, b, {"query": "stream for 30 seconds", "agent_name": "slow"})
        task_id = task["task_id"]
        seen: list[dict[str, Any]] = []
        chunk_seen = asyncio.Event()

        async def read_on_c() -> None:
            url = f"{c.url}/api/v1/tasks/{task_id}/events"
            async with client.stream("GET", url) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        seen.append(json.loads(line[5:]))
                        if seen[-1]["event"] == "message_chunk":
                            chunk_seen.set()

        reader = asyncio.create_task(read_on_c())
        await asyncio.wait_for(chunk_seen.wait(), 20)  # C streams B's run live
        # A cancel that waited for B's 30-second stream would run into this time-out.
        answer = await client.post(f"{a.url}/api/v1/tasks/{task_id}/cancel", timeout=15)
        assert answer.status_code == 200 and answer.json()["data"]["success"] is True, answer.text
        await asyncio.wait_for(reader, 20)  # and sees the end
        runs = await runs_of(client, a, task_id)
        stored = (await client.get(f"{a.url}/api/v1/tasks/{task_id}")).json()["data"]
    assert [e["event"] for e in seen][-2:] == ["task_cancelled", "done"], seen[-5:]
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1)), [e["seq"] for e in seen]
    assert [(r["status"], owner_node(r, cluster)) for r in runs] == [("cancelled", "B")], runs
    assert stored["status"] == "cancelled", stored
    remote_id = stored["remote_task_ids"][-1]
    state = await remote_state(b, remote_id)
    assert state == "TASK_STATE_CANCELED"


async def remote_state(node: Node, remote_task_id: str) -> str:
    """The slow agent's own view of its task, read over A2A (JSON-RPC GetTask)."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            f"{node.url}/a2a/slow",
            headers={"A2A-Version": "1.0"},
            json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": remote_task_id}},
        )
    body = response.json()
    assert "result" in body, body
    return str(body["result"]["status"]["state"])


async def first_chunk(client: httpx.AsyncClient, node: Node, task_id: str) -> None:
    """Return once the task's stream, read on ``node``, has carried a ``message_chunk``."""
    async with client.stream("GET", f"{node.url}/api/v1/tasks/{task_id}/events") as response:
        async for line in response.aiter_lines():
            if line.startswith("data:") and json.loads(line[5:])["event"] == "message_chunk":
                return
    raise AssertionError(f"the stream of {task_id} ended without a message_chunk")


async def test_a_killed_process_runs_are_recovered_by_the_others(cluster: list[Node]) -> None:
    a, b, c = cluster
    async with httpx.AsyncClient(timeout=30) as client:
        tasks = [
            await create(client, b, {"query": "stream for 4 seconds", "agent_name": "slow"})
            for _ in range(4)
        ]
        recurring = await create(
            client,
            b,
            {
                "query": "stream for 4 seconds",
                "agent_name": "slow",
                "pattern": "recurring",
                "schedule_config": {"interval_minutes": 60},
            },
        )
        # In the middle of their runs: each has streamed a chunk from B.
        await asyncio.wait_for(
            asyncio.gather(*(first_chunk(client, a, t["task_id"]) for t in tasks)), 30
        )
        live = {node.name for node in await live_nodes(client, a, cluster)}
        assert live == {"A", "B", "C"}, live
        b.process.send_signal(signal.SIGKILL)
        b.process.wait(timeout=10)
        killed_at = time.monotonic()

        async def recovered(task_id: str) -> list[dict[str, Any]]:
            while time.monotonic() - killed_at < 90:
                runs = await runs_of(client, a, task_id)
                if runs and runs[0]["status"] == "completed":
                    return runs
                await asyncio.sleep(0.2)
            return await runs_of(client, a, task_id)

        all_runs = await asyncio.gather(*(recovered(t["task_id"]) for t in tasks))
        recurring_runs = await runs_of(client, a, recurring["task_id"])
        logs = [await events_of(client, c, t["task_id"]) for t in tasks]
        # B's record is buried once it has been silent for two lease lengths (10 s); the bound,
        # ten times that, only catches a record that is never buried.
        while (live := {n.name for n in await live_nodes(client, c, cluster)}) != {"A", "C"}:
            waited = time.monotonic() - killed_at
            assert waited < 20 * LEASE_SECONDS, f"{live} still live {waited:.0f} s after B died"
            await asyncio.sleep(0.2)
    for runs in all_runs:
        ordered = sorted(runs, key=lambda r: r["attempt"])
        assert [(r["attempt"], r["status"]) for r in ordered] == [
            (1, "interrupted"),
            (2, "completed"),
        ], runs
        assert owner_node(ordered[0], cluster) == "B"
        assert owner_node(ordered[1], cluster) in {"A", "C"}
        # recovered within the lease time (plus one renewal interval to notice)
        finished = ordered[0]["finished_at"]
        assert finished is not None
    # The occurrence ran once: interrupted if B had claimed it, else completed elsewhere.
    assert len(recurring_runs) == 1, recurring_runs
    only = recurring_runs[0]
    expected = "interrupted" if owner_node(only, cluster) == "B" else "completed"
    assert only["status"] == expected, only
    for events in logs:
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert [e["event"] for e in events][-2:] == ["task_completed", "done"]


async def asked_on(client: httpx.AsyncClient, node: Node) -> dict[str, Any]:
    """An asker task created on ``node``, once it waits for its answer there."""
    task = await create(client, node, {"query": "Say hello", "agent_name": "asker"})
    url = f"{node.url}/api/v1/tasks/{task['task_id']}"
    deadline = time.monotonic() + 20
    while (await client.get(url)).json()["data"]["status"] != "waiting_input":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    return task


async def test_a_reply_through_a_reaches_the_process_that_waits_for_it(
    cluster: list[Node],
) -> None:
    a, b, c = cluster
    async with httpx.AsyncClient(timeout=30) as client:
        # The asker demo agent keeps its question in B's memory (B serves it).
        task = await asked_on(client, b)
        answer = await client.post(
            f"{a.url}/api/v1/tasks/{task['task_id']}/input", json={"text": "Ada"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["status"] in {"running", "completed"}
        events = await events_of(client, c, task["task_id"])
        runs = await runs_of(client, a, task["task_id"])
    kinds = [e["event"] for e in events]
    assert kinds[-2:] == ["task_completed", "done"], kinds
    said = [e["data"]["payload"]["content"] for e in events if e["event"] == "message"]
    assert said.count("Ada") == 1, said
    assert any("Hello, Ada." in str(e["data"]["payload"]) for e in events), events
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [(r["status"], owner_node(r, cluster)) for r in runs] == [("completed", "B")]


async def test_a_reply_for_a_dead_process_is_answered_where_it_arrived(
    cluster: list[Node],
) -> None:
    a, b, _ = cluster
    async with httpx.AsyncClient(timeout=30) as client:
        task = await asked_on(client, b)
        url = f"{a.url}/api/v1/tasks/{task['task_id']}"
        b.process.send_signal(signal.SIGKILL)
        b.process.wait(timeout=10)
        # B's heartbeat is still fresh: A passes the reply on, hears nothing back, and after
        # STOP_GRACE_SECONDS continues the task itself. The asker's question died with B.
        started = time.monotonic()
        answer = await client.post(f"{url}/input", json={"text": "Ada"}, timeout=120)
        waited = time.monotonic() - started
        assert answer.status_code == 200, answer.text
        events = await events_of(client, a, task["task_id"])
        final = (await client.get(url)).json()["data"]
    assert waited >= STOP_GRACE_SECONDS, f"A answered after {waited:.1f} s without waiting for B"
    assert final["status"] == "failed", final
    kinds = [e["event"] for e in events]
    assert kinds[-2:] == ["task_failed", "done"], kinds
    said = [e["data"]["payload"]["content"] for e in events if e["event"] == "message"]
    assert said.count("Ada") == 1, said
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
