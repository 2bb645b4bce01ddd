"""``taskcell status``: whether the server is healthy, and which processes serve its database."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.table import Table
from rich.text import Text

from taskcell.cli.client import JsonObject, connect
from taskcell.cli.common import DEFAULT_URL, KeyOption, UrlOption, console, parse_time, when

CHECKS = ("store", "scheduler", "event_log")


def heartbeat_age(value: object, now: datetime) -> str:
    """How long ago a heartbeat was, in seconds ("-" when unreadable)."""
    moment = parse_time(value)
    if moment is None:
        return "-"
    return f"{max(0.0, (now - moment).total_seconds()):.0f} s ago"


def processes_table(health: JsonObject, now: datetime) -> Table:
    """The table of live processes ``status`` prints; the one that answered is marked."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("process", "started", "last heartbeat", ""):
        table.add_column(name)
    me = health.get("process_id")
    for process in health.get("processes") or []:
        this = process.get("process_id") == me
        table.add_row(
            Text(str(process.get("process_id")), style="bold" if this else ""),
            when(process.get("started_at")),
            heartbeat_age(process.get("heartbeat_at"), now),
            Text("answered this request", style="dim") if this else "",
        )
    return table


def status(url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    """Show whether the server is healthy and which processes serve its database.

    Exits with status 1 when the server answers that it is failing or degraded (its
    database unavailable: it waits the outage out).
    """
    with connect(url, key) as client:
        health = client.health()
    healthy = health.get("status") == "ok"
    said_status = "healthy" if healthy else str(health.get("status") or "failing")
    line = Text.assemble(
        (said_status, "bold green" if healthy else "bold red"),
        "  ",
        *(
            Text(
                f"{name.replace('_', ' ')} {'ok' if health.get(name) else 'down'}  ",
                style="" if health.get(name) else "red",
            )
            for name in CHECKS
        ),
    )
    console.print(line)
    if health.get("problem"):
        console.print(Text(str(health["problem"]), style="red"))
    processes = health.get("processes") or []
    count = len(processes)
    said = "1 live process serves" if count == 1 else f"{count} live processes serve"
    console.print(f"{said} this database:")
    console.print(processes_table(health, datetime.now(UTC)))
    if not healthy:
        raise typer.Exit(1)
