"""The checker: reads the end state (database and readers' streams) and lists violations.

One function per invariant; each answers the violations it found, with the time it happened
where the evidence carries one, so the report can charge it to the fault that was on then.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .snapshot import Snapshot
from .workload import Acked, Stream

OCCURRENCES = "every occurrence has exactly one run"
SETTLED = "settled once, by the run that owns it"
CONCURRENT = "no two attempts running at once"
LOG = "log contiguous, one done, nothing after"
STUCK = "nothing running without a live lease"
ALIVE = "every process alive"
STREAMS = "every stream equals the log"

INVARIANTS = [OCCURRENCES, SETTLED, CONCURRENT, LOG, STUCK, ALIVE, STREAMS]

FINAL = {"completed", "failed", "cancelled"}
SETTLING = {"task_completed": "completed", "task_failed": "failed", "task_cancelled": "cancelled"}
OPEN_RUN = {"queued", "running"}


@dataclass
class Violation:
    invariant: str
    subject: str
    detail: str
    at: datetime | None = None


def _when(event: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(event["created_at"]))
    except (KeyError, ValueError):
        return None


def occurrences(snap: Snapshot, settle: timedelta) -> list[Violation]:
    """Each grid time of every interval task, due before ``now - settle``, has exactly one run
    (``skipped`` counts); no run serves a time off the grid."""
    found: list[Violation] = []
    cut = snap.now - settle
    for task_id, task in snap.tasks.items():
        config = task.get("schedule_config") or {}
        if task["pattern"] != "recurring" or not config.get("interval_minutes"):
            continue
        step = timedelta(minutes=int(config["interval_minutes"]))
        anchor: datetime = task["started_at"]
        runs = snap.runs_of(task_id)
        times = Counter(r["scheduled_for"] for r in runs)
        end = cut
        if task["paused"] or task["status"] != "running":
            # Paused after failures, or ended: nothing is due after its last run.
            end = min(cut, max(times, default=anchor))
        due = anchor
        while due <= end:
            if times[due] == 0:
                found.append(Violation(OCCURRENCES, task_id, f"no run for {due:%H:%M:%S}", due))
            due += step
        for when, count in times.items():
            if count > 1:
                found.append(Violation(OCCURRENCES, task_id, f"{count} runs for {when}", when))
            if when is not None and (when - anchor) % step:
                found.append(Violation(OCCURRENCES, task_id, f"a run off the grid at {when}", when))
    return found


def settled(snap: Snapshot) -> list[Violation]:
    """A once task is settled by one closing event, written by its newest run, which is closed
    with the same outcome; a recurring result comes from a run that was not interrupted."""
    found: list[Violation] = []
    for task_id, task in snap.tasks.items():
        log, runs = snap.log_of(task_id), snap.runs_of(task_id)
        by_id = {r["run_id"]: r for r in runs}
        if task["pattern"] == "recurring":
            results = Counter(
                str(e["data"].get("item_id", "")).removesuffix(":result")
                for e in log
                if str(e["data"].get("item_id", "")).endswith(":result")
            )
            for run_id, count in results.items():
                run = by_id.get(run_id)
                status = run["status"] if run else "missing"
                if count > 1 or status in {"interrupted", "missing"}:
                    found.append(
                        Violation(
                            SETTLED,
                            task_id,
                            f"{count} result(s) published by run {run_id[:8]} ({status})",
                            run["finished_at"] if run else None,
                        )
                    )
            continue
        closing = [e for e in log if e["event"] in SETTLING]
        if len(closing) > 1:
            kinds = ", ".join(f"{e['event']}@{e['seq']}" for e in closing)
            found.append(
                Violation(
                    SETTLED, task_id, f"settled {len(closing)} times: {kinds}", _when(closing[1])
                )
            )
        newest = runs[-1] if runs else None
        for event in closing:
            run_id = event["data"].get("run_id")
            if run_id is None or newest is None:
                continue
            if run_id != newest["run_id"]:
                old = by_id.get(run_id)
                found.append(
                    Violation(
                        SETTLED,
                        task_id,
                        f"{event['event']}@{event['seq']} written by attempt "
                        f"{old['attempt'] if old else '?'} ({old['status'] if old else 'no run'})"
                        f", not the newest attempt {newest['attempt']}",
                        _when(event),
                    )
                )
        completed = [r for r in runs if r["status"] == "completed"]
        if len(completed) > 1 or (completed and completed[-1] is not newest):
            found.append(
                Violation(
                    SETTLED,
                    task_id,
                    "completed runs: attempts "
                    + ", ".join(str(r["attempt"]) for r in completed)
                    + f" of {len(runs)}",
                    completed[-1]["finished_at"],
                )
            )
        if task["status"] in FINAL and newest is not None and newest["status"] != task["status"]:
            if not (task["status"] == "failed" and newest["status"] == "interrupted"):
                found.append(
                    Violation(
                        SETTLED,
                        task_id,
                        f"task {task['status']} but its newest run is {newest['status']}",
                        newest["finished_at"],
                    )
                )
    return found


def concurrent(snap: Snapshot) -> list[Violation]:
    """In a once task's log, no attempt writes after a later attempt has begun."""
    found: list[Violation] = []
    for task_id, task in snap.tasks.items():
        if task["pattern"] != "once":
            continue
        attempt_of = {r["run_id"]: r["attempt"] for r in snap.runs_of(task_id)}
        highest, since = 0, 0
        for event in snap.log_of(task_id):
            attempt = attempt_of.get(event["data"].get("run_id") or "")
            if attempt is None:
                continue
            if attempt > highest:
                highest, since = attempt, event["seq"]
            elif attempt < highest:
                found.append(
                    Violation(
                        CONCURRENT,
                        task_id,
                        f"attempt {attempt} wrote {event['event']}@{event['seq']} after "
                        f"attempt {highest} began at seq {since}",
                        _when(event),
                    )
                )
                break
    return found


