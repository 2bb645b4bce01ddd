"""Tidying up after a dead process: its record goes, and a task it settled in its last moments
gets the closing events it did not live to write (on every store)."""

from __future__ import annotations

from datetime import timedelta

from aging import backdate_process
from taskcell.abc import Store, TaskStore
from taskcell.agents.registry import AgentRegistry
from taskcell.domain.events import EventType
from taskcell.domain.models import Run, RunStatus, Task, utcnow
from taskcell.domain.state_machine import TaskStatus
from taskcell.engine.engine import Engine
from taskcell.engine.responses import ResponseFactory

DEAD = "deadhost:101:aaaaaa"
ALIVE = "livehost:202:bbbbbb"


async def settled_by_the_dead(
    store: Store, status: TaskStatus, *, with_done: bool, error: str | None = None
) -> Task:
    """A once task the dead process ran and settled, with the log it had written by then."""
    finished = utcnow() - timedelta(minutes=5)
    task = Task(query="answer me", agent_name="echo")
    await store.create(task, conversation_title="t")
    run = Run(task_id=task.task_id, attempt=1, owner=DEAD, created_at=finished)
    assert await store.start_run(run, now=finished)
    closed, moved = await store.finish_run(
        run.run_id,
        {"status": RunStatus(status.value), "finished_at": finished},
        task_id=task.task_id,
        target=status,
        task_changes={"error_message": error} if error else None,
        now=finished,
    )
    assert closed and moved
    factory = ResponseFactory(task, run.run_id)
    events = [factory.user_message("answer me"), factory.message("the answer")]
    if with_done:
        events += [factory.task_completed(), factory.done()]
    for seq, event in enumerate(events, start=1):
        event.seq = seq
    await store.append_events(events, [])
    return task


async def kinds(store: Store, task_id: str) -> list[EventType]:
    return [e.event for e in await store.read_events(task_id)]


async def test_a_dead_process_is_buried_and_its_settled_tasks_get_done(store: TaskStore) -> None:
    full: Store = store  # type: ignore[assignment]  # every store under test is a Store
    await full.heartbeat(DEAD)
    await backdate_process(full, DEAD, timedelta(minutes=5))
    await full.heartbeat(ALIVE)
    completed = await settled_by_the_dead(full, TaskStatus.COMPLETED, with_done=False)
    failed = await settled_by_the_dead(full, TaskStatus.FAILED, with_done=False, error="boom")
    cancelled = await settled_by_the_dead(full, TaskStatus.CANCELLED, with_done=False)
    whole = await settled_by_the_dead(full, TaskStatus.COMPLETED, with_done=True)
    before = await kinds(full, whole.task_id)

    engine = Engine(full, AgentRegistry(), default_zone="UTC", owner="me:1:cccccc")
    await engine.start()
    try:
        await engine.wait_idle()
        assert (await kinds(full, completed.task_id))[-2:] == [
            EventType.TASK_COMPLETED,
            EventType.DONE,
        ]
        tail = (await full.read_events(failed.task_id))[-2:]
        assert [e.event for e in tail] == [EventType.TASK_FAILED, EventType.DONE]
        assert tail[0].payload == {"content": "boom"}
        assert (await kinds(full, cancelled.task_id))[-2:] == [
            EventType.TASK_CANCELLED,
            EventType.DONE,
        ]
        assert await kinds(full, whole.task_id) == before  # its log was whole: left alone
        seqs = [e.seq for e in await full.read_events(completed.task_id)]
        assert seqs == list(range(1, len(seqs) + 1))
        live = {p.process_id for p in await full.live_processes(timedelta(days=1))}
        # The dead process's record is gone. A single server buries every other process; a
        # shared database only those silent for two lease lengths.
        assert DEAD not in live
        assert (ALIVE in live) is (not full.single_server)
        # Burying again finds nobody, and writes nothing more.
        assert await engine.recovery.bury_dead_processes(engine.dead_after) == 0
        await engine.wait_idle()
        assert (await kinds(full, completed.task_id)).count(EventType.DONE) == 1
    finally:
        await engine.stop()


async def test_live_processes_by_heartbeat(store: TaskStore) -> None:
    full: Store = store  # type: ignore[assignment]
    await full.heartbeat("a:1:x")
    await backdate_process(full, "a:1:x", timedelta(minutes=10))
    await full.heartbeat("b:2:y")
    await backdate_process(full, "b:2:y", timedelta(minutes=1))
    (first,) = await full.live_processes(timedelta(minutes=2))
    await full.heartbeat("b:2:y")  # a heartbeat keeps the first one's started_at
    live = await full.live_processes(timedelta(minutes=2))
    assert [p.process_id for p in live] == ["b:2:y"], live
    (b,) = live
    assert b.started_at == first.started_at, (first, b)
    assert b.heartbeat_at > first.heartbeat_at, (first, b)
    assert await full.live_processes(timedelta(minutes=20)) != live  # a is there, silent
    dead = await full.claim_dead_processes(timedelta(minutes=2), keep="b:2:y")
    assert [p.process_id for p in dead] == ["a:1:x"]
    assert await full.claim_dead_processes(timedelta(minutes=2), keep="b:2:y") == []
    # Silent for no time at all (any heartbeat before now), but kept: b is never claimed.
    assert await full.claim_dead_processes(timedelta(0), keep="b:2:y") == []
