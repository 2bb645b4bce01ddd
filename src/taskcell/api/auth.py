"""Callers: API keys name a user and a role; with no keys, everyone is ``default_user``."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import StrEnum

from fastapi import Request

from taskcell.api.envelope import ApiError
from taskcell.domain.models import DEFAULT_USER, Task


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def may_see(self, task: Task) -> bool:
        return self.is_admin or task.user_id == self.user_id


ANONYMOUS = Caller(DEFAULT_USER, Role.USER)


class KeyConfigError(ValueError):
    """The configured API keys cannot be used; the message never holds key material."""


def parse_api_keys(text: str) -> dict[str, Caller]:
    """``"KEY:USER:ROLE,..."`` (ROLE ``user`` or ``admin``) as callers by key.

    An empty (or all-blank) ``text`` means no keys. Anything else must be a list of valid
    entries: an empty entry (``","``), an entry without three non-empty parts, an unknown role
    or a key listed twice raises :class:`KeyConfigError`, which names entries by position and
    never quotes a key (it may be printed or logged).
    """
    if not text.strip():
        return {}
    keys: dict[str, Caller] = {}
    first_seen: dict[str, int] = {}
    for number, raw in enumerate(text.split(","), start=1):
        entry = raw.strip()
        where = f"TASKCELL_API_KEYS entry {number}"
        if not entry:
            raise KeyConfigError(
                f"{where} is empty: list entries as KEY:USER:ROLE separated by commas, "
                "or leave TASKCELL_API_KEYS unset for no authentication (loopback only)"
            )
        parts = [part.strip() for part in entry.split(":")]
        if len(parts) != 3 or not all(parts):
            raise KeyConfigError(
                f"{where} must be KEY:USER:ROLE with three non-empty parts "
                f"(it has {len(parts)} part{'s' if len(parts) != 1 else ''})"
            )
        key, user, role = parts
        if role not in (Role.USER, Role.ADMIN):
            raise KeyConfigError(f"{where}: the role must be user or admin")
        if key in first_seen:
            raise KeyConfigError(
                f"{where} repeats the key of entry {first_seen[key]}: each key must name one user"
            )
        first_seen[key] = number
        keys[key] = Caller(user, Role(role))
    return keys


#: Where :class:`taskcell.api.guard.RequestGuard` leaves the caller it identified.
CALLER_SCOPE_KEY = "taskcell.caller"


class Authenticator:
    """Finds the caller of a request (a FastAPI dependency through :func:`caller`)."""

    def __init__(self, keys: dict[str, Caller]) -> None:
        self.keys = keys

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def identify(self, authorization: str | None) -> Caller:
        if not self.keys:
            return ANONYMOUS
        if not authorization:
            raise ApiError(401, "missing API key: send Authorization: Bearer <key>")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "malformed Authorization header: use Bearer <key>")
        for key, found in self.keys.items():
            if hmac.compare_digest(key.encode(), token.strip().encode()):
                return found
        raise ApiError(401, "unknown API key")


async def caller(request: Request) -> Caller:
    """The caller of a request (async: FastAPI runs a plain function in a worker thread):
    the one the request guard identified before the body was read, else from the header."""
    found = request.scope.get("state", {}).get(CALLER_SCOPE_KEY)
    if isinstance(found, Caller):
        return found
    auth: Authenticator = request.app.state.auth
    return auth.identify(request.headers.get("authorization"))
