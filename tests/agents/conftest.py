"""Fixtures for the agent tests: the demo agents on a real uvicorn server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from serving import closed_port
from taskcell.agents.demo import create_demo_app, demo_agent_url
from taskcell.agents.http import aclose_shared_http_clients
from taskcell.agents.remote import RemoteAgentClient
from taskcell.testing import serve_app


@pytest.fixture(autouse=True)
async def _close_shared_http_clients() -> AsyncIterator[None]:
    yield
    await aclose_shared_http_clients()


@pytest.fixture
async def demo_base_url() -> AsyncIterator[str]:
    async with serve_app(app_factory=create_demo_app) as base_url:
        yield base_url


@pytest.fixture(params=["JSONRPC", "HTTP+JSON"], ids=["jsonrpc", "rest"])
def binding(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def demo_client(demo_base_url: str, binding: str) -> Callable[[str], RemoteAgentClient]:
    """Make a client for demo agent NAME over the parametrized binding."""

    def make(name: str) -> RemoteAgentClient:
        return RemoteAgentClient(name, demo_agent_url(demo_base_url, name), binding=binding)

    return make


@pytest.fixture(name="closed_port")
def closed_port_fixture() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections for the whole test."""
    with closed_port() as port:
        yield port
