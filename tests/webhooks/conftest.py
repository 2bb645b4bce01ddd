"""Fixtures: a real taskcell server (uvicorn on loopback, a SQLite file of the test's own)
whose webhook allow-list lets 127.0.0.1 through, a real receiver, and a client."""

from __future__ import annotations

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
from webhooks.receiver import Receiver

ServerFactory = Callable[..., AbstractAsyncContextManager[str]]


@pytest.fixture
def server_factory(tmp_path: Path) -> ServerFactory:
    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[str]:
        values: dict[str, Any] = {
            "database_url": f"sqlite:///{tmp_path / 'hooks.db'}",
            "retry_base_seconds": 0.01,
            "retry_cap_seconds": 0.05,
            "agents": {},
            "webhook_allow": "127.0.0.1/32",
        }
        values.update(overrides)

        def build(base_url: str) -> Any:
            return create_app(Settings(**values, public_url=base_url))

        async with serve_app(app_factory=build) as base_url:
            yield base_url
        await aclose_shared_http_clients()

    return start


@pytest.fixture
async def client(server_factory: ServerFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with server_factory() as url, httpx.AsyncClient(base_url=url, timeout=20) as made:
        yield made


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    made = Receiver()
    async with made.serving():
        yield made
