"""``taskcell export``: tasks with their runs, events and items as JSON lines, for archiving.

One JSON object per line and task: ``{"task", "events_removed_through", "runs", "events",
"items"}``. It is written piece by piece while the tasks, runs and events are read a page at
a time (keyset paging), so memory stays the same whatever the database or a task holds.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from taskcell.abc import TaskFilter
from taskcell.cli.common import err_console
from taskcell.cli.serve import DbOption, resolve_db_url
from taskcell.domain.clock import as_utc
from taskcell.settings import redact_url

if TYPE_CHECKING:
    from taskcell.abc import Store
    from taskcell.domain.models import Task

PAGE = 500


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def tasks_to_export(
    store: Store,
    *,
    task_id: str | None = None,
    conversation_id: str | None = None,
    since: datetime | None = None,
) -> AsyncIterator[Task]:
    """The tasks to export, newest first, a page at a time: one task, a conversation's
    (every user's), those created at or after ``since``, or every task."""
    if task_id is not None:
        task = await store.load(task_id)
        if task is not None:
            yield task
        return
    flt = TaskFilter(conversation_id=conversation_id)
    cursor: str | None = None
    while True:
        page = await store.list_tasks(flt, limit=PAGE, cursor=cursor)
        for task in page.items:
            if since is not None and task.created_at < since:
                return  # newest first: every later one is older still
            yield task
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


async def write_task(store: Store, task: Task, write: Callable[[str], object]) -> None:
    """One task's line, written in pieces (runs and events read a page at a time)."""
    write('{"task":' + _dumps(task.model_dump(mode="json")))
    write(',"events_removed_through":' + str(await store.log_start(task.task_id)))
    write(',"runs":[')
    cursor: str | None = None
    first = True
    while True:
        runs = await store.list_runs(task.task_id, limit=PAGE, cursor=cursor)
        for run in runs.items:
            write(("" if first else ",") + _dumps(run.model_dump(mode="json")))
            first = False
        if runs.next_cursor is None:
            break
        cursor = runs.next_cursor
    write('],"events":[')
    after, first = 0, True
    while True:
        events = await store.read_events(task.task_id, after=after, limit=PAGE)
        for event in events:
            write(("" if first else ",") + event.to_json())
            first = False
        if len(events) < PAGE:
            break
        after = events[-1].seq
    items = await store.task_items(task.task_id)
    write('],"items":' + _dumps([item.to_dict() for item in items]) + "}\n")


async def export_database(
    url: str,
    write: Callable[[str], object],
    *,
    task_id: str | None = None,
    conversation_id: str | None = None,
    since: datetime | None = None,
) -> int:
    """Write the chosen tasks of the database at ``url`` as JSON lines; answers how many."""
    from taskcell.stores.factory import store_from_url

    store = store_from_url(url)
    await store.open()
    count = 0
    try:
        found = tasks_to_export(
            store, task_id=task_id, conversation_id=conversation_id, since=since
        )
        async for task in found:
            await write_task(store, task, write)
            count += 1
    finally:
        await store.close()
    return count


def parse_since(value: str) -> datetime:
    """A date or an ISO 8601 datetime (without an offset: UTC)."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 datetime", param_hint="--since"
        ) from None
    return as_utc(moment) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def export(
    task: Annotated[str | None, typer.Option("--task", help="Only this task.")] = None,
    conversation: Annotated[
        str | None, typer.Option("--conversation", help="Only this conversation's tasks.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only tasks created at or after DATE (UTC unless given).",
            metavar="DATE",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Write tasks with their runs, events and items to standard output, one JSON object
    per line and task (for archiving before retention removes old history)."""
    from taskcell.cli.db import settings_or_exit

    if sum(value is not None for value in (task, conversation, since)) > 1:
        raise typer.BadParameter("give at most one of --task, --conversation and --since")
    moment = parse_since(since) if since is not None else None
    url = resolve_db_url(db) if db else settings_or_exit().database_url
    out = sys.stdout
    try:
        count = asyncio.run(
            export_database(
                url, out.write, task_id=task, conversation_id=conversation, since=moment
            )
        )
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
    except (OSError, sqlite3.Error, ValueError) as exc:
        err_console.print(f"cannot export {redact_url(url)}: {exc}", style="red", markup=False)
        raise typer.Exit(1) from None
    out.flush()
    if task is not None and count == 0:
        err_console.print(f"no task {task}", style="red", markup=False)
        raise typer.Exit(1)
    err_console.print(f"{count} task(s) exported", style="dim", markup=False)
