"""What the browser tests share: a restartable `taskcell serve` over one SQLite file, Debian's
Chromium, screenshots, axe-core, the page's form, and measures of the page (DOM size, long
tasks, where the focus is)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Locator, Page, expect

from serving import START_TIMEOUT_S, reported_url

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
WEB_TESTS = Path(__file__).resolve().parent
SCREENSHOTS = ROOT / "test-output" / "screenshots"
DIST_INDEX = ROOT / "src" / "taskcell" / "web" / "dist" / "index.html"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
UI_TIMEOUT_MS = 20_000

# ---- the server ---------------------------------------------------------------------------


def _taskcell() -> list[str]:
    exe = Path(sys.executable).with_name("taskcell")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "taskcell.cli"]


@dataclass
class Server:
    """A `taskcell serve` subprocess on loopback over one SQLite file; restartable."""

    db: Path
    log: Path
    port: int = 0  # the first start picks one; a restart keeps it (the page reconnects there)
    api_keys: str = ""
    #: Extra agents (TASKCELL_AGENTS); an entry may name a module of tests/web (``web_agents``).
    agents: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Further settings of the server's environment (``TASKCELL_WEBHOOK_ALLOW``, ...).
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "TASKCELL_DATABASE_URL": f"sqlite:///{self.db}",
            "TASKCELL_API_KEYS": self.api_keys,
            "TASKCELL_LOG_LEVEL": "WARNING",
            "TASKCELL_AGENTS": json.dumps(self.agents),
            "PYTHONPATH": os.pathsep.join([str(WEB_TESTS), os.environ.get("PYTHONPATH", "")]),
            **self.env,
        }
        env.pop("TASKCELL_CONFIG", None)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*_taskcell(), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                cwd=self.db.parent,  # no taskcell.toml of the developer's
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if self.port == 0:
            self.port = int(reported_url(self.process, self.log).rsplit(":", 1)[1])
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"taskcell serve exited:\n{self.log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"taskcell serve did not answer:\n{self.log.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: the process dies mid-run, as in a crash (its runs are left open)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def api(self, method: str, path: str, key: str = "", **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        url = f"{self.url}/api/v1{path}"
        answer = httpx.request(method, url, timeout=10, headers=headers, **kwargs)
        answer.raise_for_status()
        return answer.json()["data"]

    def events(self, task_id: str) -> list[dict[str, Any]]:
        """The task's whole event log (the task is finished, so the stream ends)."""
        found: list[dict[str, Any]] = []
        url = f"{self.url}/api/v1/tasks/{task_id}/events"
        with httpx.stream("GET", url, timeout=httpx.Timeout(10, read=20)) as answer:
            for line in answer.iter_lines():
                if line.startswith("data:"):
                    message = json.loads(line[5:].strip())
                    found.append(message)
                    if message["event"] == "done":
                        status = self.api("GET", f"/tasks/{task_id}")["status"]
                        if status in ("completed", "failed", "cancelled"):
                            break
        return found


async def shot(page: Page, name: str) -> None:
    """A full-page screenshot; a phone-sized page's name ends with ``-phone``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size
    if viewport and viewport["width"] < 600 and not name.endswith("phone"):
        name = f"{name}-phone"
    await page.evaluate("window.scrollTo(0, 0)")  # else the sticky header lands mid-picture
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


# ---- helpers --------------------------------------------------------------------------------


async def fill_form(
    page: Page,
    *,
    agent: str,
    query: str,
    title: str = "",
    interval: int | None = None,
    timezone: str | None = None,
    cron: str | None = None,
) -> None:
    await page.goto(page.url.split("#")[0] + "#/new")
    await expect(
        page.get_by_test_id("agent-select").locator(f'option[value="{agent}"]')
    ).to_have_count(1)
    await page.get_by_test_id("agent-select").select_option(agent)
    await page.get_by_test_id("query-input").fill(query)
    if title:
        await page.get_by_test_id("title-input").fill(title)
    if interval is not None or timezone is not None or cron is not None:
        await page.get_by_test_id("pattern-recurring").check()
        if interval is not None:
            await page.get_by_test_id("schedule-interval").check()
            await page.get_by_test_id("interval-input").fill(str(interval))
        if cron is not None:
            await page.get_by_test_id("schedule-cron").check()
            await page.get_by_test_id("cron-input").fill(cron)
        if timezone is not None:
            await page.get_by_test_id("timezone-input").fill(timezone)


async def create(page: Page) -> str:
    """Submits the form; answers the new task's id once its page shows."""
    await page.get_by_test_id("create-submit").click()
    view = page.get_by_test_id("task-view")
    await expect(view).to_be_visible()
    task_id = await view.get_attribute("data-task-id")
    assert task_id
    return task_id


