"""Agents the outage tests' servers load by entry point (``outages.agents:NAME``)."""

from __future__ import annotations

import asyncio

from taskcell.agents.local import AgentRequest

#: Long enough that an outage begun while it runs outlasts the run's lease.
SLEEPY_SECONDS = 6.0


async def sleepy(request: AgentRequest) -> str:
    """Answers after :data:`SLEEPY_SECONDS`."""
    await asyncio.sleep(SLEEPY_SECONDS)
    return f"slept on: {request.query}"
