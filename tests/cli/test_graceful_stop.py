"""A real ``taskcell serve`` stopped with Ctrl-C (SIGINT) while a run of the demo agent ``slow``,
served by that same process, streams: the run is interrupted (not failed), and the restarted
server runs the task again."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving import start_serve, wait_healthy
from taskcell.domain.models import RunStatus
from taskcell.domain.state_machine import TaskStatus
from taskcell.engine.engine import INTERRUPTED
from taskcell.stores.sqlite import SQLiteTaskStore

pytestmark = pytest.mark.timeout(120)


@contextmanager
def server(db: Path) -> Iterator[tuple[httpx.Client, subprocess.Popen[bytes], Path]]:
    log = db.with_suffix(f".{len(list(db.parent.glob('*.log')))}.log")
    env = {"TASKCELL_RETRY_BASE_SECONDS": "0.01", "TASKCELL_LOG_LEVEL": "INFO"}
    process = start_serve(["--port", "0", "--db", str(db)], env, log)
    try:
        url = wait_healthy(process, log)
        client = httpx.Client(base_url=url, timeout=10)
    except BaseException:
        process.kill()
        process.wait(timeout=10)
        raise
    try:
        yield client, process, log
    finally:
        client.close()
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def read_events(client: httpx.Client, task_id: str, until: Any) -> list[dict[str, Any]]:
    """The task's events up to the first for which ``until(events)`` holds."""
    events: list[dict[str, Any]] = []
    with client.stream("GET", f"/api/v1/tasks/{task_id}/events") as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if until(events):
                    break
    return events


def chunks(events: list[dict[str, Any]]) -> int:
    return sum(1 for e in events if e["event"] == "message_chunk")


async def stored_state(db: Path, task_id: str) -> tuple[Any, list[Any], list[Any]]:
    store = SQLiteTaskStore(db)
    await store.open()
    try:
        task = await store.load(task_id)
        runs = (await store.list_runs(task_id)).items
        events = await store.read_events(task_id, limit=10_000)
    finally:
        await store.close()
    return task, runs, events


def test_ctrl_c_interrupts_a_run_of_a_demo_agent_served_by_the_same_process(
    tmp_path: Path,
) -> None:
    db = tmp_path / "stop.db"
    with server(db) as (client, process, log):
        created = client.post(
            "/api/v1/tasks",
            json={"query": "stream for 60 seconds", "agent_name": "slow", "max_attempts": 3},
        )
        task_id = created.json()["data"]["task_id"]
        read_events(client, task_id, lambda seen: chunks(seen) >= 5)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        output = log.read_text(errors="replace")
        # uvicorn raises the signal again once it has shut down: 130 is Ctrl-C's status.
        assert process.returncode in (0, 130, -signal.SIGINT), output[-3000:]

    task, runs, events = asyncio.run(stored_state(db, task_id))
    assert [(r.attempt, r.status, r.error) for r in runs] == [
        (1, RunStatus.INTERRUPTED, INTERRUPTED)
    ], f"Ctrl-C should interrupt the run, saw {runs}\n{output[-3000:]}"
    assert task is not None and task.status is TaskStatus.PENDING, task
    said = [str((e.payload or {}).get("content", "")) for e in events]
    assert not [s for s in said if "failed" in s or "was cut" in s], (
        f"the log should not say the agent failed, saw {said}"
    )
    assert not [e for e in events if e.event.value in ("task_failed", "done")], events[-3:]

    with server(db) as (client, _, _):
        # The demo agents' tasks die with their process: the task starts over.
        def second_run(seen: list[dict[str, Any]]) -> bool:
            return any(
                e["event"] == "task_started" and e["data"]["run_id"] != runs[0].run_id for e in seen
            ) and chunks(seen) >= 1 + sum(
                1
                for e in seen
                if e["event"] == "message_chunk" and e["data"]["run_id"] == runs[0].run_id
            )

        read_events(client, task_id, second_run)
        assert client.post(f"/api/v1/tasks/{task_id}/cancel").status_code == 200
        deadline = time.monotonic() + 30
        while client.get(f"/api/v1/tasks/{task_id}").json()["data"]["status"] != "cancelled":
            assert time.monotonic() < deadline, "the cancel did not land"
            time.sleep(0.05)
        logged = read_events(client, task_id, lambda seen: seen[-1]["event"] == "done")
    assert [e["seq"] for e in logged] == list(range(1, len(logged) + 1))
    assert [e["event"] for e in logged].count("done") == 1
