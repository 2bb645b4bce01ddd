"""An MCP client schedules recurring work on taskcell by itself.

The official MCP SDK's client starts ``taskcell mcp`` (taskcell's MCP server over stdio), creates
a task for the ``clock`` agent that recurs every minute, waits for two results (the first run
starts at once; the second is asked for with ``run_task_now`` so the example does not wait a
minute, unless you pass ``--wait-for-schedule``), prints them and cancels the task.

Run it against a running server:

    taskcell serve &
    python examples/mcp_recurring_clock.py --url http://127.0.0.1:8000 [--key KEY]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from typing import Any

from mcp import Client, StdioServerParameters


def taskcell_mcp(url: str, key: str | None) -> StdioServerParameters:
    """The command that serves taskcell's MCP tools on stdio."""
    program = shutil.which("taskcell")
    command, args = (program, []) if program else (sys.executable, ["-m", "taskcell.cli"])
    args += ["mcp", "--url", url]
    if key:
        args += ["--key", key]
    return StdioServerParameters(command=command, args=args, env=dict(os.environ))


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool; a tool error (it names the argument at fault) stops the example."""

    async def show(progress: float, total: float | None, message: str | None) -> None:
        print(f"  … {message}")

    result = await client.call_tool(tool, arguments, progress_callback=show)
    if result.is_error:
        text = " ".join(getattr(part, "text", "") for part in result.content)
        raise SystemExit(f"{tool} failed: {text}")
    return result.structured_content or {}


async def main(url: str, key: str | None, wait_for_schedule: bool) -> None:
    async with Client(taskcell_mcp(url, key)) as client:
        task = await call(
            client,
            "create_task",
            query="What time is it?",
            agent="clock",
            pattern="interval",
            interval_minutes=1,
            timezone="Europe/Berlin",
            title="Berlin clock",
        )
        task_id = task["task_id"]
        print(f"created {task_id}: {task['title']}, next run {task['next_run_at']}")

        first = await call(client, "wait_for_task", task_id=task_id, results=1)
        print(f"result 1: {first['results'][-1]}")
        if not wait_for_schedule:
            await call(client, "run_task_now", task_id=task_id)
        second = await call(client, "wait_for_task", task_id=task_id, results=2)
        print(f"result 2: {second['results'][-1]}")

        cancelled = await call(client, "cancel_task", task_id=task_id)
        print(f"cancelled {task_id}: {cancelled['cancelled']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("TASKCELL_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--key", default=os.environ.get("TASKCELL_API_KEY"))
    parser.add_argument(
        "--wait-for-schedule",
        action="store_true",
        help="wait a minute for the schedule's second run instead of asking for it now",
    )
    options = parser.parse_args()
    asyncio.run(main(options.url, options.key, options.wait_for_schedule))
