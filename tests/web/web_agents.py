"""In-process agents for the browser tests, registered with ``Server(agents=...)`` as
``{"entry": "web_agents:<name>"}`` (the server's PYTHONPATH holds tests/web)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

from taskcell.agents.local import AgentRequest

GATE_POLL_SECONDS = 0.05
GATE_POLLS = 2400  # two minutes: the gate is a file another process makes


async def _opened(gate: Path) -> None:
    for _ in range(GATE_POLLS):
        if await asyncio.to_thread(gate.exists):
            return
        await asyncio.sleep(GATE_POLL_SECONDS)
    raise RuntimeError(f"nobody made {gate} in two minutes")


async def ticks(request: AgentRequest) -> AsyncIterator[str]:
    """For "emit N updates", yields "tick 1 " ... "tick N " as fast as the engine takes them:
    the same text as the demo ``slow`` agent's, without its A2A round trips. With "... after
    <path>", it yields "tick 1 " first and the rest once the file at <path> exists, so that a
    test can start the flood when its page is watching."""
    found = re.search(r"emit (\d+) updates(?: after (\S+))?", request.query)
    count = int(found.group(1)) if found else 10
    gate = Path(found.group(2)) if found and found.group(2) else None
    for n in range(1, count + 1):
        yield f"tick {n} "
        if n == 1 and gate is not None:
            await _opened(gate)
