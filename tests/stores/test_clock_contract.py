"""The lease primitives' contract, on every store, and one clock under skew on PostgreSQL.

``renew_leases``, ``interrupt_expired``, ``runs_finished_by`` and the claims decide by the
store's clock. On PostgreSQL that is the database server's: a process whose own clock is 30 s
or 5 minutes off (time-machine moves this process's clock; the database's stays) can neither
interrupt a live run, nor bury a live process, nor claim what is not due or not orphaned.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from pg import empty_tables
from taskcell.abc import Store, TaskStore
from taskcell.agents.registry import AgentRegistry
from taskcell.domain.models import Run, RunStatus, Task, TaskPattern
from taskcell.domain.state_machine import TaskStatus
from taskcell.engine.engine import Engine
from taskcell.stores.postgres import PostgresTaskStore
from taskcell.testing import claim_due

OWNER = "host-a:1:aaaaaa"
OTHER = "host-b:2:bbbbbb"
LEASE = timedelta(seconds=30)


def now() -> datetime:
    return datetime.now(UTC)


async def started_run(store: Store, owner: str, lease: timedelta) -> Run:
    """A once task running under ``owner`` with a lease of ``lease`` (negative: expired)."""
    task = Task(query="q", agent_name="echo")
    await store.create(task, conversation_title="t")
    moment = now()
    run = Run(
        task_id=task.task_id,
        attempt=1,
        owner=owner,
        started_at=moment,
        created_at=moment,
        lease_expires_at=moment + lease,
    )
    assert await store.start_run(run, now=moment)
    return run


async def status_of(store: Store, run: Run) -> RunStatus:
    loaded = await store.load_run(run.run_id)
    assert loaded is not None
    return loaded.status


def full(store: TaskStore) -> Store:
    return store  # type: ignore[return-value]  # every store under test is a Store


# -- every store ------------------------------------------------------------------------


async def test_start_run_leases_for_the_length_meant(store: TaskStore) -> None:
    run = await started_run(full(store), OWNER, LEASE)
    loaded = await store.load_run(run.run_id)
    assert loaded is not None and loaded.lease_expires_at is not None
    left = loaded.lease_expires_at - now()
    assert timedelta(seconds=20) < left <= LEASE, f"lease has {left} left, meant {LEASE}"


async def test_interrupt_expired_closes_only_expired_runs_each_once(store: TaskStore) -> None:
    s = full(store)
    expired = [await started_run(s, OWNER, -timedelta(seconds=1)) for _ in range(6)]
    live = await started_run(s, OWNER, LEASE)
    first, second = await asyncio.gather(
        s.interrupt_expired("lease gone"), s.interrupt_expired("lease gone")
    )
    closed = [r.run_id for r in first] + [r.run_id for r in second]
    assert sorted(closed) == sorted(r.run_id for r in expired), "each expired run closed once"
    for run in [*first, *second]:
        assert (run.status, run.error) == (RunStatus.INTERRUPTED, "lease gone")
        assert run.finished_at is not None and abs(run.finished_at - now()) < timedelta(minutes=1)
    assert await status_of(s, live) is RunStatus.RUNNING
    assert await s.interrupt_expired("again") == []


async def test_renew_leases_keeps_an_owners_open_runs_alive(store: TaskStore) -> None:
    s = full(store)
    mine = await started_run(s, OWNER, -timedelta(seconds=1))
    theirs = await started_run(s, OTHER, -timedelta(seconds=1))
    ended = await started_run(s, OWNER, -timedelta(seconds=1))
    assert await s.update_run(ended.run_id, {"status": RunStatus.COMPLETED})
    assert await s.renew_leases(OWNER, LEASE) == 1  # the open one only
    renewed = await s.load_run(mine.run_id)
    assert renewed is not None and renewed.lease_expires_at is not None
    assert timedelta(seconds=20) < renewed.lease_expires_at - now() <= LEASE
    gone = await s.interrupt_expired("expired")
    assert [r.run_id for r in gone] == [theirs.run_id], "a renewed lease is not expired"
    assert await s.renew_leases(OWNER, -timedelta(seconds=1)) == 1
    assert [r.run_id for r in await s.interrupt_expired("expired")] == [mine.run_id]


async def test_runs_finished_by_answers_an_owners_ended_runs_since(store: TaskStore) -> None:
    s = full(store)
    early, late, other, still = [
        await started_run(s, owner, LEASE) for owner in (OWNER, OWNER, OTHER, OWNER)
    ]
    cut = now()
    for run, when in ((early, cut - timedelta(minutes=2)), (late, cut), (other, cut)):
        assert await s.update_run(run.run_id, {"status": RunStatus.COMPLETED, "finished_at": when})
    found = await s.runs_finished_by(OWNER, cut - timedelta(minutes=1))
    assert [r.run_id for r in found] == [late.run_id], found
    both = await s.runs_finished_by(OWNER, cut - timedelta(minutes=5))
    assert [r.run_id for r in both] == [early.run_id, late.run_id]
    assert still.run_id not in {r.run_id for r in both}


# -- PostgreSQL, with this process's clock off ---------------------------------------------

SKEWS = [timedelta(seconds=30), timedelta(minutes=5), -timedelta(seconds=30), -timedelta(minutes=5)]


@pytest.fixture
async def pg(postgres_database: str) -> AsyncIterator[PostgresTaskStore]:
    made = PostgresTaskStore(postgres_database)
    await empty_tables(made)
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture(params=SKEWS, ids=lambda d: f"clock{'+' if d > timedelta(0) else '-'}{abs(d)}")
def skewed(request: pytest.FixtureRequest) -> Iterator[timedelta]:
    """This process's clock moved by the parameter (the database's is not)."""
    skew: timedelta = request.param
    with time_machine.travel(now() + skew, tick=True):
        yield skew


async def test_a_skewed_process_cannot_expire_live_leases_or_bury_live_processes(
    pg: PostgresTaskStore,
) -> None:
    # Process A, with a good clock, runs a task and heartbeats.
    await pg.heartbeat(OWNER)
    live = await started_run(pg, OWNER, LEASE)
    for skew in SKEWS:
        with time_machine.travel(now() + skew, tick=True):
            # Process B's clock is off by ``skew``: what it decides, the database decides.
            assert await pg.interrupt_expired("stolen") == [], f"clock {skew}: live run taken"
            assert await pg.claim_dead_processes(2 * LEASE, keep=OTHER) == [], (
                f"clock {skew}: a live process was buried"
            )
            assert OWNER in {p.process_id for p in await pg.live_processes(2 * LEASE)}
            await pg.heartbeat(OTHER)
            before = await pg.clock()  # the database's clock, whatever this process's says
            assert await pg.renew_leases(OWNER, LEASE) == 1
            after = await pg.clock()
        assert await status_of(pg, live) is RunStatus.RUNNING
        loaded = await pg.load_run(live.run_id)
        assert loaded is not None and loaded.lease_expires_at is not None
        # Renewed to LEASE past the database's clock at the renewal, not past the skewed one.
        assert before + LEASE <= loaded.lease_expires_at <= after + LEASE, (
            f"clock {skew}: lease set to {loaded.lease_expires_at}, the database's clock"
            f" read {before} to {after}"
        )
    beats = {p.process_id: p.heartbeat_at for p in await pg.live_processes(2 * LEASE)}
    assert abs(beats[OTHER] - now()) < timedelta(seconds=10), "heartbeat by the database's clock"


async def test_a_skewed_process_starts_runs_with_a_lease_by_the_databases_clock(
    pg: PostgresTaskStore, skewed: timedelta
) -> None:
    before = await pg.clock()  # the database's clock, whatever this process's says
    run = await started_run(pg, OWNER, LEASE)  # lease and start stamped by the skewed clock
    after = await pg.clock()
    with time_machine.travel(now() - skewed, tick=True):  # the true clock again
        loaded = await pg.load_run(run.run_id)
        assert loaded is not None and loaded.lease_expires_at is not None
        # LEASE past the database's clock when the run started, not past the skewed one.
        assert before + LEASE <= loaded.lease_expires_at <= after + LEASE, (
            f"lease set to {loaded.lease_expires_at}, the database's clock read {before} to {after}"
        )
        assert await pg.interrupt_expired("expired") == []


async def test_a_fast_process_claims_no_occurrence_before_it_is_due(
    pg: PostgresTaskStore,
) -> None:
    due_in = timedelta(seconds=20)
    task = Task(
        query="q",
        agent_name="echo",
        pattern=TaskPattern.RECURRING,
        schedule_config={"interval_minutes": 1},
        status=TaskStatus.RUNNING,
        next_run_at=now() + due_in,
    )
    await pg.save(task)
    fresh = Task(query="just made", agent_name="echo")
    await pg.save(fresh)
    with time_machine.travel(now() + timedelta(minutes=5), tick=True):
        # Its own clock says the occurrence is 4m40s late and the pending task long idle.
        claimed = await claim_due(pg, now(), lambda t: now() + timedelta(minutes=1))
        assert claimed == [], "claimed an occurrence the database's clock says is not due"
        assert await pg.claim_pending(timedelta(seconds=30)) == [], "claimed a fresh task"
    assert abs((await pg.clock()) - now()) < timedelta(seconds=10)


async def test_an_engine_with_a_skewed_clock_leaves_live_runs_and_processes_alone(
    pg: PostgresTaskStore, skewed: timedelta
) -> None:
    with time_machine.travel(now() - skewed, tick=True):  # process A: the true clock
        await pg.heartbeat(OWNER)
        live = await started_run(pg, OWNER, LEASE)
    engine = Engine(pg, AgentRegistry(), default_zone="UTC", owner=OTHER, lease_seconds=30)
    await engine.start(schedule=False)  # its start-up recovery runs with the skewed clock
    try:
        assert await engine.recovery.recover_expired() == 0
        assert await engine.recovery.bury_dead_processes(engine.dead_after) == 0
        assert await status_of(pg, live) is RunStatus.RUNNING, "a live run was interrupted"
        alive = {p.process_id for p in await pg.live_processes(engine.dead_after)}
        assert OWNER in alive, f"live processes {alive}"
    finally:
        await engine.stop()
