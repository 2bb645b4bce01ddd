"""A real ``taskcell serve`` killed with SIGKILL, then restarted on the same SQLite file."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from serving import start_serve, wait_healthy

INTERRUPTED = "interrupted: the server stopped while it ran"


def start_server(db: Path, log: Path) -> subprocess.Popen[bytes]:
    """``taskcell serve`` on ``db`` and a port it picks; its output goes to ``log``."""
    env = {"TASKCELL_RETRY_BASE_SECONDS": "0.01", "TASKCELL_LOG_LEVEL": "WARNING"}
    return start_serve(["--port", "0", "--db", str(db)], env, log)


@contextmanager
def server(db: Path) -> Iterator[tuple[httpx.Client, subprocess.Popen[bytes]]]:
    log = db.with_name(f"{db.name}.{uuid.uuid4().hex[:8]}.log")
    process = start_server(db, log)
    try:
        url = wait_healthy(process, log)
        with httpx.Client(base_url=url, timeout=10) as client:
            yield client, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=15)


def read_events(
    client: httpx.Client, task_id: str, count: int | None = None
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    with client.stream("GET", f"/api/v1/tasks/{task_id}/events") as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if count is not None and len(events) >= count:
                    break
    return events


def wait_until(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out; last saw {value!r}")


def test_sigkill_then_restart_recovers_runs_without_losing_events(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    with server(db) as (client, process):
        retried = client.post(
            "/api/v1/tasks",
            json={"query": "stream for 30 seconds", "agent_name": "slow", "max_attempts": 3},
        ).json()["data"]
        last_try = client.post(
            "/api/v1/tasks",
            json={"query": "stream for 30 seconds", "agent_name": "slow", "max_attempts": 1},
        ).json()["data"]
        schedule = {"interval_minutes": 1}
        recurring = client.post(
            "/api/v1/tasks",
            json={
                "query": "time?",
                "agent_name": "clock",
                "pattern": "recurring",
                "schedule_config": schedule,
            },
        ).json()["data"]
        seen = read_events(client, retried["task_id"], count=12)
        read_events(client, last_try["task_id"], count=8)
        wait_until(
            lambda: client.get(f"/api/v1/tasks/{recurring['task_id']}/runs").json()["data"]["items"]
        )
        before = client.get(f"/api/v1/tasks/{recurring['task_id']}").json()["data"]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    with server(db) as (client, _):
        # The once task with attempts left runs again; the other failed with the reason.
        def rerun() -> list[dict[str, Any]] | None:
            items: list[dict[str, Any]] = client.get(
                f"/api/v1/tasks/{retried['task_id']}/runs"
            ).json()["data"]["items"]
            return items if len(items) >= 2 else None

        runs = sorted(wait_until(rerun), key=lambda r: r["attempt"])
        assert [(r["attempt"], r["status"]) for r in runs] == [(1, "interrupted"), (2, "running")]
        assert runs[0]["error"] == INTERRUPTED
        failed = client.get(f"/api/v1/tasks/{last_try['task_id']}").json()["data"]
        assert (failed["status"], failed["error_message"]) == ("failed", INTERRUPTED)

        # The recurring task does not fire at start-up: it waits for its next occurrence.
        after = client.get(f"/api/v1/tasks/{recurring['task_id']}").json()["data"]
        assert after["status"] == "running"
        assert after["next_run_at"] == before["next_run_at"]
        recurring_runs = client.get(f"/api/v1/tasks/{recurring['task_id']}/runs").json()["data"][
            "items"
        ]
        assert [r["status"] for r in recurring_runs] == ["completed"]

        assert client.post(f"/api/v1/tasks/{retried['task_id']}/cancel").status_code == 200
        events = read_events(client, retried["task_id"])
        seqs = [e["seq"] for e in events]
        assert seqs == list(range(1, len(events) + 1))  # nothing lost, nothing twice
        assert events[: len(seen)] == seen  # what a reader saw before the crash is in the log
        assert [e["event"] for e in events][-2:] == ["task_cancelled", "done"]
        for task in (last_try, recurring):
            logged = read_events(client, task["task_id"]) if task is last_try else []
            assert [e["seq"] for e in logged] == list(range(1, len(logged) + 1))


def test_a_second_server_on_the_same_sqlite_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "one.db"
    with server(db):
        log = tmp_path / "second.log"
        second = start_server(db, log)
        second.wait(timeout=30)
        assert second.returncode != 0
        message = " ".join(log.read_text(errors="replace").split())
        assert "already serving" in message and str(db) in message
        assert "SQLite serves one server at a time" in message
