"""The page's second pass, as a person uses it at 1440 by 900 and on a 390 by 844 phone: what the
header says against the timeline, times in the schedule's zone, failed attempts, the form's
errors and focus, search and filters in the URL, short ids, bulk actions, markdown, keyboard
use, and axe-core on every view. One `taskcell serve` for the module."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from browsing import (
    AXE,
    CHROMIUM,
    DIST_INDEX,
    UI_TIMEOUT_MS,
    Server,
    assert_focus_visible,
    axe_violations,
    create,
    fill_form,
    focused,
    row,
    shot,
)
from playwright.async_api import Browser, Page, expect

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"
    ),
    pytest.mark.timeout(150),
]

expect.set_options(timeout=UI_TIMEOUT_MS)

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
SIZES = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    assert DIST_INDEX.exists(), "the page is not built: run `npm ci && npm run build` in frontend/"
    folder = tmp_path_factory.mktemp("views")
    made = Server(db=folder / "taskcell.db", log=folder / "serve.log")
    made.start()
    try:
        yield made
    finally:
        made.stop()


async def open_page(browser: Browser, site: Server, size: dict[str, int], hash_: str = "") -> Page:
    # Reduced motion: no colour is caught half-way through a transition when axe measures it.
    context = await browser.new_context(viewport=size, reduced_motion="reduce")  # type: ignore[arg-type]
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(f"{site.url}/{hash_}")
    return page


@pytest.fixture(params=SIZES)
async def page(
    request: pytest.FixtureRequest, browser: Browser, site: Server
) -> AsyncIterator[Page]:
    opened = await open_page(browser, site, request.param)
    try:
        yield opened
    finally:
        errors = opened.errors  # type: ignore[attr-defined]
        await opened.context.close()
    assert not errors, f"the page raised: {errors}"


def size_name(page: Page) -> str:
    viewport = page.viewport_size
    return "phone" if viewport and viewport["width"] < 600 else "desktop"


def make(site: Server, **body: Any) -> str:
    task_id: str = site.api("POST", "/tasks", json=body)["task_id"]
    return task_id


def assert_no_serious(violations: list[dict[str, Any]], where: str) -> None:
    assert not violations, f"axe-core, {where}: {violations}"


# ---- truthfulness --------------------------------------------------------------------------


async def test_the_header_agrees_with_the_timeline_and_attempts_are_told_apart(
    page: Page, site: Server
) -> None:
    await fill_form(page, agent="echo", query="agree with me")
    await create(page)
    await expect(page.get_by_test_id("event-status").last).to_have_attribute(
        "data-event", "task_completed"
    )
    # Once the timeline says Completed, the header does too, and offers no Cancel.
    await expect(page.get_by_test_id("task-status")).to_have_attribute("data-status", "completed")
    await expect(page.get_by_test_id("task-cancel")).to_have_count(0)

    await fill_form(page, agent="flaky", query="fail 2 times")
    await create(page)
    await expect(page.get_by_test_id("task-status")).to_have_attribute(
        "data-status", "completed", timeout=40_000
    )
    headings = page.get_by_test_id("run-heading")
    await expect(headings).to_have_count(3)
    await expect(headings.first).to_contain_text("Attempt 1 of 3")
    tools = page.locator('[data-testid="tool-call"][data-tool-name="connect_agent"]')
    states = [await t.get_attribute("data-state") for t in await tools.all()]
    assert states == ["failed", "failed", "finished"], f"connect_agent calls: {states}"
    await expect(tools.first).to_contain_text("failed")
    await shot(page, f"20-flaky-attempts-{size_name(page)}")


async def test_next_run_is_in_the_schedule_zone_and_nothing_started_yet(
    page: Page, site: Server
) -> None:
    task_id = make(
        site,
        query="what time is it",
        agent_name="clock",
        title="Tokyo evening",
        pattern="recurring",
        schedule_config={"daily_time": "22:00", "timezone": "Asia/Tokyo"},
        run_immediately=False,
    )
    await page.goto(f"{site.url}/#/tasks/{task_id}")
    next_run = page.get_by_test_id("task-next-run")
    await expect(next_run).to_contain_text("Asia/Tokyo")
    await expect(next_run).to_contain_text(re.compile(r"22:00|10:00\s?PM"))
    await expect(page.get_by_test_id("task-started")).to_have_count(0)
    await expect(page.get_by_test_id("runs-empty")).to_be_visible()
    await expect(page.get_by_test_id("controller")).to_be_visible()
    await shot(page, f"21-recurring-not-started-{size_name(page)}")
    assert_no_serious(await axe_violations(page, f"recurring-{size_name(page)}"), "recurring")


# ---- the form ------------------------------------------------------------------------------


async def test_the_form_keeps_advanced_open_and_the_focus_on_the_field_at_fault(
    page: Page, site: Server
) -> None:
    await fill_form(page, agent="echo", query="attempts")
    await page.locator('[data-testid="advanced"] summary').click()
    attempts = page.get_by_test_id("max-attempts-input")
    await attempts.fill("0")
    await page.get_by_test_id("create-submit").click()
    error = page.get_by_test_id("field-error-max_attempts")
    await expect(error).to_be_visible()
    await expect(attempts).to_be_focused()
    text = await error.inner_text()
    assert "Input should" not in text and re.search(r"\d", text), f"the message: {text!r}"
    assert_no_serious(await axe_violations(page, f"form-errors-{size_name(page)}"), "form errors")
    await shot(page, f"22-form-attempts-error-{size_name(page)}")

    await attempts.fill("2.5")
    await page.get_by_test_id("create-submit").click()
    await expect(error).to_contain_text("whole number")
    await attempts.fill("2")  # fixing it keeps the section open and the focus where it is
    await expect(page.get_by_test_id("advanced")).to_have_attribute("open", "")
    await expect(attempts).to_be_focused()

    await page.get_by_test_id("query-input").fill("")
    await page.get_by_test_id("create-submit").click()
    await expect(page.get_by_test_id("query-input")).to_be_focused()


async def test_a_zone_in_the_wrong_case_is_suggested(page: Page, site: Server) -> None:
    await fill_form(
        page, agent="clock", query="what time is it", interval=5, timezone="europe/berlin"
    )
    suggestion = page.get_by_test_id("zone-suggestion")
    await expect(suggestion).to_contain_text("Europe/Berlin")
    await shot(page, f"23-zone-suggestion-{size_name(page)}")
    await page.get_by_test_id("zone-suggestion-apply").click()
    await expect(page.get_by_test_id("timezone-input")).to_have_value("Europe/Berlin")
    await expect(page.get_by_test_id("timezone-input")).to_be_focused()
    await create(page)
    await expect(page.get_by_test_id("task-title")).to_contain_text("what time is it")


# ---- finding tasks --------------------------------------------------------------------------


async def test_search_filters_and_short_ids_live_in_the_url(page: Page, site: Server) -> None:
    animal = f"walrus{size_name(page)}"
    wanted = make(site, query=f"find the {animal}", agent_name="echo", title=f"Hunt {animal}")
    make(site, query="something else", agent_name="echo")
    await page.goto(f"{site.url}/#/?q={animal}")
    rows = page.get_by_test_id("task-row")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text(f"Hunt {animal}")
    await expect(page.get_by_test_id("search-input")).to_have_value(animal)

    await page.get_by_test_id("search-input").fill("")
    await page.get_by_test_id("filter-agent").select_option("echo")
    await expect(page).to_have_url(re.compile(r"agent_name=echo"))
    await page.reload()
    await expect(page.get_by_test_id("filter-agent")).to_have_value("echo")

    # A short id, as the CLI prints it, opens its task; the tab names the task.
    await page.goto(f"{site.url}/#/tasks/{wanted[:12]}")
    view = page.get_by_test_id("task-view")
    await expect(view).to_have_attribute("data-task-id", wanted)
    await expect(page.get_by_test_id("task-id")).to_have_text(wanted[:12])
    await expect(page).to_have_title(re.compile(f"Hunt {animal}"))
    await shot(page, f"24-short-id-{size_name(page)}")


async def test_bulk_cancel_then_delete(page: Page, site: Server) -> None:
    ids = [make(site, query=f"stream for 60 seconds ({n})", agent_name="slow") for n in range(2)]
    await page.goto(f"{site.url}/#/?agent_name=slow")
    for task_id in ids:
        await expect(row(page, task_id)).to_be_visible()
        await page.locator(f'li:has([data-task-id="{task_id}"]) [data-testid="row-pick"]').check()
    await page.get_by_test_id("bulk-cancel").click()
    await page.get_by_test_id("bulk-confirm").click()
    await expect(page.get_by_test_id("bulk-note")).to_contain_text("Cancelled 2")
    for task_id in ids:
        await expect(row(page, task_id)).to_have_attribute("data-status", "cancelled")
        await page.locator(f'li:has([data-task-id="{task_id}"]) [data-testid="row-pick"]').check()
    await page.get_by_test_id("bulk-delete").click()
    await page.get_by_test_id("bulk-confirm").click()
    await expect(page.get_by_test_id("bulk-note")).to_contain_text("Deleted 2")
    for task_id in ids:
        await expect(row(page, task_id)).to_have_count(0)


async def test_agent_markdown_is_drawn_and_its_html_is_not(page: Page, site: Server) -> None:
    task_id = make(
        site,
        query='**bold words** and <img src=x onerror="window.hacked=1"> `code`',
        agent_name="echo",
    )
    await page.goto(f"{site.url}/#/tasks/{task_id}")
    answer = page.locator('[data-testid="message"][data-role="agent"]').last
    await expect(answer.locator("strong")).to_have_text("bold words")
    await expect(answer.locator("code")).to_have_text("code")
    await expect(page.get_by_test_id("task-status")).to_have_attribute("data-status", "completed")
    assert await answer.locator("img").count() == 0
    assert await page.evaluate("window.hacked === undefined")


# ---- phone ---------------------------------------------------------------------------------


async def test_on_a_phone_each_view_is_its_own_screen(browser: Browser, site: Server) -> None:
    make(site, query="one task in the list", agent_name="echo")
    page = await open_page(browser, site, PHONE)
    try:
        await expect(page.get_by_test_id("task-list")).to_be_visible()
        assert_no_serious(await axe_violations(page, "phone-list"), "phone list")
        await shot(page, "25-phone-list")
        await page.get_by_test_id("new-task").click()
        form = page.get_by_test_id("create-form")
        await expect(form).to_be_in_viewport()
        await expect(page.get_by_test_id("task-list")).to_be_hidden()
        info = await focused(page)
        assert info["id"] == "main-detail", f"after New task the focus is on {info}"
        await shot(page, "26-phone-form")

        await page.get_by_test_id("agent-select").select_option("flaky")
        await page.get_by_test_id("query-input").fill("fail 1 time")
        await page.get_by_test_id("create-submit").click()
        view = page.get_by_test_id("task-view")
        await expect(view).to_be_in_viewport()
        await expect(page.get_by_test_id("task-status")).to_have_attribute(
            "data-status", "completed", timeout=40_000
        )
        # The runs are cards: every column's label and value fit the screen.
        took = page.get_by_test_id("run-took").first
        await took.scroll_into_view_if_needed()
        box = await took.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
        assert_no_serious(await axe_violations(page, "phone-task"), "phone task")
        await shot(page, "27-phone-task")

        await page.get_by_test_id("back").click()
        await expect(page.get_by_test_id("task-list")).to_be_in_viewport()
        await expect(page.get_by_test_id("task-view")).to_have_count(0)
    finally:
        await page.context.close()


# ---- accessibility and the keyboard --------------------------------------------------------


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is installed by `npm ci` in frontend/")
async def test_axe_finds_nothing_serious_on_the_list_form_and_a_once_task(
    page: Page, site: Server
) -> None:
    name = size_name(page)
    await expect(
        page.get_by_test_id("create-form").or_(page.get_by_test_id("task-list")).first
    ).to_be_visible()
    assert_no_serious(await axe_violations(page, f"home-{name}"), "home")
    await shot(page, f"28-home-{name}")
    await fill_form(page, agent="echo", query="")
    await page.get_by_test_id("create-submit").click()
    await expect(page.get_by_test_id("field-error-query")).to_be_visible()
    assert_no_serious(await axe_violations(page, f"form-error-{name}"), "form with errors")
    await page.get_by_test_id("query-input").fill("an accessible answer")
    await create(page)
    await expect(page.get_by_test_id("task-status")).to_have_attribute("data-status", "completed")
    assert_no_serious(await axe_violations(page, f"once-task-{name}"), "once task")
    await page.get_by_test_id("theme-toggle").click()  # dark
    await expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert_no_serious(await axe_violations(page, f"once-task-dark-{name}"), "once task, dark")
    await shot(page, f"29-once-task-dark-{name}")


async def test_the_system_theme_is_followed_and_a_chosen_one_kept(
    browser: Browser, site: Server
) -> None:
    context = await browser.new_context(viewport=DESKTOP, color_scheme="dark")  # type: ignore[arg-type]
    page = await context.new_page()
    try:
        await page.goto(f"{site.url}/")
        html = page.locator("html")
        await expect(html).to_have_attribute("data-theme", "dark")  # the system's choice
        dark_bg = await page.evaluate(
            "getComputedStyle(document.documentElement).getPropertyValue('--bg')"
        )
        await page.emulate_media(color_scheme="light")  # the system changes its mind
        await expect(html).to_have_attribute("data-theme", "light")
        assert (
            await page.evaluate(
                "getComputedStyle(document.documentElement).getPropertyValue('--bg')"
            )
            != dark_bg
        )
        await page.get_by_test_id("theme-toggle").click()  # system -> dark, chosen
        await expect(html).to_have_attribute("data-theme", "dark")
        await page.emulate_media(color_scheme="light")
        await page.reload()
        await expect(html).to_have_attribute("data-theme", "dark")  # kept over the system's
    finally:
        await context.close()


async def press_until(page: Page, test_id: str, limit: int = 60) -> None:
    """Tabs until the element with ``test_id`` has the focus."""
    for _ in range(limit):
        if (await focused(page)).get("testid") == test_id:
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {test_id}; the focus is on {await focused(page)}")


async def test_keyboard_only_create_watch_cancel_delete(browser: Browser, site: Server) -> None:
    page = await open_page(browser, site, DESKTOP, "#/new")
    try:
        await expect(
            page.get_by_test_id("agent-select").locator('option[value="slow"]')
        ).to_have_count(1)
        await press_until(page, "agent-select")
        await page.keyboard.type("slow")  # a select takes typed letters
        await expect(page.get_by_test_id("agent-select")).to_have_value("slow")
        await page.keyboard.press("Tab")
        await page.keyboard.type("stream for 60 seconds")
        await press_until(page, "create-submit")
        await page.keyboard.press("Enter")
        await expect(page.get_by_test_id("task-view")).to_be_visible()
        info = await assert_focus_visible(page, "after creating")
        assert info["id"] == "main-detail", info
        await expect(
            page.locator('[data-testid="message"][data-role="agent"]').first
        ).to_contain_text("tick 2")

        await press_until(page, "task-cancel")
        await page.keyboard.press("Enter")
        info = await assert_focus_visible(page, "after Cancel…")
        assert info["testid"] == "task-cancel-confirm", info
        await page.keyboard.press("Enter")
        await expect(page.get_by_test_id("task-status")).to_have_attribute(
            "data-status", "cancelled"
        )
        await expect(page.get_by_test_id("task-delete")).to_be_focused()
        await assert_focus_visible(page, "after cancelling")

        await page.keyboard.press("Enter")
        await expect(page.get_by_test_id("task-delete-confirm")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page.get_by_test_id("task-view")).to_have_count(0)
        info = await assert_focus_visible(page, "after deleting")
        assert info["id"] in ("tasks-heading", "main-detail"), info
    finally:
        await page.context.close()


async def test_screens_of_every_view(page: Page, site: Server) -> None:
    name = size_name(page)
    task_id = make(site, query="a task to look at", agent_name="echo", title="Looked at")
    await page.goto(f"{site.url}/#/tasks/{task_id}")
    await expect(page.get_by_test_id("task-status")).to_have_attribute("data-status", "completed")
    await page.get_by_test_id("raw-toggle").click()
    await expect(page.get_by_test_id("raw-events")).to_contain_text('"event":"task_completed"')
    await shot(page, f"30-raw-events-{name}")
    async with page.expect_download() as download:
        await page.get_by_test_id("log-download").click()
    saved = await (await download.value).path()
    lines = (await asyncio.to_thread(Path(saved).read_text)).splitlines()
    assert lines and '"task_completed"' in lines[-2], lines[-2:]
    await page.get_by_test_id("conversation-link").click()
    await expect(page.get_by_test_id("conversation-view")).to_be_visible()
    assert_no_serious(await axe_violations(page, f"conversation-{name}"), "conversation")
    await shot(page, f"31-conversation-{name}")
