"""taskcell as a Model Context Protocol server: tools an AI agent calls to schedule its own work.

:func:`taskcell.mcp.tools.build_server` makes the tools on the official ``mcp`` SDK; they act
through :class:`taskcell.client.AsyncClient`, so they see and change exactly what the caller's
API key allows. ``taskcell mcp`` serves them over stdio (:mod:`taskcell.mcp.stdio`), and
``taskcell serve`` at ``/mcp`` over streamable HTTP (:mod:`taskcell.mcp.http`).
"""
