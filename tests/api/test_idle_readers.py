"""A stream reader that stops reading is disconnected after ``sse_idle_seconds`` (issue 12),
while readers that read, and the server, go on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from taskcell.agents.http import aclose_shared_http_clients
from taskcell.api.app import create_app

from .conftest import read_sse, settings_for

# 2,900 ten-letter words: 2,900 message chunks, over a megabyte of frames, more than the
# (small, see below) buffers between the server and a reader who reads nothing can hold.
WORDS = 2_900
LONG_QUERY = " ".join(["abcdefghij"] * WORDS)
SMALL_BUFFER = 8 * 1024


class _Seen(logging.Handler):
    """Sets ``event`` when a record with ``message`` is logged (from any thread)."""

    def __init__(self, message: str, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.message = message
        self.loop = loop
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.message:
            self.loop.call_soon_threadsafe(self.event.set)


@contextlib.asynccontextmanager
async def small_buffer_server(db: Path) -> AsyncIterator[str]:
    """A real server whose connections have small send buffers (accepted sockets inherit the
    listening socket's), so a reader that stops reading blocks its sends after ~100 KB
    instead of after the kernel's several MB."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_app(settings_for(db, public_url=url, sse_idle_seconds=1.0))
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(20):
            while not server.started:
                assert not task.done(), "uvicorn stopped before it started"
                await asyncio.sleep(0.01)
        yield url
    finally:
        server.should_exit = True
        with contextlib.suppress(SystemExit):
            await task
        sock.close()
        await aclose_shared_http_clients()


@pytest.mark.timeout(180)
async def test_a_reader_that_stops_reading_is_disconnected(tmp_path: Path) -> None:
    seen = _Seen(
        "stream reader disconnected: it took nothing for too long", asyncio.get_running_loop()
    )
    streams_logger = logging.getLogger("taskcell.api.streams")
    streams_logger.addHandler(seen)
    previous_level = streams_logger.level
    streams_logger.setLevel(logging.INFO)
    loop = asyncio.get_running_loop()
    try:
        async with (
            small_buffer_server(tmp_path / "idle.db") as url,
            httpx.AsyncClient(base_url=url, timeout=120) as client,
        ):
            made = await client.post(
                "/api/v1/tasks", json={"query": LONG_QUERY, "agent_name": "echo"}
            )
            assert made.status_code == 201, made.text
            path = f"/api/v1/tasks/{made.json()['data']['task_id']}/events"
            everything = await read_sse(client, path)  # a reader that reads gets all of it
            assert everything[-1]["event"] == "done" and len(everything) > WORDS

            host, port = url.removeprefix("http://").split(":")
            idle = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            idle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
            idle.setblocking(False)
            await loop.sock_connect(idle, (host, int(port)))
            request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"
            await loop.sock_sendall(idle, request.encode())
            try:
                # It never reads: the server's sends block, and after 1 s it lets go.
                await asyncio.wait_for(seen.event.wait(), 90)
            finally:
                idle.close()
            assert (await client.get("/api/v1/health")).status_code == 200
            rest = await read_sse(client, path, headers={"Last-Event-ID": str(WORDS)})
            assert [e["seq"] for e in rest] == [e["seq"] for e in everything[WORDS:]]
    finally:
        streams_logger.removeHandler(seen)
        streams_logger.setLevel(previous_level)
