"""Schedule arithmetic for recurring tasks: pure functions over aware datetimes.

Three kinds of schedule exist (see docs/architecture.md, fixed behaviours 4 and 5):

* **Interval** (``interval_minutes``): anchored on the grid of scheduled times.
  The next occurrence is the previous *scheduled* time plus a whole number of
  intervals, skipped forward past ``now``; it never drifts by a run's length.
* **Daily** (``daily_time`` "HH:MM"): a wall-clock time in an IANA time zone,
  one occurrence per calendar day of that zone. A wall time that does not exist
  that day (spring forward) fires at the first valid instant after it (the end
  of the gap); a wall time that occurs twice (fall back) fires once, at the
  first occurrence.
* **Cron** (``cron`` "0 9 * * MON-FRI" or an alias such as "@daily"): five cron fields read in
  an IANA zone, through :mod:`taskcell.domain.cron`. Wall-clock expressions (minute and hour
  fields name values) follow the daily rules above; expressions with ``*`` at the start of
  the minute or hour field fire on real elapsed time (twice through a repeated hour, never
  for a skipped wall time).

Every datetime that goes in must be aware (``ValueError`` otherwise); every
datetime that comes out is aware and in UTC. A time zone only appears inside
this arithmetic and in :func:`describe`.

Nothing here does I/O, except :func:`resolve_zone_name` with ``None``, which
reads the server's zone configuration (``TZ``, ``/etc/timezone``,
``/etc/localtime``) once per call.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from taskcell.domain.clock import as_utc
from taskcell.domain.cron import cron_next, explain_cron

__all__ = [
    "MAX_COUNTED_CRON_MISSES",
    "ScheduleLike",
    "describe",
    "is_valid_zone",
    "missed_occurrences",
    "next_fire_time",
    "parse_daily_time",
    "resolve_zone_name",
    "upcoming_fires",
]

_ONE_DAY = timedelta(days=1)
_ONE_SECOND = timedelta(seconds=1)
_MINUTES_PER_HOUR = 60
_MINUTES_PER_DAY = 1440
# Keys ZoneInfo may load from a system zoneinfo directory that are not zone names.
#: ``missed_occurrences`` counts a cron schedule's misses one by one, up to this many.
MAX_COUNTED_CRON_MISSES = 1000
_NOT_ZONE_NAMES = frozenset({"localtime", "posixrules", "Factory"})
# "HH:MM", ASCII digits only, matched in full (no trailing newline, no full-width digits).
_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])", re.ASCII)


class ScheduleLike(Protocol):
    """What schedule arithmetic reads from a schedule configuration.

    Exactly one of ``interval_minutes`` (a positive number of minutes),
    ``daily_time`` ("HH:MM", 00:00..23:59) and ``cron`` (five cron fields or an
    alias) is set. ``timezone`` is an IANA zone name used for ``daily_time`` and
    ``cron``; ``None`` means the caller's default zone.
    """

    @property
    def interval_minutes(self) -> int | None: ...

    @property
    def daily_time(self) -> str | None: ...

    @property
    def cron(self) -> str | None: ...

    @property
    def timezone(self) -> str | None: ...


# --------------------------------------------------------------------------- public API


def next_fire_time(
    schedule: ScheduleLike,
    *,
    now: datetime,
    previous: datetime | None = None,
    default_zone: str = "UTC",
) -> datetime:
    """Return the next scheduled occurrence strictly after ``now``, in UTC.

    ``previous`` is the previous *scheduled* occurrence (not the end of its run),
    or ``None`` when there is none yet.

    * Interval: with ``previous``, the result is ``previous + k * interval`` for
      the smallest ``k >= 1`` that lands strictly after ``now`` (missed
      occurrences are skipped, never replayed). Without ``previous`` it is
      ``now + interval``.
    * Daily: the first occurrence (per calendar day in the schedule's zone, or
      ``default_zone`` when it has none) strictly after ``now``, and also
      strictly after ``previous`` when given, so an occurrence never repeats even
      if the clock stepped back.
    * Cron: the first fire time (see :mod:`taskcell.domain.cron` for the
      daylight-saving rules) strictly after ``now`` and after ``previous``.

    Raises ``ValueError`` for a naive ``now`` or ``previous``, an unknown zone,
    a bad cron expression, or a schedule that does not set exactly one of
    interval, daily time and cron.
    """
    now_utc = as_utc(now, "now")
    prev_utc = None if previous is None else as_utc(previous, "previous")
    interval = _interval(schedule)
    if interval is not None:
        if prev_utc is None:
            return now_utc + interval
        return prev_utc + _intervals_up_to(prev_utc, now_utc, interval, at_least=1) * interval
    after = now_utc if prev_utc is None else max(now_utc, prev_utc)
    if schedule.cron is not None:
        return cron_next(schedule.cron, _zone(schedule, default_zone), after)
    wall, zone = _daily(schedule, default_zone)
    return _occurrence(_first_day_after(after, wall, zone), wall, zone)


def missed_occurrences(
    schedule: ScheduleLike,
    *,
    previous: datetime,
    now: datetime,
    default_zone: str = "UTC",
) -> int:
    """Return how many occurrences fall in the half-open span ``(previous, now]``.

    ``previous`` is the last scheduled occurrence that was served. For an
    interval the occurrences are ``previous + k * interval`` (``k >= 1``); for a
    daily time they are the daily occurrences as :func:`next_fire_time` defines
    them. Returns 0 when ``now <= previous``. Constant time for intervals and
    daily times (no loop per occurrence), so years of downtime cost nothing; a
    cron schedule's misses are counted one by one, up to
    :data:`MAX_COUNTED_CRON_MISSES` (the answer for more).

    Raises ``ValueError`` as :func:`next_fire_time` does.
    """
    prev_utc = as_utc(previous, "previous")
    now_utc = as_utc(now, "now")
    interval = _interval(schedule)
    if interval is not None:
        return _intervals_up_to(prev_utc, now_utc, interval, at_least=0)
    if now_utc <= prev_utc:
        return 0
    if schedule.cron is not None:
        zone = _zone(schedule, default_zone)
        count, moment = 0, prev_utc
        while count < MAX_COUNTED_CRON_MISSES:
            moment = cron_next(schedule.cron, zone, moment)
            if moment > now_utc:
                break
            count += 1
        return count
    wall, zone = _daily(schedule, default_zone)
    # Occurrences strictly increase from day to day, so the occurrences in
    # (previous, now] are exactly the days from first-after(previous) up to,
    # not including, first-after(now).
    first_missed = _first_day_after(prev_utc, wall, zone)
    first_future = _first_day_after(now_utc, wall, zone)
    return max(0, (first_future - first_missed).days)


def describe(schedule: ScheduleLike, default_zone: str = "UTC") -> str:
    """Return the schedule in words for people.

    Intervals: "every minute", "every 5 minutes", "every hour", "every 2 hours"
    (whole hours), "every day", "every 3 days" (whole days). Daily times:
    "daily at 09:00 (Europe/Berlin)", naming ``default_zone`` when the schedule
    has no zone. Cron: the expression in words and its zone, "at 09:00 on Monday
    through Friday (Europe/Berlin)". Raises ``ValueError`` for an invalid schedule.
    """
    interval = _interval(schedule)
    if interval is not None:
        minutes = int(interval.total_seconds()) // 60
        if minutes % _MINUTES_PER_DAY == 0:
            return _every(minutes // _MINUTES_PER_DAY, "day")
        if minutes % _MINUTES_PER_HOUR == 0:
            return _every(minutes // _MINUTES_PER_HOUR, "hour")
        return _every(minutes, "minute")
    if schedule.cron is not None:
        return f"{explain_cron(schedule.cron)} ({_zone(schedule, default_zone).key})"
    wall, zone = _daily(schedule, default_zone)
    return f"daily at {wall:%H:%M} ({zone.key})"


def upcoming_fires(
    schedule: ScheduleLike, *, first: datetime, count: int, default_zone: str = "UTC"
) -> list[datetime]:
    """Return ``count`` fire times in UTC: ``first`` (the armed next time), then each next one.

    Each time after ``first`` is :func:`next_fire_time` with the one before it as both
    ``previous`` and ``now``, so the list is what the scheduler will fire if nothing is
    missed. Raises ``ValueError`` as :func:`next_fire_time` does, and for ``count < 1``.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    times = [as_utc(first, "first")]
    while len(times) < count:
        last = times[-1]
        times.append(next_fire_time(schedule, now=last, previous=last, default_zone=default_zone))
    return times


