"""Pieces every command shares: the consoles, the client options, and how values are shown."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

#: What the commands print. Rich looks ``sys.stdout``/``sys.stderr`` up at each write, so test
#: runners that swap them still capture the output.
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

DEFAULT_URL = "http://127.0.0.1:8000"

UrlOption = Annotated[
    str,
    typer.Option(
        "--url",
        envvar="TASKCELL_URL",
        help="Where taskcell serves its API.",
        show_default=True,
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="TASKCELL_API_KEY",
        help="API key, sent as 'Authorization: Bearer KEY'.",
        show_default=False,
    ),
]

FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})

STATUS_STYLES = {
    "pending": "cyan",
    "running": "blue",
    "waiting_input": "magenta",
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "queued": "cyan",
    "interrupted": "red",
    "skipped": "dim",
}


def status_text(status: str | None) -> Text:
    """``status`` in its colour."""
    name = status or "?"
    return Text(name.replace("_", " "), style=STATUS_STYLES.get(name, ""))


def short_id(value: str | None, width: int = 12) -> str:
    """The first ``width`` characters of an id: enough to tell tasks apart and to type."""
    return (value or "")[:width]


def trimmed(value: str | None, width: int = 48) -> str:
    """``value`` on one line, cut to ``width`` characters with an ellipsis."""
    text = " ".join((value or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 datetime from the API, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def when(value: Any) -> str:
    """A datetime from the API in the local zone, to the minute ("-" when missing)."""
    moment = parse_time(value)
    if moment is None:
        return "-" if value in (None, "") else str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    return moment.strftime("%Y-%m-%d %H:%M")


def schedule_text(config: Any) -> str:
    """A task's ``schedule_config`` in short ("every 5 min", "daily 09:00 Europe/Paris",
    "cron 0 9 * * MON-FRI Europe/Berlin")."""
    if not isinstance(config, dict):
        return "-"
    zone = config.get("timezone")
    suffix = f" {zone}" if zone else ""
    if config.get("interval_minutes"):
        return f"every {config['interval_minutes']} min"
    if config.get("daily_time"):
        return f"daily {config['daily_time']}{suffix}"
    if config.get("cron"):
        return f"cron {config['cron']}{suffix}"
    return "-"
