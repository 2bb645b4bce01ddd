"""The failures of issue 11, reproduced on one engine and a real SQLite file: a stale attempt
(its lease taken over) cannot settle, requeue or append; recovery is one write; a process
that dies between claiming an occurrence and starting it loses nothing; no log gets a second
``done``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

from taskcell.abc import StoreUnavailable
from taskcell.agents.local import AgentRequest
from taskcell.agents.registry import AgentRegistry
from taskcell.domain.events import Event, EventType
from taskcell.domain.models import Run, RunStatus, ScheduleConfig, Task, TaskPattern, utcnow
from taskcell.domain.state_machine import TaskStatus
from taskcell.engine.engine import INTERRUPTED, Engine, RetryPolicy
from taskcell.engine.recurring import occurrence_run
from taskcell.stores.sqlite import SQLiteTaskStore

LEASE = timedelta(seconds=30)


def make_engine(path: Path, registry: AgentRegistry) -> Engine:
    return Engine(
        SQLiteTaskStore(path),
        registry,
        retry=RetryPolicy(base_seconds=0.01, cap_seconds=0.05),
        default_zone="UTC",
    )


async def events_of(engine: Engine, task_id: str) -> list[Event]:
    await engine.log.flush()
    return await engine.store.read_events(task_id)


async def until_done(engine: Engine, task_id: str) -> None:
    async def read() -> None:
        async for event in engine.subscribe(task_id):
            if event.event is EventType.DONE:
                return

    await asyncio.wait_for(read(), 20)


async def test_a_stale_attempt_cannot_settle_or_append(tmp_path: Path) -> None:
    """SIGSTOP past the lease, in one process: another process (played by a direct store
    write) takes the run over; when the stale attempt goes on, its chunks and its settling
    are refused, it stops at once, and its agent is cancelled."""
    registry = AgentRegistry()
    streaming = asyncio.Event()
    go_on = asyncio.Event()
    cancelled = asyncio.Event()

    async def talker(request: AgentRequest) -> AsyncIterator[str]:
        try:
            yield "before the pause "
            streaming.set()
            await go_on.wait()
            for n in range(1000):
                yield f"stale chunk {n} "
                await asyncio.sleep(0.001)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    registry.register_local("talker", talker)
    engine = make_engine(tmp_path / "t.db", registry)
    await engine.start(schedule=False)
    try:
        task = await engine.submit(Task(query="talk", agent_name="talker"))
        await asyncio.wait_for(streaming.wait(), 20)
        await engine.log.flush()
        [run] = (await engine.store.list_runs(task.task_id)).items
        # The lease expired while the process was paused: another process took the run over
        # (closed it, requeued the task) in one write.
        await expire(engine, run)
        taken = await engine.store.interrupt_expired(INTERRUPTED, by="other-process")
        assert [r.run_id for r in taken] == [run.run_id]
        before = await events_of(engine, task.task_id)
        go_on.set()  # the stale attempt resumes
        await asyncio.wait_for(cancelled.wait(), 20)  # it stopped at once: its agent cancelled
        await asyncio.wait_for(engine.wait_idle(), 20)
        after = await events_of(engine, task.task_id)
    finally:
        await engine.stop()
    assert [e.seq for e in after] == list(range(1, len(after) + 1))
    new = after[len(before) :]
    assert not any(e.run_id == run.run_id for e in new), new
    kinds = [e.event for e in after]
    assert EventType.DONE not in kinds and EventType.TASK_COMPLETED not in kinds, kinds
    current = await _load(tmp_path / "t.db", task.task_id)
    assert current.status is TaskStatus.PENDING, current  # as the takeover left it
    [stored] = await _runs(tmp_path / "t.db", task.task_id)
    assert (stored.status, stored.epoch, stored.closed_by) == (
        RunStatus.INTERRUPTED,
        1,
        "other-process",
    )
    assert engine.log.dropped_total > 0


async def expire(engine: Engine, run: Run) -> None:
    """The run's lease ran out (its process was paused past it)."""
    expired = {"lease_expires_at": utcnow() - timedelta(seconds=1)}
    assert await engine.store.update_run(run.run_id, expired)


