"""Request bodies read as JSON the strict way, and never parsed long on the event loop.

FastAPI parses a JSON body with ``json.loads`` on the event loop and answers anything it cannot
parse (invalid UTF-8, nesting deeper than Python's recursion limit, a 5,000-digit number) with a
bare 400. :class:`JsonBodyRoute` parses first instead: UTF-8 strictly, no NaN or Infinity, at
most :data:`MAX_BODY_DEPTH` containers deep, in a worker thread when the body is larger than
:data:`THREAD_PARSE_BYTES`, and answers every failure 422 naming the field (``body`` when the
body as a whole is not JSON).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

import anyio.to_thread
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from taskcell.domain.text import MAX_JSON_DEPTH, json_nesting

#: Bodies larger than this are parsed in a worker thread (a 1 MiB body takes ~10 ms to parse
#: here, which would delay every other request on the loop).
THREAD_PARSE_BYTES = 64 * 1024
#: How deeply a request body may nest: a body holds metadata, which may nest MAX_JSON_DEPTH.
MAX_BODY_DEPTH = MAX_JSON_DEPTH + 2

_JSON_TYPES = ("application/json",)


class BodyNotJson(Exception):
    """A body that is not acceptable JSON: ``field`` (a dotted path or "body") and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _refuse_constant(name: str) -> NoReturn:
    raise BodyNotJson("body", f"{name} is not JSON; send numbers as finite values")


def parse_json_body(raw: bytes) -> Any:
    """The JSON value of ``raw``, or :class:`BodyNotJson` saying where and why."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyNotJson(
            "body", f"body is not valid UTF-8 (byte {exc.start}: {exc.reason})"
        ) from None
    too_deep = json_nesting(text, stop_after=MAX_BODY_DEPTH + 1) > MAX_BODY_DEPTH
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise BodyNotJson("body", f"body is not JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise BodyNotJson("body", f"body nests more than {MAX_BODY_DEPTH} levels deep") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise BodyNotJson("body", f"body is not acceptable JSON: {exc}") from None
    if too_deep:
        raise BodyNotJson(_deepest_field(value), f"nests more than {MAX_BODY_DEPTH} levels deep")
    return value


def _deepest_field(value: Any) -> str:
    """The top-level field of a too-deep body that is too deep ("body" if it is not one)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            nesting = json_nesting(json.dumps(inner), stop_after=MAX_BODY_DEPTH)
            if nesting >= MAX_BODY_DEPTH:
                return str(key)
    return "body"


def _is_json(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return kind in _JSON_TYPES or (kind.startswith("application/") and kind.endswith("+json"))


class _ParsedRequest(Request):
    """A request whose ``json()`` is the value already parsed by :class:`JsonBodyRoute`."""

    parsed: Any = None

    async def json(self) -> Any:
        return self.parsed


class JsonBodyRoute(APIRoute):
    """A route that parses a JSON body itself (see the module's docstring) before FastAPI's
    handler, which then validates the parsed value as usual."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def parse_then_handle(request: Request) -> Response:
            parsed = _ParsedRequest(request.scope, request.receive)
            raw = await parsed.body()
            if raw and _is_json(parsed):
                try:
                    if len(raw) > THREAD_PARSE_BYTES:
                        parsed.parsed = await anyio.to_thread.run_sync(parse_json_body, raw)
                    else:
                        parsed.parsed = parse_json_body(raw)
                except BodyNotJson as exc:
                    loc = ("body", *exc.field.split(".")) if exc.field != "body" else ("body",)
                    raise RequestValidationError(
                        [{"type": "json_invalid", "loc": loc, "msg": exc.message, "input": None}]
                    ) from None
            return await handler(parsed)

        return parse_then_handle
