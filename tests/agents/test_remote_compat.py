"""Agents whose card declares A2A protocol 0.3 keep working through the SDK's 0.3 transport.

The demo routes accept 0.3 requests too (``enable_v0_3_compat``), so a hand-written 0.3-style
card pointing at the echo agent stands in for an old agent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from taskcell.agents.base import AgentError, UpdateKind
from taskcell.agents.demo import demo_agent_url, demo_routes
from taskcell.agents.remote import RemoteAgentClient
from taskcell.testing import serve_app


def legacy_card(url: str, transport: str) -> dict[str, Any]:
    return {
        "name": "legacy-echo",
        "description": "An echo agent that speaks A2A 0.3.",
        "url": url,
        "preferredTransport": transport,
        "protocolVersion": "0.3.0",
        "version": "0.3.0",
        "capabilities": {"streaming": True},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "echo", "name": "Echo", "description": "Echoes.", "tags": []}],
    }


def legacy_app(base_url: str) -> Starlette:
    async def card(request: Request) -> Response:
        transport = request.path_params["transport"]
        binding = {"jsonrpc": "JSONRPC", "rest": "HTTP+JSON"}[transport]
        return JSONResponse(legacy_card(demo_agent_url(base_url, "echo"), binding))

    card_route = Route("/legacy/{transport}/.well-known/agent-card.json", card)
    return Starlette(routes=[card_route, *demo_routes(base_url)])


@pytest.fixture
async def legacy_base_url() -> AsyncIterator[str]:
    async with serve_app(app_factory=legacy_app) as base_url:
        yield base_url


@pytest.mark.parametrize("transport", ["jsonrpc", "rest"])
async def test_protocol_0_3_card_uses_compat_transport(
    legacy_base_url: str, transport: str
) -> None:
    client = RemoteAgentClient("legacy", f"{legacy_base_url}/legacy/{transport}")
    info = await client.info()
    assert info.reachable
    assert info.description == "An echo agent that speaks A2A 0.3."

    updates = [u async for u in client.send("hello old world", metadata={"task_id": "t"})]

    kinds = [u.kind for u in updates]
    assert kinds[0] is UpdateKind.ACCEPTED
    assert kinds[-1] is UpdateKind.COMPLETED
    chunks = [u.text for u in updates if u.metadata.get("response_event") == "message_chunk"]
    assert chunks == ["hello", " old", " world"]
    sdk_client = client._client
    assert type(sdk_client._transport).__name__.startswith("Compat")


async def test_card_not_found_is_not_transient(legacy_base_url: str) -> None:
    client = RemoteAgentClient("nobody", f"{legacy_base_url}/a2a/nobody")
    assert not (await client.info()).reachable
    with pytest.raises(AgentError, match=r"nobody") as caught:
        [u async for u in client.send("hi", metadata={})]
    assert type(caught.value) is AgentError
