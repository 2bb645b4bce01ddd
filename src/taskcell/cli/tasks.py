"""``taskcell tasks ...``: create, list, show, watch and act on tasks through the HTTP API."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from taskcell.cli.client import CliClient, CliError, JsonObject, connect
from taskcell.cli.common import (
    DEFAULT_URL,
    KeyOption,
    UrlOption,
    console,
    parse_time,
    schedule_text,
    short_id,
    status_text,
    trimmed,
    when,
)
from taskcell.cli.follow import watch as follow_task
from taskcell.client import ApiError, TaskNotFound

#: How many upcoming fire times ``tasks show`` prints.
UPCOMING_SHOWN = 5

app = typer.Typer(help="Create, list, watch and act on tasks.", no_args_is_help=True)

FULL_ID_LENGTH = 32
TaskId = Annotated[str, typer.Argument(help="The task's id (or a unique prefix of it).")]


def resolve_id(client: CliClient, ref: str) -> str:
    """``ref`` as a full task id: itself if the server knows it, else the one task it prefixes."""
    if len(ref) >= FULL_ID_LENGTH:
        return ref
    try:
        return str(client.get_task(ref)["task_id"])
    except ApiError as exc:
        if exc.status != 404:
            raise
    found: list[str] = []
    for task in client.iter_tasks(limit=500):
        if str(task.get("task_id", "")).startswith(ref):
            found.append(str(task["task_id"]))
            if len(found) > 1:
                raise CliError(f"{ref!r} is the start of several task ids: give more of it")
    if not found:
        raise TaskNotFound(404, f"no task {ref!r}")
    return found[0]


def schedule_body(
    every: int | None, daily: str | None, tz: str | None, cron: str | None = None
) -> JsonObject | None:
    """The ``schedule_config`` for ``--every``/``--daily``/``--cron``/``--tz`` (None for a once
    task)."""
    options = (("--every", every), ("--daily", daily), ("--cron", cron))  # at most one
    if sum(value is not None for _, value in options) > 1:
        raise typer.BadParameter("give only one of --every, --daily and --cron")
    if every is None and daily is None and cron is None:
        if tz is not None:
            raise typer.BadParameter("--tz needs --daily, --cron or --every")
        return None
    return {"interval_minutes": every, "daily_time": daily, "cron": cron, "timezone": tz}


def _finish_exit(status: str | None) -> None:
    if status in ("failed", "cancelled"):
        raise typer.Exit(1)


def _watch(client: CliClient, task_id: str, after: int | None) -> None:
    try:
        state = follow_task(client, task_id, console, after=after)
    except KeyboardInterrupt:
        console.print("stopped watching; the task goes on.", style="dim")
        raise typer.Exit(0) from None
    _finish_exit(state.status)


@app.command()
def create(
    query: Annotated[str, typer.Argument(help="What to ask the agent.")],
    agent: Annotated[str, typer.Option("--agent", "-a", help="The agent to ask.")],
    title: Annotated[str | None, typer.Option(help="A short title.")] = None,
    conversation: Annotated[
        str | None, typer.Option(help="Add to this conversation (default: a new one).")
    ] = None,
    every: Annotated[
        int | None, typer.Option(help="Recurring: run every MINUTES.", metavar="MINUTES")
    ] = None,
    daily: Annotated[
        str | None, typer.Option(help="Recurring: run daily at HH:MM.", metavar="HH:MM")
    ] = None,
    cron: Annotated[
        str | None,
        typer.Option(
            help="Recurring: run on a cron expression ('0 9 * * MON-FRI', '@hourly').",
            metavar="EXPR",
        ),
    ] = None,
    tz: Annotated[
        str | None,
        typer.Option(help="Time zone of --daily or --cron (IANA name).", metavar="ZONE"),
    ] = None,
    no_run_now: Annotated[
        bool, typer.Option("--no-run-now", help="Recurring: wait for the first occurrence.")
    ] = False,
    max_attempts: Annotated[
        int | None, typer.Option(help="Attempts before a once task fails (1..20).")
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Then watch it live.")] = False,
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = None,
) -> None:
    """Create a task and queue it to run."""
    schedule = schedule_body(every, daily, tz, cron)
    body: JsonObject = {"query": query, "agent_name": agent}
    optional = {"title": title, "conversation_id": conversation, "max_attempts": max_attempts}
    body.update({k: v for k, v in optional.items() if v is not None})
    if schedule is not None:
        body["pattern"] = "recurring"
        body["schedule_config"] = {k: v for k, v in schedule.items() if v is not None}
    if no_run_now:
        body["run_immediately"] = False
    with connect(url, key) as client:
        task = client.create_task(body)
        line = Text("created task ")
        line.append(str(task.get("task_id")), style="bold cyan")
        line.append(" · ").append_text(status_text(task.get("status")))
        if task.get("pattern") == "recurring":
            line.append(f" · {schedule_text(task.get('schedule_config'))}")
            line.append(f" · next run {when(task.get('next_run_at'))}")
        console.print(line)
        if watch:
            _watch(client, str(task["task_id"]), None)


def _pattern_cell(task: JsonObject) -> str:
    if task.get("pattern") != "recurring":
        return "once"
    text = schedule_text(task.get("schedule_config"))
    return f"{text} (paused)" if task.get("paused") else text


def tasks_table(tasks: list[JsonObject]) -> Table:
    """The table ``tasks list`` prints."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("id", style="cyan", no_wrap=True)
    table.add_column("title", overflow="ellipsis", no_wrap=True, max_width=40)
    table.add_column("agent")
    table.add_column("pattern")
    table.add_column("status", no_wrap=True)
    table.add_column("next run", no_wrap=True)
    table.add_column("created", no_wrap=True)
    for task in tasks:
        table.add_row(
            short_id(task.get("task_id")),
            trimmed(task.get("title") or task.get("query")),
            str(task.get("agent_name") or ""),
            _pattern_cell(task),
            status_text(task.get("status")),
            when(task.get("next_run_at")),
            when(task.get("created_at")),
        )
    return table


