"""Overlap and catch-up policies of recurring tasks: the pure rules (no I/O).

* **Overlap** (:class:`OverlapPolicy`): what an occurrence does when it comes due while a run of
  its task is in progress (or others wait). :func:`admit` decides, from how many runs of the task
  run and wait, whether the occurrence starts, waits (a ``queued`` run), is skipped, or replaces
  the runs in progress. The stores apply it inside the write that stores the occurrence's run,
  so the decision and the run are one guarded write.
* **Catch-up** (:class:`CatchupPolicy`): what the scheduler does with the occurrences it finds
  due at once after it could not run (downtime, an outage, a stall). :func:`catch_up` lists which
  of them run and which are recorded skipped, with the reason.
* **Backfill**: :func:`backfill_occurrences` lists the occurrences of a range ``[start, end)``.

Every datetime that goes in must be aware; every datetime that comes out is in UTC.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from taskcell.domain.clock import as_utc
from taskcell.domain.schedule import ScheduleLike, next_fire_time

#: The most occurrences one catch-up runs (and records skipped), and one backfill takes.
MAX_CATCHUP = 1000
MAX_BACKFILL = 1000
#: The longest catch-up window (ten years), and the shortest (an occurrence claimed within
#: :data:`ON_TIME` of its time is on time, so a window shorter than that would skip it).
MAX_CATCHUP_WINDOW_SECONDS = 10 * 365 * 24 * 3600
MIN_CATCHUP_WINDOW_SECONDS = 60
#: An occurrence claimed at most this long after its time is on time, not missed.
ON_TIME = timedelta(seconds=MIN_CATCHUP_WINDOW_SECONDS)

_TICK = timedelta(microseconds=1)


class OverlapPolicy(StrEnum):
    """What an occurrence does while a run of its task is in progress."""

    SKIP = "skip"  # recorded skipped (the default)
    BUFFER_ONE = "buffer_one"  # at most one waits (queued); further ones are skipped
    BUFFER_ALL = "buffer_all"  # every one waits, in order
    CANCEL_OTHER = "cancel_other"  # the runs in progress are cancelled; this one starts
    ALLOW_ALL = "allow_all"  # runs overlap


class CatchupPolicy(StrEnum):
    """What the scheduler runs of the occurrences it missed."""

    COALESCE = "coalesce"  # one run, for the latest missed occurrence (the default)
    SKIP = "skip"  # none: the missed ones are recorded skipped
    ALL = "all"  # every one, in order (at most MAX_CATCHUP)


class Admission(StrEnum):
    """What :func:`admit` decides for one occurrence."""

    START = "start"
    QUEUE = "queue"
    SKIP = "skip"
    REPLACE = "replace"  # cancel the runs in progress and the waiting ones, then start


SKIPPED_RUNNING = "skipped: the previous run was still running"
SKIPPED_BUFFER_FULL = (
    "skipped: a run was in progress and another occurrence was already waiting (overlap buffer_one)"
)
CANCELLED_BY_NEWER = "cancelled: a newer occurrence started (overlap cancel_other)"
SKIPPED_OLD = "skipped: older than the catch-up window"
SKIPPED_MISSED = "skipped: missed while the scheduler could not run (catch-up skip)"


def admit(policy: OverlapPolicy | str, *, running: int, queued: int) -> Admission:
    """The fate of an occurrence of a task with ``running`` runs in progress (leases held)
    and ``queued`` runs waiting, under ``policy``."""
    busy = running > 0 or queued > 0
    if not busy:
        return Admission.START
    match OverlapPolicy(policy):
        case OverlapPolicy.SKIP:
            return Admission.SKIP
        case OverlapPolicy.BUFFER_ONE:
            return Admission.QUEUE if queued == 0 else Admission.SKIP
        case OverlapPolicy.BUFFER_ALL:
            return Admission.QUEUE
        case OverlapPolicy.CANCEL_OTHER:
            return Admission.REPLACE
        case OverlapPolicy.ALLOW_ALL:
            return Admission.START


def skip_reason(policy: OverlapPolicy | str) -> str:
    """Why :func:`admit` skipped an occurrence under ``policy``."""
    if OverlapPolicy(policy) is OverlapPolicy.BUFFER_ONE:
        return SKIPPED_BUFFER_FULL
    return SKIPPED_RUNNING


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What one claim of a due task does: the occurrences to run (in order), those recorded
    skipped (with the reason, in order), and how many more were missed without a record."""

    run: list[datetime]
    skipped: list[tuple[datetime, str]] = field(default_factory=list)
    unrecorded: int = 0
    #: How many earlier missed occurrences ``coalesce`` folded into its run (a lower bound
    #: for a wall-clock schedule: see :func:`latest_fires`).
    coalesced: int = 0


