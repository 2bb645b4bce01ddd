"""``taskcell mcp``: the MCP tools over stdio, for desktop assistants, acting on a running
taskcell server (``--url``) with one API key (``--key``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp.server.mcpserver import Context, MCPServer

from taskcell.client import AsyncClient
from taskcell.mcp.tools import build_server


def stdio_server(url: str, key: str | None) -> MCPServer:
    """The MCP server whose tools call the taskcell API at ``url`` as ``key``'s user."""

    @asynccontextmanager
    async def connect(ctx: Context) -> AsyncIterator[AsyncClient]:
        async with AsyncClient(url, key or "") as client:
            yield client

    return build_server(connect)


def serve_stdio(url: str, key: str | None) -> None:
    """Serve the tools on this process's stdin and stdout until the client closes them."""
    stdio_server(url, key).run("stdio")
