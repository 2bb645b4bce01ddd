"""Cron expressions: parsing, validation, iteration and words, over the ``cronsim`` library.

A cron schedule is five fields (minute, hour, day of month, month, day of week) or one of the
aliases in :data:`ALIASES`, read in an IANA zone. ``cronsim`` parses and iterates; this module
fixes the rules taskcell promises around daylight-saving changes (the rules Debian's cron
follows, which ``cronsim`` implements for five-field expressions):

* **Wall-clock schedules**: the minute and the hour fields both name values (neither starts
  with ``*``), as in ``0 2 * * *`` or ``30 9 * * MON-FRI``. Each matching wall time fires
  once: a wall time that does not exist that day (spring forward) fires at the first valid
  instant after it, the end of the gap (several such wall times give one run); a wall time
  that occurs twice (fall back) fires once, at the first.
* **Elapsed-time schedules**: the minute or the hour field starts with ``*`` (``*/30 * * * *``,
  ``15 * * * *``, ``@hourly``, ``* 2 * * *``). They fire at every real instant whose local time
  matches: twice through a repeated hour, and not at all for wall times that were skipped,
  so ``*/30`` keeps firing every 30 real minutes through both changes.

Datetimes going in must be aware; datetimes coming out are aware and in UTC. No I/O.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

__all__ = [
    "ALIASES",
    "FIELD_NAMES",
    "MAX_CRON_CHARS",
    "CronError",
    "check_cron",
    "cron_next",
    "explain_cron",
]

#: The aliases taskcell accepts, and the five fields each stands for.
ALIASES: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
#: The five fields in order; an error names the field by its position (1-based) and name.
FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
MAX_CRON_CHARS = 200
# Fields of ASCII letters, digits and ``* / , - #``, separated by spaces; nothing around them.
_SHAPE = re.compile(r"[0-9A-Za-z*/,#-]+(?: +[0-9A-Za-z*/,#-]+)*", re.ASCII)
# A sure-to-exist reference moment for checking that an expression ever fires.
_REFERENCE = datetime(2001, 1, 1, tzinfo=UTC)


class CronError(ValueError):
    """A cron expression refused; ``position`` is its bad field (1..5), ``None`` for the whole
    expression (wrong number of fields, an unknown alias, no occurrence at all)."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


def check_cron(text: str) -> str:
    """Return the five fields of a valid cron expression (an alias expanded), upper-cased.

    Raises :class:`CronError` naming the position and name of the first bad field ("field 5
    (day-of-week) 'MON-FRX' is not valid"), or saying what is wrong with the whole: not five
    fields, an unknown alias, characters no cron field holds, or no occurrence ever (``0 0 31
    2 *``).
    """
    return _parsed(text)


def cron_next(text: str, zone: ZoneInfo, after: datetime) -> datetime:
    """Return, in UTC, the first fire time of ``text`` in ``zone`` strictly after ``after``.

    Follows the module's daylight-saving rules. ``after`` must be aware. Raises
    :class:`CronError` for an invalid expression, or one with no occurrence within 50 years.
    """
    fields = _parsed(text)
    if after.tzinfo is None:
        raise ValueError("after must be an aware datetime")
    start = after.astimezone(UTC)
    # cronsim answers the first match strictly after its start, at whole seconds; a start
    # with microseconds is floored by it, which is still "strictly after" at minute grain.
    iterator = CronSim(fields, start.astimezone(zone))
    try:
        while True:
            found = next(iterator).astimezone(UTC)
            if found > start:
                return found
    except StopIteration:
        raise CronError(f"cron {text!r} has no occurrence in the next 50 years") from None


def explain_cron(text: str) -> str:
    """Return ``text`` in words, lower-case first ("at 09:00 on Monday through Friday")."""
    fields = _parsed(text)
    words = CronSim(fields, _REFERENCE).explain()
    return words[:1].lower() + words[1:]


@lru_cache(maxsize=4096)
def _parsed(text: str) -> str:
    """The five upper-cased fields of ``text``, checked once per distinct text."""
    if not isinstance(text, str):
        raise CronError("cron must be a string")
    if len(text) > MAX_CRON_CHARS:
        raise CronError(f"cron must be at most {MAX_CRON_CHARS} characters")
    if text.startswith("@"):
        expanded = ALIASES.get(text.lower())
        if expanded is None:
            known = ", ".join(ALIASES)
            raise CronError(f"unknown cron alias {text!r}: expected one of {known}")
        return expanded
    if _SHAPE.fullmatch(text) is None:
        raise CronError(
            "cron must be fields of letters, digits and * / , - # separated by spaces,"
            " with nothing before or after"
        )
    parts = text.upper().split()
    if len(parts) != len(FIELD_NAMES):
        raise CronError(
            f"cron needs 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    for position, (part, name) in enumerate(zip(parts, FIELD_NAMES, strict=True), start=1):
        _check_field(parts, position, part, name)
    fields = " ".join(parts)
    try:
        next(CronSim(fields, _REFERENCE))
    except CronSimError as exc:
        raise CronError(f"cron {text!r} can never fire ({exc})") from None
    except StopIteration:
        raise CronError(f"cron {text!r} can never fire") from None
    return fields


def _check_field(parts: list[str], position: int, part: str, name: str) -> None:
    """Raise :class:`CronError` naming ``position`` if field ``part`` alone is refused.

    Each field is tried in an expression whose other fields are ``*``, so cronsim's error is
    about this field only.
    """
    probe = ["*"] * len(parts)
    probe[position - 1] = part
    try:
        CronSim(" ".join(probe), _REFERENCE)
    except CronSimError:
        raise CronError(f"cron field {position} ({name}) {part!r} is not valid", position) from None
