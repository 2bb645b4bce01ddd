"""``asker``: asks "What is your name?" (input-required), then answers "Hello, NAME.".

The first message of a task gets the question; a message that continues the same task (its
``task_id`` and ``context_id`` set) is taken as the name.
"""

from __future__ import annotations

from typing import Any

from a2a.server.agent_execution import AgentExecutor
from a2a.types import TaskState

from taskcell.agents.demo.common import DemoAgentSpec, Reporter, cancel_task

QUESTION = "What is your name?"


class AskerExecutor(AgentExecutor):
    """Executor of the asker agent."""

    async def execute(self, context: Any, event_queue: Any) -> None:
        task = context.current_task
        report = await Reporter.start(context, event_queue)
        if task is None or task.status.state != TaskState.TASK_STATE_INPUT_REQUIRED:
            await report.ask(QUESTION)
            return
        name = context.get_user_input().strip() or "stranger"
        await report.answer(f"Hello, {name}.")

    async def cancel(self, context: Any, event_queue: Any) -> None:
        await cancel_task(context, event_queue)


SPEC = DemoAgentSpec(
    name="asker",
    description="Asks for your name, then greets you.",
    skill="Greeting",
    examples=("Say hello",),
    executor=AskerExecutor,
)
