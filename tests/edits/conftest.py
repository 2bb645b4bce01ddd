"""Fixtures of the edit tests: a real taskcell server on 127.0.0.1 over a SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskcell.agents.http import aclose_shared_http_clients
from taskcell.api.app import create_app
from taskcell.settings import Settings
from taskcell.testing import serve_app


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
async def base_url(tmp_path: Path) -> AsyncIterator[str]:
    def build(url: str) -> Any:
        return create_app(settings_for(tmp_path / "edits.db", public_url=url))

    async with serve_app(app_factory=build) as url:
        yield url
    await aclose_shared_http_clients()


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as made:
        yield made
