"""TaskService: the origin's operations over a store, and the process-wide locator."""

from __future__ import annotations

from pathlib import Path

import pytest

import taskcell
from taskcell import (
    InMemoryTaskStore,
    SQLiteTaskStore,
    Task,
    TaskNotFound,
    TaskService,
    TaskStatus,
    get_task_service,
    reset_task_service,
    set_task_service,
)
from taskcell.abc import TaskFilter, TaskStore


@pytest.fixture
def service(store: TaskStore) -> TaskService:
    return TaskService(store=store)


async def test_a_lifecycle_answers_whether_each_change_happened(service: TaskService) -> None:
    task = await service.create_task(Task(query="hi", agent_name="echo"))
    assert await service.start_task(task.task_id)
    assert not await service.start_task(task.task_id)
    assert await service.complete_task(task.task_id)
    assert not await service.fail_task(task.task_id, "too late")
    loaded = await service.get_task(task.task_id)
    assert loaded is not None and loaded.status is TaskStatus.COMPLETED


async def test_cancel_is_idempotent_and_refused_after_completion(service: TaskService) -> None:
    task = await service.create_task(Task(query="hi", agent_name="echo"))
    assert await service.cancel_task(task.task_id, reason="user asked")
    assert await service.cancel_task(task.task_id)
    loaded = await service.require_task(task.task_id)
    assert (loaded.status, loaded.error_message) == (TaskStatus.CANCELLED, "user asked")

    done = await service.create_task(Task(query="hi", agent_name="echo"))
    await service.start_task(done.task_id)
    await service.complete_task(done.task_id)
    assert not await service.cancel_task(done.task_id)
    failed = await service.create_task(Task(query="hi", agent_name="echo"))
    await service.fail_task(failed.task_id, "boom")
    assert not await service.cancel_task(failed.task_id)
    with pytest.raises(TaskNotFound):
        await service.cancel_task("missing")


async def test_update_task_never_moves_status(service: TaskService) -> None:
    task = await service.create_task(Task(query="hi", agent_name="echo"))
    await service.start_task(task.task_id)
    task.title = "renamed"
    task.remote_task_ids = ["remote-1"]
    assert await service.update_task(task)  # the stale copy still says pending
    loaded = await service.require_task(task.task_id)
    assert (loaded.title, loaded.remote_task_ids, loaded.status) == (
        "renamed",
        ["remote-1"],
        TaskStatus.RUNNING,
    )


async def test_cancel_conversation_tasks_and_list(service: TaskService) -> None:
    a = await service.create_task(Task(query="a", agent_name="echo", conversation_id="c"))
    b = await service.create_task(Task(query="b", agent_name="echo", conversation_id="c"))
    await service.create_task(Task(query="c", agent_name="echo", conversation_id="other"))
    assert sorted(await service.cancel_conversation_tasks("c")) == sorted([a.task_id, b.task_id])
    page = await service.list_tasks(TaskFilter(status=TaskStatus.CANCELLED))
    assert {t.task_id for t in page.items} == {a.task_id, b.task_id}


async def test_delete_only_finished_tasks(service: TaskService) -> None:
    task = await service.create_task(Task(query="a", agent_name="echo"))
    assert not await service.delete_task(task.task_id)
    await service.cancel_task(task.task_id)
    assert await service.delete_task(task.task_id)
    assert await service.get_task(task.task_id) is None


async def test_locator_uses_the_database_url_from_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKCELL_DATABASE_URL", f"sqlite:///{tmp_path / 'located.db'}")
    reset_task_service()
    try:
        service = get_task_service()
        assert get_task_service() is service
        assert isinstance(service.store, SQLiteTaskStore)
        assert service.store.path == tmp_path / "located.db"
        await service.create_task(Task(query="hi", agent_name="echo"))
        await service.store.close()
        replacement = TaskService(InMemoryTaskStore())
        set_task_service(replacement)
        assert get_task_service() is replacement
    finally:
        reset_task_service()


def test_every_public_name_imports_from_the_package() -> None:
    for name in (
        "Task",
        "TaskStatus",
        "TaskPattern",
        "ScheduleConfig",
        "Run",
        "TaskStore",
        "InMemoryTaskStore",
        "SQLiteTaskStore",
        "TaskService",
        "get_task_service",
        "set_task_service",
        "reset_task_service",
    ):
        assert hasattr(taskcell, name), name
