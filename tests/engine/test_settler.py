"""The run settler's decisions, on real stores (in memory and an SQLite file): what an outcome,
a transient failure, a stop and recovery's interruption write, and that a run taken over
writes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from taskcell.abc import LeaseLost, Store
from taskcell.agents.local import AgentRequest
from taskcell.agents.registry import AgentRegistry
from taskcell.domain.events import EventType
from taskcell.domain.models import Fence, Run, RunStatus, Task, utcnow
from taskcell.domain.state_machine import TaskStatus
from taskcell.engine.controllers import Controllers
from taskcell.engine.eventlog import EventLog
from taskcell.engine.executor import Outcome, OutcomeKind, RunContext, TaskExecutor
from taskcell.engine.responses import ResponseFactory
from taskcell.engine.runs import INTERRUPTED, OUTAGE, RunTable
from taskcell.engine.settler import RetryPolicy, RunSettler
from taskcell.service import TaskService
from taskcell.stores.memory import InMemoryTaskStore
from taskcell.stores.sqlite import SQLiteTaskStore

OWNER = "here"


async def answer(request: AgentRequest) -> str:
    return "ok"


@dataclass
class Parts:
    store: Store
    log: EventLog
    runs: RunTable
    settler: RunSettler

    async def running(self, *, max_attempts: int = 3) -> RunContext:
        """A once task stored and started: its first run running under this owner."""
        task = Task(query="q", agent_name="agent", max_attempts=max_attempts)
        await TaskService(self.store).add_task(task)
        now = utcnow()
        run = Run(task_id=task.task_id, attempt=1, owner=OWNER, started_at=now, created_at=now)
        assert await self.store.start_run(run, now=now)
        task.attempt, task.status = 1, TaskStatus.RUNNING
        return RunContext(task, run)

    async def state(self, ctx: RunContext) -> tuple[TaskStatus, RunStatus]:
        task = await self.store.load(ctx.task.task_id)
        run = await self.store.load_run(ctx.run.run_id)
        assert task is not None and run is not None
        return task.status, run.status

    async def events(self, ctx: RunContext) -> list[EventType]:
        await self.log.flush()
        return [e.event for e in await self.store.read_events(ctx.task.task_id)]


@pytest.fixture(params=["memory", "sqlite"])
async def parts(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Parts]:
    store: Store = (
        InMemoryTaskStore() if request.param == "memory" else SQLiteTaskStore(tmp_path / "s.db")
    )
    registry = AgentRegistry()
    registry.register_local("agent", answer)
    await store.open()
    runs = RunTable(registry)
    log = EventLog(store, on_lease_lost=runs.leases_lost)
    writer = asyncio.create_task(log.run())
    executor = TaskExecutor(store, registry, log, default_zone="UTC")
    controllers = Controllers(store, log, default_zone="UTC")
    retry = RetryPolicy(base_seconds=0.01, cap_seconds=0.05)
    settler = RunSettler(store, log, runs, executor, registry, controllers, retry=retry)
    try:
        yield Parts(store, log, runs, settler)
    finally:
        writer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writer
        await store.close()


async def test_a_completed_outcome_settles_run_and_task_with_closing_events(parts: Parts) -> None:
    ctx = await parts.running()
    await parts.settler.settle(ctx, Outcome(OutcomeKind.COMPLETED, "the answer"))
    assert await parts.state(ctx) == (TaskStatus.COMPLETED, RunStatus.COMPLETED)
    run = await parts.store.load_run(ctx.run.run_id)
    assert run is not None and run.result == "the answer"
    assert (await parts.events(ctx))[-2:] == [EventType.TASK_COMPLETED, EventType.DONE]


async def test_waiting_for_input_leaves_run_and_task_open(parts: Parts) -> None:
    ctx = await parts.running()
    await parts.settler.settle(ctx, Outcome(OutcomeKind.WAITING_INPUT, "which one?"))
    assert await parts.state(ctx) == (TaskStatus.WAITING_INPUT, RunStatus.WAITING_INPUT)
    assert EventType.DONE not in await parts.events(ctx)


async def test_a_transient_failure_requeues_while_attempts_are_left(parts: Parts) -> None:
    ctx = await parts.running(max_attempts=2)
    delay = await parts.settler.transient_failure(ctx, "connection reset")
    assert delay is not None and 0 < delay <= 0.05, f"the back-off was {delay}"
    assert await parts.state(ctx) == (TaskStatus.PENDING, RunStatus.FAILED)
    await parts.log.flush()
    events = await parts.store.read_events(ctx.task.task_id)
    notes = [e.payload for e in events if e.event is EventType.MESSAGE]
    assert notes and "Attempt 1 of 2 failed: connection reset" in str(notes[-1]), notes


async def test_a_transient_failure_on_the_last_attempt_fails_the_task(parts: Parts) -> None:
    ctx = await parts.running(max_attempts=1)
    assert await parts.settler.transient_failure(ctx, "connection reset") is None
    assert await parts.state(ctx) == (TaskStatus.FAILED, RunStatus.FAILED)
    task = await parts.store.load(ctx.task.task_id)
    assert task is not None
    assert task.error_message == "connection reset (gave up after 1 attempt)"
    assert (await parts.events(ctx))[-2:] == [EventType.TASK_FAILED, EventType.DONE]


async def stop_running(parts: Parts, ctx: RunContext, *, reason: str | None) -> None:
    """Run ``ctx`` as an asyncio task of the run table and stop it: with ``reason`` as a user's
    cancel does, else as a graceful stop does; it settles itself as a cancelled run does."""
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.shield(parts.settler.stopped(ctx))
            raise

    parts.runs.spawn(ctx.task.task_id, work())
    await asyncio.wait_for(started.wait(), 5)
    if reason is None:
        await parts.runs.interrupt_all()
    else:
        assert parts.runs.stop(ctx.task.task_id, reason) is not None
    await asyncio.wait_for(parts.runs.wait_idle(), 5)


async def test_a_user_cancel_closes_the_run_as_cancelled(parts: Parts) -> None:
    ctx = await parts.running()
    await parts.store.transition(ctx.task.task_id, TaskStatus.CANCELLED)
    await stop_running(parts, ctx, reason="not needed")
    assert await parts.state(ctx) == (TaskStatus.CANCELLED, RunStatus.CANCELLED)
    assert (await parts.events(ctx))[-2:] == [EventType.TASK_CANCELLED, EventType.DONE]


@pytest.mark.parametrize(("max_attempts", "task_status"), [(3, "pending"), (1, "failed")])
async def test_a_stop_requeues_the_task_or_fails_it_on_its_last_attempt(
    parts: Parts, max_attempts: int, task_status: str
) -> None:
    ctx = await parts.running(max_attempts=max_attempts)
    await stop_running(parts, ctx, reason=None)
    assert await parts.state(ctx) == (TaskStatus(task_status), RunStatus.INTERRUPTED)
    run = await parts.store.load_run(ctx.run.run_id)
    assert run is not None and run.error == INTERRUPTED
    closing = (await parts.events(ctx))[-2:]
    if task_status == "failed":
        assert closing == [EventType.TASK_FAILED, EventType.DONE], closing
    else:
        assert EventType.DONE not in closing, closing


async def test_a_run_stopped_for_an_outage_writes_nothing_until_recovered(parts: Parts) -> None:
    """Stopped because its lease could not be renewed, a run stays open in the store (its
    lease lapses); it is kept for recovery, which closes it and requeues its task in one
    write."""
    ctx = await parts.running()
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.shield(parts.settler.stopped(ctx))
            raise

    parts.runs.spawn(ctx.task.task_id, work())
    await asyncio.wait_for(started.wait(), 5)
    assert parts.runs.stop_for_outage() == [ctx.task.task_id]
    await asyncio.wait_for(parts.runs.wait_idle(), 5)
    assert await parts.state(ctx) == (TaskStatus.RUNNING, RunStatus.RUNNING)
    assert [r.run_id for r in parts.runs.outage_stops()] == [ctx.run.run_id]

    assert await parts.settler.interrupt(ctx.run, OUTAGE)
    assert await parts.state(ctx) == (TaskStatus.PENDING, RunStatus.INTERRUPTED)


async def test_a_run_taken_over_is_refused_and_writes_nothing(parts: Parts) -> None:
    """Recovery elsewhere takes the run over (its epoch bumped, another process its closer):
    the old attempt's settling is refused with LeaseLost, and the task is as recovery left
    it."""
    ctx = await parts.running()
    stale = Run.model_validate(ctx.run.model_dump())
    assert await parts.settler.interrupt(ctx.run, INTERRUPTED, closer="elsewhere")
    run = await parts.store.load_run(ctx.run.run_id)
    assert run is not None and run.closed_by == "elsewhere" and run.epoch == stale.epoch + 1
    ctx.run = stale
    with pytest.raises(LeaseLost):
        await parts.settler.settle(ctx, Outcome(OutcomeKind.COMPLETED, "late"))
    assert await parts.state(ctx) == (TaskStatus.PENDING, RunStatus.INTERRUPTED)
    assert not await parts.settler.interrupt(stale, INTERRUPTED, closer="a third")


async def test_holding_ends_a_run_whose_lease_was_lost_without_raising(parts: Parts) -> None:
    ctx = await parts.running()
    stale = Run.model_validate(ctx.run.model_dump())
    assert await parts.settler.interrupt(ctx.run, INTERRUPTED, closer="elsewhere")
    ctx.run = stale
    async with parts.settler.holding(ctx):
        await parts.settler.settle(ctx, Outcome(OutcomeKind.COMPLETED, "late"))
    assert await parts.state(ctx) == (TaskStatus.PENDING, RunStatus.INTERRUPTED)
    assert EventType.TASK_COMPLETED not in await parts.events(ctx)


async def test_cancelling_an_idle_task_closes_its_waiting_run(parts: Parts) -> None:
    ctx = await parts.running()
    await parts.settler.settle(ctx, Outcome(OutcomeKind.WAITING_INPUT, "which one?"))
    await parts.store.transition(ctx.task.task_id, TaskStatus.CANCELLED)
    task = await parts.store.load(ctx.task.task_id)
    assert task is not None
    await parts.settler.cancel_idle(task, "not needed")
    assert await parts.state(ctx) == (TaskStatus.CANCELLED, RunStatus.CANCELLED)
    assert (await parts.events(ctx))[-2:] == [EventType.TASK_CANCELLED, EventType.DONE]


async def settling_then_stopped(
    parts: Parts, ctx: RunContext, stop: str, outcome: Outcome
) -> asyncio.Task[None]:
    """Run ``ctx``'s settling with ``outcome`` as a run of the run table, and stop the run
    while the settling is under way (``stop``: "cancel", "shutdown" or "outage"). The
    settling waits on a gate that opens once the stop was asked for."""
    gate, settling = asyncio.Event(), asyncio.Event()

    async def settle() -> None:
        settling.set()
        await gate.wait()
        await parts.settler.settle(ctx, outcome)

    async def work() -> None:
        await parts.settler.to_the_end(ctx, settle())

    parts.runs.spawn(ctx.task.task_id, work())
    runner = parts.runs._runs[ctx.task.task_id]
    await asyncio.wait_for(settling.wait(), 5)
    if stop == "cancel":
        parts.runs.stop(ctx.task.task_id, "not needed")
    elif stop == "shutdown":
        runner.cancel()
    else:
        assert parts.runs.stop_for_outage() == [ctx.task.task_id]
    await asyncio.sleep(0)  # the cancellation reaches the run before the gate opens
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(runner, 5)
    return runner


@pytest.mark.parametrize("stop", ["cancel", "shutdown"])
async def test_a_run_stopped_while_it_settles_finishes_settling_first(
    parts: Parts, stop: str
) -> None:
    """A cancel or a stop that comes while a run writes its outcome lets that write and its
    closing events finish: the task is completed, with its ``done``, not left running with
    no one behind it (seen in the chaos suite as a stream that never ended)."""
    ctx = await parts.running()
    await settling_then_stopped(parts, ctx, stop, Outcome(OutcomeKind.COMPLETED, "the answer"))
    assert await parts.state(ctx) == (TaskStatus.COMPLETED, RunStatus.COMPLETED)
    assert (await parts.events(ctx))[-2:] == [EventType.TASK_COMPLETED, EventType.DONE]


async def test_a_run_stopped_for_an_outage_while_it_settles_is_kept_for_recovery(
    parts: Parts,
) -> None:
    """The lease guard stops a run whose settling cannot finish (the store is away): the
    settling is cut, and the run is kept for recovery (before, it was forgotten: it stayed
    running, its lease renewed with the others', for good)."""
    ctx = await parts.running()
    await settling_then_stopped(
        parts, ctx, "outage", Outcome(OutcomeKind.WAITING_INPUT, "which one?")
    )
    assert [r.run_id for r in parts.runs.outage_stops()] == [ctx.run.run_id]
    assert await parts.settler.interrupt(ctx.run, OUTAGE)
    assert await parts.state(ctx) == (TaskStatus.PENDING, RunStatus.INTERRUPTED)


async def test_an_earlier_epochs_release_leaves_the_continued_runs_fence(parts: Parts) -> None:
    """A run continued after a reply holds the same run id under the next epoch; when the
    earlier holder lets go afterwards, the continued run's events stay under its own fence
    (before, the release dropped it, and a stale fence could refuse the continuation)."""
    ctx = await parts.running()
    earlier = ctx.run.fence
    continued = Fence(earlier.run_id, earlier.owner, earlier.epoch + 1)
    parts.log.hold(earlier)
    parts.log.hold(continued)  # the continuation takes over the run id
    parts.log.release(earlier)  # the earlier holder lets go late
    event = await parts.log.emit(ResponseFactory(ctx.task, ctx.run.run_id).user_message("a reply"))
    assert event.fence == continued, event.fence
    parts.log.release(continued)
    event = await parts.log.emit(ResponseFactory(ctx.task, ctx.run.run_id).user_message("x"))
    assert event.fence is None, event.fence