def catch_up(
    schedule: ScheduleLike,
    *,
    due: datetime,
    now: datetime,
    policy: CatchupPolicy | str = CatchupPolicy.COALESCE,
    window_seconds: int | None = None,
    default_zone: str = "UTC",
) -> CatchUp:
    """The occurrences a claim at ``now`` of a task armed at ``due`` (at or before ``now``)
    runs and records skipped.

    The occurrences are the schedule's fire times in ``[due, now]`` (``due`` is one: an
    interval schedule's are ``due + k * interval``). Those more than ``window_seconds`` old are
    skipped ("older than the catch-up window"); of the others, ``coalesce`` runs the latest,
    ``skip`` runs only those on time (at most :data:`ON_TIME` late) and records the rest
    skipped, ``all`` runs every one in order. At most :data:`MAX_CATCHUP` occurrences are run,
    and at most as many recorded skipped (the latest; the count of the others is
    ``unrecorded``). Costs at most a few thousand fire-time steps, however long the downtime.
    Raises ``ValueError`` as :func:`~taskcell.domain.schedule.next_fire_time` does.
    """
    due, now = as_utc(due, "due"), as_utc(now, "now")
    if now < due:
        return CatchUp(run=[])
    catchup = CatchupPolicy(policy)
    window = None if window_seconds is None else timedelta(seconds=window_seconds)
    oldest_recent = due if window is None else max(due, now - window)
    # ``due`` is an occurrence even when the schedule no longer fires then (it was edited
    # after ``due`` was armed: the armed occurrence still fires once), so it is counted
    # itself, and the schedule's fire times after it.
    due_recent = due >= oldest_recent
    # Coalescing needs only the latest: a walk of a few steps, not a thousand.
    wanted = 1 if catchup is CatchupPolicy.COALESCE else MAX_CATCHUP
    recent, earlier = latest_fires(
        schedule,
        anchor=due,
        lo=due + _TICK if due_recent else oldest_recent,
        hi=now,
        limit=wanted,
        default_zone=default_zone,
    )
    if due_recent:
        recent, earlier = _with_due(due, recent, earlier, wanted)
    skipped: list[tuple[datetime, str]] = []
    unrecorded = 0
    if not due_recent:
        old, more = latest_fires(
            schedule,
            anchor=due,
            lo=due + _TICK,
            hi=oldest_recent - _TICK,
            limit=MAX_CATCHUP,
            default_zone=default_zone,
        )
        old, more = _with_due(due, old, more, MAX_CATCHUP)
        skipped = [(t, SKIPPED_OLD) for t in old]
        unrecorded += more
    run: list[datetime]
    coalesced = 0
    if catchup is CatchupPolicy.COALESCE:
        run = recent[-1:]
        coalesced = earlier  # not recorded, as before policies existed
    elif catchup is CatchupPolicy.SKIP:
        run = [t for t in recent if now - t <= ON_TIME]
        skipped += [(t, SKIPPED_MISSED) for t in recent if now - t > ON_TIME]
        unrecorded += earlier
    else:
        run = recent
        unrecorded += earlier  # beyond MAX_CATCHUP: neither run nor recorded (logged)
    if len(skipped) > MAX_CATCHUP:
        unrecorded += len(skipped) - MAX_CATCHUP
        skipped = skipped[-MAX_CATCHUP:]
    return CatchUp(run=run, skipped=skipped, unrecorded=unrecorded, coalesced=coalesced)


