"""``echo``: streams the query back word by word, after one reasoning step and one tool call.

Update sequence (all WORKING status updates carry ``response_event`` in their message metadata):

1. ``reasoning_started``; ``reasoning`` (text: one sentence); ``reasoning_completed``
2. ``tool_call_started`` then ``tool_call_completed`` with ``tool_call_id``, ``tool_name``
   (``count_words``) and, on the second, ``tool_result`` (e.g. ``"3 words"``)
3. one ``message_chunk`` per word: the first word, then each following word with the whitespace
   before it, so the chunks joined are the query (without trailing whitespace)
4. the whole text as the ``answer`` artifact marked ``{"response_event": "final_result"}``
   (repeat of the chunks: skip it if you showed them), then COMPLETED with no message.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from a2a.server.agent_execution import AgentExecutor

from taskcell.agents.demo.common import DemoAgentSpec, Reporter, cancel_task

REASONING = "The user wants their words echoed back, so I will count them and repeat them."
TOOL_NAME = "count_words"


def echo_chunks(query: str) -> list[str]:
    """The chunks echo streams for ``query``."""
    return re.findall(r"\s*\S+", query)


class EchoExecutor(AgentExecutor):
    """Executor of the echo agent."""

    async def execute(self, context: Any, event_queue: Any) -> None:
        report = await Reporter.start(context, event_queue)
        query = context.get_user_input()
        await report.event("reasoning_started")
        await report.event("reasoning", REASONING)
        await report.event("reasoning_completed")
        chunks = echo_chunks(query)
        call_id = f"call-{context.task_id}"
        await report.event(
            "tool_call_started",
            tool_call_id=call_id,
            tool_name=TOOL_NAME,
            tool_args={"text": query},
        )
        await report.event(
            "tool_call_completed",
            tool_call_id=call_id,
            tool_name=TOOL_NAME,
            tool_result=f"{len(chunks)} words",
        )
        for chunk in chunks:
            await report.chunk(chunk)
            await asyncio.sleep(0)
        await report.finish("".join(chunks))

    async def cancel(self, context: Any, event_queue: Any) -> None:
        await cancel_task(context, event_queue)


SPEC = DemoAgentSpec(
    name="echo",
    description="Streams your text back word by word, with a reasoning step and a tool call.",
    skill="Echo",
    examples=("hello world",),
    executor=EchoExecutor,
)
