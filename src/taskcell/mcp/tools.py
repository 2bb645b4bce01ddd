"""The MCP tools and resources of taskcell, written for a model to use well.

Every tool talks to the taskcell API through an :class:`~taskcell.client.AsyncClient` made by
the server's :data:`Connector` for the request at hand (stdio: the key ``taskcell mcp`` was
given; HTTP: the caller's own Bearer key), so a tool sees and changes only the caller's tasks.
An error answer of the API comes back as a tool error (``is_error``) naming the tool argument
at fault, never as a crash of the session.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from taskcell.client import ApiError, AsyncClient, ConnectionFailed, Run, Task, TaskEvent
from taskcell.client.sync import DEFAULT_RECONNECT_FOR

#: Opens a client for the request behind ``ctx``.
Connector = Callable[[Context], AbstractAsyncContextManager[AsyncClient]]

INSTRUCTIONS = """\
taskcell runs tasks for AI agents, once or on a schedule, and keeps their history.
Create a task with create_task (pattern once, interval or daily), follow it with
wait_for_task or get_task_result, and manage schedules with pause_task, resume_task,
run_task_now and cancel_task. list_agents tells which agents can be given tasks.
Times are UTC unless a time zone (an IANA name such as Europe/Berlin) is given.
"""

#: API field names as the tools call them.
_ARGUMENT_OF_FIELD = {
    "agent_name": "agent",
    "schedule_config.interval_minutes": "interval_minutes",
    "schedule_config.daily_time": "daily_time",
    "schedule_config.timezone": "timezone",
    "text": "text",
    "query.status": "status",
    "query.limit": "limit",
    "query.cursor": "cursor",
    "cursor": "cursor",
    "path.task_id": "task_id",
}

RECENT_EVENTS = 20
DEFAULT_WAIT_SECONDS = 300.0
RESULT_COMPONENT = "scheduled_task_result"
FINAL = frozenset({"completed", "failed", "cancelled"})

TaskId = Annotated[
    str,
    Field(description="The task's id, as create_task or list_tasks answered it (32 hex digits)."),
]


PauseNote = Annotated[
    str | None,
    Field(description="Why the schedule is paused: one line, at most 500 characters."),
]

WaitSeconds = Annotated[
    float,
    Field(
        description="The longest to wait, in seconds (1 to 3600); the task goes on after it.",
        ge=1,
        le=3600,
    ),
]


def tool_error(error: ApiError | ConnectionFailed) -> ToolError:
    """A tool error for an API error: its status and message, each field named as the tool's
    argument (``schedule_config.timezone`` is ``timezone``)."""
    if isinstance(error, ConnectionFailed):
        return ToolError(f"taskcell is unreachable: {error}")
    lines = [f"taskcell refused ({error.code}): {error.msg}"]
    for item in error.fields:
        argument = _ARGUMENT_OF_FIELD.get(item.field, item.field)
        lines.append(f"argument '{argument}': {item.message}")
    return ToolError("\n".join(lines))


def task_summary(task: Task) -> dict[str, Any]:
    """What a model needs of a task (the full object is the ``task://{id}`` resource)."""
    summary: dict[str, Any] = {
        "task_id": task.task_id,
        "title": task.title or task.query[:80],
        "agent": task.agent_name,
        "status": task.status.value,
        "pattern": task.pattern.value,
    }
    if task.schedule_config is not None:
        summary["schedule"] = task.schedule_config.model_dump(exclude_none=True)
        summary["paused"] = task.paused
        if task.pause_note:
            summary["pause_note"] = task.pause_note
        summary["next_run_at"] = task.next_run_at.isoformat() if task.next_run_at else None
    if task.error_message:
        summary["error"] = task.error_message
    return summary


def run_summary(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "status": run.status.value,
        "scheduled_for": run.scheduled_for.isoformat() if run.scheduled_for else None,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "result": run.result,
        "error": run.error,
    }


#: Each recurring pattern's own argument, and how it is said when missing.
_PATTERN_ARGUMENT = {
    "interval": ("interval_minutes", "minutes between runs"),
    "daily": ("daily_time", "HH:MM, 24-hour"),
    "cron": ("cron", "5 fields, e.g. '0 9 * * MON-FRI'"),
}


def _schedule(
    pattern: str,
    interval_minutes: int | None,
    daily_time: str | None,
    timezone: str | None,
    cron: str | None = None,
) -> dict[str, Any] | None:
    """The API's ``schedule_config`` for a tool's pattern; refuses arguments that do not fit."""
    given = {"interval_minutes": interval_minutes, "daily_time": daily_time, "cron": cron}
    if pattern == "once":
        for name, value in (*given.items(), ("timezone", timezone)):
            if value is not None:
                raise ToolError(f"argument '{name}': only for a recurring pattern")
        return None
    own, how = _PATTERN_ARGUMENT[pattern]
    if given[own] is None:
        raise ToolError(f"argument '{own}': required for pattern '{pattern}' ({how})")
    for name, value in given.items():
        if name != own and value is not None:
            other = next(p for p, (arg, _) in _PATTERN_ARGUMENT.items() if arg == name)
            raise ToolError(f"argument '{name}': only for pattern '{other}'")
    return {own: given[own], "timezone": timezone}


def _result_of(event: TaskEvent) -> str | None:
    """A recurring run's result text, from its ``scheduled_task_result`` component."""
    if event.event != "component_generator" or event.component_type != RESULT_COMPONENT:
        return None
    content = event.content or ""
    try:
        decoded = json.loads(content)
    except ValueError:
        return content
    return str(decoded.get("result", "")) if isinstance(decoded, dict) else content


@dataclass
class Waited:
    """What a wait saw: the texts (a once task's answer, or a recurring task's run results)."""

    texts: list[str] = field(default_factory=list)
    message: dict[str, str] = field(default_factory=dict)
    status: str | None = None

    def answer(self, task_id: str, timed_out: bool) -> dict[str, Any]:
        found = {"task_id": task_id, "status": self.status, "results": self.texts}
        return {**found, "timed_out": True} if timed_out else found


async def _read(
    client: AsyncClient, ctx: Context, task: Task, results: int, seen: Waited, patience: float
) -> None:
    """Read the task's events into ``seen``, reporting progress, until the wait is over."""
    recurring = task.pattern.value == "recurring"
    async for event in client.watch(task.task_id, reconnect_for=patience):
        if not recurring:
            if event.event in ("message_chunk", "message") and event.data.role == "agent":
                key, piece = event.data.item_id, event.content or ""
                before = seen.message.get(key, "") if event.event == "message_chunk" else ""
                seen.message[key] = before + piece
                seen.texts = ["".join(seen.message.values())]
            await ctx.report_progress(event.seq, None, event.event)
            continue
        text = _result_of(event)
        if text is not None:
            seen.texts.append(text)
            await ctx.report_progress(len(seen.texts), results, f"result {len(seen.texts)}: {text}")
            if len(seen.texts) >= results:
                seen.texts = seen.texts[-results:]
                return
        elif event.event == "task_cancelled":
            return


async def follow(
    client: AsyncClient,
    ctx: Context,
    task: Task,
    results: int,
    seconds: float,
    patience: float = DEFAULT_RECONNECT_FOR,
) -> dict[str, Any]:
    """Wait, reporting progress, until a once task is finished or a recurring task has
    ``results`` run results, or ``seconds`` have passed (``timed_out``: the task goes
    on). Answers its status and texts. A server out of reach for ``patience`` seconds ends
    the wait with :class:`ConnectionFailed`."""
    seen = Waited()
    with anyio.move_on_after(seconds) as waiting:
        await _read(client, ctx, task, results, seen, patience)
    seen.status = (await client.tasks.get(task.task_id)).status.value
    return seen.answer(task.task_id, waiting.cancelled_caught)


READING = ToolAnnotations(read_only_hint=True, open_world_hint=False)
CHANGING = ToolAnnotations(destructive_hint=False, idempotent_hint=True, open_world_hint=False)
ACTING = ToolAnnotations(open_world_hint=False)
ENDING = ToolAnnotations(destructive_hint=True, open_world_hint=False)


class Tools:
    """The tools; each opens a client with ``connect`` for its request."""

    def __init__(self, connect: Connector, patience: float = DEFAULT_RECONNECT_FOR) -> None:
        self._connect = connect
        #: How long a wait keeps trying to reach a server that went away.
        self._patience = patience

    @asynccontextmanager
    async def _api(self, ctx: Context) -> AsyncIterator[AsyncClient]:
        """A client for this request; API errors become tool errors naming the argument."""
        async with self._connect(ctx) as client:
            try:
                yield client
            except (ApiError, ConnectionFailed) as exc:
                raise tool_error(exc) from exc

    async def create_task(
        self,
        ctx: Context,
        query: Annotated[
            str,
            Field(description="What to ask the agent, in words (1 to 32,000 characters)."),
        ],
        agent: Annotated[
            str,
            Field(description="The agent to ask: a name from list_agents, e.g. 'echo' or 'clock'."),
        ],
        pattern: Annotated[
            Literal["once", "interval", "daily", "cron"],
            Field(
                description="'once' runs now; 'interval' repeats every interval_minutes; "
                "'daily' runs every day at daily_time in timezone; 'cron' runs on a cron "
                "expression in timezone."
            ),
        ] = "once",
        interval_minutes: Annotated[
            int | None,
            Field(
                description="For pattern 'interval': minutes between runs, 1 to 525600 "
                "(60 = hourly, 1440 = daily).",
                examples=[5, 60],
            ),
        ] = None,
        daily_time: Annotated[
            str | None,
            Field(
                description="For pattern 'daily': the wall-clock time 'HH:MM', 24-hour, "
                "00:00 to 23:59.",
                examples=["09:00", "18:30"],
            ),
        ] = None,
        cron: Annotated[
            str | None,
            Field(
                description="For pattern 'cron': 5 fields (minute hour day-of-month month "
                "day-of-week) read in timezone, or @hourly, @daily, @weekly, @monthly.",
                examples=["0 9 * * MON-FRI", "*/15 * * * *", "@daily"],
            ),
        ] = None,
        timezone: Annotated[
            str | None,
            Field(
                description="The schedule's time zone, an IANA name. For 'daily' and 'cron' "
                "the times are read in it (default: the server's zone).",
                examples=["Europe/Berlin", "America/New_York", "UTC"],
            ),
        ] = None,
        title: Annotated[
            str | None, Field(description="A short title shown in lists (optional).")
        ] = None,
        run_immediately: Annotated[
            bool,
            Field(
                description="For a schedule: also run once right now (default true); "
                "false waits for the first occurrence."
            ),
        ] = True,
        wait: Annotated[
            bool,
            Field(
                description="For pattern 'once': wait until the task is finished and answer "
                "its result (progress is reported while it streams)."
            ),
        ] = False,
        timeout_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS,
        overlap: Annotated[
            Literal["skip", "buffer_one", "buffer_all", "cancel_other", "allow_all"] | None,
            Field(
                description="For a schedule: what an occurrence does while a run is still "
                "going: 'skip' it (the default), queue one ('buffer_one') or all "
                "('buffer_all'), 'cancel_other' (stop the running one), or 'allow_all' "
                "(run side by side)."
            ),
        ] = None,
        catchup: Annotated[
            Literal["coalesce", "skip", "all"] | None,
            Field(
                description="For a schedule: what runs of the occurrences missed while the "
                "server was down: one for the latest ('coalesce', the default), none "
                "('skip'), or every one in order ('all')."
            ),
        ] = None,
        run_timeout_seconds: Annotated[
            int | None,
            Field(
                description="Cancel a run that goes on longer than this, 1 to 604800 "
                "seconds, recorded failed (no limit by default).",
                examples=[300, 3600],
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Create a task for an agent: once, every N minutes, or daily at a time in a zone.

        Answers the task (its task_id, status, schedule and next_run_at in UTC). Examples:
        once: {"query": "Summarise the news", "agent": "echo"};
        every 30 minutes: {"query": "What time is it?", "agent": "clock",
        "pattern": "interval", "interval_minutes": 30};
        daily at 9 in Berlin: {"query": "...", "agent": "...", "pattern": "daily",
        "daily_time": "09:00", "timezone": "Europe/Berlin"}; weekdays at 9 in New York:
        {"query": "...", "agent": "...", "pattern": "cron", "cron": "0 9 * * MON-FRI",
        "timezone": "America/New_York"}.
        """
        schedule = _schedule(pattern, interval_minutes, daily_time, timezone, cron)
        async with self._api(ctx) as client:
            task = await client.tasks.create(
                query,
                agent=agent,
                title=title,
                schedule=schedule,
                run_immediately=None if schedule is None else run_immediately,
                overlap=overlap,
                catchup=catchup,
                run_timeout_seconds=run_timeout_seconds,
            )
            answer = task_summary(task)
            if wait and schedule is None:
                waited = await follow(client, ctx, task, 1, timeout_seconds, self._patience)
                answer["status"] = waited["status"]
                answer["result"] = (waited["results"] or [""])[0]
                if waited.get("timed_out"):
                    answer["timed_out"] = True
        return answer

    async def list_tasks(
        self,
        ctx: Context,
        status: Annotated[
            Literal["pending", "running", "waiting_input", "completed", "failed", "cancelled"]
            | None,
            Field(description="Only tasks in this status (a recurring task is 'running')."),
        ] = None,
        agent: Annotated[str | None, Field(description="Only this agent's tasks.")] = None,
        limit: Annotated[int, Field(description="Tasks per page, 1 to 500.")] = 20,
        cursor: Annotated[
            str | None, Field(description="next_cursor of the previous answer, for more.")
        ] = None,
    ) -> dict[str, Any]:
        """List your tasks, newest first: {"tasks": [...], "next_cursor": str or null}."""
        async with self._api(ctx) as client:
            page = await client.tasks.list(
                status=status, agent_name=agent, limit=limit, cursor=cursor
            )
        return {"tasks": [task_summary(t) for t in page.items], "next_cursor": page.next_cursor}

    async def get_task(self, ctx: Context, task_id: TaskId) -> dict[str, Any]:
        """The task: status, schedule, next_run_at (UTC), attempts, error, metadata."""
        async with self._api(ctx) as client:
            task = await client.tasks.get(task_id)
        return task.model_dump(mode="json")

    async def get_task_result(self, ctx: Context, task_id: TaskId) -> dict[str, Any]:
        """The latest run's outcome: its text ('result') when it completed, else its status
        and error. For a recurring task, the most recent occurrence."""
        async with self._api(ctx) as client:
            task = await client.tasks.get(task_id)
            runs = await client.tasks.runs(task_id, limit=1)
        answer: dict[str, Any] = {"task_id": task_id, "task_status": task.status.value}
        if not runs.items:
            return {**answer, "result": None, "note": "no run yet"}
        return {**answer, **run_summary(runs.items[0])}

    async def wait_for_task(
        self,
        ctx: Context,
        task_id: TaskId,
        results: Annotated[
            int,
            Field(
                description="For a recurring task: how many run results to wait for, counted "
                "from its creation (1 to 100).",
                ge=1,
                le=100,
            ),
        ] = 1,
        timeout_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS,
    ) -> dict[str, Any]:
        """Wait, reporting progress, until a once task is finished (answers its result) or a
        recurring task has `results` run results (answers the latest ones). After
        timeout_seconds it answers what it has with "timed_out": true; the task goes on."""
        async with self._api(ctx) as client:
            task = await client.tasks.get(task_id)
            return await follow(client, ctx, task, results, timeout_seconds, self._patience)

    async def cancel_task(self, ctx: Context, task_id: TaskId) -> dict[str, Any]:
        """Cancel a task: stops its run and, for a schedule, every future run. Final."""
        async with self._api(ctx) as client:
            cancelled = await client.tasks.cancel(task_id)
        return {"task_id": task_id, "cancelled": cancelled.success}

    async def pause_task(
        self, ctx: Context, task_id: TaskId, note: PauseNote = None
    ) -> dict[str, Any]:
        """Pause a recurring task's schedule (no runs until resume_task), optionally with a
        note saying why (shown with the task until it is resumed)."""
        async with self._api(ctx) as client:
            return task_summary(await client.tasks.pause(task_id, note=note))

    async def resume_task(self, ctx: Context, task_id: TaskId) -> dict[str, Any]:
        """Resume a paused recurring task; occurrences missed while paused are skipped."""
        async with self._api(ctx) as client:
            return task_summary(await client.tasks.resume(task_id))

    async def run_task_now(self, ctx: Context, task_id: TaskId) -> dict[str, Any]:
        """Run a recurring task once now, outside its schedule (also while paused)."""
        async with self._api(ctx) as client:
            return {"task_id": task_id, **run_summary(await client.tasks.run_now(task_id))}

    async def upcoming_runs(
        self,
        ctx: Context,
        task_id: TaskId,
        count: Annotated[
            int, Field(ge=1, le=100, description="How many fire times to list (1 to 100).")
        ] = 5,
    ) -> dict[str, Any]:
        """The next times a recurring task will run: each in UTC ('at') and in its schedule's
        zone ('local'), with the schedule in words. A paused task lists the times it would run
        once resumed."""
        async with self._api(ctx) as client:
            upcoming = await client.tasks.upcoming(task_id, count=count)
        return upcoming.model_dump(mode="json")

    async def answer_task(
        self,
        ctx: Context,
        task_id: TaskId,
        text: Annotated[str, Field(description="Your answer to the agent's question.")],
    ) -> dict[str, Any]:
        """Answer a task whose status is 'waiting_input' (the agent asked a question)."""
        async with self._api(ctx) as client:
            return task_summary(await client.tasks.answer(task_id, text))

    async def list_agents(self, ctx: Context) -> dict[str, Any]:
        """The agents tasks can be given to: name, description, skills, reachable."""
        async with self._api(ctx) as client:
            agents = await client.agents.list()
        return {"agents": [agent.model_dump(mode="json") for agent in agents]}

    async def task_resource(self, task_id: str, ctx: Context) -> str:
        """``task://{task_id}``: the task and its latest history items, as JSON."""
        try:
            async with self._api(ctx) as client:
                task = await client.tasks.get(task_id)
                recent: list[dict[str, Any]] = []
                async for item in client.conversations.iter_items(
                    task.conversation_id, page_size=500
                ):
                    if item.task_id == task_id:
                        recent.append(item.model_dump(mode="json"))
                        del recent[:-RECENT_EVENTS]
        except ToolError as exc:
            raise ResourceError(str(exc)) from exc
        return json.dumps({"task": task.model_dump(mode="json"), "recent": recent})


def build_server(connect: Connector, *, patience: float = DEFAULT_RECONNECT_FOR) -> MCPServer:
    """The MCP server with taskcell's tools and the ``task://{task_id}`` resource.

    ``upcoming_runs`` is not among the tools: taskcell has no schedules API to answer it.
    """
    # The SDK calls logging.basicConfig when it is built: a handler on the root logger for
    # that moment leaves the process's own logging as it is.
    root = logging.getLogger()
    keep = logging.NullHandler()
    root.addHandler(keep)
    try:
        server = MCPServer("taskcell", title="taskcell", instructions=INSTRUCTIONS, version="0.1.0")
    finally:
        root.removeHandler(keep)
    tools = Tools(connect, patience)
    for fn, hints in (
        (tools.create_task, ACTING),
        (tools.list_tasks, READING),
        (tools.get_task, READING),
        (tools.get_task_result, READING),
        (tools.wait_for_task, READING),
        (tools.cancel_task, ENDING),
        (tools.pause_task, CHANGING),
        (tools.resume_task, CHANGING),
        (tools.run_task_now, ACTING),
        (tools.upcoming_runs, READING),
        (tools.answer_task, ACTING),
        (tools.list_agents, READING),
    ):
        server.add_tool(fn, annotations=hints)
    server.resource(
        "task://{task_id}",
        name="task",
        description="A task (JSON) with its latest history items (messages, results, errors).",
        mime_type="application/json",
    )(tools.task_resource)
    return server
