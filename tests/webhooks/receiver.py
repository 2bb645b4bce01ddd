"""A real webhook receiver for tests: a small ASGI app on a loopback uvicorn server that
verifies every signature with the ``standardwebhooks`` verifier and records what arrived."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from taskcell.domain.clock import utcnow
from taskcell.testing import bind_loopback


@dataclass
class Received:
    webhook_id: str
    body: dict[str, Any]
    status: int
    at: Any


@dataclass
class Receiver:
    """Answers each request with the next of ``script`` (status, headers), then 200; a
    status of 0 hangs until :attr:`release` is set. Every request must carry a valid
    signature by one of :attr:`secrets` (else it is recorded in :attr:`forged`, answered 401)."""

    secrets: list[str] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    forged: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    url: str = ""

    async def handle(self, request: Request) -> Response:
        data = await request.body()
        headers = dict(request.headers)
        body = self.verify(data, headers)
        status, extra = self.script.pop(0) if self.script else (200, {})
        async with self.arrived:
            if body is None:
                self.forged.append(headers.get("webhook-id", ""))
                status = 401
            else:
                self.received.append(Received(headers["webhook-id"], body, status, utcnow()))
            self.arrived.notify_all()
        if status == 0:
            await self.release.wait()
            status = 200
        return Response(b"noted " * 500, status_code=status, headers=extra)

    def verify(self, data: bytes, headers: dict[str, str]) -> dict[str, Any] | None:
        for secret in self.secrets:
            with contextlib.suppress(WebhookVerificationError):
                parsed: dict[str, Any] = Webhook(secret).verify(data, headers)
                return parsed
        return None

    async def wait_for(self, count: int) -> list[Received]:
        """What arrived, once at least ``count`` requests did (within 30 s)."""
        async with asyncio.timeout(30), self.arrived:
            await self.arrived.wait_for(lambda: len(self.received) >= count)
        return list(self.received)

    def bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.received]

    @contextlib.asynccontextmanager
    async def serving(self, sock: socket.socket | None = None) -> AsyncIterator[str]:
        sock = sock or bind_loopback()
        app = Starlette(routes=[Route("/hook", self.handle, methods=["POST"])])
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            async with asyncio.timeout(10):
                while not server.started:
                    if task.done():
                        task.result()
                        raise RuntimeError("the receiver stopped before it started")
                    await asyncio.sleep(0.01)
            self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
            yield self.url
        finally:
            self.release.set()
            server.should_exit = True
            await task
            sock.close()


def kinds(bodies: list[dict[str, Any]], task_id: str) -> list[str]:
    return [b["type"] for b in bodies if b["data"]["task"]["task_id"] == task_id]


def dumps(value: Any) -> str:
    return json.dumps(value)
