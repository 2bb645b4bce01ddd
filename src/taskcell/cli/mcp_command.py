"""``taskcell mcp``: taskcell's MCP tools over stdio, for desktop assistants."""

from __future__ import annotations

from taskcell.cli.common import DEFAULT_URL, KeyOption, UrlOption


def mcp(url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    """Serve taskcell's MCP tools on stdin/stdout, acting on the server at --url as --key.

    Point a desktop assistant at the command `taskcell mcp --url URL --key KEY`. The tools
    create, list, follow and manage your tasks; see docs/client.md.
    """
    from taskcell.mcp.stdio import serve_stdio

    serve_stdio(url, key)
