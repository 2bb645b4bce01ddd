"""Test helpers: run an ASGI app on a real uvicorn server on loopback, and read a store the
way tests need to but production code never does.

Tests use real servers rather than mocks. Two ways to run one:

- ``async with serve_app(app) as base_url:`` runs the app in the current event loop (the test's
  loop) and yields ``http://127.0.0.1:PORT``. Use it from async tests.
- ``with serve_app_in_thread(app) as base_url:`` runs it in a thread with its own event loop, for
  sync tests (browsers, CLI runs) or when the server must survive the test's loop.

Both bind the socket *before* the app is built, so an app that must know its own address (A2A
agent cards advertise the URL clients talk to) can be given as a factory:
``serve_app(app_factory=lambda base_url: create_demo_app(base_url))``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from datetime import datetime
from typing import Any

import uvicorn

from taskcell.abc import TaskStore
from taskcell.api.draining import DrainingServer
from taskcell.domain.models import Task
from taskcell.settings import KEEP_ALIVE_SECONDS

ASGIApp = Callable[..., Any]
AppFactory = Callable[[str], ASGIApp]

_START_TIMEOUT = 10.0


class _QuietServer(DrainingServer):
    """A uvicorn server that leaves the process's signal handlers alone (and, like
    ``taskcell serve``, stops the engine's runs before it stops serving)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind_loopback(*, listen: bool = True) -> socket.socket:
    """A TCP socket bound to 127.0.0.1 on a port the kernel picked (``getsockname()[1]``).

    The one way tests get a port: the socket is handed on to the server (never closed and
    bound again, which would let another process take the port in between). With
    ``listen=False`` it stays bound but refuses every connection: a port nothing answers on
    for as long as the socket is open.
    """
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only then, and
    # without it a response sent as headers then body waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    if listen:
        sock.listen(1024)
        sock.setblocking(False)
    return sock


def _resolve_app(app: ASGIApp | None, app_factory: AppFactory | None, base_url: str) -> ASGIApp:
    if (app is None) == (app_factory is None):
        raise TypeError("give exactly one of app and app_factory")
    if app_factory is not None:
        return app_factory(base_url)
    assert app is not None
    return app


def _make_server(app: ASGIApp, sock: socket.socket, grace: int) -> _QuietServer:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=sock.getsockname()[1],
        log_level="warning",
        lifespan="auto",
        timeout_graceful_shutdown=grace,
        ws="none",
        backlog=1024,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    return _QuietServer(config)


@contextlib.asynccontextmanager
async def serve_app(
    app: ASGIApp | None = None,
    *,
    app_factory: AppFactory | None = None,
    shutdown_grace: int = 2,
) -> AsyncIterator[str]:
    """Serve ``app`` (or ``app_factory(base_url)``) on 127.0.0.1:free port in this loop.

    Yields the base URL (no trailing slash). On exit the server shuts down gracefully (open
    streams get ``shutdown_grace`` seconds, then are cut) and the port is released.
    """
    sock = bind_loopback()
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        server = _make_server(_resolve_app(app, app_factory, base_url), sock, shutdown_grace)
        task = asyncio.create_task(server.serve(sockets=[sock]), name=f"uvicorn {base_url}")
        try:
            async with asyncio.timeout(_START_TIMEOUT):
                while not server.started:
                    if task.done():
                        task.result()
                        raise RuntimeError("uvicorn stopped before it started")
                    await asyncio.sleep(0.01)
            yield base_url
        finally:
            server.should_exit = True
            with contextlib.suppress(SystemExit):
                await task
    finally:
        sock.close()


@contextlib.contextmanager
def serve_app_in_thread(
    app: ASGIApp | None = None,
    *,
    app_factory: AppFactory | None = None,
    shutdown_grace: int = 2,
) -> Iterator[str]:
    """Like :func:`serve_app`, but in a daemon thread with its own event loop."""
    sock = bind_loopback()
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        server = _make_server(_resolve_app(app, app_factory, base_url), sock, shutdown_grace)
        thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name=f"uvicorn {base_url}",
            daemon=True,
        )
        thread.start()
        deadline = threading.Event()
        waited = 0.0
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn stopped before it started")
            if waited > _START_TIMEOUT:
                raise TimeoutError(f"uvicorn did not start at {base_url}")
            deadline.wait(0.01)
            waited += 0.01
        try:
            yield base_url
        finally:
            server.should_exit = True
            thread.join(timeout=_START_TIMEOUT)
    finally:
        sock.close()


async def claim_due(
    store: TaskStore,
    now: datetime,
    next_time: Callable[[Task], datetime | None],
    *,
    limit: int = 500,
) -> list[tuple[Task, datetime]]:
    """Claim the occurrences due at ``now`` without starting them: each claimed task (its
    ``next_run_at`` moved to ``next_time(task)``) with the due time it had, earliest first.

    :meth:`~taskcell.abc.TaskStore.start_due` storing no run, so a test sees what a claim
    takes (which tasks, in which order, each once) through the one claim the scheduler uses.
    """
    dues: dict[str, datetime] = {}

    def no_run(task: Task, due: datetime) -> None:
        dues[task.task_id] = due

    started = await store.start_due(now, next_time, no_run, skipped_reason="", limit=limit)
    return [(task, dues[task.task_id]) for task, _ in started]
