"""Small in-process agents, for trying taskcell out and for benchmarks and cluster tests.

Register one by entry point, e.g. ``TASKCELL_AGENTS='{"instant": {"entry":
"taskcell.agents.samples:instant"}}'``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from taskcell.agents.local import AgentRequest


async def instant(request: AgentRequest) -> str:
    """Answers at once with the query."""
    return f"done: {request.query}"


async def pause(request: AgentRequest) -> str:
    """Answers after 50 ms, a stand-in for an agent that waits on a model or a service."""
    await asyncio.sleep(0.05)
    return f"done: {request.query}"


async def words(request: AgentRequest) -> AsyncIterator[str]:
    """Streams the query back word by word, without waiting."""
    for word in request.query.split():
        yield word + " "
