"""Shared pieces of the demo agents: cards, routes, and a small update helper.

Every demo agent is a real A2A 1.0 server built with a2a-sdk: an ``AgentExecutor`` behind a
``DefaultRequestHandler`` with an in-memory task store that forgets finished tasks
(:mod:`.task_store`), served by the SDK's route factories at ``{prefix}/{name}``:

- ``GET  {prefix}/{name}/.well-known/agent-card.json``: the card (public, ``Cache-Control:
  public, max-age=300``), which advertises ``{base_url}{prefix}/{name}`` for JSON-RPC (listed
  first, so preferred) and HTTP+JSON;
- ``POST {prefix}/{name}``: JSON-RPC (1.0 method names, and 0.3 ones for old clients);
- ``{prefix}/{name}/message:stream``, ``/tasks/{id}:cancel``, ...: HTTP+JSON (and the 0.3
  ``/v1/...`` paths).

The routes are flat ``Route`` objects (the SDK's catch-all ``/{tenant}`` mount is left out, so
they can be added to any app without shadowing its other routes).

Answer convention of the demo agents (what taskcell's executor can rely on): progress and the
answer's text arrive as WORKING status updates whose *message metadata* names the event
(``response_event``: ``message_chunk``, ``reasoning``, ``tool_call_started`` ...); the whole
answer is then repeated once as an artifact named ``answer`` with metadata
``{"response_event": "final_result"}``, as A2A 1.0 asks of agents, and the task completes with no
status message. A consumer that already showed the chunks skips the ``final_result`` artifact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from a2a.server.agent_execution import AgentExecutor
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Part,
    Task,
    TaskState,
    TaskStatus,
)
from starlette.routing import BaseRoute, Route

from taskcell.agents.a2a_events import struct_to_dict
from taskcell.agents.demo.door import DemoAgentDoor
from taskcell.agents.demo.task_store import ForgetfulTaskStore

FINAL_RESULT = "final_result"
MESSAGE_CHUNK = "message_chunk"
#: Cards change only when the server's address does; clients may reuse one for five minutes.
CARD_CACHE_CONTROL = "public, max-age=300"


#: How many entries the demo agents' own bookkeeping (flaky's failure counts, slow's cancelled
#: ids) keeps: the oldest go first, so a long-running server's memory stays bounded.
RECENT_LIMIT = 10_000


def remember(table: dict[str, Any], key: str, value: Any, limit: int = RECENT_LIMIT) -> None:
    """Set ``table[key]``, dropping the oldest entries beyond ``limit``."""
    table.pop(key, None)
    table[key] = value
    while len(table) > limit:
        del table[next(iter(table))]


@dataclass(frozen=True, slots=True)
class DemoAgentSpec:
    """How to build one demo agent: its card text and executor."""

    name: str
    description: str
    skill: str
    examples: tuple[str, ...]
    executor: Callable[[], AgentExecutor]
    wrap_endpoint: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None


def build_card(spec: DemoAgentSpec, url: str) -> Any:
    """The agent card for ``spec``, advertising ``url`` for JSON-RPC and HTTP+JSON."""
    return AgentCard(
        name=spec.name,
        description=spec.description,
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0"),
            AgentInterface(url=url, protocol_binding="HTTP+JSON", protocol_version="1.0"),
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(
                id=spec.name,
                name=spec.skill,
                description=spec.description,
                tags=["demo"],
                examples=list(spec.examples),
            )
        ],
    )


def agent_routes(
    spec: DemoAgentSpec,
    base_url: str,
    path: str,
    door: DemoAgentDoor | None = None,
    *,
    handlers: list[DefaultRequestHandler] | None = None,
) -> list[BaseRoute]:
    """Card, JSON-RPC and REST routes for one agent served at ``path`` (e.g. ``/a2a/echo``);
    with a ``door``, every route but the card's needs a credential (see :mod:`.door`).

    The agent's request handler is added to ``handlers`` when given: ``await handler.aclose()``
    ends its tasks (a server that stops does so before it closes its connections).
    """
    card = build_card(spec, f"{base_url.rstrip('/')}{path}")
    handler = DefaultRequestHandler(
        agent_executor=spec.executor(), task_store=ForgetfulTaskStore(), agent_card=card
    )
    if handlers is not None:
        handlers.append(handler)
    routes: list[BaseRoute] = []
    routes.extend(
        create_agent_card_routes(
            card,
            card_url=f"{path}/.well-known/agent-card.json",
            cache_control=CARD_CACHE_CONTROL,
        )
    )
    rpc_and_rest = [
        *create_jsonrpc_routes(handler, path, enable_v0_3_compat=True),
        *create_rest_routes(handler, enable_v0_3_compat=True, path_prefix=path),
    ]
    for route in rpc_and_rest:
        if not isinstance(route, Route):
            continue  # the SDK's "/{tenant}" catch-all mount
        endpoint = route.endpoint
        if spec.wrap_endpoint is not None:
            endpoint = spec.wrap_endpoint(endpoint)
        if door is not None:
            endpoint = door.guard(endpoint)
        if endpoint is not route.endpoint:
            route = Route(
                route.path, endpoint=endpoint, methods=sorted(route.methods or ()), name=route.name
            )
        routes.append(route)
    return routes


def message_metadata(context: Any) -> dict[str, Any]:
    """The request's metadata overlaid with the user message's (where taskcell puts it)."""
    metadata = dict(context.metadata or {})
    if context.message is not None:
        metadata.update(struct_to_dict(context.message.metadata))
    return metadata


class Reporter:
    """Publishes a demo agent's updates for one task (a thin layer over ``TaskUpdater``)."""

    def __init__(self, context: Any, queue: Any) -> None:
        self.context = context
        self.queue = queue
        self.updater = TaskUpdater(queue, context.task_id, context.context_id)

    @classmethod
    async def start(cls, context: Any, queue: Any) -> Reporter:
        """A reporter for ``context``'s task, publishing the task first if it is new."""
        if context.current_task is None:
            # Built by hand: the SDK's new_task_from_user_message refuses an empty query.
            task = Task(
                id=context.task_id,
                context_id=context.context_id,
                status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED),
                history=[context.message] if context.message is not None else [],
            )
            await queue.enqueue_event(task)
        return cls(context, queue)

    async def event(self, response_event: str, text: str = "", **metadata: Any) -> None:
        """A WORKING update whose message metadata names ``response_event``."""
        parts = [Part(text=text)] if text else []
        message = self.updater.new_agent_message(
            parts, metadata={"response_event": response_event, **metadata}
        )
        await self.updater.update_status(TaskState.TASK_STATE_WORKING, message=message)

    async def chunk(self, text: str) -> None:
        """A piece of the answer."""
        await self.event(MESSAGE_CHUNK, text)

    async def finish(self, answer: str) -> None:
        """Repeat the whole answer as the ``final_result`` artifact and complete."""
        await self.updater.add_artifact(
            [Part(text=answer)], name="answer", metadata={"response_event": FINAL_RESULT}
        )
        await self.updater.complete()

    async def answer(self, text: str) -> None:
        """A one-chunk answer: the chunk, the artifact, completion."""
        await self.chunk(text)
        await self.finish(text)

    async def fail(self, reason: str) -> None:
        """End the task as failed with ``reason``."""
        await self.updater.failed(self.updater.new_agent_message([Part(text=reason)]))

    async def ask(self, question: str) -> None:
        """Pause the task with a question for the user."""
        await self.updater.requires_input(self.updater.new_agent_message([Part(text=question)]))


async def cancel_task(context: Any, queue: Any) -> None:
    """Publish CANCELED for ``context``'s task (what a demo executor's ``cancel`` does)."""
    await TaskUpdater(queue, context.task_id, context.context_id).cancel()
