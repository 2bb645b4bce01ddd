"""``flaky``: for "fail N times", fails transiently N times per taskcell task, then answers.

"Transiently" means HTTP 503: a wrapper in front of the agent's JSON-RPC and REST endpoints
reads each send request, takes the taskcell task id from the message metadata key ``task_id``
(requests without one share the key ``""``) and answers 503 while that task has failed fewer
than N times; the next request reaches the executor, which answers
``Succeeded after N failures.`` A query without "fail N times" never fails.

:data:`FAILURES` maps task id to the number of 503s sent, so tests can look (the most recent
:data:`~.common.RECENT_LIMIT` tasks).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from a2a.server.agent_execution import AgentExecutor
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from taskcell.agents.demo.common import DemoAgentSpec, Reporter, cancel_task, remember

FAILURES: dict[str, int] = {}

_FAIL_RE = re.compile(r"fail\s+(\d+)\s+times?", re.IGNORECASE)

Endpoint = Callable[[Request], Awaitable[Response]]


def failures_wanted(query: str) -> int:
    """N in "fail N times" (0 if the query does not say)."""
    match = _FAIL_RE.search(query)
    return int(match.group(1)) if match else 0


def _sent_message(body: bytes) -> dict[str, Any] | None:
    """The message of a JSON-RPC or REST send request, or None for any other request."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    params = payload.get("params", payload)
    message = params.get("message") if isinstance(params, dict) else None
    return message if isinstance(message, dict) else None


def _should_fail(message: dict[str, Any]) -> bool:
    query = "".join(str(part.get("text", "")) for part in message.get("parts", []))
    metadata = message.get("metadata") or {}
    key = str(metadata.get("task_id", ""))
    if FAILURES.get(key, 0) >= failures_wanted(query):
        return False
    remember(FAILURES, key, FAILURES.get(key, 0) + 1)
    return True


def fail_first_calls(endpoint: Endpoint) -> Endpoint:
    """Wrap an A2A endpoint so send requests get 503 until their task has failed enough."""

    async def wrapped(request: Request) -> Response:
        if request.method == "POST":
            message = _sent_message(await request.body())
            if message is not None and _should_fail(message):
                return JSONResponse(
                    {"error": "flaky agent: failing on purpose, try again"},
                    status_code=503,
                    headers={"Retry-After": "0"},
                )
        return await endpoint(request)

    return wrapped


class FlakyExecutor(AgentExecutor):
    """Executor of the flaky agent (reached only once the 503s are used up)."""

    async def execute(self, context: Any, event_queue: Any) -> None:
        report = await Reporter.start(context, event_queue)
        wanted = failures_wanted(context.get_user_input())
        await report.answer(f"Succeeded after {wanted} failures.")

    async def cancel(self, context: Any, event_queue: Any) -> None:
        await cancel_task(context, event_queue)


SPEC = DemoAgentSpec(
    name="flaky",
    description='Fails with HTTP 503 as often as asked ("fail 2 times"), then answers.',
    skill="Retries",
    examples=("fail 2 times",),
    executor=FlakyExecutor,
    wrap_endpoint=fail_first_calls,
)
