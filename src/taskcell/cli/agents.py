"""``taskcell agents``: the agents the server knows."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from taskcell.cli.client import JsonObject, connect
from taskcell.cli.common import DEFAULT_URL, KeyOption, UrlOption, console, trimmed


def _skill_name(skill: Any) -> str:
    if isinstance(skill, dict):
        return str(skill.get("name") or skill.get("id") or "?")
    return str(skill)


def agents_table(agents: list[JsonObject]) -> Table:
    """The table ``agents`` prints."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("name", "description", "skills", "url", "reachable"):
        table.add_column(name)
    for agent in agents:
        reachable = agent.get("reachable")
        table.add_row(
            Text(str(agent.get("name") or ""), style="bold"),
            trimmed(agent.get("description"), 60),
            ", ".join(_skill_name(s) for s in agent.get("skills") or []),
            str(agent.get("url") or "local"),
            Text("yes", style="green") if reachable else Text("no", style="red"),
        )
    return table


def agents(url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    """List the agents tasks can be given to."""
    with connect(url, key) as client:
        found = client.agents()
    if not found:
        console.print("no agents", style="dim")
        return
    console.print(agents_table(found))
