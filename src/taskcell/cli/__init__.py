"""The ``taskcell`` command line: ``serve``, ``tasks ...``, ``agents``, ``status``, ``db upgrade``,
``db prune``, ``db vacuum``, ``export``, ``mcp``, ``webhooks ...``.

Client commands talk to a running server over HTTP (``--url``, default ``$TASKCELL_URL`` or
http://127.0.0.1:8000; ``--key``, default ``$TASKCELL_API_KEY``).
"""

from __future__ import annotations

import typer

from taskcell.cli import agents, db, export, mcp_command, serve, status, tasks, webhooks

app = typer.Typer(
    name="taskcell",
    help="A durable task service for AI agents.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command("serve")(serve.serve)
app.add_typer(tasks.app, name="tasks")
app.command("agents")(agents.agents)
app.command("status")(status.status)
app.add_typer(db.app, name="db")
app.add_typer(webhooks.app, name="webhooks")
app.command("export")(export.export)
app.command("mcp")(mcp_command.mcp)

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``taskcell`` script."""
    app()
