"""Shared fixtures: every store the contract suite runs against."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from taskcell.abc import TaskStore
from taskcell.stores.memory import InMemoryTaskStore
from taskcell.stores.sqlite import SQLiteTaskStore

STORE_KINDS = ["memory", "sqlite"]


async def make_store(kind: str, tmp_path: Path) -> TaskStore:
    if kind == "memory":
        return InMemoryTaskStore()
    if kind == "sqlite":
        return SQLiteTaskStore(tmp_path / "tasks.db")
    raise ValueError(kind)


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TaskStore]:
    made = await make_store(request.param, tmp_path)
    await made.open()
    try:
        yield made
    finally:
        await made.close()
