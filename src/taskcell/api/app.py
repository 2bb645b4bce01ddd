"""create_app: the FastAPI application of ``taskcell serve``.

Its lifespan opens the store (refusing a second server on one SQLite file), builds the agent
registry (the demo agents are mounted on this same app under ``/a2a/NAME``), and starts and
stops the engine with its scheduler and event log writer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import httpx
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from taskcell.agents.demo import mount_demo_agents
from taskcell.agents.demo.door import DemoAgentDoor, engine_token
from taskcell.agents.http import aclose_shared_http_clients
from taskcell.agents.registry import AgentRegistry
from taskcell.api import routes_bulk, routes_misc, routes_tasks, routes_webhooks, streams
from taskcell.api.auth import Authenticator, parse_api_keys
from taskcell.api.envelope import install_error_handlers
from taskcell.api.guard import RequestGuard
from taskcell.domain.state_machine import TaskStatus
from taskcell.engine.engine import Engine, RetentionPolicy, RetryPolicy
from taskcell.mcp.http import mount_mcp
from taskcell.metrics import (
    DATABASE_BYTES,
    EVENTS_APPENDED_GAUGE,
    LIVE_SUBSCRIBERS,
    TASKS_BY_STATUS,
    WEBHOOK_BACKLOG,
)
from taskcell.settings import Settings, redact_url
from taskcell.stores.factory import store_from_url
from taskcell.stores.sqlite import ServerLock, SQLiteTaskStore
from taskcell.web import DIST_DIR
from taskcell.webhooks.dispatcher import DispatcherConfig
from taskcell.webhooks.safety import parse_allow

logger = logging.getLogger(__name__)

RegistryHook = Callable[[AgentRegistry], None]


def base_url_of(settings: Settings) -> str:
    """Where this server can reach itself (the demo agents' cards advertise it)."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def create_app(
    settings: Settings,
    *,
    register_agents: RegistryHook | None = None,
    on_failure: Callable[[str, BaseException | None], None] | None = None,
) -> FastAPI:
    """The app; ``register_agents`` may add in-process agents to the registry."""
    base_url = base_url_of(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = store_from_url(settings.database_url, pool_size=settings.database_pool_size)
        lock = ServerLock.acquire(store.path) if isinstance(store, SQLiteTaskStore) else None
        registry = AgentRegistry.from_settings(settings, base_url)
        if register_agents is not None:
            register_agents(registry)
        engine = Engine(
            store,
            registry,
            retry=RetryPolicy(settings.retry_base_seconds, settings.retry_cap_seconds),
            max_concurrent_runs=settings.max_concurrent_runs,
            lease_seconds=settings.lease_seconds,
            on_failure=on_failure,
            webhooks=DispatcherConfig(
                allow=parse_allow(settings.webhook_allow),
                timeout_seconds=settings.webhook_timeout_seconds,
            ),
            retention=retention_policy(settings) if settings.retention_enabled else None,
            retention_interval_seconds=settings.retention_interval_seconds,
        )
        app.state.engine = engine
        recovery: asyncio.Task[None] | None = None
        try:
            await engine.start(recover=False)
            # Runs left by a dead process start again once this server answers: the demo
            # agents they call are served by this same server.
            recovery = asyncio.create_task(_recover_when_serving(engine, base_url))
            app.state.recovery = recovery  # a stop that comes first cancels it (drain)
            logger.info(
                "taskcell serving",
                extra={"url": base_url, "database_url": redact_url(settings.database_url)},
            )
            yield
        finally:
            if recovery is not None and not recovery.done():
                recovery.cancel()
            app.state.shutdown_event.set()
            await drain()
            await registry.aclose()
            await aclose_shared_http_clients()
            if lock is not None:
                lock.release()

    # /docs and /redoc with their scripts and styles served from the fastapi-offline package
    # (under /static-offline-docs), not from a CDN: they work on a machine without internet.
    app = FastAPIOffline(
        title="taskcell",
        version="0.1.0",
        description="A durable task service for AI agents. See docs/api.md.",
        lifespan=lifespan,
    )
    # A key list that names no valid key raises here (KeyConfigError, no key material in it).
    app.state.auth = Authenticator(parse_api_keys(settings.api_keys))
    app.state.shutdown_event = anyio.Event()
    app.state.sse_idle_seconds = settings.sse_idle_seconds
    install_error_handlers(app)
    # Outermost of our own layers: the key and the body size are checked before any body is
    # read or any route runs.
    app.add_middleware(RequestGuard, auth=app.state.auth, max_body_bytes=settings.max_body_bytes)
    app.include_router(routes_tasks.router)
    app.include_router(routes_bulk.router)
    app.include_router(streams.router)
    app.include_router(routes_misc.router)
    app.include_router(routes_webhooks.router)
    mount_mcp(app, base_url, host=settings.host, auth=app.state.auth)  # MCP tools at /mcp
    _add_metrics(app)
    stop_demo_agents = (
        mount_demo_agents(app, base_url, door=_demo_agent_door(app.state.auth, settings))
        if settings.demo_agents
        else None
    )

    async def drain() -> None:
        """Stop in order, before the server closes its connections (``taskcell serve`` calls
        this first, the lifespan again): runs closed as interrupted and their events written,
        then every event stream ended cleanly, then the demo agents' own tasks. A stop then
        logs no error. Safe to call again."""
        engine: Engine | None = getattr(app.state, "engine", None)
        # Start-up recovery not done yet (it waits for this server to answer): a stop that
        # comes first ends it, so it never recovers into a stopping engine.
        recovery: asyncio.Task[None] | None = getattr(app.state, "recovery", None)
        if recovery is not None and not recovery.done():
            recovery.cancel()
            await asyncio.gather(recovery, return_exceptions=True)
        if engine is not None and not getattr(app.state, "engine_stopped", False):
            app.state.engine_stopped = True
            await engine.stop()
            engine.end_subscriptions()
        if stop_demo_agents is not None:
            await stop_demo_agents()

    app.state.drain = drain
    _add_web_page(app)
    return app


def retention_policy(settings: Settings) -> RetentionPolicy:
    """What retention keeps, from the settings."""
    return RetentionPolicy(
        days=settings.retention_days,
        runs=settings.retention_runs,
        batch_rows=settings.retention_batch_rows,
    )


def _demo_agent_door(auth: Authenticator, settings: Settings) -> DemoAgentDoor | None:
    """With API keys, the demo agents need one too (or the engine's own credential)."""
    if not auth.enabled:
        return None
    return DemoAgentDoor(
        identify=lambda header: auth.identify(header).user_id,
        engine_token=engine_token(settings.api_keys),
    )


async def _recover_when_serving(engine: Engine, base_url: str, wait_seconds: float = 10.0) -> None:
    """Wait until this server answers (up to ``wait_seconds``), then recover orphaned runs."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    async with httpx.AsyncClient(timeout=1.0) as client:
        while loop.time() < deadline:
            try:
                if (await client.get(f"{base_url}/api/v1/health")).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    try:
        await engine.recover()
    except Exception:
        logger.exception("recovery at start-up failed")
        raise


def _add_metrics(app: FastAPI) -> None:
    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        engine: Engine = app.state.engine
        counts = await engine.task_counts()
        for status in TaskStatus:
            TASKS_BY_STATUS.labels(status=status.value).set(counts.get(status.value, 0))
        LIVE_SUBSCRIBERS.set(engine.subscriber_count)
        EVENTS_APPENDED_GAUGE.set(engine.events_appended)
        backlog = await engine.webhook_counts()
        for state in ("pending", "sending"):
            WEBHOOK_BACKLOG.labels(status=state).set(backlog.get(state, 0))
        size = await engine.database_size()
        if size is not None:
            DATABASE_BYTES.set(size)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _add_web_page(app: FastAPI) -> None:
    index = DIST_DIR / "index.html"
    if (DIST_DIR / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=DIST_DIR / "assets"), name="assets")

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        if not index.is_file():
            return HTMLResponse(
                "<h1>taskcell</h1><p>The web page is not built: run <code>make web</code>.</p>"
                '<p>The API is at <a href="/docs">/docs</a>.</p>',
                status_code=200,
            )
        return HTMLResponse(index.read_text(encoding="utf-8"))