def is_valid_zone(name: str | None) -> bool:
    """Return whether ``name`` is an IANA time zone name that zoneinfo can load.

    Accepts canonical names and links ("Europe/Berlin", "US/Eastern", "UTC");
    rejects ``None``, empty or padded strings, paths, directories ("America")
    and the non-zone files of a system zoneinfo directory ("localtime",
    "posixrules", "Factory").
    """
    if not isinstance(name, str) or not name or name != name.strip():
        return False
    if name in _NOT_ZONE_NAMES:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def parse_daily_time(text: str) -> time:
    """Return the wall time of a ``daily_time`` "HH:MM" (00:00 to 23:59).

    The one parser of daily times: the models validate with it and the scheduler computes
    with it, so a stored value is always one the scheduler can use. The whole string must
    match, in ASCII digits: "09:05\\n", "9:5", "24:00" and "0\\uff19:30" (a full-width
    digit) raise ``ValueError``.
    """
    found = _HHMM.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        raise ValueError("daily_time must be HH:MM, 00:00 to 23:59")
    return time(int(found.group(1)), int(found.group(2)))


def resolve_zone_name(name: str | None) -> str:
    """Return a valid IANA zone name: ``name`` itself, or the server's zone.

    A given ``name`` is returned unchanged if :func:`is_valid_zone` accepts it,
    else ``ValueError`` is raised. For ``None`` the server's local zone is
    resolved to a name, trying in order the ``TZ`` environment variable (a name,
    ``:name`` or a path into a zoneinfo directory), ``/etc/timezone``, and the
    target of the ``/etc/localtime`` symbolic link; "UTC" when none of them
    gives a valid name. Reads the environment and those files (the only I/O in
    this module); never raises for ``None``.
    """
    if name is not None:
        if not is_valid_zone(name):
            raise ValueError(f"unknown time zone {name!r}: expected an IANA name such as 'UTC'")
        return name
    return _local_zone_name(os.environ, Path("/"))


