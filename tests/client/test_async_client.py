"""``AsyncClient`` against a real ``taskcell serve``: the same calls, awaited, and the same
errors."""

from __future__ import annotations

import pytest

from live_server import ALICE, BOB, LiveServer
from taskcell.client import AsyncClient, Conflict, TaskNotFound, Unauthorized, ValidationFailed


async def test_the_async_client_end_to_end(server: LiveServer) -> None:
    async with AsyncClient(server.url, ALICE) as alice:
        task = await alice.tasks.create("async hello", agent="echo")
        events = [event async for event in alice.watch(task.task_id)]
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events[-1].event == "done"
        assert (await alice.tasks.get(task.task_id)).status.value == "completed"
        runs = [run async for run in alice.tasks.iter_runs(task.task_id)]
        assert [run.result for run in runs] == ["async hello"]
        items = [i async for i in alice.conversations.iter_items(task.conversation_id)]
        assert any(item.event == "message" for item in items)
        assert {a.name for a in await alice.agents.list()} >= {"echo", "clock"}
        assert (await alice.health()).status == "ok"
        assert "taskcell_tasks" in await alice.metrics()

        streamed = [e async for e in alice.stream("streamed words", "echo")]
        assert streamed[-1].event == "done"

        recurring = await alice.tasks.create(
            "time?", agent="clock", schedule={"interval_minutes": 5}, run_immediately=False
        )
        assert (await alice.tasks.pause(recurring.task_id)).paused
        assert not (await alice.tasks.resume(recurring.task_id)).paused
        upcoming = await alice.tasks.upcoming(recurring.task_id, count=2)
        gap = upcoming.items[1].at - upcoming.items[0].at
        assert gap.total_seconds() == 300, upcoming  # every 5 minutes
        assert (await alice.tasks.run_now(recurring.task_id)).task_id == recurring.task_id
        assert (await alice.tasks.cancel(recurring.task_id)).success
        with pytest.raises(Conflict):
            await alice.tasks.answer(recurring.task_id, "no question was asked")
        assert (await alice.tasks.delete(task.task_id)).deleted

        with pytest.raises(ValidationFailed) as refused:
            await alice.tasks.create("", agent="echo")
        assert refused.value.field_names() == ["query"]

    async with AsyncClient(server.url, BOB) as bob:
        with pytest.raises(TaskNotFound):
            await bob.tasks.get(recurring.task_id)
    async with AsyncClient(server.url, "not-a-key") as stranger:
        with pytest.raises(Unauthorized):
            await stranger.tasks.list()