async def _load(path: Path, task_id: str) -> Task:
    store = SQLiteTaskStore(path)
    try:
        task = await store.load(task_id)
        assert task is not None
        return task
    finally:
        await store.close()


async def _runs(path: Path, task_id: str) -> list[Run]:
    store = SQLiteTaskStore(path)
    try:
        return (await store.list_runs(task_id)).items
    finally:
        await store.close()


async def test_a_stopped_engine_never_requeues_a_task_another_process_runs(
    tmp_path: Path,
) -> None:
    registry = AgentRegistry()
    started = asyncio.Event()

    async def slow(request: AgentRequest) -> str:
        started.set()
        await asyncio.sleep(60)
        return "never"

    registry.register_local("slow", slow)
    engine = make_engine(tmp_path / "s.db", registry)
    await engine.start(schedule=False)
    task = await engine.submit(Task(query="q", agent_name="slow"))
    await asyncio.wait_for(started.wait(), 20)
    [run] = (await engine.store.list_runs(task.task_id)).items
    # Taken over and started again by another process (attempt 2, its own run).
    await expire(engine, run)
    await engine.store.interrupt_expired(INTERRUPTED, by="other")
    now = utcnow()
    second = Run(
        task_id=task.task_id, attempt=2, owner="other", started_at=now, lease_expires_at=now + LEASE
    )
    assert await engine.store.start_run(second)
    await engine.stop()  # the stale attempt is stopped: it must not requeue the task
    current = await _load(tmp_path / "s.db", task.task_id)
    assert (current.status, current.attempt) == (TaskStatus.RUNNING, 2), current
    runs = {r.run_id: r.status for r in await _runs(tmp_path / "s.db", task.task_id)}
    assert runs == {run.run_id: RunStatus.INTERRUPTED, second.run_id: RunStatus.RUNNING}


async def test_recovery_is_one_write_and_leaves_one_done(tmp_path: Path) -> None:
    """A task left running by a dead process: recovery closes its run and requeues it in one
    write; burying the dead process afterwards (its heartbeat seen again) writes nothing."""
    path = tmp_path / "r.db"
    store = SQLiteTaskStore(path)
    task = Task(query="hello", agent_name="echo")
    await store.create(task, conversation_title="t")
    now = utcnow()
    await store.heartbeat("dead")
    orphan = Run(task_id=task.task_id, owner="dead", lease_expires_at=now + LEASE, started_at=now)
    assert await store.start_run(orphan)
    await store.close()

    registry = AgentRegistry()

    async def echo(request: AgentRequest) -> str:
        return f"echo: {request.query}"

    registry.register_local("echo", echo)
    engine = make_engine(path, registry)
    await engine.start(schedule=False)
    try:
        await until_done(engine, task.task_id)
        await asyncio.wait_for(engine.wait_idle(), 20)
        # The dead process is found again (as after a restart) and buried a second time.
        await engine.store.heartbeat("dead")
        assert await engine.recovery.bury_dead_processes(timedelta(0)) == 1
        events = await events_of(engine, task.task_id)
        runs = (await engine.store.list_runs(task.task_id)).items
    finally:
        await engine.stop()
    kinds = [e.event for e in events]
    assert kinds.count(EventType.DONE) == 1 and kinds.count(EventType.TASK_COMPLETED) == 1, kinds
    assert kinds[-1] is EventType.DONE
    by_attempt = {r.attempt: r for r in runs}
    assert by_attempt[1].status is RunStatus.INTERRUPTED
    assert (by_attempt[1].closed_by, by_attempt[1].epoch) == (engine.owner, 1)
    assert by_attempt[2].status is RunStatus.COMPLETED