def logs(snap: Snapshot, acked: dict[str, Acked]) -> list[Violation]:
    """Every log is numbered 1..n; every acknowledged task has its opening events; a finished
    once task's log ends at its only ``done``, an unfinished one has none."""
    found: list[Violation] = []
    for task_id, info in acked.items():
        task = snap.tasks.get(task_id)
        kinds = [e["event"] for e in snap.log_of(task_id)]
        if task is None:
            found.append(Violation(LOG, task_id, "acknowledged (201) but not stored"))
        elif info.pattern == "once" and "message" not in kinds[:4]:
            found.append(
                Violation(LOG, task_id, f"opening events missing: {kinds[:4]}", task["updated_at"])
            )
    for task_id, task in snap.tasks.items():
        log = snap.log_of(task_id)
        seqs = [e["_stored_seq"] for e in log]
        if seqs != list(range(1, len(seqs) + 1)):
            missing = sorted(set(range(1, max(seqs, default=0) + 1)) - set(seqs))
            resumed = [e for e in log if missing and e["_stored_seq"] > missing[0]]
            found.append(
                Violation(
                    LOG,
                    task_id,
                    f"gaps in the log: missing seq {missing[:5]}",
                    _when(resumed[0]) if resumed else task["updated_at"],
                )
            )
        if any(e["seq"] != e["_stored_seq"] for e in log):
            found.append(Violation(LOG, task_id, "an event's body names another seq"))
        if task["pattern"] != "once":
            continue
        dones = [e for e in log if e["event"] == "done"]
        if task["status"] in FINAL:
            if len(dones) != 1:
                found.append(
                    Violation(
                        LOG,
                        task_id,
                        f"{len(dones)} done events in a finished task",
                        _when(dones[1]) if len(dones) > 1 else task["updated_at"],
                    )
                )
            if dones and log[-1] is not dones[0]:
                after = [e["event"] for e in log if e["seq"] > dones[0]["seq"]]
                found.append(
                    Violation(
                        LOG,
                        task_id,
                        f"{len(after)} events after done@{dones[0]['seq']}: "
                        f"{Counter(after).most_common(3)}",
                        _when(log[-1]),
                    )
                )
        elif dones:
            found.append(
                Violation(LOG, task_id, f"done in a {task['status']} task", _when(dones[0]))
            )
    return found


def stuck(snap: Snapshot, lease: timedelta) -> list[Violation]:
    """Once the faults have ended: no open run with a lease long expired, no once task running
    without an open run under a live lease, no once task left pending."""
    found: list[Violation] = []
    for task_id, task in snap.tasks.items():
        runs = snap.runs_of(task_id)
        for run in runs:
            expires = run["lease_expires_at"]
            if run["status"] in OPEN_RUN and (expires is None or expires < snap.now - lease):
                found.append(
                    Violation(
                        STUCK,
                        task_id,
                        f"run {run['run_id'][:8]} {run['status']} with its lease expired "
                        f"{(snap.now - expires).total_seconds() if expires else '?'} s ago",
                    )
                )
        if task["pattern"] != "once":
            continue
        live = [
            r
            for r in runs
            if r["status"] == "running" and (r["lease_expires_at"] or snap.now) > snap.now
        ]
        if task["status"] == "running" and not live:
            found.append(
                Violation(
                    STUCK, task_id, "running with no run under a live lease", task["updated_at"]
                )
            )
        if task["status"] == "pending" and task["updated_at"] < snap.now - 2 * lease:
            found.append(
                Violation(STUCK, task_id, "pending, untouched for two leases", task["updated_at"])
            )
    return found


def streams(snap: Snapshot, read: dict[str, Stream]) -> list[Violation]:
    """Every reader saw exactly the stored log, from 1 to its end, once each."""
    found: list[Violation] = []
    for task_id, stream in read.items():
        log = snap.log_of(task_id)
        seen = [e["seq"] for e in stream.events]
        where = "→".join(stream.nodes)
        if not stream.ended:
            task = snap.tasks.get(task_id, {})
            runs = snap.runs_of(task_id)
            newest = f"{runs[-1]['status']} by {runs[-1]['owner']}" if runs else "none"
            found.append(
                Violation(
                    STREAMS,
                    task_id,
                    f"stream never ended (read {len(seen)} of {len(log)} events, on {where}; "
                    f"task {task.get('status')}, newest run {newest}, last event "
                    f"{log[-1]['event'] if log else '-'})",
                    task.get("updated_at"),
                )
            )
            continue
        if seen != list(range(1, len(seen) + 1)):
            dup = [s for s, n in Counter(seen).items() if n > 1]
            gaps = sorted(set(range(1, max(seen) + 1)) - set(seen))
            found.append(
                Violation(
                    STREAMS,
                    task_id,
                    f"seqs not 1..n: duplicates {dup[:5]}, missing {gaps[:5]}, on {where}",
                )
            )
            continue
        stored = [{k: v for k, v in e.items() if k != "_stored_seq"} for e in log]
        if stream.events != stored:
            differ = next(
                (i for i, (a, b) in enumerate(zip(stream.events, stored, strict=False)) if a != b),
                min(len(seen), len(stored)),
            )

            found.append(
                Violation(
                    STREAMS,
                    task_id,
                    f"read {len(seen)} events, log has {len(stored)}; first difference at "
                    f"seq {differ + 1}: read {_kind(stream.events, differ)}, stored "
                    f"{_kind(stored, differ)}",
                )
            )
    return found


def _kind(events: list[dict[str, Any]], index: int) -> str:
    return str(events[index]["event"]) if index < len(events) else "(end)"
