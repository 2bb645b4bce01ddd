"""The demo agents behind the server's door: with API keys configured, they need one too.

``taskcell serve`` mounts the demo agents on its own app. With API keys configured
(``TASKCELL_API_KEYS``), every A2A route of a demo agent (JSON-RPC, HTTP+JSON, both protocol
versions) needs a credential, like the task API:

- a user's API key (``Authorization: Bearer KEY``): the request acts for that key's user;
- taskcell's own engine, which presents :func:`engine_token` and names, in
  :data:`ACTING_USER_HEADER`, the user whose task it runs.

No credential, or a wrong one, answers 401. Each A2A task belongs to the user it was started for
(the SDK's task store is scoped by the request's user): another user's task is not found (404
over HTTP+JSON, "task not found" over JSON-RPC), in ``GetTask``, ``ListTasks``, ``CancelTask``
and ``SubscribeToTask`` alike. The agent cards stay public (A2A discovery). Without keys
(loopback only) nothing changes: every request acts for the same anonymous owner.

The engine side: :func:`acting_for` says, for the code it wraps, whose task is being run, and
:func:`engine_http_client` adds the engine's credential and that user to each request.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import httpx
from starlette.authentication import SimpleUser
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from taskcell.agents.http import make_http_client

ACTING_USER_HEADER = "X-Taskcell-User"

Endpoint = Callable[[Request], Awaitable[Response]]

_ACTING_USER: ContextVar[str | None] = ContextVar("taskcell_acting_user", default=None)
_TOKEN_PURPOSE = b"taskcell engine -> demo agents"


class Refused(Exception):
    """A request to a demo agent without a valid credential (answered 401)."""


def engine_token(api_keys: str) -> str:
    """The credential taskcell's engine presents to the demo agents it serves.

    Derived from the configured key list (HMAC-SHA256 keyed by it), so every process configured
    with the same keys computes the same token and nobody without the keys can; it is never
    shown or logged.
    """
    return hmac.new(api_keys.encode(), _TOKEN_PURPOSE, hashlib.sha256).hexdigest()


@contextlib.contextmanager
def acting_for(user_id: str) -> Iterator[None]:
    """Requests to the demo agents made inside act for ``user_id``."""
    token = _ACTING_USER.set(user_id)
    try:
        yield
    finally:
        _ACTING_USER.reset(token)


def engine_http_client(
    token: str, *, connect_timeout: float, read_timeout: float
) -> httpx.AsyncClient:
    """A pooled client whose requests carry the engine's credential and the acting user."""

    async def identify(request: httpx.Request) -> None:
        user = _ACTING_USER.get()
        request.headers["Authorization"] = f"Bearer {token}"
        if user is not None:
            request.headers[ACTING_USER_HEADER] = user

    client = make_http_client(connect_timeout=connect_timeout, read_timeout=read_timeout)
    client.event_hooks["request"].append(identify)
    return client


@dataclass(frozen=True, slots=True)
class DemoAgentDoor:
    """Who may use the demo agents: ``identify`` maps an Authorization header to a user id
    (raising :class:`Refused`, or the API's own 401 error, to refuse); ``engine_token`` is the
    engine's credential."""

    identify: Callable[[str | None], str]
    engine_token: str

    def user_of(self, request: Request) -> str:
        """The user a request acts for (see the module docstring)."""
        authorization = request.headers.get("authorization") or ""
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            credential.strip().encode(), self.engine_token.encode()
        ):
            user = request.headers.get(ACTING_USER_HEADER, "").strip()
            if not user:
                raise Refused(f"the engine's requests must name the user in {ACTING_USER_HEADER}")
            return user
        return self.identify(authorization or None)

    def guard(self, endpoint: Endpoint) -> Endpoint:
        """``endpoint`` behind the door: the caller's user is the request's A2A user."""

        async def guarded(request: Request) -> Response:
            try:
                user = self.user_of(request)
            except Refused as exc:
                return JSONResponse(
                    {"code": 401, "msg": str(exc), "data": None},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            request.scope["user"] = SimpleUser(user)
            return await endpoint(request)

        return guarded


__all__ = [
    "ACTING_USER_HEADER",
    "DemoAgentDoor",
    "Refused",
    "acting_for",
    "engine_http_client",
    "engine_token",
]
