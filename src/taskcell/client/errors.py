"""What the client raises: the server's error answers, and a server that does not answer.

Every error answer of the API (docs/api.md, "Envelope and errors") becomes an :class:`ApiError`
subclass chosen by its status, carrying ``code`` (the HTTP status, as the envelope says),
``msg`` (the server's words) and ``fields`` (each field the server named, with why). A server
that cannot be reached, or that drops the connection, raises :class:`ConnectionFailed`.

>>> try:
...     raise Conflict(409, "task abc is completed: nothing to cancel")
... except ApiError as error:
...     (error.code, error.msg)
(409, 'task abc is completed: nothing to cancel')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """One field the server refused: a dotted path (``schedule_config.timezone``, ``query.limit``,
    ``body``) and the reason in words."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class TaskcellError(Exception):
    """Every error this client raises."""


class ApiError(TaskcellError):
    """The server answered with an error.

    ``code`` is the HTTP status (the envelope's ``code`` equals it), ``msg`` the server's
    message, ``fields`` the fields it named (empty when it named none).
    """

    def __init__(self, code: int, msg: str, fields: Sequence[FieldError] = ()) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.fields: list[FieldError] = list(fields)

    @property
    def status(self) -> int:
        """The HTTP status (the same number as ``code``)."""
        return self.code

    def field_names(self) -> list[str]:
        """The names of the fields the server refused, in its order."""
        return [item.field for item in self.fields]


class ValidationFailed(ApiError):
    """400 or 422: a value the server refuses, or a request of the wrong shape; see ``fields``."""


class Unauthorized(ApiError):
    """401: no key, or a key the server does not know."""


class Forbidden(ApiError):
    """403: the key may not do this (``user_id`` filters are for admins)."""


class NotFound(ApiError):
    """404: the thing asked for does not exist, or is not the caller's."""


class TaskNotFound(NotFound):
    """404 for a task: it does not exist, or it is another user's."""


class Conflict(ApiError):
    """409: the task's state forbids the action (cancel a completed task, answer a task that
    does not wait, run a recurring task while a run is in progress, ...)."""


class PayloadTooLarge(ApiError):
    """413: the request body is over the server's limit."""


class ServerError(ApiError):
    """500 or another 5xx: a fault of the server (it logged it)."""


class ServiceUnavailable(ServerError):
    """503: the database is unavailable for now; try again shortly."""


class ConnectionFailed(TaskcellError):
    """No answer from the server: refused, timed out, or the connection broke."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: ValidationFailed,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    503: ServiceUnavailable,
}


def error_for_status(
    code: int, msg: str, fields: Sequence[FieldError] = (), *, about_task: bool = False
) -> ApiError:
    """The :class:`ApiError` subclass for ``code``; a 404 about a task is :class:`TaskNotFound`."""
    if code == 404 and about_task:
        return TaskNotFound(code, msg, fields)
    kind = _BY_STATUS.get(code)
    if kind is None:
        kind = ServerError if code >= 500 else ApiError
    return kind(code, msg, fields)