def row(page: Page, task_id: str) -> Locator:
    return page.locator(f'[data-testid="task-row"][data-task-id="{task_id}"]')


async def page_messages(page: Page) -> list[tuple[str, str]]:
    """(item id, text) of each message the page shows, in order."""
    found: list[tuple[str, str]] = []
    for message in await page.get_by_test_id("message").all():
        item_id = await message.get_attribute("data-item-id") or ""
        text = await message.get_by_test_id("message-text").inner_text()
        found.append((item_id, text.strip()))
    return found


def merged_messages(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """What the page must show for `events`: message chunks merged by item id, in order."""
    texts: dict[str, str] = {}
    for event in events:
        data = event["data"]
        content = str((data.get("payload") or {}).get("content") or "")
        if event["event"] == "message_chunk":
            texts[data["item_id"]] = texts.get(data["item_id"], "") + content
        elif event["event"] == "message":
            texts[data["item_id"]] = content
    return [(item_id, text.strip()) for item_id, text in texts.items()]


# ---- accessibility and measures -------------------------------------------------------------

AXE = ROOT / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
AXE_OUT = ROOT / "test-output" / "axe"


async def axe_violations(page: Page, name: str) -> list[dict[str, Any]]:
    """The page's serious and critical axe-core violations now (all of them saved to
    ``test-output/axe/<name>.json``)."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    AXE_OUT.mkdir(parents=True, exist_ok=True)
    (AXE_OUT / f"{name}.json").write_text(json.dumps(result["violations"], indent=1))
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
            "summary": [n.get("failureSummary", "") for n in v["nodes"]][:2],
        }
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


async def dom_nodes(page: Page) -> int:
    count: int = await page.evaluate("document.getElementsByTagName('*').length")
    return count


#: Records the page's long tasks (PerformanceObserver) from its first script on.
LONG_TASKS = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    window.__longTasks.push({start: entry.startTime, duration: entry.duration});
  }
}).observe({type: 'longtask', buffered: true});
"""


#: Records the most DOM nodes the page held, after each batch of changes (MutationObserver).
DOM_PEAK = """
window.__domPeak = 0;
new MutationObserver(() => {
  window.__domPeak = Math.max(window.__domPeak, document.getElementsByTagName('*').length);
}).observe(document, {childList: true, subtree: true});
"""


async def dom_peak(page: Page) -> int:
    """The most DOM nodes the page held since it loaded (needs :data:`DOM_PEAK`)."""
    peak: int = await page.evaluate("window.__domPeak")
    return peak


async def long_tasks_since(page: Page, start_ms: float) -> list[float]:
    """Durations (ms) of the long tasks that began after ``start_ms`` (page time)."""
    found: list[float] = await page.evaluate(
        "(t) => window.__longTasks.filter(e => e.start >= t).map(e => e.duration)", start_ms
    )
    return found


async def focused(page: Page) -> dict[str, Any]:
    """What has the focus: its tag, test id, text, and whether a person can see it."""
    info: dict[str, Any] = await page.evaluate(
        """() => {
        const e = document.activeElement;
        if (!e || e === document.body) return {tag: 'body', visible: false};
        const r = e.getBoundingClientRect();
        const visible = r.width > 0 && r.height > 0 && r.bottom > 0 && r.top < innerHeight
          && getComputedStyle(e).visibility !== 'hidden';
        return {tag: e.tagName.toLowerCase(), testid: e.getAttribute('data-testid'),
                id: e.id, text: (e.innerText || e.value || '').slice(0, 60), visible};
    }"""
    )
    return info


async def assert_focus_visible(page: Page, where: str) -> dict[str, Any]:
    info = await focused(page)
    assert info["tag"] != "body" and info["visible"], f"{where}: the focus is on {info}"
    return info
