"""A uvicorn server that lets the app stop in order before it closes its connections.

uvicorn's own order is: stop accepting connections, end or wait out the open ones, *then* run
the app's lifespan shutdown (where the engine stops). sse-starlette cuts every open event
stream the moment the server is told to exit, including the A2A streams of the demo agents
this same server serves, so a stop logged "ASGI callable returned without completing
response" for each, and the agents' SDK tasks died pending at the loop's end ("Task was
destroyed but it is pending!", ``event_queue_v2`` lines).

This server calls ``app.state.drain()`` first (see :func:`taskcell.api.app.create_app`): runs
closed as interrupted, event streams ended cleanly, the demo agents' tasks ended; then lets
sse-starlette end any stream opened since, and shuts down as uvicorn does.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import uvicorn
from sse_starlette.sse import AppStatus


class DrainingServer(uvicorn.Server):
    """See the module docstring. The app's drain is ``app.state.drain`` (if it has one)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        # The drain ends the streams in order; sse-starlette is told to after it.
        AppStatus.enable_automatic_graceful_drain = False

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        state = getattr(self.config.app, "state", None)
        drain: Callable[[], Awaitable[None]] | None = getattr(state, "drain", None)
        if drain is not None:
            await drain()
        AppStatus.should_exit = True
        await super().shutdown(sockets)
