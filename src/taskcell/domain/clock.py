"""Time in taskcell: every datetime is aware and in UTC, and :func:`as_utc` is the one place
that makes it so (models, schedules, stores' codecs and cursors all go through it). A time
zone appears only inside a schedule (for daily wall clock times) and in what people see.
"""

from __future__ import annotations

from datetime import UTC, datetime


class NaiveDatetime(ValueError):
    """A datetime without a UTC offset where an instant is needed."""


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime, what: str = "datetime") -> datetime:
    """``value`` (aware, any offset) as the same instant in UTC.

    Raises :class:`NaiveDatetime` (a ``ValueError``) naming ``what`` when ``value`` carries no
    offset: a naive datetime is never guessed to be UTC or local time.
    """
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetime(f"{what} must be an aware datetime, got naive {value.isoformat()}")
    return value.astimezone(UTC)
