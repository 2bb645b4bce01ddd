"""A store hands out copies: changing a task it answered, or one it was given, changes nothing
stored (the in-memory store copies only the mutable fields, so this pins which ones they are)."""

from __future__ import annotations

from taskcell.abc import TaskFilter, TaskStore
from taskcell.domain.models import Task


async def test_tasks_given_and_answered_share_nothing_mutable(store: TaskStore) -> None:
    task = Task(
        query="q",
        agent_name="echo",
        metadata={"tags": ["a"], "nested": {"n": 1}},
        remote_task_ids=["r1"],
    )
    await store.save(task)
    task.metadata["tags"].append("changed after save")
    task.remote_task_ids.append("changed after save")

    loaded = await store.load(task.task_id)
    assert loaded is not None
    loaded.metadata["nested"]["n"] = 2
    loaded.remote_task_ids.append("changed after load")
    (listed,) = (await store.list_tasks(TaskFilter())).items
    listed.metadata["tags"].append("changed after list")

    again = await store.load(task.task_id)
    assert again is not None
    assert again.metadata == {"tags": ["a"], "nested": {"n": 1}}, again.metadata
    assert again.remote_task_ids == ["r1"], again.remote_task_ids