async def test_a_claimed_occurrence_survives_its_claimer(tmp_path: Path) -> None:
    """A process dies right after claiming a due occurrence: its run is stored with the claim,
    so lease expiry recovers it and the occurrence is not lost."""
    registry = AgentRegistry()

    async def echo(request: AgentRequest) -> str:
        return "ok"

    registry.register_local("echo", echo)
    engine = make_engine(tmp_path / "c.db", registry)
    await engine.start(schedule=False)
    try:
        now = utcnow()
        task = Task(
            query="q",
            agent_name="echo",
            pattern=TaskPattern.RECURRING,
            schedule_config=ScheduleConfig(interval_minutes=1),
            status=TaskStatus.RUNNING,
            next_run_at=now - timedelta(seconds=1),
        )
        await engine.store.save(task)

        def later(claimed: Task) -> datetime:
            assert claimed.next_run_at is not None
            return claimed.next_run_at + timedelta(minutes=1)

        def by_dead(claimed: Task, due: datetime) -> Run:
            return occurrence_run(claimed, due, "dead", timedelta(seconds=-1))  # ran out

        # The claimer dies here: it never spawns the run it claimed.
        [(_, run)] = await engine.store.start_due(
            now,
            later,
            by_dead,
            skipped_reason="skipped",
        )
        assert run is not None
        assert await engine.scheduler.fire_due(now) == 0  # claimed: nobody fires it again
        assert await engine.recovery.recover_expired() == 1
        [stored] = (await engine.store.list_runs(task.task_id)).items
    finally:
        await engine.stop()
    assert (stored.run_id, stored.scheduled_for, stored.status) == (
        run.run_id,
        task.next_run_at,
        RunStatus.INTERRUPTED,
    )


async def test_the_opening_events_are_durable_when_submit_answers(tmp_path: Path) -> None:
    """What ``POST /tasks`` answers 201 after: the task's opening events are in the store."""
    registry = AgentRegistry()
    hold = asyncio.Event()

    async def waiting(request: AgentRequest) -> str:
        await hold.wait()
        return "ok"

    registry.register_local("waiting", waiting)
    engine = make_engine(tmp_path / "o.db", registry)
    await engine.start(schedule=False)
    try:
        task = await engine.submit(Task(query="first words", agent_name="waiting"))
        stored = await engine.store.read_events(task.task_id)  # the store, not the log's queue
        hold.set()
    finally:
        await engine.stop()
    assert [e.event for e in stored[:3]] == [
        EventType.CONVERSATION_STARTED,
        EventType.THREAD_STARTED,
        EventType.MESSAGE,
    ], stored


class FullDiskOnce:
    """The SQLite store, whose first settling of a completed run fails as a full disk does."""

    def __init__(self, store: SQLiteTaskStore) -> None:
        self._store = store
        self.failed = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def finish_run(self, run_id: str, changes: object, **options: object) -> object:
        if not self.failed and options.get("target") is TaskStatus.COMPLETED:
            self.failed += 1
            raise StoreUnavailable("the disk is full")
        return await self._store.finish_run(run_id, changes, **options)  # type: ignore[arg-type]


async def test_a_run_whose_settling_hits_an_outage_is_recovered_not_stranded(
    tmp_path: Path,
) -> None:
    """The settling write fails for an outage: the run is not left `running` under a lease
    this process keeps renewing; it is closed and its task requeued, and attempt 2 finishes."""
    registry = AgentRegistry()

    async def echo(request: AgentRequest) -> str:
        return "ok"

    registry.register_local("echo", echo)
    flaky = FullDiskOnce(SQLiteTaskStore(tmp_path / "f.db"))
    engine = Engine(
        flaky,  # type: ignore[arg-type]
        registry,
        retry=RetryPolicy(base_seconds=0.01, cap_seconds=0.05),
        default_zone="UTC",
        lease_seconds=0.4,  # the lease loop comes round every 0.2 s
    )
    await engine.start(schedule=False)
    try:
        task = await engine.submit(Task(query="q", agent_name="echo"))
        await until_done(engine, task.task_id)
        runs = (await engine.store.list_runs(task.task_id)).items
        events = await events_of(engine, task.task_id)
    finally:
        await engine.stop()
    assert flaky.failed == 1
    assert sorted((r.attempt, r.status) for r in runs) == [
        (1, RunStatus.INTERRUPTED),
        (2, RunStatus.COMPLETED),
    ], runs
    kinds = [e.event for e in events]
    assert kinds.count(EventType.DONE) == 1 and kinds[-1] is EventType.DONE, kinds
