"""Ctrl-C on a ``taskcell serve`` with A2A traffic and open event streams logs no error."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving import start_serve, wait_healthy

pytestmark = pytest.mark.timeout(120)

#: What the log of a clean stop must not contain.
NOISE = (
    " ERROR ",
    "Traceback",
    "Task was destroyed but it is pending",
    "Failed to detach context",
    "ASGI callable returned without completing response",
    "event_queue_v2",
)


class Reader(threading.Thread):
    """Reads a task's event stream until it ends; records the events and how it ended."""

    def __init__(self, url: str, task_id: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{url}/api/v1/tasks/{task_id}/events"
        self.events: list[dict[str, Any]] = []
        self.chunk = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.stream("GET", self.url, timeout=httpx.Timeout(10, read=60)) as answer:
                for line in answer.iter_lines():
                    if line.startswith("data:"):
                        self.events.append(json.loads(line[5:]))
                        if self.events[-1]["event"] == "message_chunk":
                            self.chunk.set()
        except BaseException as exc:  # what the test reports
            self.error = exc


def test_ctrl_c_with_streams_open_and_agents_running_logs_no_error(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    env = {"TASKCELL_LOG_LEVEL": "INFO", "TASKCELL_RETRY_BASE_SECONDS": "0.01"}
    process = start_serve(["--port", "0", "--db", str(tmp_path / "t.db")], env, log)
    try:
        url = wait_healthy(process, log)
        readers = []
        for query, agent in [
            ("stream for 60 seconds", "slow"),
            ("stream for 60 seconds", "slow"),
            ("hello there brave world", "echo"),
            ("stream for 60 seconds", "slow"),
        ]:
            created = httpx.post(
                f"{url}/api/v1/tasks", json={"query": query, "agent_name": agent}, timeout=10
            )
            assert created.status_code == 201, created.text
            reader = Reader(url, created.json()["data"]["task_id"])
            reader.start()
            readers.append(reader)
        for reader in readers:
            assert reader.chunk.wait(30), (reader.events, log.read_text(errors="replace")[-3000:])
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    output = log.read_text(errors="replace")
    noisy = [line for line in output.splitlines() if any(n in line for n in NOISE)]
    assert not noisy, "\n".join(noisy[:40])
    assert "Application shutdown complete" in output, output[-3000:]
    for reader in readers:
        reader.join(10)
        # Every stream ended as a stream ends (no cut connection), after what it had.
        assert reader.error is None, (repr(reader.error), reader.events[-3:])
        assert not reader.is_alive(), reader.events[-3:]
