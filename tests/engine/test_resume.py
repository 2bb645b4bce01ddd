"""Graceful stop and restart against a real A2A agent on loopback: the run is interrupted, and
the next start resumes the same remote task (or cancels it first, where the agent cannot)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from taskcell import Task, TaskPattern, TaskStatus
from taskcell.agents.http import aclose_shared_http_clients
from taskcell.agents.registry import AgentRegistry
from taskcell.agents.remote import RemoteAgentClient
from taskcell.domain.events import Event, EventType, Role
from taskcell.domain.models import RunStatus, utcnow
from taskcell.engine.engine import INTERRUPTED, Engine, RetryPolicy
from taskcell.stores.sqlite import SQLiteTaskStore
from taskcell.testing import serve_app

from .conftest import read_until_done
from .gated_agent import ANSWER, GatedAgent, gated_app, until_set

pytestmark = pytest.mark.timeout(90)

_WAIT = 30.0  # an order of magnitude above what any step here takes


@asynccontextmanager
async def engine_on(db: Path, agent_url: str) -> AsyncIterator[Engine]:
    """An engine on ``db`` with the gated agent registered; started (recovering), then
    stopped gracefully at the end of the block."""
    registry = AgentRegistry()
    registry.register(RemoteAgentClient("gated", agent_url, binding="JSONRPC"))
    engine = Engine(
        SQLiteTaskStore(db),
        registry,
        retry=RetryPolicy(base_seconds=0.01, cap_seconds=0.05),
        default_zone="UTC",
    )
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()
        await registry.aclose()


async def logged_chunks(engine: Engine, task_id: str, count: int) -> list[Event]:
    """Wait until the task's log holds ``count`` message chunks; answers them."""
    chunks: list[Event] = []

    async def read() -> None:
        async for event in engine.subscribe(task_id):
            if event.event is EventType.MESSAGE_CHUNK:
                chunks.append(event)
                if len(chunks) >= count:
                    return

    await asyncio.wait_for(read(), _WAIT)
    return chunks


def chunk_texts(events: list[Event]) -> list[str]:
    return [
        str(e.payload["content"])
        for e in events
        if e.event is EventType.MESSAGE_CHUNK and e.payload is not None
    ]


async def stopped_in_the_middle(db: Path, url: str, agent: GatedAgent) -> str:
    """Start the task, stop the engine gracefully after three ticks are in its log; answers
    the task id, after checking the stop left the run interrupted and the remote task alone."""
    async with engine_on(db, url) as first:
        task = await first.submit(Task(query="tick", agent_name="gated", max_attempts=3))
        await asyncio.wait_for(until_set(agent.ticked[3]), _WAIT)
        await logged_chunks(first, task.task_id, 3)
    store = SQLiteTaskStore(db)
    await store.open()
    try:
        runs = (await store.list_runs(task.task_id)).items
        stored = await store.load(task.task_id)
    finally:
        await store.close()
    assert [(r.attempt, r.status, r.error) for r in runs] == [
        (1, RunStatus.INTERRUPTED, INTERRUPTED)
    ], f"a graceful stop should interrupt the run, saw {runs}"
    assert stored is not None and stored.status is TaskStatus.PENDING, stored
    assert len(stored.remote_task_ids) == 1, stored.remote_task_ids
    assert agent.journal == [f"execute {stored.remote_task_ids[0]}"], (
        f"the stop should leave the remote task running, the agent saw {agent.journal}"
    )
    return task.task_id


