"""``taskcell webhooks ...`` against a real server (in a thread of this process)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from taskcell.api.app import create_app
from taskcell.cli import app, common
from taskcell.settings import Settings
from taskcell.testing import serve_app_in_thread


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for console in (common.console, common.err_console):
        monkeypatch.setattr(console, "_width", 200)

    def build(base_url: str) -> Any:
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'cli.db'}",
            agents={},
            webhook_allow="127.0.0.1/32",
            public_url=base_url,
        )
        return create_app(settings)

    with serve_app_in_thread(app_factory=build) as url:
        monkeypatch.setenv("TASKCELL_URL", url)
        yield url


class Gone(BaseHTTPRequestHandler):
    """A receiver that answers 410: each delivery ends failed at once (redeliver may follow)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(410)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def gone() -> Iterator[str]:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Gone)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    finally:
        receiver.shutdown()
        receiver.server_close()
        thread.join(5)


def run(*args: str) -> str:
    result = CliRunner().invoke(app, ["webhooks", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_add_list_rotate_deliveries_redeliver_remove(server: str, gone: str) -> None:
    added = run("add", gone, "-e", "task_completed", "-e", "task_failed", "--agent", "echo")
    hook_id = next(w for w in added.split() if w.startswith("wh_"))
    assert "secret: whsec_" in added
    listed = run("list")
    assert hook_id in listed and "task_completed, task_failed" in listed
    assert "agent echo" in listed and "whsec_" not in listed
    assert "new secret: whsec_" in run("rotate", hook_id)
    with httpx.Client(base_url=server) as client:
        made = client.post("/api/v1/tasks", json={"query": "hi", "agent_name": "echo"})
        assert made.status_code == 201
        path = f"/api/v1/webhooks/{hook_id}/deliveries"
        deadline = time.monotonic() + 30
        while True:
            items = client.get(path).json()["data"]["items"]
            if items and items[0]["status"] == "failed":
                break
            assert time.monotonic() < deadline, items
            time.sleep(0.05)
    delivery_id = items[0]["delivery_id"]
    shown = run("deliveries", hook_id)
    assert delivery_id in shown and "task_completed" in shown and "410" in shown
    assert f"queued {delivery_id}" in run("redeliver", hook_id, delivery_id)
    assert f"removed {hook_id}" in run("remove", hook_id)
    assert "no webhooks" in run("list")


def test_a_refused_url_prints_the_field(server: str) -> None:
    result = CliRunner().invoke(app, ["webhooks", "add", "http://169.254.169.254/x"])
    assert result.exit_code == 1
    assert "error 422" in result.output and "url:" in result.output
