"""A real A2A agent for resume tests: it counts its executions and holds where a test says.

Each execution streams six chunks (``tick 1 `` ... ``tick 6 ``) as WORKING status messages,
then the answer as a ``final_result`` artifact, and completes. The *first* execution stops
after ``tick 3`` and after ``tick 5`` until the test releases it (:attr:`GatedAgent.release`),
so a test can stop taskcell in the middle of it, and let the agent go on while no taskcell
listens. Later executions run straight through. The events are ``threading.Event`` objects, so a
test may serve the agent in its own loop or in a thread (:func:`until_set` waits for one in a loop
without blocking it). :attr:`GatedAgent.journal` records, in order,
``execute <remote task id>`` and ``cancel <remote task id>`` as the agent sees them.

``resumable=False`` serves the agent with a handler that refuses ``SubscribeToTask`` (an agent
that cannot stream a task to a new subscriber), so taskcell must cancel and start over.
``cut_first_stream_after=N`` ends the first streaming answer after N events, as a broken
connection would, while the task goes on in the agent.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from a2a.server.agent_execution import AgentExecutor
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from a2a.utils.errors import UnsupportedOperationError
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from taskcell.agents.demo.common import DemoAgentSpec, Reporter, build_card, cancel_task

TICKS = 6
HOLDS = (3, 5)
ANSWER = "".join(f"tick {i} " for i in range(1, TICKS + 1))


class GatedAgent:
    """The agent's state, shared by the test and the executor (one event loop)."""

    def __init__(self) -> None:
        self.journal: list[str] = []
        self.finished: list[str] = []
        self.ticked = {i: threading.Event() for i in range(1, TICKS + 1)}
        self.release = {i: threading.Event() for i in HOLDS}
        self.done = threading.Event()

    @property
    def executions(self) -> int:
        return sum(1 for entry in self.journal if entry.startswith("execute "))


async def until_set(event: threading.Event) -> None:
    """Wait for ``event`` without blocking the loop (in short waits, so a cancelled waiter
    leaves no thread behind)."""
    while not await asyncio.to_thread(event.wait, 0.1):
        pass


class GatedExecutor(AgentExecutor):
    def __init__(self, agent: GatedAgent) -> None:
        self.agent = agent

    async def execute(self, context: Any, event_queue: Any) -> None:
        agent = self.agent
        agent.journal.append(f"execute {context.task_id}")
        first = agent.executions == 1
        report = await Reporter.start(context, event_queue)
        for index in range(1, TICKS + 1):
            await report.chunk(f"tick {index} ")
            if first:
                agent.ticked[index].set()
                if index in agent.release:
                    await until_set(agent.release[index])
        await report.finish(ANSWER)
        agent.finished.append(context.task_id)
        if first:
            agent.done.set()

    async def cancel(self, context: Any, event_queue: Any) -> None:
        self.agent.journal.append(f"cancel {context.task_id}")
        await cancel_task(context, event_queue)


class NoSubscribeHandler(DefaultRequestHandler):
    """A handler that will not stream a task to a new subscriber."""

    async def on_subscribe_to_task(self, params: Any, context: Any) -> Any:
        raise UnsupportedOperationError(message="this agent does not resubscribe")
        yield  # an async generator, like the method it replaces


def cutting(endpoint: Any, after: int) -> Any:
    """``endpoint``, whose first streaming answer ends after ``after`` events."""
    cuts = [after]

    async def cut(request: Request) -> Response:
        response: Response = await endpoint(request)
        if cuts and isinstance(response, EventSourceResponse):
            limit = cuts.pop()
            events = response.body_iterator

            async def limited() -> Any:
                count = 0
                async for item in events:
                    yield item
                    count += 1
                    if count >= limit:
                        break
                await events.aclose()  # type: ignore[attr-defined]

            response.body_iterator = limited()
        return response

    return cut


def gated_app(
    agent: GatedAgent,
    base_url: str,
    *,
    resumable: bool = True,
    cut_first_stream_after: int | None = None,
) -> Starlette:
    """The agent served at ``{base_url}/gated`` (JSON-RPC)."""
    spec = DemoAgentSpec(
        name="gated",
        description="Ticks six times, held where a test says.",
        skill="Ticks",
        examples=("tick",),
        executor=lambda: GatedExecutor(agent),
    )
    path = "/gated"
    card = build_card(spec, f"{base_url}{path}")
    handler_class = DefaultRequestHandler if resumable else NoSubscribeHandler
    handler = handler_class(
        agent_executor=spec.executor(), task_store=InMemoryTaskStore(), agent_card=card
    )
    routes: list[BaseRoute] = list(
        create_agent_card_routes(card, card_url=f"{path}/.well-known/agent-card.json")
    )
    for route in create_jsonrpc_routes(handler, path):
        if isinstance(route, Route):
            if cut_first_stream_after is not None:
                endpoint = cutting(route.endpoint, cut_first_stream_after)
                route = Route(route.path, endpoint, methods=sorted(route.methods or ()))
            routes.append(route)
    return Starlette(routes=routes)
