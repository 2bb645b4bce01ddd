"""Streams after retention, over HTTP: a reader asking for removed events is told, then goes on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskcell.api.app import create_app
from taskcell.engine.pruner import RetentionPolicy, prune
from taskcell.settings import Settings
from taskcell.stores.sqlite import SQLiteTaskStore
from taskcell.testing import serve_app

from .fill import DAY, T0, once_task, recurring_task


async def read_sse(
    client: httpx.AsyncClient,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    stop_after: int | None = None,
) -> list[dict[str, Any]]:
    """The stream's messages as dicts (``id`` from the ``id:`` line), to its end."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                current["id"] = line[3:].strip()
            elif line.startswith("data:"):
                current.update(json.loads(line[5:].strip()))
            elif line == "" and current:
                events.append(current)
                current = {}
                if stop_after is not None and len(events) >= stop_after:
                    break
    return events


@pytest.fixture
async def pruned_db(tmp_path: Path) -> Path:
    """A SQLite file holding a pruned finished once task and a pruned paused recurring task."""
    path = tmp_path / "pruned.db"
    store = SQLiteTaskStore(path)
    await store.open()
    try:
        await once_task(store, "once", created=T0 - 41 * DAY, finished=T0 - 40 * DAY)
        starts = [T0 - 45 * DAY, T0 - 40 * DAY, T0 - 2 * DAY]
        task, _ = await recurring_task(store, "rec", starts, open_last=False)
        await store.update(task.task_id, {"paused": True, "next_run_at": None})
        report = await prune(store, RetentionPolicy(days=30, runs=1), now=T0)
        assert report.events == 5 + 8, report
    finally:
        await store.close()
    return path


@pytest.fixture
async def client(pruned_db: Path) -> Any:
    settings = Settings(database_url=f"sqlite:///{pruned_db}", agents={}, retention_enabled=False)
    async with (
        serve_app(app_factory=lambda url: create_app(replace_url(settings, url))) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=20) as made,
    ):
        yield made


def replace_url(settings: Settings, url: str) -> Settings:
    return settings.model_copy(update={"public_url": url})


async def test_a_reader_before_the_removed_events_is_told_then_gets_the_rest(
    client: httpx.AsyncClient,
) -> None:
    events = await read_sse(client, "/api/v1/tasks/rec/events?after=3", stop_after=4)
    first = events[0]
    assert first["event"] == "history_truncated", first
    assert first["id"] == "8" and first["seq"] == 8
    assert first["data"]["payload"]["first_seq"] == 9
    assert first["data"]["task_id"] == "rec"
    assert [e["seq"] for e in events[1:]] == [9, 10, 11]
    # Resuming from the truncation's id (what a client sends as Last-Event-ID) is clean.
    again = await read_sse(
        client, "/api/v1/tasks/rec/events", headers={"Last-Event-ID": "8"}, stop_after=3
    )
    assert [e["seq"] for e in again] == [9, 10, 11]
    assert all(e["event"] != "history_truncated" for e in again)


async def test_a_finished_task_with_every_event_removed_says_so_and_ends(
    client: httpx.AsyncClient,
) -> None:
    events = await read_sse(client, "/api/v1/tasks/once/events")
    assert [e["event"] for e in events] == ["history_truncated"]
    assert events[0]["seq"] == 5 and events[0]["data"]["payload"]["first_seq"] == 6
    assert await read_sse(client, "/api/v1/tasks/once/events?after=5") == []


async def test_a_reader_of_what_is_still_stored_sees_no_truncation(
    client: httpx.AsyncClient,
) -> None:
    events = await read_sse(client, "/api/v1/tasks/rec/events?after=9", stop_after=2)
    assert [e["seq"] for e in events] == [10, 11]


async def test_metrics_show_rows_removed_and_the_database_size(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    size = [line for line in text.splitlines() if line.startswith("taskcell_database_bytes ")]
    assert size and float(size[0].split()[1]) > 0, size
    removed = {
        line.split("{")[1].split("}")[0]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("taskcell_retention_removed_total{")
    }
    assert removed.get('kind="events"', 0) >= 13, removed  # this process pruned the fixture