@pytest.mark.parametrize("agent_finished_meanwhile", [False, True])
async def test_a_restart_resumes_the_remote_task_without_doing_its_work_twice(
    tmp_path: Path, agent_finished_meanwhile: bool
) -> None:
    agent = GatedAgent()
    db = tmp_path / "resume.db"
    async with serve_app(app_factory=lambda base: gated_app(agent, base)) as base_url:
        url = f"{base_url}/gated"
        task_id = await stopped_in_the_middle(db, url, agent)
        # The agent goes on while no taskcell listens: ticks 4 and 5 (or all of it).
        agent.release[3].set()
        await asyncio.wait_for(until_set(agent.ticked[5]), _WAIT)
        if agent_finished_meanwhile:
            agent.release[5].set()
            await asyncio.wait_for(until_set(agent.done), _WAIT)

        async with engine_on(db, url) as second:
            if not agent_finished_meanwhile:
                await logged_chunks(second, task_id, 5)  # what it missed arrived
                agent.release[5].set()
            events = await read_until_done(second, task_id)
            stored = await second.service.require_task(task_id)
            runs = sorted((await second.store.list_runs(task_id)).items, key=lambda r: r.attempt)
    await aclose_shared_http_clients()

    assert agent.executions == 1, f"the agent should run the task once, saw {agent.journal}"
    assert not any(entry.startswith("cancel") for entry in agent.journal), agent.journal
    chunks = chunk_texts(events)
    assert chunks == [f"tick {i} " for i in range(1, 7)], (
        f"each tick should be in the log once, in order, saw {chunks}"
    )
    item_ids = {e.item_id for e in events if e.event is EventType.MESSAGE_CHUNK}
    assert len(item_ids) == 1, f"the answer should go on in one item, saw {item_ids}"
    kinds = [e.event for e in events]
    assert kinds.count(EventType.DONE) == 1 and kinds[-2:] == [
        EventType.TASK_COMPLETED,
        EventType.DONE,
    ], kinds
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert stored.status is TaskStatus.COMPLETED, stored
    assert len(stored.remote_task_ids) == 1, f"one remote task, saw {stored.remote_task_ids}"
    assert [(r.attempt, r.status) for r in runs] == [
        (1, RunStatus.INTERRUPTED),
        (2, RunStatus.COMPLETED),
    ], runs
    assert runs[1].result == ANSWER.strip(), runs[1].result


async def test_an_agent_that_cannot_resume_gets_a_cancel_before_the_retry(
    tmp_path: Path,
) -> None:
    agent = GatedAgent()
    db = tmp_path / "restart.db"
    app = serve_app(app_factory=lambda base: gated_app(agent, base, resumable=False))
    async with app as base_url:
        url = f"{base_url}/gated"
        task_id = await stopped_in_the_middle(db, url, agent)
        async with engine_on(db, url) as second:
            events = await read_until_done(second, task_id)
            stored = await second.service.require_task(task_id)
    await aclose_shared_http_clients()

    first, retried = stored.remote_task_ids[0], stored.remote_task_ids[-1]
    assert first != retried, stored.remote_task_ids
    assert agent.journal == [f"execute {first}", f"cancel {first}", f"execute {retried}"], (
        f"the agent should be told to cancel its first task before the retry, saw {agent.journal}"
    )
    assert agent.finished == [retried], f"only the retry should finish, saw {agent.finished}"
    assert stored.status is TaskStatus.COMPLETED, stored
    assert chunk_texts(events)[-6:] == [f"tick {i} " for i in range(1, 7)], chunk_texts(events)


async def test_a_remote_task_started_but_not_recorded_is_found_and_resumed(
    tmp_path: Path,
) -> None:
    agent = GatedAgent()
    db = tmp_path / "orphan.db"
    async with serve_app(app_factory=lambda base: gated_app(agent, base)) as base_url:
        url = f"{base_url}/gated"
        task_id = await stopped_in_the_middle(db, url, agent)
        # What a crash between the agent's accepting and taskcell's recording leaves.
        store = SQLiteTaskStore(db)
        await store.open()
        try:
            assert await store.update(task_id, {"remote_task_ids": [], "metadata": {}})
        finally:
            await store.close()
        agent.release[3].set()
        agent.release[5].set()
        async with engine_on(db, url) as second:
            events = await read_until_done(second, task_id)
            stored = await second.service.require_task(task_id)
    await aclose_shared_http_clients()

    assert agent.executions == 1, f"the agent should run the task once, saw {agent.journal}"
    assert chunk_texts(events) == [f"tick {i} " for i in range(1, 7)], chunk_texts(events)
    assert stored.status is TaskStatus.COMPLETED, stored
    assert stored.remote_task_ids == [agent.journal[0].split()[1]], stored.remote_task_ids


