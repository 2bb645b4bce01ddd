"""A real ``taskcell serve`` for the MCP tests, and MCP sessions through the SDK's own client
over streamable HTTP (``/mcp`` on the server) or over stdio (a ``taskcell mcp`` process)."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters

from live_server import LiveServer, live_server

Session = Callable[[str], AbstractAsyncContextManager[Client]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("mcp-serve")) as running:
        yield running


def http_session(url: str) -> Session:
    """Sessions over streamable HTTP at ``url``/mcp, as the owner of a key."""

    @asynccontextmanager
    async def open_session(key: str) -> AsyncIterator[Client]:
        from mcp.client.streamable_http import streamable_http_client

        headers = {"Authorization": f"Bearer {key}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
        ):
            yield client

    return open_session


def stdio_session(url: str) -> Session:
    """Sessions with a ``taskcell mcp --url URL --key KEY`` process over its stdin/stdout."""

    @asynccontextmanager
    async def open_session(key: str) -> AsyncIterator[Client]:
        command = StdioServerParameters(
            command=sys.executable,
            args=["-m", "taskcell.cli", "mcp", "--url", url, "--key", key],
            env=dict(os.environ),  # this test's isolated folders, and PYTHONPATH
        )
        async with Client(command) as client:
            yield client

    return open_session


@pytest.fixture(params=["http", "stdio"])
def session(request: pytest.FixtureRequest, server: LiveServer) -> Session:
    """An MCP session factory over each transport."""
    return http_session(server.url) if request.param == "http" else stdio_session(server.url)


async def call(client: Client, tool: str, arguments: dict[str, Any] | None = None) -> Any:
    """Call ``tool``, which must succeed; answers its structured result."""
    result = await client.call_tool(tool, arguments or {})
    text = " ".join(getattr(part, "text", "") for part in result.content)
    assert not result.is_error, f"{tool} failed: {text}"
    return result.structured_content


async def refusal(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    """Call ``tool``, which must answer a tool error; answers its text."""
    result = await client.call_tool(tool, arguments)
    text = " ".join(getattr(part, "text", "") for part in result.content)
    assert result.is_error, f"{tool} succeeded: {result.structured_content}"
    return text
