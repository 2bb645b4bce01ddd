"""The page's Webhooks section against a real `taskcell serve` (webhooks to loopback allowed)
and a real receiver on loopback that verifies every signature with the secret the page
showed: a refused URL named beside its field, the secret shown once, a task's delivery seen
delivered, redelivered, the secret rotated (later deliveries signed with the new one), and the
subscription deleted. Debian's Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from browsing import CHROMIUM, DIST_INDEX, UI_TIMEOUT_MS, Server, axe_violations, shot
from playwright.async_api import Browser, Page, expect
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"
    ),
    pytest.mark.timeout(120),
]

expect.set_options(timeout=UI_TIMEOUT_MS)


@dataclass
class Arrival:
    webhook_id: str
    body: dict[str, Any]
    #: Which of the receiver's secrets signed it (None: none did).
    signed_by: str | None


@dataclass
class Receiver:
    """A webhook receiver on a loopback port: a thread of :mod:`http.server` that answers
    200 and records each request and which known secret signed it."""

    secrets: list[str] = field(default_factory=list)
    arrivals: list[Arrival] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    url: str = ""

    def record(self, data: bytes, headers: dict[str, str]) -> None:
        signed_by = None
        for secret in list(self.secrets):
            with contextlib.suppress(WebhookVerificationError):
                Webhook(secret).verify(data, headers)
                signed_by = secret
        arrival = Arrival(headers.get("webhook-id", ""), json.loads(data), signed_by)
        with self.arrived:
            self.arrivals.append(arrival)
            self.arrived.notify_all()

    def wait_for(self, count: int) -> list[Arrival]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.arrivals) >= count, timeout=30), (
                f"{count} deliveries did not arrive: {self.arrivals}"
            )
            return list(self.arrivals)

    async def arrivals_at_least(self, count: int) -> list[Arrival]:
        return await asyncio.to_thread(self.wait_for, count)

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.record(data, {k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, name="webhook-receiver")
        thread.start()
        try:
            self.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
            yield self.url
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    assert DIST_INDEX.exists(), "the page is not built: run `npm ci && npm run build` in frontend/"
    folder = tmp_path_factory.mktemp("webhooks")
    made = Server(
        db=folder / "taskcell.db",
        log=folder / "serve.log",
        env={"TASKCELL_WEBHOOK_ALLOW": "127.0.0.1/32"},
    )
    made.start()
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    with made.serving():
        yield made


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        await context.close()
    assert not errors, f"the page raised: {errors}"


def run_task(site: Server, query: str) -> str:
    task_id: str = site.api("POST", "/tasks", json={"query": query, "agent_name": "echo"})[
        "task_id"
    ]
    return task_id


async def test_subscribe_see_deliveries_redeliver_rotate_and_delete(
    page: Page, site: Server, receiver: Receiver
) -> None:
    await page.goto(f"{site.url}/#/")
    await page.get_by_test_id("nav-webhooks").click()
    await expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
    await expect(page.get_by_test_id("webhooks-empty")).to_be_visible()

    # A refused URL: the API's reason beside the field, nothing stored.
    url_input = page.get_by_test_id("webhook-url-input")
    await url_input.fill("ftp://127.0.0.1/hook")
    await page.get_by_test_id("webhook-create").click()
    await expect(page.get_by_test_id("webhook-error-url")).to_be_visible()
    await expect(url_input).to_have_attribute("aria-invalid", "true")
    await expect(url_input).to_be_focused()
    assert site.api("GET", "/webhooks")["items"] == []

    # Subscribe to completions only: "*" is cleared by ticking one event.
    await url_input.fill(receiver.url)
    await page.get_by_test_id("webhook-event-task_completed").check()
    await expect(page.get_by_test_id("webhook-event-all")).not_to_be_checked()
    await page.get_by_test_id("webhook-create").click()
    panel = page.get_by_test_id("webhook-secret-panel")
    await expect(panel).to_contain_text("you will not see this again")
    await expect(panel).to_be_focused()
    secret = (await page.get_by_test_id("webhook-secret").inner_text()).strip()
    assert secret.startswith("whsec_")
    receiver.secrets.append(secret)
    hook_row = page.get_by_test_id("webhook-row")
    await expect(hook_row).to_have_count(1)
    await expect(hook_row.get_by_test_id("webhook-url")).to_have_text(receiver.url)
    await expect(hook_row.get_by_test_id("webhook-events")).to_have_text("task_completed")
    await expect(hook_row.get_by_test_id("webhook-state")).to_have_text("enabled")
    await page.get_by_test_id("webhook-secret-done").click()
    await expect(panel).to_have_count(0)
    await page.reload()
    await expect(page.get_by_test_id("webhook-row")).to_have_count(1)
    assert secret not in await page.content()  # shown once: never again

    # A task completes: its delivery arrives signed, and the page lists it delivered.
    task_id = run_task(site, "hello hooks")
    first = (await receiver.arrivals_at_least(1))[0]
    assert first.signed_by == secret
    assert (first.body["type"], first.body["data"]["task"]["task_id"]) == (
        "task_completed",
        task_id,
    )
    await page.get_by_test_id("webhook-deliveries-toggle").click()
    delivery = page.locator(f'[data-testid="delivery-row"][data-delivery-id="{first.webhook_id}"]')
    await expect(delivery).to_have_attribute("data-status", "delivered")
    await expect(delivery.get_by_test_id("delivery-code")).to_have_text("200")
    await expect(delivery.get_by_test_id("delivery-attempts")).to_have_text("1")
    assert await axe_violations(page, "webhooks") == []
    await shot(page, "webhooks")

    # Redeliver: the same webhook-id again.
    await delivery.get_by_test_id("delivery-redeliver").click()
    second = (await receiver.arrivals_at_least(2))[1]
    assert (second.webhook_id, second.signed_by) == (first.webhook_id, secret)
    await expect(delivery).to_have_attribute("data-status", "delivered")

    # Rotate: a new secret shown once; the next delivery is signed with it.
    await page.get_by_test_id("webhook-rotate").click()
    await expect(panel).to_contain_text("new signing secret")
    rotated = (await page.get_by_test_id("webhook-secret").inner_text()).strip()
    assert rotated.startswith("whsec_") and rotated != secret
    receiver.secrets.append(rotated)
    run_task(site, "after the rotation")
    third = (await receiver.arrivals_at_least(3))[2]
    assert third.signed_by == rotated
    await expect(page.get_by_test_id("delivery-row")).to_have_count(2)

    # Delete, after a confirmation.
    await page.get_by_test_id("webhook-delete").click()
    await expect(page.get_by_test_id("webhook-delete-confirm")).to_be_focused()
    await page.get_by_test_id("webhook-delete-confirm").click()
    await expect(page.get_by_test_id("webhooks-empty")).to_be_visible()
    assert site.api("GET", "/webhooks")["items"] == []
