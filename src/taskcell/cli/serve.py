"""``taskcell serve``: run the API, the web page and the scheduler under uvicorn."""

from __future__ import annotations

import importlib
import ipaddress
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.panel import Panel
from rich.table import Table

from taskcell.cli.common import console, err_console
from taskcell.settings import (
    KEEP_ALIVE_SECONDS,
    Settings,
    SettingsError,
    load_settings,
    redact_url,
)
from taskcell.stores.factory import normalise_url

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="sqlite:///PATH, postgresql://USER@HOST/DB, or a file path (default: settings).",
        metavar="URL",
    ),
]


def resolve_db_url(value: str) -> str:
    """A database URL from ``--db``: a URL as given (driver suffix dropped), a path as SQLite.

    >>> resolve_db_url("postgresql+asyncpg://u@h/db")
    'postgresql://u@h/db'
    """
    if "://" in value:
        return normalise_url(value)
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def exposure_problem(settings: Settings, *, insecure_no_auth: bool) -> str | None:
    """Why serving with ``settings`` would be unsafe, or None when it is fine.

    A key list that names no valid key (``","``, a malformed or repeated entry) is always a
    problem, whatever the address: it must never quietly mean "no authentication".
    """
    from taskcell.api.auth import KeyConfigError, parse_api_keys

    try:
        keys = parse_api_keys(settings.api_keys)
    except KeyConfigError as exc:
        return f"refusing to serve: {exc}"
    if keys or is_loopback(settings.host) or insecure_no_auth:
        return None
    return (
        f"refusing to serve on {settings.host}: no API keys are configured, so anyone who can "
        "reach this address could read and run every task.\n"
        "Either configure keys, e.g. TASKCELL_API_KEYS='KEY:USER:ROLE,...' (ROLE user or admin) "
        "or api_keys in taskcell.toml;\n"
        "or serve on a loopback address (--host 127.0.0.1);\n"
        "or pass --insecure-no-auth, which serves every request as default_user with no "
        "authentication, to anyone who can reach this address."
    )


def uvicorn_log_level(level: str) -> str:
    """``settings.log_level`` as uvicorn names it ("WARN" -> "warning")."""
    name = level.strip().lower()
    return {"warn": "warning", "fatal": "critical"}.get(name, name)


def _http_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def banner(settings: Settings, *, insecure: bool) -> Panel:
    """The panel ``serve`` prints: where the page, the docs and the database are."""
    base = f"http://{_http_host(settings.host)}:{settings.port}"
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_row("web page", f"{base}/")
    grid.add_row("API docs", f"{base}/docs")
    grid.add_row("database", redact_url(settings.database_url))
    from taskcell.api.auth import parse_api_keys

    keys = parse_api_keys(settings.api_keys)  # valid: exposure_problem refused anything else
    if keys:
        users = len({caller.user_id for caller in keys.values()})
        grid.add_row(
            "auth",
            f"API keys: {len(keys)} key(s) for {users} user(s) (Authorization: Bearer KEY); "
            "/api/v1/health and /metrics are open",
        )
    elif insecure and not is_loopback(settings.host):
        grid.add_row("auth", "[bold red]NONE: anyone who can reach this address is default_user")
    else:
        grid.add_row("auth", "none (loopback only)")
    return Panel(grid, title="taskcell", title_align="left", border_style="cyan", expand=False)


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: settings, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default: settings, 8000; 0: any free port).")
    ] = None,
    db: DbOption = None,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help="Allow a non-loopback address without API keys: every request is served as "
            "default_user, with no authentication.",
        ),
    ] = False,
) -> None:
    """Serve the API, the web page and the scheduler."""
    try:
        settings = load_settings().with_overrides(
            host=host, port=port, database_url=resolve_db_url(db) if db else None
        )
    except SettingsError as exc:
        err_console.print(str(exc), style="red", markup=False)
        raise typer.Exit(2) from None
    problem = exposure_problem(settings, insecure_no_auth=insecure_no_auth)
    if problem is not None:
        err_console.print(problem, style="red", markup=False)
        raise typer.Exit(2)
    import uvicorn

    from taskcell.logs import configure_logging

    configure_logging(settings.log_level)
    refusal = database_problem(settings.database_url)
    if refusal is not None:
        err_console.print(refusal, style="red", markup=False)
        raise typer.Exit(1)
    # Imported here so that the client commands never load the server.
    create_app: Callable[..., Any] = importlib.import_module("taskcell.api.app").create_app
    server: uvicorn.Server | None = None
    failures: list[str] = []

    def on_failure(loop: str, error: BaseException | None) -> None:
        failures.append(loop)
        err_console.print(f"stopping: background loop {loop!r} died: {error!r}", style="red")
        if server is not None:
            server.should_exit = True

    # Port 0: the kernel picks a free port; bound here so the banner and the demo agents'
    # cards name the port it got (tests read it from the banner).
    sockets = [listening_socket(settings.host, 0)] if settings.port == 0 else None
    if sockets is not None:
        settings = settings.with_overrides(port=sockets[0].getsockname()[1])
    app = create_app(settings, on_failure=on_failure)
    console.print(banner(settings, insecure=insecure_no_auth))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=uvicorn_log_level(settings.log_level),
        lifespan="on",
        log_config=None,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    from taskcell.api.draining import DrainingServer

    server = DrainingServer(config)
    server.run(sockets=sockets)
    if failures:
        raise typer.Exit(1)


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (0: a free port), for uvicorn to listen on."""
    name = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in name else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((name, port))
    return sock


def database_problem(database_url: str) -> str | None:
    """Why this server cannot use the database, said for a person, or None.

    SQLite: another server holds the file, or the file cannot be made there. PostgreSQL: no
    server answers, or it refuses the login or the database (checked with one connection).
    """
    if database_url.startswith(("postgresql://", "postgres://")):
        return _postgres_problem(database_url)
    from taskcell.stores.sqlite import ServerAlreadyRunning, ServerLock, sqlite_path

    try:
        path = sqlite_path(database_url)
        ServerLock.acquire(path).release()
    except ServerAlreadyRunning as exc:
        return str(exc)
    except (OSError, ValueError) as exc:
        return f"cannot use the SQLite database {database_url}: {exc}"
    return None


def _postgres_problem(database_url: str) -> str | None:
    import asyncio

    import asyncpg

    from taskcell.stores.postgres import describe_url

    async def connect() -> None:
        conn = await asyncpg.connect(database_url, timeout=10)
        await conn.close()

    try:
        asyncio.run(connect())
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = str(exc) or type(exc).__name__
        return (
            f"cannot open the PostgreSQL database {describe_url(database_url)}: {reason}\n"
            "Check that PostgreSQL runs there and that the URL's user, password and database "
            "are right (postgresql://USER:PASSWORD@HOST:PORT/DATABASE)."
        )
    return None
