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


def parse_api_keys(text: str) -> dict[str, Caller]:
    """``"KEY:USER:ROLE,..."`` (ROLE ``user`` or ``admin``) as callers by key."""
    keys: dict[str, Caller] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        parts = entry.split(":")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"api key entry {entry.split(':')[0][:4]}… must be KEY:USER:ROLE")
        key, user, role = parts
        if role not in (Role.USER, Role.ADMIN):
            raise ValueError(f"api key role must be user or admin, not {role!r}")
        keys[key] = Caller(user, Role(role))
    return keys


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
    """The caller of a request (async: FastAPI runs a plain function in a worker thread)."""
    auth: Authenticator = request.app.state.auth
    return auth.identify(request.headers.get("authorization"))
