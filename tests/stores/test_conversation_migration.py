"""Schema version 6 (conversation ids per user) on a SQLite file written before it."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskcell import Task
from taskcell.stores import codec, sqlite
from taskcell.stores.sqlite import SQLiteTaskStore


async def test_conversations_move_to_per_user_keys_with_their_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    every_version = sqlite._migration_files()
    assert [number for number, _, _ in every_version][-1] >= 6
    with monkeypatch.context() as patch:
        patch.setattr(sqlite, "_migration_files", lambda: [v for v in every_version if v[0] < 6])
        old = SQLiteTaskStore(path)
        await old.open()
        # Task columns added by later versions (a task's webhook_url) are left out of inserts.
        present = {row[1] for row in old.conn.execute("PRAGMA table_info(tasks)")}
        keep = [i for i, name in enumerate(codec.TASK_COLUMNS) if name in present]
        names = [codec.TASK_COLUMNS[i] for i in keep]
        insert = f"INSERT INTO tasks ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        patch.setattr(sqlite, "_TASK_INSERT", insert)
        values = codec.task_values
        patch.setattr(codec, "task_values", lambda task: tuple(values(task)[i] for i in keep))
        alice = Task(query="alice's question", agent_name="echo", user_id="alice")
        assert await old.create(alice, conversation_title="Alice's talk")
        # Before version 6 a conversation had one owner: an admin's task in it made no record.
        admin = Task(
            query="an admin looks in",
            agent_name="echo",
            user_id="root",
            conversation_id=alice.conversation_id,
        )
        assert not await old.create(admin, conversation_title="ignored")
        await old.close()

    store = SQLiteTaskStore(path)
    await store.open()
    try:
        conversation = alice.conversation_id
        assert await store.has_conversation(conversation, user_id="alice")
        assert await store.has_conversation(conversation, user_id="root")  # from its task
        assert not await store.has_conversation(conversation, user_id="bob")
        titles = dict(
            store.conn.execute(
                "SELECT user_id, title FROM conversations WHERE conversation_id = ?",
                (conversation,),
            ).fetchall()
        )
        assert titles == {"alice": "Alice's talk", "root": "an admin looks in"}
        bob = Task(query="mine", agent_name="echo", user_id="bob", conversation_id=conversation)
        assert await store.create(bob, conversation_title="Bob's talk")
        version = store.conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        assert version == every_version[-1][0]
    finally:
        await store.close()
