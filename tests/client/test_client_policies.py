"""The clients' policies at creation and ``tasks.backfill``, against a real ``taskcell serve``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from live_server import ALICE, BOB, LiveServer
from taskcell.client import AsyncClient, Backfill, Client, Conflict, TaskNotFound, ValidationFailed


def test_policies_and_a_backfill(alice: Client, bob: Client) -> None:
    task = alice.tasks.create(
        "tick",
        agent="echo",
        schedule={"interval_minutes": 60},
        run_immediately=False,
        overlap="buffer_all",
        catchup="skip",
        catchup_window_seconds=600,
    )
    assert (task.overlap.value, task.catchup.value, task.catchup_window_seconds) == (
        "buffer_all",
        "skip",
        600,
    )
    assert task.next_run_at is not None
    end = task.next_run_at - timedelta(hours=1)
    done = alice.tasks.backfill(task.task_id, start=end - timedelta(hours=2), end=end)
    assert isinstance(done, Backfill)
    assert done.queued == 2
    assert [r.status for r in done.runs] == ["running", "queued"]
    assert [r.scheduled_for for r in done.runs] == [
        end - timedelta(hours=2),
        end - timedelta(hours=1),
    ]
    again = alice.tasks.backfill(task.task_id, start=end - timedelta(hours=2), end=end)
    assert again.queued == 0 and again.already_run == [r.scheduled_for for r in done.runs]
    with pytest.raises(ValidationFailed) as refused:
        alice.tasks.backfill(task.task_id, start=end, end=end - timedelta(hours=1))
    assert refused.value.field_names() == ["end"]
    with pytest.raises(TaskNotFound):
        bob.tasks.backfill(task.task_id, start=end - timedelta(hours=1), end=end)
    with pytest.raises(ValidationFailed) as bad:
        alice.tasks.create("tick", agent="echo", schedule={"interval_minutes": 5}, overlap="x")
    assert bad.value.field_names() == ["overlap"]
    once = alice.tasks.create("hi", agent="echo")
    with pytest.raises(Conflict):
        alice.tasks.backfill(once.task_id, start=end - timedelta(hours=1), end=end)


async def test_the_async_client_backfills(server: LiveServer) -> None:
    async with AsyncClient(server.url, ALICE) as alice:
        task = await alice.tasks.create(
            "tick", agent="echo", schedule={"interval_minutes": 60}, run_immediately=False
        )
        assert task.next_run_at is not None
        end = task.next_run_at - timedelta(hours=1)
        done = await alice.tasks.backfill(task.task_id, start=end - timedelta(hours=1), end=end)
        assert done.queued == 1 and done.runs[0].status == "running"
    async with AsyncClient(server.url, BOB) as bob:
        with pytest.raises(TaskNotFound):
            await bob.tasks.backfill(task.task_id, start=end - timedelta(hours=1), end=end)
