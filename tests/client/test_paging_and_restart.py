"""Paging over a thousand tasks, and a watch that outlives a server restart."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from live_server import ALICE, BOB, LiveServer, live_server
from taskcell.client import AsyncClient, Client, TaskEvent

MANY = 1_000


@pytest.mark.timeout(180)
def test_paging_over_a_thousand_tasks(server: LiveServer) -> None:
    def create(number: int) -> str:
        return bob.tasks.create(
            f"task {number}",
            agent="clock",
            schedule={"daily_time": "03:00", "timezone": "UTC"},
            run_immediately=False,
        ).task_id

    with Client(server.url, BOB) as bob:  # httpx clients may be shared by threads
        with ThreadPoolExecutor(4) as pool:
            made = set(pool.map(create, range(MANY)))
        assert len(made) == MANY
        listed = list(bob.tasks.iter(pattern="recurring", page_size=37))
    ids = [task.task_id for task in listed]
    assert len(ids) == MANY and set(ids) == made, f"{len(ids)} listed, {len(set(ids))} unique"
    newest_first = [(t.created_at, t.task_id) for t in listed]
    assert newest_first == sorted(newest_first, reverse=True)

    async def iterate() -> list[str]:
        async with AsyncClient(server.url, BOB) as client:
            return [task.task_id async for task in client.tasks.iter(pattern="recurring")]

    assert asyncio.run(iterate()) == ids


@pytest.mark.timeout(120)
def test_watch_survives_a_server_restart_mid_stream(tmp_path: Path) -> None:
    with live_server(tmp_path / "restart") as server, Client(server.url, ALICE) as alice:
        task = alice.tasks.create("stream for 3 seconds", agent="slow", max_attempts=3)
        seen: list[TaskEvent] = []
        reconnects: list[str] = []
        restarted = threading.Event()
        for event in alice.watch(task.task_id, on_reconnect=reconnects.append):
            seen.append(event)
            if event.event == "message_chunk" and not restarted.is_set():
                restarted.set()
                server.restart()  # the stream drops here, mid-task
        seqs = [event.seq for event in seen]
        assert seqs == list(range(1, len(seqs) + 1)), f"lost or repeated: {seqs}"
        assert reconnects, "the watch never had to reconnect"
        assert seen[-1].event == "done", [e.event for e in seen[-5:]]
        final = alice.tasks.get(task.task_id)
        assert final.status.value == "completed", (final, server.output())
        # Read again from the start: exactly the same events.
        replay = [(e.seq, e.event) for e in alice.watch(task.task_id)]
        assert replay == [(e.seq, e.event) for e in seen]


@pytest.mark.timeout(120)
async def test_async_watch_survives_a_server_restart_mid_stream(tmp_path: Path) -> None:
    import anyio.to_thread

    with live_server(tmp_path / "restart-async") as server:
        async with AsyncClient(server.url, ALICE) as alice:
            task = await alice.tasks.create("stream for 3 seconds", agent="slow")
            seqs: list[int] = []
            restarted = False
            async for event in alice.watch(task.task_id):
                seqs.append(event.seq)
                if event.event == "message_chunk" and not restarted:
                    restarted = True
                    await anyio.to_thread.run_sync(server.restart)
            assert seqs == list(range(1, len(seqs) + 1)), f"lost or repeated: {seqs}"
            assert (await alice.tasks.get(task.task_id)).status.value == "completed"
