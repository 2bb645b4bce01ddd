"""A stalled database on a single server: ``/health`` still answers, degraded, with the reason,
and no request is refused or lost for it.

The stall is real: another connection holds the SQLite file's exclusive lock, so every write of
the server waits inside SQLite (its busy timeout) on the event loop's thread, as it would on a
frozen or failing disk (``bench/stall.py`` does the same under ``fsfreeze``). The server runs as
``taskcell serve``, so its stall responder (``api/stall.py``) is the one users get.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving import start_serve, wait_healthy

pytestmark = pytest.mark.timeout(180)

#: The responder's reason names the stall; the loop's own answer never says this.
STALL_REASON = "has held the server"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    db = tmp_path / "stall.db"
    log = tmp_path / "serve.log"
    env = {"TASKCELL_LOG_LEVEL": "WARNING", "TASKCELL_AGENTS": "{}"}
    process = start_serve(["--port", "0", "--db", str(db)], env, log)
    try:
        yield wait_healthy(process, log), db
    finally:
        process.terminate()
        process.wait(30)


def fresh_health(url: str) -> httpx.Response:
    """/health on a new connection (a monitor's probe), with a bound far above its answer."""
    with httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        return client.get(f"{url}/api/v1/health")


def test_health_answers_degraded_while_the_database_holds_the_loop(
    server: tuple[str, Path],
) -> None:
    url, db = server
    holder = sqlite3.connect(db, isolation_level=None, timeout=30)
    holder.execute("BEGIN EXCLUSIVE")
    stop = threading.Event()
    created: list[int] = []
    listed: list[httpx.Response] = []

    def create() -> None:  # writes, one after another: the loop waits inside SQLite for the lock
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                task = {"agent_name": "echo", "query": "during the stall"}
                created.append(client.post(f"{url}/api/v1/tasks", json=task).status_code)

    def list_tasks() -> None:
        with httpx.Client(timeout=90) as client:
            listed.append(client.get(f"{url}/api/v1/tasks?limit=5"))

    writer = threading.Thread(target=create, name="writer")
    writer.start()
    try:
        seen: list[str] = []
        for _ in range(200):
            answer = fresh_health(url)
            body = answer.json()
            seen.append(f"{answer.status_code} {body['data']['problem']}")
            if STALL_REASON in (body["data"]["problem"] or ""):
                break
        else:
            pytest.fail(f"health never reported the stall; it answered: {seen[-5:]}")
        assert answer.status_code == 503, seen[-1]
        assert body["code"] == 503 and body["msg"] == "degraded", body
        data = body["data"]
        assert data["status"] == "degraded" and data["store"] is False, data
        assert data["process_id"], data
        assert "sqlite.py" in data["problem"], data  # where the loop waits
        # A read sent during the stall is not refused: it waits for the loop and is served.
        listing = threading.Thread(target=list_tasks, name="list")
        listing.start()
    finally:
        stop.set()
        holder.execute("ROLLBACK")
        holder.close()
    listing.join(timeout=90)
    writer.join(timeout=90)
    assert len(listed) == 1 and listed[0].status_code == 200, listed
    # Each write either waited and was served, or was told to come back (503), never a 500.
    assert set(created) <= {201, 503}, created
    # Once the lock is gone, the loop answers health itself again.
    for _ in range(200):
        answer = fresh_health(url)
        if answer.status_code == 200:
            break
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["status"] == "ok"
