"""The bundled demo agents: real A2A servers, deterministic, no LLM.

``echo``, ``clock``, ``flaky``, ``asker`` and ``slow`` (see their modules). Serve them with

- ``create_demo_app(base_url)``: a Starlette app with all five under ``/a2a/NAME``;
- ``mount_demo_agents(app, base_url, door=...)``: the same routes added to an existing Starlette
  or FastAPI app (what ``taskcell serve`` does; with API keys configured, its ``door`` makes
  them need a key, see :mod:`.door`);
- ``python -m taskcell.agents.demo --host 127.0.0.1 --port 8765``: on their own.

``base_url`` is the address clients reach the server at (``http://127.0.0.1:8765``): each card
advertises ``{base_url}/a2a/NAME``, and A2A clients talk to the URL in the card. The agent's own
URL, to register it, is ``{base_url}/a2a/NAME`` too (its card is at
``{base_url}/a2a/NAME/.well-known/agent-card.json``). See :mod:`.common` for the answer
convention (chunks, then a ``final_result`` artifact).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from a2a.server.request_handlers import DefaultRequestHandler
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from taskcell.agents.demo import asker, clock, echo, flaky, slow
from taskcell.agents.demo.common import DemoAgentSpec, agent_routes
from taskcell.agents.demo.door import DemoAgentDoor

DEFAULT_PREFIX = "/a2a"

SPECS: tuple[DemoAgentSpec, ...] = (echo.SPEC, clock.SPEC, flaky.SPEC, asker.SPEC, slow.SPEC)

DEMO_AGENTS: tuple[tuple[str, str], ...] = tuple((spec.name, spec.description) for spec in SPECS)
"""(name, description) of each demo agent, for the registry."""


def demo_agent_url(base_url: str, name: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The URL of demo agent ``name`` served at ``base_url``."""
    return f"{base_url.rstrip('/')}{prefix}/{name}"


def demo_routes(
    base_url: str,
    prefix: str = DEFAULT_PREFIX,
    *,
    door: DemoAgentDoor | None = None,
    handlers: list[DefaultRequestHandler] | None = None,
) -> list[BaseRoute]:
    """The routes of all demo agents, each under ``{prefix}/{name}`` (behind ``door``; their
    request handlers are added to ``handlers`` when given)."""
    routes: list[BaseRoute] = []
    for spec in SPECS:
        path = f"{prefix}/{spec.name}"
        routes.extend(agent_routes(spec, base_url, path, door, handlers=handlers))
    return routes


def mount_demo_agents(
    app: Starlette,
    base_url: str,
    prefix: str = DEFAULT_PREFIX,
    *,
    door: DemoAgentDoor | None = None,
) -> Callable[[], Awaitable[None]]:
    """Add the demo agents' routes to ``app`` (a Starlette or FastAPI app), behind ``door``.

    Answers ``stop``: ``await stop()`` ends the agents' running tasks (their executors are
    cancelled, their event queues closed), so a server that stops leaves none pending.
    """
    handlers: list[DefaultRequestHandler] = []
    app.router.routes.extend(demo_routes(base_url, prefix, door=door, handlers=handlers))

    async def stop() -> None:
        # Closing a handler closes its event queues under executors still running (that is the
        # point): the SDK warns of each event they can no longer send. Expected here, not news.
        queue_log = logging.getLogger("a2a.server.events.event_queue_v2")
        level = queue_log.level
        queue_log.setLevel(logging.ERROR)
        try:
            for handler in handlers:
                await handler.aclose()
        finally:
            queue_log.setLevel(level)

    return stop


def create_demo_app(base_url: str, prefix: str = DEFAULT_PREFIX) -> Starlette:
    """A Starlette app serving all demo agents under ``{prefix}/{name}``."""
    return Starlette(routes=demo_routes(base_url, prefix))


__all__ = [
    "DEFAULT_PREFIX",
    "DEMO_AGENTS",
    "SPECS",
    "create_demo_app",
    "demo_agent_url",
    "demo_routes",
    "mount_demo_agents",
]
