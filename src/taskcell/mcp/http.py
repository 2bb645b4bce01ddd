"""The MCP tools over streamable HTTP at ``/mcp`` on ``taskcell serve``.

:func:`mount_mcp` adds one route to the app and runs the SDK's session manager inside the app's
lifespan. The route takes the same API keys as the rest of the API: with keys configured a
request without a valid ``Authorization: Bearer KEY`` is answered 401 in the API's envelope
before the MCP layer sees it, and each tool then calls this server's own API with the caller's
key, so it sees and changes only what that key allows. The server runs stateless (every request
stands alone), so any process of a cluster can answer any request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from mcp.server.mcpserver import Context
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from taskcell.api.auth import Authenticator
from taskcell.api.envelope import ApiError, error
from taskcell.client import AsyncClient
from taskcell.mcp.tools import build_server

MCP_PATH = "/mcp"
SELF_PATIENCE_SECONDS = 5.0
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def bearer_key(headers: Any) -> str:
    """The key of an ``Authorization: Bearer KEY`` header ("" without one)."""
    value = str(headers.get("authorization") or "") if headers is not None else ""
    scheme, _, key = value.partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def _security(host: str) -> TransportSecuritySettings | None:
    """DNS-rebinding protection when the server listens on loopback only."""
    if host.strip("[]") not in _LOOPBACK_HOSTS:
        return None
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )


class KeyedEndpoint:
    """The MCP endpoint behind the API's key check (401 in the envelope, as for /api/v1)."""

    def __init__(self, inner: Any, auth: Authenticator) -> None:
        self.inner = inner
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.auth.enabled:
            headers = dict(scope.get("headers") or [])
            raw = headers.get(b"authorization")
            try:
                self.auth.identify(raw.decode("latin-1") if raw is not None else None)
            except ApiError as refused:
                await error(refused.status, refused.message, headers=_CHALLENGE)(
                    scope, receive, send
                )
                return
        await self.inner(scope, receive, send)


def mount_mcp(app: FastAPI, base_url: str, *, host: str, auth: Authenticator) -> None:
    """Serve the MCP tools at ``/mcp`` on ``app``, calling the API at ``base_url``."""

    @asynccontextmanager
    async def connect(ctx: Context) -> AsyncIterator[AsyncClient]:
        async with AsyncClient(base_url, bearer_key(ctx.headers)) as client:
            yield client

    # This server calling itself: when it is unreachable it is stopping, and a wait in
    # progress ends soon rather than hold the stop up.
    server = build_server(connect, patience=SELF_PATIENCE_SECONDS)
    server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        transport_security=_security(host),
        host=host,
    )
    endpoint = KeyedEndpoint(StreamableHTTPASGIApp(server.session_manager), auth)
    app.router.routes.append(Route(MCP_PATH, endpoint=endpoint, methods=["GET", "POST", "DELETE"]))
    app.router.lifespan_context = _with_session_manager(
        app.router.lifespan_context, server.session_manager.run
    )


def _with_session_manager(
    inner: Callable[[Any], AbstractAsyncContextManager[Any]],
    run: Callable[[], AbstractAsyncContextManager[None]],
) -> Callable[[Any], AbstractAsyncContextManager[Any]]:
    """The app's lifespan with the MCP session manager running around it."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with run(), inner(app) as state:
            yield state

    return lifespan
