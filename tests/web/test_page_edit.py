"""The task page's Edit form (PATCH /api/v1/tasks/{id}) in Debian's headless Chromium against a
real `taskcell serve`: a recurring task's schedule and title edited, a bad cron shown under the
schedule with nothing stored, and an edit made meanwhile elsewhere refused (409), not lost."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from browsing import CHROMIUM, DIST_INDEX, UI_TIMEOUT_MS, Server, shot
from playwright.async_api import Browser, Page, expect

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium"),
    pytest.mark.timeout(120),
]

expect.set_options(timeout=UI_TIMEOUT_MS)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    assert DIST_INDEX.exists(), "the page is not built: run `npm ci && npm run build` in frontend/"
    made = Server(db=tmp_path / "taskcell.db", log=tmp_path / "serve.log")
    made.start()
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
async def page(browser: Browser, server: Server) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1360, "height": 900})
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        await context.close()
    assert not errors, f"the page raised: {errors}"


async def test_a_recurring_task_is_edited_from_its_page(page: Page, server: Server) -> None:
    body = {
        "query": "What time is it?",
        "agent_name": "clock",
        "pattern": "recurring",
        "schedule_config": {"interval_minutes": 60},
        "run_immediately": False,
    }
    task = server.api("POST", "/tasks", json=body)
    await page.goto(f"{server.url}/#/tasks/{task['task_id']}")
    await expect(page.get_by_test_id("task-version")).to_have_text("1")
    await page.get_by_test_id("task-edit").click()
    form = page.get_by_test_id("edit-form")
    await expect(form).to_be_visible()

    # A bad cron: the server's reason under the schedule, nothing stored.
    await page.get_by_test_id("edit-kind-cron").check()
    await page.get_by_test_id("edit-cron").fill("0 25 * * *")
    await page.get_by_test_id("edit-timezone").fill("Europe/Berlin")
    await page.get_by_test_id("edit-save").click()
    await expect(page.get_by_test_id("edit-error-schedule")).to_contain_text("schedule_config.cron")
    assert server.api("GET", f"/tasks/{task['task_id']}")["version"] == 1
    await shot(page, "edit-1-bad-cron")

    # A good one, with a new title: saved, the controller says it in words.
    await page.get_by_test_id("edit-cron").fill("0 9 * * MON-FRI")
    await page.get_by_test_id("edit-title").fill("Berlin mornings")
    await page.get_by_test_id("edit-save").click()
    await expect(form).to_have_count(0)
    await expect(page.get_by_test_id("task-version")).to_have_text("2")
    await expect(page.get_by_test_id("task-title")).to_have_text("Berlin mornings")
    await expect(page.get_by_test_id("controller-schedule")).to_contain_text(
        "at 09:00 on Monday through Friday (Europe/Berlin)"
    )
    stored = server.api("GET", f"/tasks/{task['task_id']}")
    assert stored["schedule_config"]["cron"] == "0 9 * * MON-FRI", stored
    assert (stored["title"], stored["version"]) == ("Berlin mornings", 2)

    # Someone else edits while the form is open: saving is refused, their edit kept.
    await page.get_by_test_id("task-edit").click()
    server.api("PATCH", f"/tasks/{task['task_id']}", json={"title": "theirs"})
    await page.get_by_test_id("edit-title").fill("mine")
    await page.get_by_test_id("edit-save").click()
    await expect(page.get_by_test_id("edit-error")).to_contain_text("version 3, not 2")
    assert server.api("GET", f"/tasks/{task['task_id']}")["title"] == "theirs"
    await shot(page, "edit-2-conflict")
