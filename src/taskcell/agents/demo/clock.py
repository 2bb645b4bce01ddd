"""``clock``: the current time in the task's time zone.

The zone is the IANA name in the message metadata key ``timezone`` (default ``UTC``); the answer
reads ``It is 14:05 on Friday 27 November 2026 in Europe/Berlin.`` An unknown zone fails the
task with a sentence naming it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from a2a.server.agent_execution import AgentExecutor

from taskcell.agents.demo.common import DemoAgentSpec, Reporter, cancel_task, message_metadata


def describe_time(now: datetime, zone_name: str) -> str:
    """``It is HH:MM on Weekday D Month YYYY in ZONE.`` for the aware ``now`` in ``zone_name``."""
    local = now.astimezone(ZoneInfo(zone_name))
    return f"It is {local:%H:%M} on {local:%A} {local.day} {local:%B %Y} in {zone_name}."


class ClockExecutor(AgentExecutor):
    """Executor of the clock agent."""

    async def execute(self, context: Any, event_queue: Any) -> None:
        report = await Reporter.start(context, event_queue)
        zone_name = str(message_metadata(context).get("timezone") or "UTC")
        try:
            text = describe_time(datetime.now(UTC), zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            await report.fail(f"unknown time zone {zone_name!r}")
            return
        await report.answer(text)

    async def cancel(self, context: Any, event_queue: Any) -> None:
        await cancel_task(context, event_queue)


SPEC = DemoAgentSpec(
    name="clock",
    description="Tells the current time in the task's time zone.",
    skill="Current time",
    examples=("What time is it?",),
    executor=ClockExecutor,
)
