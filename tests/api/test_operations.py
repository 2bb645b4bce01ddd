"""Health, metrics, the agent list, and agents configured in settings and taskcell.toml."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from taskcell.agents.registry import AgentRegistry
from taskcell.api.app import create_app
from taskcell.cli import app as cli
from taskcell.engine.engine import Engine
from taskcell.settings import Settings
from taskcell.testing import serve_app

from .conftest import ServerFactory, read_sse, settings_for


async def test_health_and_metrics(client: httpx.AsyncClient) -> None:
    health = (await client.get("/api/v1/health")).json()
    processes = health["data"].pop("processes")
    me = health["data"].pop("process_id")
    assert health["data"] == {
        "status": "ok",
        "store": True,
        "scheduler": True,
        "event_log": True,
        "problem": None,
    }
    # This server is the one live process of its SQLite file, named by host and pid.
    assert [p["process_id"] for p in processes] == [me]
    assert me.split(":")[1] == str(os.getpid())
    made = await client.post("/api/v1/tasks", json={"query": "count me", "agent_name": "echo"})
    await read_sse(client, f"/api/v1/tasks/{made.json()['data']['task_id']}/events")
    text = (await client.get("/metrics")).text
    assert 'taskcell_tasks{status="completed"} 1.0' in text
    assert 'taskcell_tasks{status="failed"} 0.0' in text
    for name in (
        "taskcell_runs_total",
        "taskcell_events_appended",
        "taskcell_live_subscribers",
        "taskcell_scheduler_lag_seconds",
        "taskcell_agent_call_seconds",
    ):
        assert name in text, name


async def test_agents_lists_the_demo_agents_and_a_local_one(server_factory: ServerFactory) -> None:
    agents = {"instant": {"entry": "taskcell.agents.samples:instant", "description": "quick"}}
    async with server_factory(agents=agents) as url, httpx.AsyncClient(base_url=url) as client:
        listed = (await client.get("/api/v1/agents")).json()["data"]
        by_name = {a["name"]: a for a in listed}
        assert sorted(by_name) == ["asker", "clock", "echo", "flaky", "instant", "slow"]
        assert by_name["echo"]["reachable"] is True
        assert by_name["echo"]["url"].endswith("/a2a/echo")
        assert by_name["instant"]["url"] == "local"
        made = await client.post("/api/v1/tasks", json={"query": "hi", "agent_name": "instant"})
        events = await read_sse(client, f"/api/v1/tasks/{made.json()['data']['task_id']}/events")
        chunks = [e for e in events if e["event"] == "message_chunk"]
        assert chunks[0]["data"]["payload"]["content"] == "done: hi"


def test_agents_come_from_taskcell_toml_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "taskcell.toml"
    toml.write_text(
        '[agents.remote]\nurl = "http://127.0.0.1:9/a2a/x"\n\n'
        '[agents.words]\nentry = "taskcell.agents.samples:words"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("TASKCELL_CONFIG", str(toml))
    monkeypatch.setenv("TASKCELL_DEMO_AGENTS", "false")
    registry = AgentRegistry.from_settings(Settings(), "http://127.0.0.1:1")
    assert registry.names() == ["remote", "words"]
    monkeypatch.setenv(
        "TASKCELL_AGENTS", '{"instant": {"entry": "taskcell.agents.samples:instant"}}'
    )
    assert "instant" in AgentRegistry.from_settings(Settings(), "http://127.0.0.1:1")
    with pytest.raises(ValueError, match="exactly one of url and entry"):
        Settings(agents={"bad": {"url": "http://x", "entry": "a:b"}})


async def test_health_answers_503_when_a_loop_died_and_status_says_so(db_path: Path) -> None:
    apps: list[Any] = []

    def build(base_url: str) -> Any:
        made = create_app(settings_for(db_path, public_url=base_url))
        apps.append(made)
        return made

    async def crash() -> None:
        raise RuntimeError("disk on fire")

    async with serve_app(app_factory=build) as url, httpx.AsyncClient(base_url=url) as client:
        engine: Engine = apps[0].state.engine
        real = engine.supervisor._loops["scheduler"]
        engine.supervisor.start("scheduler", crash)  # stands in for the real loop dying
        try:
            await asyncio.wait_for(engine.supervisor.failed.wait(), 5)
            answer = await client.get("/api/v1/health")
            result = await asyncio.to_thread(CliRunner().invoke, cli, ["status", "--url", url])
        finally:
            engine.supervisor._loops["scheduler"] = real  # stopped with the others
    assert answer.status_code == 503
    data = answer.json()["data"]
    assert (data["status"], data["scheduler"], data["store"]) == ("failing", False, True)
    assert "disk on fire" in data["problem"]
    assert result.exit_code == 1, result.output
    assert "failing" in result.output
    assert "scheduler down" in result.output
    assert "disk on fire" in result.output
