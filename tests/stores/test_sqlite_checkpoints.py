"""SQLite's WAL is moved into the database file by the store's checkpoint thread, not by a
commit on the event loop (a checkpoint waits for the disk; a commit in WAL mode need not)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from taskcell.domain.models import Task
from taskcell.stores.sqlite import WAL_AUTOCHECKPOINT_PAGES, SQLiteTaskStore

pytestmark = pytest.mark.timeout(60)


def tasks_in_main_file(db: Path, copy: Path) -> int:
    """Tasks a reader of the main file alone finds (a copy of it without its WAL)."""
    shutil.copyfile(db, copy)
    with sqlite3.connect(copy) as conn:
        return int(conn.execute("SELECT count(*) FROM tasks").fetchone()[0])


async def test_committed_writes_reach_the_main_file_through_the_checkpoint_thread(
    tmp_path: Path,
) -> None:
    db = tmp_path / "tasks.db"
    store = SQLiteTaskStore(db)
    await store.open()
    try:
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == (
            WAL_AUTOCHECKPOINT_PAGES
        ), "a commit checkpoints by itself only past the bound"
        await store.save(Task(query="first", agent_name="echo"))
        handed = store._checkpointing
        assert handed is not None, "the commit handed a checkpoint over"
        await asyncio.wrap_future(handed)
        assert tasks_in_main_file(db, tmp_path / "copy.db") == 1
        await store.save(Task(query="second", agent_name="echo"))
    finally:
        await store.close()
    # Closed: everything is in the main file, and the store is left with no thread.
    assert tasks_in_main_file(db, tmp_path / "copy2.db") == 2
    assert store._checkpointer is None


async def test_a_checkpoint_never_creates_a_deleted_file(tmp_path: Path) -> None:
    db = tmp_path / "tasks.db"
    store = SQLiteTaskStore(db)
    await store.open()
    try:
        for suffix in ("", "-wal", "-shm"):
            os.unlink(f"{db}{suffix}")
        store._checkpoint()  # what the thread runs: it fails (logged), it makes no file
        assert not db.exists()
    finally:
        await store.close()
