"""The agent registry: every agent taskcell can run tasks against, by name.

Agents come from settings (``[agents.NAME]`` in ``taskcell.toml`` with ``url`` or ``entry``, or
``TASKCELL_AGENTS`` as JSON), the bundled demo agents (served by this process under
``/a2a/NAME``), and in-process agents registered from Python.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import httpx

from taskcell.agents.base import AgentClient, AgentInfo
from taskcell.agents.demo import DEMO_AGENTS, demo_agent_url
from taskcell.agents.demo.door import engine_http_client, engine_token
from taskcell.agents.local import DEFAULT_RUN_TIMEOUT, LocalAgentClient, LocalAgentFn
from taskcell.agents.remote import RemoteAgentClient
from taskcell.settings import Settings

logger = logging.getLogger(__name__)

_INFO_TIMEOUT = 3.0


class UnknownAgent(LookupError):
    """No agent registered under this name."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = sorted(known)
        listed = ", ".join(self.known) or "none"
        super().__init__(f"unknown agent '{name}'; registered agents: {listed}")


class AgentRegistry:
    """Agents by name. ``get`` raises :class:`UnknownAgent` for a name not registered."""

    def __init__(self) -> None:
        self._clients: dict[str, AgentClient] = {}
        self._http_clients: list[httpx.AsyncClient] = []  # owned here, closed by aclose

    def register(self, client: AgentClient) -> None:
        self._clients[client.name] = client

    def register_local(
        self,
        name: str,
        fn: LocalAgentFn,
        *,
        description: str = "",
        skills: Sequence[str] = (),
        run_timeout_seconds: float = DEFAULT_RUN_TIMEOUT,
        max_concurrent_runs: int | None = None,
    ) -> LocalAgentClient:
        """Register an async Python callable as agent ``name`` (see taskcell.agents.local):
        each call ends after ``run_timeout_seconds``; at most ``max_concurrent_runs`` of its
        tasks run at once (None: three quarters of the engine's run slots)."""
        client = LocalAgentClient(
            name,
            fn,
            description,
            skills,
            run_timeout_seconds=run_timeout_seconds,
            max_concurrent_runs=max_concurrent_runs,
        )
        self.register(client)
        return client

    def run_limit(self, name: str, slots: int) -> int | None:
        """How many tasks of agent ``name`` may run at once, of the engine's ``slots``: its
        ``max_concurrent_runs`` if set; else three quarters of the slots for an in-process
        agent (at least one slot is left for the others, however many of its calls hang);
        else None (no limit but the engine's)."""
        client = self._clients.get(name)
        if client is None:
            return None
        limit = getattr(client, "max_concurrent_runs", None)
        if isinstance(limit, int) and limit >= 1:
            return min(limit, slots)
        if isinstance(client, LocalAgentClient):
            return max(1, slots - max(1, slots // 4))
        return None

    def get(self, name: str) -> AgentClient:
        try:
            return self._clients[name]
        except KeyError:
            raise UnknownAgent(name, list(self._clients)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._clients

    def names(self) -> list[str]:
        return sorted(self._clients)

    async def infos(self) -> list[AgentInfo]:
        """Every agent's description; an agent that does not answer in time is unreachable."""

        async def one(client: AgentClient) -> AgentInfo:
            try:
                async with asyncio.timeout(_INFO_TIMEOUT):
                    return await client.info()
            except TimeoutError:
                return AgentInfo(name=client.name, reachable=False)

        return list(await asyncio.gather(*(one(c) for c in self._clients.values())))

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        for http_client in self._http_clients:
            await http_client.aclose()
        self._http_clients.clear()

    @classmethod
    def from_settings(cls, settings: Settings, base_url: str) -> AgentRegistry:
        """The demo agents served at ``base_url`` (unless turned off) and the configured ones.

        With API keys configured, the demo agents are reached with the engine's credential,
        acting for the user whose task runs (see :mod:`taskcell.agents.demo.door`)."""
        registry = cls()
        connect, read = settings.agent_connect_timeout, settings.agent_read_timeout
        if settings.demo_agents:
            http_client = None
            if settings.api_keys:
                http_client = engine_http_client(
                    engine_token(settings.api_keys), connect_timeout=connect, read_timeout=read
                )
                registry._http_clients.append(http_client)
            for name, _ in DEMO_AGENTS:
                url = demo_agent_url(base_url, name)
                registry.register(
                    RemoteAgentClient(
                        name,
                        url,
                        http_client=http_client,
                        connect_timeout=connect,
                        read_timeout=read,
                        served_here=True,
                    )
                )
        for name, config in settings.agents.items():
            if config.url is not None:
                registry.register(
                    RemoteAgentClient(name, config.url, connect_timeout=connect, read_timeout=read)
                )
            elif config.entry is not None:
                registry.register(
                    LocalAgentClient.from_entry_point(
                        name,
                        config.entry,
                        config.description,
                        run_timeout_seconds=config.run_timeout_seconds,
                        max_concurrent_runs=config.max_concurrent_runs,
                    )
                )
        logger.info("agents registered", extra={"agents": registry.names()})
        return registry
