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

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from sse_starlette.sse import AppStatus

from taskcell.api.stall import StallResponder, hand_off_to


class DrainingServer(uvicorn.Server):
    """See the module docstring. The app's engine is ``app.state.engine`` and its drain
    ``app.state.drain`` (each if it has one)."""

    _exiting = False
    #: Answers /health while the loop is stuck in the database (see ``api/stall.py``).
    stall_responder: StallResponder | None = None

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

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit or not getattr(self, "servers", None):
            return
        config = self.config

        def protocol() -> asyncio.Protocol:  # as uvicorn's startup makes them
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )

        self.stall_responder = StallResponder(
            [sock.fileno() for server in self.servers for sock in server.sockets],
            loop_thread=threading.get_ident(),
            hand_off=hand_off_to(asyncio.get_running_loop(), protocol),
            health=self._health_fields,
        )
        self.stall_responder.start()

    def _health_fields(self) -> dict[str, Any]:
        engine = self._state("engine")
        if engine is None:
            return {"process_id": "", "scheduler": False, "event_log": False}
        return {
            "process_id": engine.owner,
            "scheduler": engine.supervisor.alive("scheduler"),
            "event_log": engine.supervisor.alive("event-log-writer"),
        }

    async def on_tick(self, counter: int) -> bool:
        if self.stall_responder is not None:
            self.stall_responder.tick()
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.stall_responder is not None:
            self.stall_responder.stop()
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
