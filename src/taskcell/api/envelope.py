"""The answer envelope ``{"code", "msg", "data"}`` and the error handlers.

The HTTP status is the error: ``code`` equals it. Validation errors carry a list of
``{"field", "message"}``. Nothing a client sends produces a 500: every known failure maps to a
4xx here, and an unexpected one is logged and answered 500 without details.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from taskcell.abc import InvalidCursor
from taskcell.agents.registry import UnknownAgent
from taskcell.domain.state_machine import TaskConflict
from taskcell.domain.text import UNSAFE_TEXT, sanitise_text
from taskcell.outages import OUTAGE_TYPES, describe, is_outage
from taskcell.service import TaskNotFound

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Validation errors about text no one can store (ours, and pydantic's for a surrogate it meets
#: in a dict key): the request is well-formed JSON, so these are values refused (400).
_REFUSED_TEXT = frozenset({UNSAFE_TEXT, "string_unicode"})


class Envelope(BaseModel, Generic[T]):
    code: int = 0
    msg: str = "ok"
    data: T


class FieldError(BaseModel):
    field: str
    message: str


class ErrorEnvelope(BaseModel):
    code: int
    msg: str
    data: list[FieldError] | None = None


class ApiError(Exception):
    """An error answer: ``status`` and a message a person can act on."""

    def __init__(
        self, status: int, message: str, fields: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse({"code": 0, "msg": "ok", "data": data}, status_code=status)


def error(
    status: int,
    message: str,
    fields: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An error answer. Messages and field names may quote what a client sent, so each is
    made safe to encode first (a lone surrogate or NUL becomes U+FFFD): an answer about bad
    text must never fail on that text."""
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    safe_fields = (
        None
        if fields is None
        else [{key: sanitise_text(str(value))[0] for key, value in f.items()} for f in fields]
    )
    body = {"code": status, "msg": sanitise_text(message)[0], "data": safe_fields}
    return JSONResponse(body, status_code=status, headers=headers or None)


def field_errors(errors: list[Any], *, drop: tuple[str, ...] = ("body",)) -> list[dict[str, str]]:
    """Pydantic errors as ``{"field", "message"}``, the field a dotted path."""
    found = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if str(p) not in drop]
        message = str(err.get("msg", "invalid value"))
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        found.append({"field": ".".join(loc) or "body", "message": message})
    return found


def describe_fields(fields: list[dict[str, str]]) -> str:
    return "; ".join(f"{f['field']}: {f['message']}" for f in fields)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """The methods some route of the request's path takes in full (for a 405's ``Allow``)."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


async def outage(request: Request, exc: Exception) -> JSONResponse:
    """The database unreachable, the disk full: 503, try again later (anything else of these
    types is a fault: re-raised, answered 500 by the catch-all handler)."""
    if not is_outage(exc):
        raise exc
    logger.warning(
        "request failed: store unavailable",
        extra={"path": request.url.path, "error": describe(exc)},
    )
    return error(503, f"the database is unavailable, try again shortly: {describe(exc)}")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.message, exc.fields)

    @app.exception_handler(RequestValidationError)
    async def _malformed(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        fields = field_errors(errors)
        if errors and all(err.get("type") in _REFUSED_TEXT for err in errors):
            # Well-formed JSON holding text no one can store: a value refused (400).
            return error(400, describe_fields(fields), fields)
        return error(422, f"malformed request: {describe_fields(fields)}", fields)

    @app.exception_handler(ValidationError)
    async def _invalid(_: Request, exc: ValidationError) -> JSONResponse:
        fields = field_errors(list(exc.errors()))
        return error(400, describe_fields(fields), fields)

    @app.exception_handler(TaskNotFound)
    async def _not_found(_: Request, exc: TaskNotFound) -> JSONResponse:
        return error(404, str(exc))

    @app.exception_handler(TaskConflict)
    async def _conflict(_: Request, exc: TaskConflict) -> JSONResponse:
        return error(409, str(exc))

    @app.exception_handler(UnknownAgent)
    async def _unknown_agent(_: Request, exc: UnknownAgent) -> JSONResponse:
        return error(400, str(exc), [{"field": "agent_name", "message": str(exc)}])

    @app.exception_handler(InvalidCursor)
    async def _cursor(_: Request, exc: InvalidCursor) -> JSONResponse:
        return error(400, f"cursor: {exc}", [{"field": "cursor", "message": str(exc)}])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the first route of the path; a path has several.
            headers["Allow"] = ", ".join(allowed_methods(request))
        return error(exc.status_code, str(exc.detail), headers=headers)

    for kind in OUTAGE_TYPES:
        app.add_exception_handler(kind, outage)

    @app.exception_handler(Exception)
    async def _fault(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("request failed", extra={"path": request.url.path})
        return error(500, "internal error: the server failed; it has been logged")
