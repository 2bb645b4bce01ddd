"""Closing an SQLite store while a write waits for its group commit."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from taskcell.domain.models import Task
from taskcell.stores.sqlite import SQLiteTaskStore


async def test_close_with_a_commit_pending_commits_once_and_stays_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteTaskStore(tmp_path / "t.db")
    await store.open()
    task = Task(query="kept", agent_name="echo")
    with caplog.at_level(logging.INFO, logger="taskcell.stores.sqlite"):
        saving = asyncio.create_task(store.save(task))
        # One turn of the loop: the save has run its statement and now waits for the commit
        # the store scheduled for the end of this turn; close comes before that commit.
        await asyncio.sleep(0)
        assert not saving.done()
        await store.close()
        await asyncio.wait_for(saving, 5)  # committed by close, not failed
        await asyncio.sleep(0)  # the turn in which the scheduled commit would have run
    logged = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert not [r for r in logged if r[0] == "ERROR"], logged  # no false "commit failed"
    again = SQLiteTaskStore(tmp_path / "t.db")
    await again.open()
    try:
        loaded = await again.load(task.task_id)
    finally:
        await again.close()
    assert loaded is not None and loaded.query == "kept", loaded