@app.command("list")
def list_tasks(
    status: Annotated[str | None, typer.Option(help="Only tasks in this status.")] = None,
    pattern: Annotated[str | None, typer.Option(help="once or recurring.")] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent's tasks.")] = None,
    conversation: Annotated[str | None, typer.Option(help="Only this conversation.")] = None,
    limit: Annotated[int, typer.Option(help="Tasks per page (1..500).")] = 50,
    all_pages: Annotated[
        bool, typer.Option("--all", help="Every page, not just the first.")
    ] = False,
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = None,
) -> None:
    """List your tasks, newest first."""
    filters: dict[str, Any] = {
        "status": status,
        "pattern": pattern,
        "agent_name": agent,
        "conversation_id": conversation,
    }
    more = False
    with connect(url, key) as client:
        if all_pages:
            tasks = list(client.iter_tasks(limit=limit, **filters))
        else:
            page = client.list_tasks(limit=limit, **filters)
            tasks = list(page.get("items") or [])
            more = bool(page.get("next_cursor"))
    if not tasks:
        console.print("no tasks", style="dim")
        return
    console.print(tasks_table(tasks))
    if more:
        console.print(f"… more than {len(tasks)}: add --all to see every page", style="dim")


def task_grid(task: JsonObject) -> Table:
    """A task's fields, one per row."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows: list[tuple[str, Any]] = [
        ("id", task.get("task_id")),
        ("title", task.get("title")),
        ("query", task.get("query")),
        ("agent", task.get("agent_name")),
        ("status", status_text(task.get("status"))),
        ("pattern", _pattern_cell(task)),
        ("next run", when(task.get("next_run_at"))),
        ("attempt", f"{task.get('attempt', 0)} of {task.get('max_attempts', '?')}"),
        ("version", task.get("version")),
        ("conversation", task.get("conversation_id")),
        ("created", when(task.get("created_at"))),
        ("started", when(task.get("started_at"))),
        ("completed", when(task.get("completed_at"))),
    ]
    if task.get("error_message"):
        rows.append(("error", Text(str(task["error_message"]), style="red")))
    if task.get("remote_task_ids"):
        rows.append(("remote ids", ", ".join(task["remote_task_ids"])))
    if task.get("metadata"):
        rows.append(("metadata", json.dumps(task["metadata"])))
    for name, value in rows:
        grid.add_row(name, value if isinstance(value, Text) else Text(str(value or "-")))
    return grid


def runs_table(runs: list[JsonObject]) -> Table:
    """A task's runs, newest first."""
    table = Table(box=None, header_style="bold", pad_edge=False, title_justify="left")
    for name in ("run", "attempt", "scheduled for", "status", "started", "finished", "outcome"):
        table.add_column(name, no_wrap=name != "outcome")
    for run in runs:
        outcome = run.get("error") or run.get("result") or ""
        table.add_row(
            short_id(run.get("run_id")),
            str(run.get("attempt", "")),
            when(run.get("scheduled_for")),
            status_text(run.get("status")),
            when(run.get("started_at")),
            when(run.get("finished_at")),
            trimmed(str(outcome), 60),
        )
    return table


