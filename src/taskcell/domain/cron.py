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

import copy
import re
from bisect import bisect_right
from datetime import UTC, datetime, timedelta
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
_ONE_SECOND = timedelta(seconds=1)
_SAMPLE = timedelta(hours=3)


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
    try:
        if _is_wall_clock(fields):
            return _wall_clock_next(fields, zone, start)
        return _elapsed_next(fields, zone, start)
    except StopIteration:
        raise CronError(f"cron {text!r} has no occurrence in the next 50 years") from None


def explain_cron(text: str) -> str:
    """Return ``text`` in words, lower-case first ("at 09:00 on Monday through Friday")."""
    fields = _parsed(text)
    words = CronSim(fields, _REFERENCE).explain()
    return words[:1].lower() + words[1:]


def _is_wall_clock(fields: str) -> bool:
    """Whether both the minute and the hour field name values (no leading ``*``)."""
    minute, hour = fields.split(" ", 2)[:2]
    return not minute.startswith("*") and not hour.startswith("*")


def _wall_clock_next(fields: str, zone: ZoneInfo, start: datetime) -> datetime:
    """The first wall-clock fire time after ``start``.

    cronsim walks wall times (naive, in calendar order) and resolves each: a skipped one to the
    end of its gap, a repeated one to its first occurrence. Resolved instants never go down as
    wall times go up, so the first one after ``start`` is the answer; the few wall times of a
    repeated hour that already fired resolve to instants before ``start`` and are passed over.
    """
    # cronsim answers the first match strictly after its start, at whole seconds (it floors
    # microseconds), which is still after ``start`` at minute grain.
    iterator = _walk(fields, start.astimezone(zone).replace(tzinfo=None), zone)
    while True:
        found = next(iterator).astimezone(UTC)
        if found > start:
            return found


def _elapsed_next(fields: str, zone: ZoneInfo, start: datetime) -> datetime:
    """The first real instant after ``start`` whose wall time in ``zone`` matches.

    Between two changes of the zone's offset, wall time is UTC plus a fixed offset, so
    cronsim's plain calendar walk (naive, no zone) finds the next match there exactly. When
    that match lies past the next change, the search starts again at the change, under the
    new offset, including the change's own instant.
    """
    probe, inclusive = start, False
    while True:
        offset = _offset(zone, probe)
        wall = (probe + offset).replace(tzinfo=None)
        if inclusive:
            wall -= _ONE_SECOND  # cronsim answers strictly after its start
        found = next(_walk(fields, wall)).replace(tzinfo=UTC) - offset
        change = _next_change(zone, probe, found)
        if change is None:
            return found
        probe, inclusive = change, True


def _walk(fields: str, wall: datetime, zone: ZoneInfo | None = None) -> CronSim:
    """A cronsim walk from naive wall time ``wall``: in ``zone``'s wall clock (gaps resolved to
    their end, repeats to their first instant) when given, else plain calendar time.

    Equivalent to ``CronSim(fields, wall.replace(tzinfo=zone))`` for a five-field expression,
    but copies a walker parsed once per expression: parsing is half of a fresh walker's cost.
    It sets the walker's public start attributes as cronsim's constructor does (the version is
    pinned below 3 in pyproject.toml; the fire-time tables and the oracle property check it).
    """
    walker = copy.copy(_parsed_walker(fields))
    walker.dt = wall.replace(microsecond=0)
    walker.fixup_tz = zone
    return walker


@lru_cache(maxsize=4096)
def _parsed_walker(fields: str) -> CronSim:
    """A walker of ``fields`` from a fixed start, kept to be copied (never advanced itself)."""
    return CronSim(fields, _REFERENCE.replace(tzinfo=None))


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return offset


def _next_change(zone: ZoneInfo, after: datetime, until: datetime) -> datetime | None:
    """The first instant in ``(after, until]`` at which ``zone``'s UTC offset changes."""
    for year in range(after.year, until.year + 1):
        changes = _changes(zone, year)
        index = bisect_right(changes, after)
        if index < len(changes):
            return changes[index] if changes[index] <= until else None
    return None


@lru_cache(maxsize=1024)
def _changes(zone: ZoneInfo, year: int) -> tuple[datetime, ...]:
    """The instants in UTC year ``year`` (and at its very end) where ``zone``'s offset changes.

    zoneinfo does not list its transitions: the offset is sampled every three hours (no zone
    changes twice within three hours) and each change is narrowed down to the second. Cached:
    about 3,000 look-ups once per zone and year.
    """
    begin = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    found: list[datetime] = []
    low, low_offset = begin, _offset(zone, begin)
    while low < end:
        high = min(low + _SAMPLE, end)
        high_offset = _offset(zone, high)
        if high_offset != low_offset:
            found.append(_change_between(zone, low, high, low_offset))
        low, low_offset = high, high_offset
    return tuple(found)


def _change_between(zone: ZoneInfo, low: datetime, high: datetime, before: timedelta) -> datetime:
    """The first second in ``(low, high]`` whose offset is not ``before`` (bisection)."""
    lo, hi = 0, int((high - low).total_seconds())
    while hi - lo > 1:
        middle = (lo + hi) // 2
        if _offset(zone, low + middle * _ONE_SECOND) == before:
            lo = middle
        else:
            hi = middle
    return low + hi * _ONE_SECOND


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
    except CronSimError:  # each field is good alone: the days fall in none of the months
        raise CronError(
            f"cron field 3 (day-of-month) {parts[2]!r} falls in none of the months of field 4"
            f" ({parts[3]!r}): the cron can never fire",
            3,
        ) from None
    except StopIteration:
        raise CronError("the cron can never fire") from None
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
