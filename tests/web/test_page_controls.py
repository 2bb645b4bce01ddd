"""The page's controls: a schedule paused with a note (shown under the controller until resumed),
the next fire times under the controller in the schedule's zone and UTC, and a run time-out set
from the form. One `taskcell serve` for the module, Debian's Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import pytest
from browsing import CHROMIUM, DIST_INDEX, UI_TIMEOUT_MS, Server, fill_form
from playwright.async_api import Browser, Page, expect

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"
    ),
    pytest.mark.timeout(120),
]

expect.set_options(timeout=UI_TIMEOUT_MS)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    assert DIST_INDEX.exists(), "the page is not built: run `npm ci && npm run build` in frontend/"
    folder = tmp_path_factory.mktemp("controls")
    made = Server(db=folder / "taskcell.db", log=folder / "serve.log")
    made.start()
    try:
        yield made
    finally:
        made.stop()


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


def make(site: Server, **body: Any) -> str:
    task_id: str = site.api("POST", "/tasks", json=body)["task_id"]
    return task_id


async def test_pause_with_a_note_and_the_next_fires(page: Page, site: Server) -> None:
    task_id = make(
        site,
        query="what time is it",
        agent_name="clock",
        title="Tokyo evening",
        pattern="recurring",
        schedule_config={"daily_time": "22:00", "timezone": "Asia/Tokyo"},
        run_immediately=False,
        run_timeout_seconds=90,
    )
    await page.goto(f"{site.url}/#/tasks/{task_id}")
    controller = page.get_by_test_id("controller")
    await expect(controller).to_be_visible()
    await expect(page.get_by_test_id("controller-timeout")).to_have_text("90 s")
    fires = page.get_by_test_id("controller-upcoming-item")
    await expect(fires).to_have_count(3)
    expected = site.api("GET", f"/tasks/{task_id}/upcoming", params={"count": 3})["items"]
    assert [await f.get_attribute("data-at") for f in await fires.all()] == [
        item["at"] for item in expected
    ]
    first = fires.first
    await expect(first).to_contain_text("22:00")  # Tokyo's wall clock
    await expect(first).to_contain_text("(Asia/Tokyo)")
    await expect(first).to_contain_text("13:00")  # and UTC
    assert datetime.fromisoformat(expected[0]["at"]).hour == 13

    await page.get_by_test_id("controller-pause-note-input").fill("office closed")
    await page.get_by_test_id("controller-pause").click()
    await expect(page.get_by_test_id("controller-pause-note")).to_have_text("Paused: office closed")
    assert site.api("GET", f"/tasks/{task_id}")["pause_note"] == "office closed"
    await expect(page.get_by_test_id("controller-upcoming")).to_contain_text("once resumed")
    await page.get_by_test_id("controller-resume").click()
    await expect(page.get_by_test_id("controller-pause-note")).to_have_count(0)
    assert site.api("GET", f"/tasks/{task_id}")["pause_note"] is None


async def test_a_bad_time_out_is_shown_under_its_field(page: Page, site: Server) -> None:
    before = len(site.api("GET", "/tasks")["items"])
    await page.goto(f"{site.url}/#/new")
    await fill_form(page, query="hello", agent="echo")
    await page.get_by_test_id("advanced").locator("summary").click()
    await page.get_by_test_id("run-timeout-input").fill("0")
    await page.get_by_test_id("create-submit").click()
    timeout_input = page.get_by_test_id("run-timeout-input")
    await expect(timeout_input).to_have_attribute("aria-invalid", "true")
    assert len(site.api("GET", "/tasks")["items"]) == before  # nothing stored