@app.command()
def show(task_id: TaskId, url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    """Show a task and its runs."""
    with connect(url, key) as client:
        full = resolve_id(client, task_id)
        task = client.get_task(full)
        runs = list(client.list_runs(full).get("items") or [])
        upcoming = _upcoming(client, task)
    console.print(task_grid(task))
    if upcoming is not None:
        console.print()
        console.print(upcoming)
    console.print()
    if runs:
        console.print(Text("runs", style="bold"))
        console.print(runs_table(runs))
    else:
        console.print("no runs yet", style="dim")


def _upcoming(client: CliClient, task: JsonObject) -> Group | None:
    """The next fire times of a live recurring task, in its zone and UTC (None otherwise)."""
    if task.get("pattern") != "recurring" or task.get("status") != "running":
        return None
    data = client.upcoming(str(task["task_id"]), count=UPCOMING_SHOWN)
    return upcoming_table(data)


def upcoming_table(data: JsonObject) -> Group:
    """``GET /upcoming``'s answer: the schedule in words, then one fire time a row."""
    paused = " (paused: these fire once resumed)" if data.get("paused") else ""
    heading = Text("next fires", style="bold").append(f" · {data.get('schedule', '')}{paused}")
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column(str(data.get("timezone") or "local"), no_wrap=True)
    table.add_column("UTC", no_wrap=True)
    for item in data.get("items") or []:
        local, utc = parse_time(item.get("local")), parse_time(item.get("at"))
        table.add_row(
            local.strftime("%a %Y-%m-%d %H:%M %z") if local else "-",
            utc.strftime("%Y-%m-%d %H:%M") if utc else "-",
        )
    return Group(heading, table)


@app.command("watch")
def watch_command(
    task_id: TaskId,
    after: Annotated[
        int | None, typer.Option(help="Start after this event sequence number.", metavar="N")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = None,
) -> None:
    """Watch a task live: its messages, reasoning, tool calls and status."""
    with connect(url, key) as client:
        _watch(client, resolve_id(client, task_id), after)


def _print_task_line(verb: str, task: JsonObject) -> None:
    line = Text(f"{verb} task ")
    line.append(str(task.get("task_id")), style="bold cyan")
    line.append(" · ").append_text(status_text(task.get("status")))
    if task.get("pattern") == "recurring":
        line.append(
            " · paused" if task.get("paused") else f" · next run {when(task.get('next_run_at'))}"
        )
    console.print(line)


@app.command()
def edit(
    task_id: TaskId,
    title: Annotated[str | None, typer.Option(help="A new title.")] = None,
    query: Annotated[str | None, typer.Option(help="Recurring: a new query.")] = None,
    every: Annotated[
        int | None, typer.Option(help="Recurring: run every MINUTES from now.", metavar="MINUTES")
    ] = None,
    daily: Annotated[
        str | None, typer.Option(help="Recurring: run daily at HH:MM.", metavar="HH:MM")
    ] = None,
    cron: Annotated[
        str | None, typer.Option(help="Recurring: run on a cron expression.", metavar="EXPR")
    ] = None,
    tz: Annotated[
        str | None,
        typer.Option(
            help="Time zone of the new --daily or --cron (alone: of the schedule it has).",
            metavar="ZONE",
        ),
    ] = None,
    max_attempts: Annotated[
        int | None, typer.Option(help="Recurring: attempts per run (1..20).")
    ] = None,
    metadata: Annotated[
        str | None, typer.Option(help="New metadata: a JSON object (replaces it).", metavar="JSON")
    ] = None,
    if_version: Annotated[
        int | None,
        typer.Option(help="Only if the task is still at this version (else 409).", metavar="N"),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = None,
) -> None:
    """Edit a task: only the options given change (a once task: --title and --metadata)."""
    changes: JsonObject = {
        k: v
        for k, v in {"title": title, "query": query, "max_attempts": max_attempts}.items()
        if v is not None
    }
    if metadata is not None:
        try:
            changes["metadata"] = json.loads(metadata)
        except ValueError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="--metadata") from None
    zone_only = tz is not None and every is None and daily is None and cron is None
    schedule = None if zone_only else schedule_body(every, daily, tz, cron)
    if schedule is not None:
        changes["schedule_config"] = {k: v for k, v in schedule.items() if v is not None}
    if not changes and not zone_only:
        raise typer.BadParameter(
            "nothing to change: give --title, --query, --every, --daily, --cron, --tz,"
            " --max-attempts or --metadata"
        )
    with connect(url, key) as client:
        full = resolve_id(client, task_id)
        if zone_only:
            current = client.get_task(full).get("schedule_config") or {}
            if not current.get("daily_time") and not current.get("cron"):
                raise CliError("--tz alone changes the zone of a daily or cron schedule")
            changes["schedule_config"] = {
                k: v for k, v in {**current, "timezone": tz}.items() if v is not None
            }
        edited = client.edit_task(full, changes, if_version=if_version)
    line = Text("edited task ")
    line.append(str(edited.get("task_id")), style="bold cyan")
    line.append(f" · version {edited.get('version')}")
    if edited.get("pattern") == "recurring":
        line.append(f" · {schedule_text(edited.get('schedule_config'))}")
        paused = edited.get("paused")
        line.append(" · paused" if paused else f" · next run {when(edited.get('next_run_at'))}")
    console.print(line)


@app.command()
def cancel(task_id: TaskId, url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    """Cancel a task (and its remote task and controller components)."""
    with connect(url, key) as client:
        answer = client.action(resolve_id(client, task_id), "cancel")
    if not answer.get("success", True):
        console.print(f"task {answer.get('task_id')} was not cancelled", style="yellow")
        raise typer.Exit(1)
    updated = len(answer.get("updated_component_ids") or [])
    console.print(f"cancelled task {answer.get('task_id')} ({updated} component(s) updated)")


@app.command()
def pause(task_id: TaskId, url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    """Pause a recurring task's schedule."""
    with connect(url, key) as client:
        _print_task_line("paused", client.action(resolve_id(client, task_id), "pause"))


@app.command()
def resume(task_id: TaskId, url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    """Resume a paused recurring task."""
    with connect(url, key) as client:
        _print_task_line("resumed", client.action(resolve_id(client, task_id), "resume"))


@app.command()
def run(task_id: TaskId, url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    """Run a recurring task now, once, outside its schedule."""
    with connect(url, key) as client:
        started = client.action(resolve_id(client, task_id), "run")
    line = Text("started run ")
    line.append(str(started.get("run_id")), style="bold cyan")
    line.append(f" of task {started.get('task_id')} · ").append_text(
        status_text(started.get("status"))
    )
    console.print(line)


@app.command()
def answer(
    task_id: TaskId,
    text: Annotated[str, typer.Argument(help="Your answer to the agent's question.")],
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = None,
) -> None:
    """Answer a task that waits for input."""
    with connect(url, key) as client:
        _print_task_line(
            "answered", client.action(resolve_id(client, task_id), "input", {"text": text})
        )


@app.command()
def delete(
    task_id: TaskId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = None,
) -> None:
    """Delete a finished task and its history."""
    with connect(url, key) as client:
        full = resolve_id(client, task_id)
        if not yes:
            typer.confirm(f"Delete task {full} and its history?", abort=True)
        client.delete_task(full)
    console.print(f"deleted task {full}")
