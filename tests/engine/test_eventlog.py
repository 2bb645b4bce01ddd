"""The event log: subscribers at 0, at N, and during a fast stream see every event once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from taskcell import Task
from taskcell.agents.local import AgentRequest
from taskcell.domain.events import Event, EventType
from taskcell.engine.engine import Engine

CHUNKS = 3000


class PausingAgent:
    """Streams CHUNKS chunks fast, pausing at five points until the test lets it go on."""

    def __init__(self, points: int = 5) -> None:
        self.at = [CHUNKS * (k + 1) // (points + 1) for k in range(points)]
        self.paused = [asyncio.Event() for _ in self.at]
        self.resume = [asyncio.Event() for _ in self.at]

    async def __call__(self, request: AgentRequest) -> AsyncIterator[str]:
        for i in range(CHUNKS):
            if i in self.at:
                k = self.at.index(i)
                self.paused[k].set()
                await self.resume[k].wait()
            yield f"w{i} "
            if i % 100 == 0:
                await asyncio.sleep(0)


async def collect(engine: Engine, task_id: str, after: int) -> list[Event]:
    seen: list[Event] = []
    async for event in engine.subscribe(task_id, after=after):
        seen.append(event)
        if event.event is EventType.DONE:
            return seen
    return seen


async def test_subscribers_attaching_at_any_point_see_each_event_once_in_order(
    engine: Engine,
) -> None:
    fast = PausingAgent()
    engine.registry.register_local("fast", fast)
    task = await engine.submit(Task(query="go", agent_name="fast"))
    readers = [asyncio.create_task(collect(engine, task.task_id, 0))]
    attach_points: list[int] = [0]
    # Attach more readers in the middle of the stream (the agent waits for each), at whatever
    # sequence the log has reached then.
    for paused, resume in zip(fast.paused, fast.resume, strict=True):
        await asyncio.wait_for(paused.wait(), timeout=20)
        reached = await engine.store.last_seq(task.task_id)
        attach_points.append(reached)
        readers.append(asyncio.create_task(collect(engine, task.task_id, reached)))
        resume.set()
    results = await asyncio.wait_for(asyncio.gather(*readers), timeout=30)
    total = await engine.store.last_seq(task.task_id)
    assert total > CHUNKS, total
    assert attach_points[-1] < total, (attach_points, total)
    for after, seen in zip(attach_points, results, strict=True):
        seqs = [e.seq for e in seen]
        assert seqs == list(range(after + 1, total + 1)), (after, seqs[:5], seqs[-5:], total)
    # A late subscriber, after the end, replays everything from the log.
    late = await asyncio.wait_for(collect(engine, task.task_id, 0), timeout=10)
    assert [e.seq for e in late] == list(range(1, total + 1))
    middle = total // 2
    resumed = await asyncio.wait_for(collect(engine, task.task_id, middle), timeout=10)
    assert [e.seq for e in resumed] == list(range(middle + 1, total + 1))
    text = "".join(
        str(e.payload["content"]) for e in late if e.event is EventType.MESSAGE_CHUNK and e.payload
    )
    assert text == "".join(f"w{i} " for i in range(CHUNKS))
