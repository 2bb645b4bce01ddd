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
        alice = Task(query="alice's question", agent_name="echo", user_id="alice")
        # Before version 6 a conversation had one owner: an admin's task in it made no record.
        admin = Task(
            query="an admin looks in",
            agent_name="echo",
            user_id="root",
            conversation_id=alice.conversation_id,
        )
        # Rows as a store of that version wrote them: the columns it had (later versions add
        # columns the current store writes).
        known = {row[1] for row in old.conn.execute("PRAGMA table_info(tasks)")}
        for task in (alice, admin):
            row = dict(zip(codec.TASK_COLUMNS, codec.task_values(task), strict=True))
            columns = [name for name in codec.TASK_COLUMNS if name in known]
            marks = ", ".join("?" for _ in columns)
            old.conn.execute(
                f"INSERT INTO tasks ({', '.join(columns)}) VALUES ({marks})",
                [row[name] for name in columns],
            )
        old.conn.execute(
            "INSERT INTO conversations VALUES (?, ?, ?, ?)",
            (alice.conversation_id, "Alice's talk", "alice", codec.ts(alice.created_at)),
        )
        old.conn.commit()
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
