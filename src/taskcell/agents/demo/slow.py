"""``slow``: streams for as long as asked; for cancellation and load tests.

- "stream for N seconds" (N may be fractional; default 10 when the query says neither form):
  about ten ``message_chunk`` updates a second (``"tick 1 "``, ``"tick 2 "``, ...), then the
  answer ``Streamed K chunks.``;
- "emit N updates": N chunks as fast as the server can send them, then the same answer.

Cancel stops it at once: the executor's ``cancel`` records the remote task id in
:data:`CANCELLED`, stops the loop and publishes CANCELED (the SDK then cancels ``execute``).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from a2a.server.agent_execution import AgentExecutor

from taskcell.agents.demo.common import DemoAgentSpec, Reporter, cancel_task, remember

CANCELLED: dict[str, None] = {}
"""Remote task ids whose cancel reached the slow agent (the most recent
:data:`~.common.RECENT_LIMIT`; test with ``in``)."""

DEFAULT_SECONDS = 10.0
CHUNKS_PER_SECOND = 10

_SECONDS_RE = re.compile(r"stream\s+for\s+(\d+(?:\.\d+)?)\s+seconds?", re.IGNORECASE)
_UPDATES_RE = re.compile(r"emit\s+(\d+)\s+updates?", re.IGNORECASE)


def plan(query: str) -> tuple[int, float]:
    """(number of chunks, pause between chunks) for ``query``."""
    if match := _UPDATES_RE.search(query):
        return int(match.group(1)), 0.0
    seconds = float(match.group(1)) if (match := _SECONDS_RE.search(query)) else DEFAULT_SECONDS
    return max(1, round(seconds * CHUNKS_PER_SECOND)), 1.0 / CHUNKS_PER_SECOND


class SlowExecutor(AgentExecutor):
    """Executor of the slow agent."""

    def __init__(self) -> None:
        self._stopped: set[str] = set()

    async def execute(self, context: Any, event_queue: Any) -> None:
        report = await Reporter.start(context, event_queue)
        count, pause = plan(context.get_user_input())
        task_id = context.task_id
        try:
            for index in range(1, count + 1):
                if task_id in self._stopped:
                    return
                await report.chunk(f"tick {index} ")
                await asyncio.sleep(pause)
            if task_id not in self._stopped:
                await report.finish(f"Streamed {count} chunks.")
        finally:
            self._stopped.discard(task_id)

    async def cancel(self, context: Any, event_queue: Any) -> None:
        remember(CANCELLED, context.task_id, None)
        self._stopped.add(context.task_id)
        await cancel_task(context, event_queue)


SPEC = DemoAgentSpec(
    name="slow",
    description='Streams for as long as asked ("stream for 5 seconds", "emit 1000 updates").',
    skill="Long stream",
    examples=("stream for 5 seconds", "emit 1000 updates"),
    executor=SlowExecutor,
)