# --------------------------------------------------------------------------- helpers


def _interval(schedule: ScheduleLike) -> timedelta | None:
    """Return the schedule's interval, ``None`` for a daily or cron schedule.

    ``ValueError`` unless exactly one of interval, daily time and cron is set, or
    if the interval is not a positive whole number of minutes.
    """
    minutes = schedule.interval_minutes
    kinds = (minutes, schedule.daily_time, schedule.cron)
    if sum(kind is not None for kind in kinds) != 1:
        raise ValueError("a schedule needs exactly one of interval_minutes, daily_time and cron")
    if minutes is None:
        return None
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
        raise ValueError(f"interval_minutes must be a positive integer, got {minutes!r}")
    return timedelta(minutes=minutes)


def _daily(schedule: ScheduleLike, default_zone: str) -> tuple[time, ZoneInfo]:
    """Return the daily wall time and its zone; ``ValueError`` if either is bad."""
    text = schedule.daily_time
    if text is None:
        raise ValueError("the schedule has no daily_time")
    return parse_daily_time(text), _zone(schedule, default_zone)


def _zone(schedule: ScheduleLike, default_zone: str) -> ZoneInfo:
    """Return the schedule's zone (``default_zone`` when it has none); ``ValueError`` if bad."""
    return ZoneInfo(resolve_zone_name(schedule.timezone or default_zone))


