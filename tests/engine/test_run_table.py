"""The run table on its own: run slots (the engine's and an agent's own), stopping a run with a
reason, a graceful stop, an outage stop, and lost leases. No store: the table does no I/O."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from taskcell.agents.local import AgentRequest
from taskcell.agents.registry import AgentRegistry
from taskcell.domain.models import Run, Task
from taskcell.engine.runs import CANCELLED_BY_USER, OUTAGE, RunTable


async def answer(request: AgentRequest) -> str:
    return "ok"


def registry(*, agent_limit: int | None = None) -> AgentRegistry:
    made = AgentRegistry()
    made.register_local("limited", answer, max_concurrent_runs=agent_limit)
    made.register_local("free", answer, max_concurrent_runs=10)
    return made


def task(agent: str = "limited") -> Task:
    return Task(query="q", agent_name=agent)


async def nothing() -> None:
    return None


async def hold_slot(
    runs: RunTable,
    of: Task,
    entered: asyncio.Event,
    leave: asyncio.Event,
    on_cancelled: Callable[[], Awaitable[None]] = nothing,
) -> None:
    async with runs.slot(of, on_cancelled=on_cancelled):
        entered.set()
        await leave.wait()


async def waits_for_slot(holder: asyncio.Task[None]) -> None:
    """Let ``holder`` run to the point where it blocks on a semaphore (one loop step)."""
    for _ in range(3):
        await asyncio.sleep(0)
    assert not holder.done(), f"the holder ended instead of waiting: {holder!r}"


@pytest.mark.parametrize(("first_agent", "max_runs"), [("limited", 10), ("free", 1)])
async def test_a_run_cancelled_while_it_waits_for_a_slot_settles_and_leaks_nothing(
    first_agent: str, max_runs: int
) -> None:
    """With its agent's own limit full (or, holding that, the engine's), a second run waits;
    cancelled there it awaits its settling callback and holds nothing: a third run of the
    same agent gets both slots once the first leaves."""
    runs = RunTable(registry(agent_limit=1), max_runs=max_runs)
    first_in, first_out = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(hold_slot(runs, task(first_agent), first_in, first_out))
    await asyncio.wait_for(first_in.wait(), 5)

    settled = asyncio.Event()

    async def settle() -> None:
        settled.set()

    second_in = asyncio.Event()
    second = asyncio.create_task(
        hold_slot(runs, task(), second_in, asyncio.Event(), on_cancelled=settle)
    )
    await waits_for_slot(second)
    assert not second_in.is_set(), "a second run entered a full slot"
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert settled.is_set(), "the run cancelled while waiting was not settled"

    first_out.set()
    await first
    third_in, third_out = asyncio.Event(), asyncio.Event()
    third = asyncio.create_task(hold_slot(runs, task(), third_in, third_out))
    await asyncio.wait_for(third_in.wait(), 5)
    third_out.set()
    await third


async def test_an_agent_limit_holds_no_engine_slot_while_it_waits() -> None:
    """A run waiting for its agent's own limit does not take one of the engine's slots: a run
    of another agent still gets the engine's last slot."""
    runs = RunTable(registry(agent_limit=1), max_runs=2)
    first_in, release = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(hold_slot(runs, task(), first_in, release))
    await asyncio.wait_for(first_in.wait(), 5)
    blocked = asyncio.create_task(hold_slot(runs, task(), asyncio.Event(), release))
    await waits_for_slot(blocked)
    other_in = asyncio.Event()
    other = asyncio.create_task(hold_slot(runs, task("free"), other_in, release))
    await asyncio.wait_for(other_in.wait(), 5)
    release.set()
    await asyncio.wait_for(asyncio.gather(first, blocked, other), 5)


async def test_a_stopped_run_knows_why_until_it_ends() -> None:
    runs = RunTable(registry())
    started, seen = asyncio.Event(), []

    async def work() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append(runs.reason("t1"))
            raise

    runs.spawn("t1", work())
    await asyncio.wait_for(started.wait(), 5)
    assert runs.is_running_here("t1")
    runner = runs.stop("t1", None)
    assert runner is not None
    await asyncio.wait([runner], timeout=5)
    assert seen == [CANCELLED_BY_USER], f"the run saw the reason {seen}"
    assert runs.reason("t1") is None and not runs.is_running_here("t1") and len(runs) == 0
    assert runs.stop("t1", "again") is None, "a run that ended was stopped again"


async def test_nothing_starts_once_a_graceful_stop_began() -> None:
    runs = RunTable(registry())
    ran = []

    async def work() -> None:
        ran.append(True)

    runs.begin_stop()
    runs.spawn("t1", work())
    await runs.wait_idle()
    assert not ran and not runs.is_running_here("t1"), "a run started during a stop"


async def test_an_outage_stops_every_run_once_until_recovered() -> None:
    """The first outage stop cancels every run with the outage as reason; later ones stop
    nothing until the stopped runs are recovered (``lapsed`` cleared)."""
    runs = RunTable(registry())
    started = [asyncio.Event(), asyncio.Event()]
    reasons: list[str | None] = []

    async def work(task_id: str, ready: asyncio.Event) -> None:
        ready.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            reasons.append(runs.reason(task_id))
            raise

    runs.spawn("a", work("a", started[0]))
    runs.spawn("b", work("b", started[1]))
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), 5)
    assert sorted(runs.stop_for_outage()) == ["a", "b"]
    assert runs.lapsed
    assert runs.stop_for_outage() == [], "a second outage stop stopped runs again"
    await asyncio.wait_for(runs.wait_idle(), 5)
    assert reasons == [OUTAGE, OUTAGE], f"the runs were stopped for {reasons}"

    run = Run(task_id="a")
    runs.stopped_for_outage(run)
    assert runs.outage_stops() == [run]
    runs.recovered(run.run_id)
    assert runs.outage_stops() == []


async def test_a_lost_lease_stops_the_run_that_holds_it_and_no_other() -> None:
    runs = RunTable(registry())
    started = asyncio.Event()
    held, other = Run(task_id="t1"), Run(task_id="t2")

    async def work() -> None:
        started.set()
        await asyncio.Event().wait()

    runs.spawn("t1", work())
    await asyncio.wait_for(started.wait(), 5)
    runs.hold(held)
    runs.leases_lost(frozenset({other.run_id}))
    assert runs.is_running_here("t1"), "a lease that is not held here stopped a run"
    runs.leases_lost(frozenset({held.run_id}))
    assert runs.lost(held.run_id)
    await asyncio.wait_for(runs.wait_idle(), 5)
    runs.release(held.run_id)
    assert not runs.lost(held.run_id), "a released run is still marked lost"
