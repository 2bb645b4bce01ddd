"""A uvicorn server that lets the app stop in order before it closes its connections.

uvicorn's own order is: stop accepting connections, end or wait out the open ones, *then* run
the app's lifespan shutdown (where the engine stops). sse-starlette cuts every open event
stream the moment the server is told to exit, including the A2A streams of the demo agents
this same server serves: a run reading one saw its agent's connection cut and failed, a stop
logged "ASGI callable returned without completing response" for each stream, and the agents'
SDK tasks died pending at the loop's end ("Task was destroyed but it is pending!").

This server tells the engine as soon as it is told to exit (:meth:`Engine.begin_stop
<taskcell.engine.engine.Engine.begin_stop>`: no new run starts, a cut connection means
"stopped"), then calls ``app.state.drain()`` (see :func:`taskcell.api.app.create_app`) before
uvicorn's shutdown begins, while the demo agents still answer: runs closed as interrupted and
queued again, event streams ended cleanly, the demo agents' tasks ended. Only then does it let
sse-starlette end any stream opened since, and shut down as uvicorn does.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from sse_starlette.sse import AppStatus


class DrainingServer(uvicorn.Server):
    """See the module docstring. The app's engine is ``app.state.engine`` and its drain
    ``app.state.drain`` (each if it has one)."""

    _exiting = False

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        # The drain ends the streams in order; sse-starlette is told to after it.
        AppStatus.enable_automatic_graceful_drain = False

    @property
    def should_exit(self) -> bool:
        return self._exiting

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        # Every way of asking uvicorn to exit (a signal, the app's on_failure) sets this.
        self._exiting = value
        engine = self._state("engine")
        if value and engine is not None:
            engine.begin_stop()

    def _state(self, name: str) -> Any:
        state = getattr(self.config.app, "state", None)
        return getattr(state, name, None) if state is not None else None

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        drain: Callable[[], Awaitable[None]] | None = self._state("drain")
        if drain is not None:
            await drain()
        else:
            engine = self._state("engine")
            if engine is not None:
                await engine.interrupt_runs()
        AppStatus.should_exit = True
        try:
            await super().shutdown(sockets)
        finally:
            # The flag is process-wide: a server started later in this process (tests, an
            # embedding application) must stream again.
            AppStatus.should_exit = False
