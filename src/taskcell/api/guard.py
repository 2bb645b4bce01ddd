"""Limits before work: the API key is checked, and the body size bounded, before a body is read.

:class:`RequestGuard` is a plain ASGI middleware in front of the whole app:

- For ``/api/v1`` paths other than ``/api/v1/health``, when keys are configured, it identifies
  the caller from ``Authorization`` first and answers 401 without reading a byte of the body
  (the routes then read the caller it found, :func:`taskcell.api.auth.caller`).
- It bounds every request body to ``max_body_bytes``: a ``Content-Length`` over the limit is
  answered 413 at once, and a body sent without one (chunked) is counted while it is read and
  answered 413 as soon as it passes the limit, so a 100 MB upload never sits in memory.

Starlette has a body-limit middleware, but it answers in plain text without the limit; this one
answers in the API's envelope, naming the limit and the setting that sets it.
"""

from __future__ import annotations

import logging

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskcell.api.auth import CALLER_SCOPE_KEY, Authenticator
from taskcell.api.envelope import ApiError, error

logger = logging.getLogger(__name__)

_OPEN_PATHS = frozenset({"/api/v1/health"})
_KEYED_PREFIX = "/api/v1/"


class BodyTooLarge(HTTPException):
    """A request body over the limit (raised from ``receive``; answered 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_message(limit))
        self.limit = limit


def too_large_message(limit: int) -> str:
    return (
        f"request body is larger than the limit of {limit} bytes "
        "(TASKCELL_MAX_BODY_BYTES); send less"
    )


def needs_key(path: str) -> bool:
    return path.startswith(_KEYED_PREFIX) and path not in _OPEN_PATHS


class RequestGuard:
    """See the module's docstring."""

    def __init__(self, app: ASGIApp, *, auth: Authenticator, max_body_bytes: int) -> None:
        self.app = app
        self.auth = auth
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.auth.enabled and needs_key(scope["path"]):
            try:
                found = self.auth.identify(headers.get("authorization"))
            except ApiError as refused:
                await error(refused.status, refused.message)(scope, receive, send)
                return
            scope.setdefault("state", {})[CALLER_SCOPE_KEY] = found
        limit = self.max_body_bytes
        declared = _content_length(headers)
        if declared is not None and declared > limit:
            await self._too_large(scope, receive, send)
            return
        await self._bounded(scope, receive, send, limit)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            if started:
                raise
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_body_bytes
        logger.info(
            "request body refused: too large",
            extra={"path": scope.get("path"), "limit_bytes": limit},
        )
        # The connection stays open: uvicorn discards the rest of the body as it arrives (no
        # memory held), and a client that sends it all before reading still gets this answer.
        await error(413, too_large_message(limit))(scope, receive, send)


def _content_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None