def _intervals_up_to(start: datetime, end: datetime, interval: timedelta, *, at_least: int) -> int:
    """Return ``at_least`` plus the number of whole intervals in ``end - start``.

    With ``at_least=0``: how many of ``start + k * interval`` (``k >= 1``) are at
    or before ``end``, 0 if ``end < start``. With ``at_least=1``: the smallest
    ``k >= 1`` with ``start + k * interval > end``. Integer arithmetic, O(1).
    """
    if end < start:
        return at_least
    return (end - start) // interval + at_least


def _occurrence(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """Return, in UTC, the instant at which ``day``'s occurrence of ``wall`` fires.

    An ambiguous wall time resolves to its first occurrence (``fold=0``); a wall
    time inside a gap resolves to the end of the gap, the first valid instant
    after it.
    """
    local = datetime.combine(day, wall, tzinfo=zone)  # fold=0: first occurrence
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
        return instant
    return _gap_end(local, zone)


def _gap_end(local: datetime, zone: ZoneInfo) -> datetime:
    """Return the UTC instant at which the gap containing wall time ``local`` ends.

    For a nonexistent wall time, ``fold=1`` maps through the offset after the
    transition (an instant before it) and ``fold=0`` through the offset before
    it (an instant after it), so the transition lies in ``(early, late]``.
    Transitions fall on whole seconds: bisect seconds (about 12 steps for a
    one-hour gap).
    """
    early = local.replace(fold=1).astimezone(UTC)
    late = local.replace(fold=0).astimezone(UTC)
    before = early.astimezone(zone).utcoffset()
    lo, hi = 0, (late - early) // _ONE_SECOND  # offset changed at early+hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (early + mid * _ONE_SECOND).astimezone(zone).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return early + hi * _ONE_SECOND


def _first_day_after(instant: datetime, wall: time, zone: ZoneInfo) -> date:
    """Return the calendar day (in ``zone``) of the first occurrence after ``instant``.

    Relies on occurrences strictly increasing from one day to the next. Starts
    two days before the local date of ``instant`` (local dates can step back at
    a fall-back transition, and a gap can push an occurrence into the next day),
    steps back further in the unlikely case that is not yet early enough, then
    walks forward: a handful of iterations.
    """
    day = instant.astimezone(zone).date() - 2 * _ONE_DAY
    while _occurrence(day, wall, zone) > instant:
        day -= _ONE_DAY
    while _occurrence(day, wall, zone) <= instant:
        day += _ONE_DAY
    return day


def _every(count: int, unit: str) -> str:
    """Return "every <unit>" for one, else "every <count> <unit>s"."""
    return f"every {unit}" if count == 1 else f"every {count} {unit}s"


def _zone_from_path(text: str) -> str | None:
    """Return the zone name in a zoneinfo path ("/usr/share/zoneinfo/Europe/Berlin")."""
    marker = "zoneinfo/"
    if marker not in text:
        return None
    name = text.rsplit(marker, 1)[1]
    for prefix in ("posix/", "right/"):
        name = name.removeprefix(prefix)
    return name


def _local_zone_name(environ: Mapping[str, str], root: Path) -> str:
    """Return the IANA name of the local zone per ``environ`` and files under ``root``.

    Tries ``TZ``, ``<root>/etc/timezone`` and the ``<root>/etc/localtime``
    symlink target (its immediate target, then the fully resolved path) in
    order; "UTC" when none yields a valid name.
    """
    candidates: list[str | None] = []
    tz = environ.get("TZ", "").strip().removeprefix(":")
    if tz:
        candidates.append(_zone_from_path(tz) if tz.startswith("/") else tz)
    try:
        lines = (root / "etc" / "timezone").read_text(encoding="utf-8").split()
        candidates.append(lines[0] if lines else None)
    except (OSError, UnicodeDecodeError):
        pass
    localtime = root / "etc" / "localtime"
    if localtime.is_symlink():
        try:
            candidates.append(_zone_from_path(os.readlink(localtime)))
        except OSError:
            pass
        candidates.append(_zone_from_path(os.path.realpath(localtime)))
    for candidate in candidates:
        if candidate and is_valid_zone(candidate):
            return candidate
    return "UTC"
