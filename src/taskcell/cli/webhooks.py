"""``taskcell webhooks ...``: subscriptions, their secrets and deliveries, through the API."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer
from rich.table import Table
from rich.text import Text

from taskcell.cli.client import JsonObject, connect
from taskcell.cli.common import DEFAULT_URL, KeyOption, UrlOption, console, trimmed, when

app = typer.Typer(
    help="Webhooks: tell other systems when tasks finish, fail or wait for input.",
    no_args_is_help=True,
)

WebhookId = Annotated[str, typer.Argument(help="The subscription's id (wh_...).")]
STATUS_STYLES = {"delivered": "green", "failed": "red", "pending": "yellow", "sending": "cyan"}


def _path(webhook_id: str, *rest: str) -> str:
    return "/".join(["/webhooks", quote(webhook_id, safe=""), *rest])


def webhooks_table(hooks: list[JsonObject]) -> Table:
    """The table ``webhooks list`` prints."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("id", "url", "events", "filter", "state"):
        table.add_column(name)
    for hook in hooks:
        scope = [f"task {hook['task_id']}"] if hook.get("task_id") else []
        if hook.get("agent_name"):
            scope.append(f"agent {hook['agent_name']}")
        if hook.get("disabled_at"):
            state = Text(f"disabled: {trimmed(hook.get('disabled_reason'), 40)}", style="red")
        elif hook.get("failing_since"):
            state = Text(f"failing since {when(hook['failing_since'])}", style="yellow")
        else:
            state = Text("ok", style="green")
        table.add_row(
            Text(str(hook["webhook_id"]), style="bold"),
            trimmed(hook.get("url"), 50),
            ", ".join(hook.get("event_types") or []),
            ", ".join(scope) or "all my tasks",
            state,
        )
    return table


def deliveries_table(items: list[JsonObject]) -> Table:
    """The table ``webhooks deliveries`` prints."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("delivery", "event", "task", "status", "attempts", "last answer", "next"):
        table.add_column(name)
    for item in items:
        status = str(item.get("status"))
        code = item.get("last_status_code")
        answer = f"{code} {trimmed(item.get('last_response'), 30)}" if code else ""
        table.add_row(
            str(item["delivery_id"]),
            str(item.get("event_type")),
            trimmed(item.get("task_id"), 14),
            Text(status, style=STATUS_STYLES.get(status, "")),
            str(item.get("attempts")),
            answer or trimmed(item.get("last_error"), 40),
            when(item.get("next_attempt_at")) if item.get("next_attempt_at") else "",
        )
    return table


@app.command("list")
def list_webhooks(url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    """List your webhook subscriptions (an admin: everyone's)."""
    with connect(url, key) as client:
        hooks = client.call("GET", "/webhooks")["items"]
    if not hooks:
        console.print("no webhooks", style="dim")
        return
    console.print(webhooks_table(hooks))


@app.command("add")
def add(
    target: Annotated[str, typer.Argument(help="The URL to POST events to (http or https).")],
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event",
            "-e",
            help="An event type (task_completed, task_failed, task_cancelled, "
            "plan_require_user_input, scheduled_task_result, run_failed, task_paused); "
            "repeat for several; default all.",
        ),
    ] = None,
    task: Annotated[str | None, typer.Option(help="Only this task's events.")] = None,
    agent: Annotated[str | None, typer.Option(help="Only events of this agent's tasks.")] = None,
    description: Annotated[str, typer.Option(help="A note for people.")] = "",
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = None,
) -> None:
    """Subscribe a URL; prints its signing secret, which is shown this once."""
    body: JsonObject = {"url": target, "event_types": event or ["*"], "description": description}
    if task:
        body["task_id"] = task
    if agent:
        body["agent_name"] = agent
    with connect(url, key) as client:
        made = client.call("POST", "/webhooks", body=body)
    console.print(Text.assemble(("added ", "green"), (made["webhook_id"], "bold")))
    console.print(Text.assemble("secret: ", (made["secret"], "bold")))
    console.print("keep it: it is not shown again (rotate makes a new one)", style="dim")


@app.command("remove")
def remove(webhook_id: WebhookId, url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    """Remove a subscription and its deliveries."""
    with connect(url, key) as client:
        client.call("DELETE", _path(webhook_id))
    console.print(Text.assemble(("removed ", "green"), (webhook_id, "bold")))


@app.command("rotate")
def rotate(webhook_id: WebhookId, url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    """Give a subscription a new signing secret (shown this once)."""
    with connect(url, key) as client:
        made = client.call("POST", _path(webhook_id, "rotate"))
    console.print(Text.assemble("new secret: ", (made["secret"], "bold")))


@app.command("deliveries")
def deliveries(
    webhook_id: WebhookId,
    status: Annotated[
        str | None, typer.Option(help="Only pending, sending, delivered or failed ones.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = None,
) -> None:
    """A subscription's deliveries, newest first."""
    with connect(url, key) as client:
        params = {"status": status, "limit": limit}
        items = client.call("GET", _path(webhook_id, "deliveries"), params=params)["items"]
    if not items:
        console.print("no deliveries", style="dim")
        return
    console.print(deliveries_table(items))


@app.command("redeliver")
def redeliver(
    webhook_id: WebhookId,
    delivery_id: Annotated[str, typer.Argument(help="The delivery's id (msg_...).")],
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = None,
) -> None:
    """Send a delivery again now."""
    with connect(url, key) as client:
        made = client.call(
            "POST", _path(webhook_id, "deliveries", quote(delivery_id, safe=""), "redeliver")
        )
    console.print(Text.assemble(("queued ", "green"), (made["delivery_id"], "bold")))