async def test_a_cut_stream_is_resumed_by_the_retry_not_started_again(tmp_path: Path) -> None:
    agent = GatedAgent()
    db = tmp_path / "cut.db"
    # The first answer ends after the task and three ticks: a broken connection.
    served = serve_app(app_factory=lambda base: gated_app(agent, base, cut_first_stream_after=4))
    async with served as base_url, engine_on(db, f"{base_url}/gated") as engine:
        task = await engine.submit(Task(query="tick", agent_name="gated", max_attempts=3))
        await asyncio.wait_for(until_set(agent.ticked[3]), _WAIT)

        async def retry_noted() -> None:
            async for event in engine.subscribe(task.task_id):
                if event.role is Role.SYSTEM and "Attempt 1 of 3 failed" in str(event.payload):
                    return

        await asyncio.wait_for(retry_noted(), _WAIT)
        agent.release[3].set()
        agent.release[5].set()
        events = await read_until_done(engine, task.task_id)
        runs = sorted((await engine.store.list_runs(task.task_id)).items, key=lambda r: r.attempt)
    await aclose_shared_http_clients()

    assert agent.executions == 1, f"the agent should run the task once, saw {agent.journal}"
    assert chunk_texts(events) == [f"tick {i} " for i in range(1, 7)], chunk_texts(events)
    assert [(r.attempt, r.status) for r in runs] == [
        (1, RunStatus.FAILED),
        (2, RunStatus.COMPLETED),
    ], runs
    assert runs[1].result == ANSWER.strip(), runs[1].result


async def test_a_recurring_run_whose_stream_is_cut_resumes_the_same_remote_task(
    tmp_path: Path,
) -> None:
    agent = GatedAgent()
    agent.release[3].set()
    agent.release[5].set()
    db = tmp_path / "cut-recurring.db"
    served = serve_app(app_factory=lambda base: gated_app(agent, base, cut_first_stream_after=4))
    async with served as base_url, engine_on(db, f"{base_url}/gated") as engine:
        task = await engine.submit(
            Task(
                query="tick",
                agent_name="gated",
                pattern=TaskPattern.RECURRING,
                schedule_config={"interval_minutes": 60},
            ),
            run_immediately=False,
        )
        run = await engine.run_now(task.task_id)
        await engine.wait_idle()
        stored = await engine.store.load_run(run.run_id)
    await aclose_shared_http_clients()

    assert agent.executions == 1, f"the agent should run the occurrence once, saw {agent.journal}"
    assert stored is not None and stored.status is RunStatus.COMPLETED, stored
    assert stored.attempt == 2, f"the cut should cost one attempt, saw {stored.attempt}"
    assert stored.result == ANSWER.strip(), stored.result


async def test_a_run_that_lost_its_lease_leaves_the_resumed_remote_task_alone(
    tmp_path: Path,
) -> None:
    """SIGSTOP past the lease, in one process: another engine takes the run over and resumes
    its remote task; the stale attempt, refused when it goes on, must not cancel that task."""
    agent = GatedAgent()
    db = tmp_path / "stale.db"
    async with serve_app(app_factory=lambda base: gated_app(agent, base)) as base_url:
        url = f"{base_url}/gated"
        async with engine_on(db, url) as stale:
            task = await stale.submit(Task(query="tick", agent_name="gated", max_attempts=3))
            await asyncio.wait_for(until_set(agent.ticked[3]), _WAIT)
            await logged_chunks(stale, task.task_id, 3)
            [run] = (await stale.store.list_runs(task.task_id)).items
            expired = {"lease_expires_at": utcnow() - timedelta(seconds=1)}
            assert await stale.store.update_run(run.run_id, expired)
            taken = await stale.store.interrupt_expired(INTERRUPTED, by="other-process")
            assert [r.run_id for r in taken] == [run.run_id], taken
            async with engine_on(db, url) as other:
                await logged_chunks(other, task.task_id, 3)
                agent.release[3].set()  # both streams get tick 4: the stale one is refused
                await asyncio.wait_for(stale.wait_idle(), _WAIT)
                agent.release[5].set()
                events = await read_until_done(other, task.task_id)
                stored = await other.service.require_task(task.task_id)
    await aclose_shared_http_clients()

    assert agent.journal == [f"execute {stored.remote_task_ids[0]}"], (
        f"the stale attempt should not cancel the resumed task, the agent saw {agent.journal}"
    )
    assert stored.status is TaskStatus.COMPLETED, stored
    assert chunk_texts(events) == [f"tick {i} " for i in range(1, 7)], chunk_texts(events)
