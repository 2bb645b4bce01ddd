"""A ``taskcell serve`` killed (SIGKILL) in the middle of a real remote A2A agent's task: the
restarted server (SQLite) or another process after the lease (PostgreSQL) resumes the same
remote task, so the agent works once and the log has each of its chunks once."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.gated_agent import ANSWER, GatedAgent, gated_app
from pg import run_sync
from serving import start_serve, wait_healthy
from taskcell.testing import serve_app_in_thread

from .conftest import LEASE_SECONDS, _empty

pytestmark = pytest.mark.timeout(120)

_WAIT = 30.0  # an order of magnitude above what any step here takes


@contextmanager
def gated_agent() -> Iterator[tuple[GatedAgent, str]]:
    agent = GatedAgent()
    with serve_app_in_thread(app_factory=lambda base: gated_app(agent, base)) as base_url:
        yield agent, f"{base_url}/gated"


@contextmanager
def serving(
    env: dict[str, str], log: Path
) -> Iterator[tuple[httpx.Client, subprocess.Popen[bytes]]]:
    process = start_serve(["--port", "0"], env, log)
    try:
        url = wait_healthy(process, log)
        client = httpx.Client(base_url=url, timeout=10)
    except BaseException:
        process.kill()
        process.wait(timeout=10)
        raise
    try:
        yield client, process
    finally:
        client.close()
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def server_env(agent_url: str, **more: str) -> dict[str, str]:
    return {
        "TASKCELL_RETRY_BASE_SECONDS": "0.01",
        "TASKCELL_LOG_LEVEL": "INFO",
        "TASKCELL_AGENTS": json.dumps({"gated": {"url": agent_url}}),
        **more,
    }


def read_events(client: httpx.Client, task_id: str, until: Any) -> list[dict[str, Any]]:
    """The task's events up to the first for which ``until(events)`` holds."""
    events: list[dict[str, Any]] = []
    with client.stream("GET", f"/api/v1/tasks/{task_id}/events", timeout=_WAIT) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if until(events):
                    break
    return events


def chunk_texts(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["payload"]["content"] for e in events if e["event"] == "message_chunk"]


def start_and_kill(
    client: httpx.Client, process: subprocess.Popen[bytes], agent: GatedAgent, when: str
) -> str:
    """Create the task, SIGKILL the server once the agent ticked three times (``at_once``,
    most likely before taskcell recorded the remote task, or ``logged``: once the three ticks
    are in the log); answers its id. Then let the agent go on to its fifth tick while no
    taskcell listens."""
    created = client.post("/api/v1/tasks", json={"query": "tick", "agent_name": "gated"})
    assert created.status_code == 201, created.text
    task_id: str = created.json()["data"]["task_id"]
    assert agent.ticked[3].wait(_WAIT), "the agent never ticked 3 times"
    if when == "logged":
        read_events(client, task_id, lambda seen: len(chunk_texts(seen)) >= 3)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    agent.release[3].set()
    assert agent.ticked[5].wait(_WAIT), "the agent never ticked 5 times"
    return task_id


def finish_resumed(client: httpx.Client, agent: GatedAgent, task_id: str) -> list[dict[str, Any]]:
    """Wait until the resumed run logged what the agent said meanwhile, let the agent finish,
    and answer the whole log."""
    read_events(client, task_id, lambda seen: "tick 5 " in chunk_texts(seen))
    agent.release[5].set()
    return read_events(client, task_id, lambda seen: seen[-1]["event"] == "done")


def check_resumed_once(agent: GatedAgent, events: list[dict[str, Any]], runs: list[Any]) -> None:
    assert agent.executions == 1, f"the agent should run the task once, saw {agent.journal}"
    chunks = chunk_texts(events)
    assert chunks == [f"tick {i} " for i in range(1, 7)], (
        f"each tick should be in the log once, in order, saw {chunks}"
    )
    kinds = [e["event"] for e in events]
    assert kinds.count("done") == 1 and kinds[-2:] == ["task_completed", "done"], kinds
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    ordered = sorted(runs, key=lambda r: r["attempt"])
    assert [(r["attempt"], r["status"]) for r in ordered] == [
        (1, "interrupted"),
        (2, "completed"),
    ], runs
    assert ordered[1]["result"] == ANSWER.strip(), ordered[1]


@pytest.mark.parametrize("when", ["at_once", "logged"])
def test_a_restart_after_sigkill_resumes_the_remote_task(tmp_path: Path, when: str) -> None:
    db = tmp_path / "crash.db"
    with gated_agent() as (agent, url):
        env = server_env(url, TASKCELL_DATABASE_URL=f"sqlite:///{db}")
        with serving(env, tmp_path / "first.log") as (client, process):
            task_id = start_and_kill(client, process, agent, when)
        with serving(env, tmp_path / "second.log") as (client, _):
            events = finish_resumed(client, agent, task_id)
            runs = client.get(f"/api/v1/tasks/{task_id}/runs").json()["data"]["items"]
    check_resumed_once(agent, events, runs)


@pytest.mark.parametrize("when", ["at_once", "logged"])
def test_another_process_resumes_the_remote_task_after_the_lease(
    postgres_database: str, tmp_path: Path, when: str
) -> None:
    run_sync(lambda: _empty(postgres_database))
    with gated_agent() as (agent, url):
        env = server_env(
            url,
            TASKCELL_DATABASE_URL=postgres_database,
            TASKCELL_LEASE_SECONDS=str(LEASE_SECONDS),
        )
        with serving(env, tmp_path / "a.log") as (a, a_process):
            with serving(env, tmp_path / "b.log") as (b, _):
                task_id = start_and_kill(a, a_process, agent, when)
                events = finish_resumed(b, agent, task_id)
                runs = b.get(f"/api/v1/tasks/{task_id}/runs").json()["data"]["items"]
    check_resumed_once(agent, events, runs)
    assert runs[0]["owner"] != runs[1]["owner"], runs
