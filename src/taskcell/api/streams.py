"""Server-Sent Event streams: a task's events, replayed then live.

Each message carries ``id: <seq>`` and one ``data:`` line of the event's JSON. A reader resumes
after ``Last-Event-ID`` (or ``?after=N``); a comment line goes out at least every 15 s; the
stream ends after ``done`` once the task is finished (a recurring task's stream stays open
across runs). A reader that disconnects only stops reading: the task goes on. A reader whose
connection takes nothing for ``sse_idle_seconds`` (its buffers are full: it stopped reading) is
disconnected, so it holds no memory or slot for longer than that.

Resume points are checked before a stream starts: a ``Last-Event-ID`` or ``after`` outside the
signed 64-bit range the stores hold is refused, never a stream cut half-way.

Retention (taskcell.engine.pruner) removes a log's oldest events. A reader resuming before what is
still stored gets a ``history_truncated`` event first (its ``id`` and ``seq`` the last seq removed,
its payload's ``first_seq`` the first still stored), then the stored events; so does a reader
whose next events were removed while it read (by another process of a cluster).

Long logs (a recurring task after months of runs) are read in parts: ``?from=latest_run`` starts
at the latest run's first event, ``?from=run:<run_id>`` at that run's, and ``?before=N`` ends the
stream once every event before ``N`` is sent, so a page shows the latest run at once and loads
older runs only when asked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from taskcell.api.auth import Caller, caller
from taskcell.api.body import JsonBodyRoute
from taskcell.api.deps import TaskIdPath, engine_of, visible_task
from taskcell.api.envelope import ApiError
from taskcell.api.routes_tasks import ERRORS, build_task
from taskcell.api.schemas import StreamCreate, TaskCreate
from taskcell.domain.events import EventType
from taskcell.domain.models import Run, Task, utcnow
from taskcell.engine.engine import Engine

PING_SECONDS = 15
#: The largest sequence number a store holds (a signed 64-bit integer).
MAX_SEQ = 2**63 - 1

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["streams"], responses=ERRORS, route_class=JsonBodyRoute)

CallerDep = Annotated[Caller, Depends(caller)]
EngineDep = Annotated[Engine, Depends(engine_of)]

_SSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "the task's events"}
}


async def event_stream(
    engine: Engine,
    task_id: str,
    after: int,
    *,
    end_at_first_done: bool = False,
    before: int | None = None,
) -> AsyncIterator[bytes]:
    """The events' SSE frames (made once per event, shared by every reader), several per
    write when several are waiting; with ``before``, only those before that seq."""
    if before is not None and after >= before - 1:
        return
    task = await engine.get_task(task_id)
    if task is not None:
        removed = await engine.log_start(task_id)
        if after < removed:
            yield await truncated_frame(engine, task, removed)
            after = removed
            if before is not None and after >= before - 1:
                return
    if task is not None and task.is_finished() and after >= await engine.last_seq(task_id):
        return
    last = after
    async for batch in engine.subscribe_batches(task_id, after=after):
        if batch[0].seq > last + 1 and task is not None:
            removed = await engine.log_start(task_id)  # removed while this reader read?
            if removed > last:
                yield await truncated_frame(engine, task, removed)
        last = batch[-1].seq
        frames = []
        for event in batch:
            if before is not None and event.seq >= before:
                break
            frames.append(event.sse_frame())
            if before is not None and event.seq == before - 1:
                yield b"".join(frames)
                return
            if event.event is EventType.DONE and (
                end_at_first_done or await _ended(engine, task_id, event.seq)
            ):
                yield b"".join(frames)
                return
        yield b"".join(frames)


async def truncated_frame(engine: Engine, task: Task, removed: int) -> bytes:
    """The ``history_truncated`` message: events up to seq ``removed`` are gone; its payload
    names the first seq still stored (``removed + 1`` when none is)."""
    stored = await engine.read_events(task.task_id, after=removed, limit=1)
    first = stored[0].seq if stored else removed + 1
    body = {
        "seq": removed,
        "event": "history_truncated",
        "data": {
            "conversation_id": task.conversation_id,
            "thread_id": task.thread_id,
            "task_id": task.task_id,
            "run_id": None,
            "item_id": f"history-truncated-{task.task_id}",
            "role": "system",
            "agent_name": None,
            "payload": {
                "first_seq": first,
                "content": f"older events were removed (the log now starts at {first})",
            },
            "metadata": {},
        },
        "created_at": utcnow().isoformat(),
    }
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=True)
    return f"id: {removed}\r\ndata: {data}\r\n\r\n".encode()


async def _ended(engine: Engine, task_id: str, seq: int) -> bool:
    """Whether a ``done`` at ``seq`` ends the stream: the task is finished, nothing follows."""
    current = await engine.get_task(task_id)
    if current is None:
        return True
    return current.is_finished() and seq >= await engine.last_seq(task_id)


def _resume_point(last_event_id: str | None, after: int | None) -> int:
    if last_event_id is not None and last_event_id.strip():
        text = last_event_id.strip()
        # ASCII digits only: int() would also take "٣", "1_000" and "+5".
        if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_SEQ)):
            message = f"must be a whole number from 0 to {MAX_SEQ}, the seq of the last event"
            raise ApiError(
                400, f"Last-Event-ID {message}", [{"field": "Last-Event-ID", "message": message}]
            )
        value = int(text)
        if value > MAX_SEQ:
            message = f"must be at most {MAX_SEQ} (the largest seq a task can have)"
            raise ApiError(
                400, f"Last-Event-ID {message}", [{"field": "Last-Event-ID", "message": message}]
            )
        return value
    return after or 0


async def run_start(engine: Engine, task_id: str, run: Run) -> int:
    """The resume point just before ``run``'s first event (the log's end when it has none).

    The log is searched by halves, a few one-event reads whatever its length: an event is at
    or after the run's start when it belongs to the run or was written after the run was
    created (events of earlier runs, and the task's opening events, come before)."""
    last = await engine.last_seq(task_id)
    low, high = 0, last  # the first event of the run is after `low` and at most `high`
    found = last + 1
    while low < high:
        middle = (low + high) // 2
        events = await engine.read_events(task_id, after=middle, limit=1)
        if not events:
            break
        event = events[0]
        if event.run_id == run.run_id or event.created_at >= run.created_at:
            found = event.seq
            high = event.seq - 1
        else:
            low = event.seq
    return min(found, last + 1) - 1


async def _from_point(engine: Engine, task_id: str, start: str) -> int:
    """The resume point that ``?from=`` names: see :func:`task_events`."""
    if start in ("", "start"):
        return 0
    if start == "latest_run":
        latest = (await engine.list_runs(task_id, limit=1)).items
        return await run_start(engine, task_id, latest[0]) if latest else 0
    run_id = start.removeprefix("run:")
    if start.startswith("run:") and run_id:
        run = await engine.load_run(run_id)
        if run is not None and run.task_id == task_id:
            return await run_start(engine, task_id, run)
        message = f"names no run of this task: {run_id!r}"
        raise ApiError(404, f"from {message}", [{"field": "query.from", "message": message}])
    message = "must be 'start', 'latest_run' or 'run:<run_id>'"
    raise ApiError(400, f"from {message}", [{"field": "query.from", "message": message}])


class ReaderStream(EventSourceResponse):
    """An SSE answer that drops a reader who stopped reading (see the module docstring)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            logger.info(
                "stream reader disconnected: it took nothing for too long",
                extra={"path": scope.get("path"), "idle_seconds": self.send_timeout},
            )


def streaming(request: Request, events: AsyncIterator[bytes]) -> EventSourceResponse:
    shutdown = request.app.state.shutdown_event
    return ReaderStream(
        events,
        ping=PING_SECONDS,
        shutdown_event=shutdown,
        send_timeout=request.app.state.sse_idle_seconds,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/tasks/{task_id}/events", response_class=EventSourceResponse, responses=_SSE)
async def task_events(
    request: Request,
    task_id: TaskIdPath,
    who: CallerDep,
    engine: EngineDep,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    last_event_id: Annotated[str | None, Header()] = None,
    from_: Annotated[str | None, Query(alias="from", max_length=200)] = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_SEQ)] = None,
) -> EventSourceResponse:
    """SSE: the task's events after ``Last-Event-ID`` or ``?after=N`` (else from where
    ``?from=`` says: ``start``, ``latest_run`` or ``run:<run_id>``), then live; with
    ``?before=N`` only the events before seq ``N``, then the stream ends."""
    await visible_task(engine, who, task_id)
    start = _resume_point(last_event_id, after)
    if start == 0 and not (last_event_id or "").strip() and after is None and from_:
        start = await _from_point(engine, task_id, from_.strip())
    return streaming(request, event_stream(engine, task_id, start, before=before))


@router.post("/agents/stream", response_class=EventSourceResponse, responses=_SSE)
async def agent_stream(
    request: Request, body: StreamCreate, who: CallerDep, engine: EngineDep
) -> EventSourceResponse:
    """SSE: create a task and stream it (a recurring one: its controller and ``done``)."""
    create = TaskCreate(
        query=body.query,
        agent_name=body.agent_name,
        conversation_id=body.conversation_id,
        pattern=body.pattern,
        schedule_config=body.schedule_config,
        title=body.title,
    )
    task = build_task(create, who)  # in the caller's own conversation (ids are per user)
    task = await engine.submit(task)
    return streaming(request, event_stream(engine, task.task_id, 0, end_at_first_done=True))
