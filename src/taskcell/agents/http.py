"""The pooled HTTP client shared by every remote agent client.

All :class:`~taskcell.agents.remote.RemoteAgentClient` instances that are not given an
``http_client`` share one :class:`httpx.AsyncClient` per event loop and time-out setting, so
connections to an agent are pooled across tasks. The client has a connect time-out (how long to
wait for the agent to accept a connection) and a read time-out (the longest silence allowed
between two bytes, which for a streaming answer is the gap between two events; SSE servers send
keep-alive pings, so a quiet but healthy agent does not trip it).

Call :func:`aclose_shared_http_clients` on shutdown (the service does it in its lifespan; tests
do it in a fixture).
"""

from __future__ import annotations

import asyncio
import weakref

import httpx

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 60.0

_POOL_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)

_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[float, float], httpx.AsyncClient]
] = weakref.WeakKeyDictionary()


def make_http_client(
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
) -> httpx.AsyncClient:
    """A new pooled client with taskcell's time-outs (the caller owns and closes it)."""
    timeout = httpx.Timeout(
        connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
    )
    return httpx.AsyncClient(timeout=timeout, limits=_POOL_LIMITS, follow_redirects=False)


def shared_http_client(
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
) -> httpx.AsyncClient:
    """The shared client for the running event loop and these time-outs (created on first use)."""
    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    key = (connect_timeout, read_timeout)
    client = per_loop.get(key)
    if client is None or client.is_closed:
        client = make_http_client(connect_timeout=connect_timeout, read_timeout=read_timeout)
        per_loop[key] = client
    return client


async def aclose_shared_http_clients() -> None:
    """Close the shared clients of the running event loop."""
    loop = asyncio.get_running_loop()
    per_loop = _clients.pop(loop, {})
    for client in per_loop.values():
        await client.aclose()
