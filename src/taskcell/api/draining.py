"""A uvicorn server that stops the engine's runs before it stops serving.

uvicorn's own order is: stop accepting connections, end or wait out the open ones, *then* run
the app's lifespan shutdown (where the engine stops). sse-starlette ends every open event stream
as soon as the server is told to exit, including the A2A streams of the demo agents this same
server serves; a run reading one would see its agent's connection cut and fail. This server
tells the engine as soon as it is told to exit (:meth:`Engine.begin_stop
<taskcell.engine.engine.Engine.begin_stop>`: no new run starts, a cut connection means "stopped"),
and stops the runs (:meth:`Engine.interrupt_runs
<taskcell.engine.engine.Engine.interrupt_runs>`: closed as interrupted, queued again) before
uvicorn's shutdown begins, while the demo agents still answer.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import uvicorn

logger = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """See the module docstring. The app's engine is ``app.state.engine`` (if it has one)."""

    _exiting = False

    @property
    def should_exit(self) -> bool:
        return self._exiting

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        # Every way of asking uvicorn to exit (a signal, the app's on_failure) sets this.
        self._exiting = value
        engine = self._engine()
        if value and engine is not None:
            engine.begin_stop()

    def _engine(self) -> Any:
        state = getattr(self.config.app, "state", None)
        return getattr(state, "engine", None) if state is not None else None

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        engine = self._engine()
        if engine is not None:
            await engine.interrupt_runs()
        await super().shutdown(sockets)