def _with_due(
    due: datetime, later: list[datetime], earlier: int, limit: int
) -> tuple[list[datetime], int]:
    """``due`` put before the fire times after it, within ``limit`` (else counted as left out)."""
    if len(later) < limit and earlier == 0:
        return [due, *later], 0
    return later, earlier + 1


def latest_fires(
    schedule: ScheduleLike,
    *,
    anchor: datetime,
    lo: datetime,
    hi: datetime,
    limit: int,
    default_zone: str = "UTC",
) -> tuple[list[datetime], int]:
    """The latest ``limit`` fire times in ``[lo, hi]`` (ascending), and how many earlier ones
    in that span are left out (for a wall-clock schedule a lower bound, above 0 when any is:
    those beyond the walked stretch are counted up to ``limit``). ``anchor`` is a fire time
    (an interval schedule's grid).

    An interval's are computed directly; a wall-clock schedule's by walking forward from a
    start that moves back (doubling the span) until the span holds ``limit`` fire times or
    reaches ``lo``, so the cost follows the answer, not the length of the span.
    """
    anchor, lo, hi = as_utc(anchor, "anchor"), as_utc(lo, "lo"), as_utc(hi, "hi")
    if hi < lo:
        return [], 0
    if schedule.interval_minutes is not None:
        step = timedelta(minutes=schedule.interval_minutes)
        first = -((anchor - lo) // step)  # the smallest k with anchor + k * step >= lo
        last = (hi - anchor) // step
        total = max(0, last - first + 1)
        shown = min(total, limit)
        return [anchor + k * step for k in range(last - shown + 1, last + 1)], total - shown
    span = timedelta(hours=1)
    while True:
        start = max(lo, hi - span)
        kept: collections.deque[datetime] = collections.deque(maxlen=limit)
        count = 0
        for moment in _walk(schedule, start, hi, default_zone):
            kept.append(moment)
            count += 1
        if count >= limit or start == lo:
            if start == lo:
                return list(kept), count - len(kept)
            break
        span *= 2
    # The span from ``start`` holds at least ``limit``: count what lies before it.
    earlier = len(_walk(schedule, lo, start - _TICK, default_zone, cap=limit))
    return list(kept), count - len(kept) + earlier


def _walk(
    schedule: ScheduleLike,
    lo: datetime,
    hi: datetime,
    default_zone: str,
    *,
    cap: int | None = None,
) -> list[datetime]:
    """The fire times in ``[lo, hi]`` of a wall-clock schedule, ascending (at most ``cap``)."""
    found: list[datetime] = []
    moment = next_fire_time(schedule, now=lo - _TICK, default_zone=default_zone)
    while moment <= hi and (cap is None or len(found) < cap):
        found.append(moment)
        moment = next_fire_time(schedule, now=moment, previous=moment, default_zone=default_zone)
    return found


class TooManyOccurrences(ValueError):
    """A backfill range holds more than :data:`MAX_BACKFILL` occurrences."""


def backfill_occurrences(
    schedule: ScheduleLike,
    *,
    start: datetime,
    end: datetime,
    anchor: datetime | None,
    default_zone: str = "UTC",
    limit: int = MAX_BACKFILL,
) -> list[datetime]:
    """The fire times in ``[start, end)``, ascending: ``start`` included, ``end`` excluded.

    An interval schedule's fire times are its grid through ``anchor`` (the armed next time);
    with no anchor, through ``start``. Raises :class:`TooManyOccurrences` when the range holds
    more than ``limit``, ``ValueError`` for a reversed range or as ``next_fire_time`` does.
    """
    start, end = as_utc(start, "start"), as_utc(end, "end")
    if end <= start:
        raise ValueError("end must be after start")
    last = end - _TICK
    if schedule.interval_minutes is not None:
        times, earlier = latest_fires(
            schedule, anchor=anchor or start, lo=start, hi=last, limit=limit + 1
        )
        if earlier or len(times) > limit:
            raise TooManyOccurrences(f"the range holds more than {limit} occurrences")
        return times
    times = _walk(schedule, start, last, default_zone, cap=limit + 1)
    if len(times) > limit:
        raise TooManyOccurrences(f"the range holds more than {limit} occurrences")
    return times
