"""Fixtures for API tests: a real taskcell app on a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskcell.agents.http import aclose_shared_http_clients
from taskcell.api.app import create_app
from taskcell.settings import Settings
from taskcell.testing import serve_app

ServerFactory = Callable[..., AbstractAsyncContextManager[str]]


def settings_for(db: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{db}",
        "retry_base_seconds": 0.01,
        "retry_cap_seconds": 0.05,
        "agents": {},
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "api.db"


@pytest.fixture
def server_factory(db_path: Path) -> ServerFactory:
    """``async with server_factory(**settings) as base_url:`` a real server on the test DB."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[str]:
        def build(base_url: str) -> Any:
            return create_app(settings_for(db_path, public_url=base_url, **overrides))

        async with serve_app(app_factory=build) as base_url:
            yield base_url
        await aclose_shared_http_clients()

    return start


@pytest.fixture
async def base_url(server_factory: ServerFactory) -> AsyncIterator[str]:
    async with server_factory() as url:
        yield url


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as made:
        yield made


async def read_sse(
    client: httpx.AsyncClient,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    stop_after: int | None = None,
    method: str = "GET",
    json_body: Any = None,
) -> list[dict[str, Any]]:
    """Events of an SSE stream as dicts (with ``id`` from the ``id:`` line), to its end."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async with client.stream(method, path, headers=headers, json=json_body) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
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
