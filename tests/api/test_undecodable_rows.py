"""A task row the store cannot decode answers its user, not a 500 (DESIGN: no poison pills).

The row is damaged in the SQLite file between two runs of the server (a hand edit): reading it
answers 200 with the damaged field cleared and ``error_message`` saying which and why; the list
leaves it out and still answers; cancelling and deleting it work.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from taskcell.stores.codec import UNDECODABLE_PREFIX

from .conftest import ServerFactory
from .test_cancel import recurring


async def test_a_damaged_row_is_shown_cleared_left_out_of_lists_and_can_be_removed(
    server_factory: ServerFactory, db_path: Path
) -> None:
    async with server_factory() as url, httpx.AsyncClient(base_url=url, timeout=20) as client:
        damaged = await recurring(client, "conv-a")
        intact = await recurring(client, "conv-a")
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "UPDATE tasks SET schedule_config = '{\"interval_minutes\": 3', pattern = 'weekly'"
            " WHERE task_id = ?",
            (damaged,),
        )
    async with server_factory() as url, httpx.AsyncClient(base_url=url, timeout=20) as client:
        await check_damaged(client, damaged, intact)


async def check_damaged(client: httpx.AsyncClient, damaged: str, intact: str) -> None:
    shown = await client.get(f"/api/v1/tasks/{damaged}")
    assert shown.status_code == 200, shown.text
    task = shown.json()["data"]
    message = str(task["error_message"])
    assert message.startswith(UNDECODABLE_PREFIX), task
    assert "schedule_config" in message and "pattern" in message, message
    assert task["schedule_config"] is None, task

    listed = await client.get("/api/v1/tasks")
    assert listed.status_code == 200, listed.text
    ids = [t["task_id"] for t in listed.json()["data"]["items"]]
    assert ids == [intact], ids

    cancelled = await client.post(f"/api/v1/tasks/{damaged}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    removed = await client.delete(f"/api/v1/tasks/{damaged}")
    assert removed.status_code in (200, 204), removed.text
    gone = await client.get(f"/api/v1/tasks/{damaged}")
    assert gone.status_code == 404, gone.text
    assert (await client.get("/api/v1/health")).status_code == 200
