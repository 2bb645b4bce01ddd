"""The client's ``ServiceUnavailable``, from a real 503: the server's database is held by
another process (its exclusive lock), so a write waits out SQLite's busy timeout and is
answered "try again shortly". A create is not retried by the client (it is not idempotent);
the same call succeeds once the database is free, and nothing half-made was stored."""

from __future__ import annotations

import sqlite3

import pytest

from live_server import LiveServer
from taskcell.client import Client, ServiceUnavailable

pytestmark = pytest.mark.timeout(120)


def test_a_write_while_the_database_is_held_is_service_unavailable(
    server: LiveServer, alice: Client
) -> None:
    before = len(list(alice.tasks.iter()))
    holder = sqlite3.connect(server.folder / "tasks.db", isolation_level=None, timeout=30)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(ServiceUnavailable) as refused:
            alice.tasks.create("while held", agent="echo")
        assert refused.value.code == 503, refused.value
        assert "the database is unavailable" in refused.value.msg, refused.value.msg
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert len(list(alice.tasks.iter())) == before  # nothing stored by the refused create
    task = alice.tasks.create("once free", agent="echo")
    assert [event.event for event in alice.watch(task.task_id)][-1] == "done"
