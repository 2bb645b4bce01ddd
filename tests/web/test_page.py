"""The web page, driven by Playwright in Debian's headless Chromium against a real `taskcell serve`.

Each test starts a `taskcell serve` subprocess on a free loopback port with a temporary SQLite
file, opens the page, and checks what a person sees: the form and its errors, the live stream,
the controller of a recurring task, the input box, and the resume after a restart. A screenshot
of each state is saved under ``test-output/screenshots/``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from browsing import (
    CHROMIUM,
    DIST_INDEX,
    UI_TIMEOUT_MS,
    Server,
    create,
    fill_form,
    merged_messages,
    page_messages,
    row,
    shot,
)
from playwright.async_api import Browser, Page, expect

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="the browser tests need Debian's Chromium at /usr/bin/chromium "
        "(apt-get install -y chromium)",
    ),
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


@pytest.fixture(
    params=[
        pytest.param({"width": 1360, "height": 900}, id="desktop"),
        pytest.param({"width": 390, "height": 844}, id="phone"),
    ]
)
async def page(
    request: pytest.FixtureRequest, browser: Browser, server: Server
) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport=request.param)
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    await opened.goto(server.url + "/")
    try:
        yield opened
    finally:
        await context.close()
    assert not errors, f"the page raised: {errors}"


# ---- tests ----------------------------------------------------------------------------------


async def test_echo_task_streams_its_words_and_completes(page: Page, server: Server) -> None:
    await fill_form(page, agent="echo", query="the quick brown fox jumps")
    description = page.get_by_test_id("agent-description")
    await expect(description).not_to_be_empty()
    await shot(page, "01-create-form")

    task_id = await create(page)
    answer = page.locator('[data-testid="message"][data-role="agent"]')
    await expect(answer.last).to_contain_text("the quick brown fox jumps")
    await expect(page.get_by_test_id("task-status")).to_have_attribute("data-status", "completed")
    await expect(page.get_by_test_id("tool-call").first).to_be_visible()
    await expect(page.get_by_test_id("reasoning").first).to_be_visible()
    await expect(page.get_by_test_id("stream-ended")).to_be_visible()
    await expect(row(page, task_id)).to_have_attribute("data-status", "completed")
    await expect(page.get_by_test_id("run-row").first).to_have_attribute(
        "data-status", re.compile("complete|succeed")
    )
    await shot(page, "02-echo-completed")

    # The conversation's history shows the same words.
    await page.get_by_test_id("conversation-link").click()
    history = page.get_by_test_id("conversation-view")
    await expect(history.get_by_test_id("message").last).to_contain_text(
        "the quick brown fox jumps"
    )
    await shot(page, "03-conversation-history")


async def test_recurring_clock_task_is_controlled_from_its_controller(
    page: Page, server: Server
) -> None:
    await fill_form(
        page,
        agent="clock",
        query="what time is it",
        title="Paris clock",
        interval=60,
        timezone="Europe/Paris",
    )
    await shot(page, "04-recurring-form")
    task_id = await create(page)

    controller = page.get_by_test_id("controller")
    status = controller.get_by_test_id("controller-status")
    await expect(controller).to_be_visible()
    await expect(controller).to_contain_text("Paris clock")
    await expect(page.get_by_test_id("result-card").first).to_contain_text("Europe/Paris")
    await expect(status).to_have_attribute("data-status", "running")
    await expect(row(page, task_id)).to_have_attribute("data-status", "running")
    await shot(page, "05-recurring-running")

    await controller.get_by_test_id("controller-pause").click()
    await expect(status).to_have_attribute("data-status", "paused")
    await expect(row(page, task_id).get_by_test_id("status-badge")).to_have_attribute(
        "data-status", "paused"
    )
    assert server.api("GET", f"/tasks/{task_id}")["paused"] is True
    await shot(page, "06-recurring-paused")

    await controller.get_by_test_id("controller-resume").click()
    await expect(status).to_have_attribute("data-status", "running")
    await expect(row(page, task_id).get_by_test_id("status-badge")).to_have_attribute(
        "data-status", "running"
    )
    assert server.api("GET", f"/tasks/{task_id}")["paused"] is False

    runs_before = await page.get_by_test_id("run-row").count()
    await controller.get_by_test_id("controller-run").click()
    await expect(page.get_by_test_id("run-row")).to_have_count(runs_before + 1)
    await expect(page.get_by_test_id("result-card")).to_have_count(2)
    await shot(page, "07-recurring-run-now")

    await controller.get_by_test_id("controller-cancel").click()
    await controller.get_by_test_id("controller-cancel-confirm").click()
    await expect(status).to_have_attribute("data-status", "cancelled")
    await expect(page.get_by_test_id("task-status")).to_have_attribute("data-status", "cancelled")
    await expect(row(page, task_id)).to_have_attribute("data-status", "cancelled")
    await expect(controller.get_by_test_id("controller-run")).to_be_disabled()
    assert server.api("GET", f"/tasks/{task_id}")["status"] == "cancelled"
    await shot(page, "08-recurring-cancelled")


async def test_asker_task_is_answered_from_the_input_box(page: Page, server: Server) -> None:
    await fill_form(page, agent="asker", query="greet me")
    task_id = await create(page)

    box = page.get_by_test_id("input-box")
    await expect(box).to_be_visible()
    await expect(box.get_by_test_id("input-question")).to_contain_text("What is your name?")
    await expect(page.get_by_test_id("task-status")).to_have_attribute(
        "data-status", "waiting_input"
    )
    await shot(page, "09-asker-waiting")

    await box.get_by_test_id("input-text").fill("Ada")
    await box.get_by_test_id("input-send").click()
    answer = page.locator('[data-testid="message"][data-role="agent"]')
    await expect(answer.last).to_contain_text("Hello, Ada.")
    await expect(page.get_by_test_id("task-status")).to_have_attribute("data-status", "completed")
    await expect(page.get_by_test_id("input-box")).to_have_count(0)
    await expect(row(page, task_id)).to_have_attribute("data-status", "completed")
    await shot(page, "10-asker-answered")


#: Records each Notification the page makes (title, body, tag), and makes the page believe it
#: is in a tab the person is not looking at (the page notifies only then).
NOTIFICATIONS = """
window.__notifications = [];
const Real = window.Notification;
class Recorded extends Real {
  constructor(title, options) {
    super(title, options);
    window.__notifications.push({title, body: options?.body ?? '', tag: options?.tag ?? ''});
  }
}
Object.defineProperty(Recorded, 'permission', {get: () => Real.permission});
Recorded.requestPermission = (...args) => Real.requestPermission(...args);
window.Notification = Recorded;
document.hasFocus = () => false;
"""


async def test_a_question_notifies_when_notifications_are_allowed(
    browser: Browser, server: Server
) -> None:
    context = await browser.new_context(viewport={"width": 1360, "height": 900})
    await context.grant_permissions(["notifications"], origin=server.url)
    await context.add_init_script(NOTIFICATIONS)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        await page.goto(server.url + "/")
        assert await page.evaluate("Notification.permission") == "granted"
        await expect(page.get_by_test_id("notify-toggle")).to_have_count(0)  # nothing to ask
        await fill_form(page, agent="asker", query="greet me", title="A greeting")
        task_id = await create(page)
        await expect(page.get_by_test_id("input-question")).to_contain_text("What is your name?")
        await page.wait_for_function("window.__notifications.length > 0")
        made = await page.evaluate("window.__notifications")
        assert made == [
            {"title": "A greeting asks", "body": "What is your name?", "tag": task_id}
        ], f"the page made these notifications: {made}"
    finally:
        await context.close()
    assert not errors, f"the page raised: {errors}"


async def test_the_api_errors_show_next_to_their_fields(page: Page, server: Server) -> None:
    await fill_form(page, agent="echo", query="")
    await page.get_by_test_id("create-submit").click()
    query_error = page.get_by_test_id("field-error-query")
    await expect(query_error).to_be_visible()
    await expect(query_error).not_to_be_empty()
    await expect(page.get_by_test_id("query-input")).to_have_attribute("aria-invalid", "true")
    await shot(page, "11-error-empty-query")

    await fill_form(
        page, agent="clock", query="what time is it", interval=5, timezone="Mars/Olympus"
    )
    await page.get_by_test_id("create-submit").click()
    zone_error = page.get_by_test_id("field-error-schedule_config.timezone")
    await expect(zone_error).to_be_visible()
    await expect(zone_error).not_to_be_empty()
    await shot(page, "12-error-bad-timezone")

    # Nothing was created.
    assert server.api("GET", "/tasks")["items"] == []
    await expect(page.get_by_test_id("task-view")).to_have_count(0)


async def test_a_cron_task_is_made_from_the_form_and_said_in_words(
    page: Page, server: Server
) -> None:
    await fill_form(
        page, agent="clock", query="standup", cron="0 9 * * MON-FRX", timezone="Europe/Berlin"
    )
    await page.get_by_test_id("create-submit").click()
    cron_error = page.get_by_test_id("field-error-schedule_config.cron")
    await expect(cron_error).to_contain_text("cron field 5 (day-of-week) 'MON-FRX' is not valid")
    assert server.api("GET", "/tasks")["items"] == []

    await page.get_by_test_id("cron-input").fill("0 9 * * MON-FRI")
    task_id = await create(page)
    controller = page.get_by_test_id("controller")
    await expect(controller).to_contain_text("at 09:00 on Monday through Friday (Europe/Berlin)")
    schedule = server.api("GET", f"/tasks/{task_id}")["schedule_config"]
    assert schedule["cron"] == "0 9 * * MON-FRI" and schedule["timezone"] == "Europe/Berlin"


async def test_the_stream_resumes_after_a_restart_without_loss_or_repeat(
    page: Page, server: Server
) -> None:
    await fill_form(page, agent="slow", query="stream for 8 seconds")
    task_id = await create(page)
    agent_message = page.locator('[data-testid="message"][data-role="agent"]')
    await expect(agent_message.first).to_contain_text("tick 5 ")

    server.stop()
    await expect(page.get_by_test_id("reconnecting")).to_be_visible()
    await shot(page, "13-reconnecting")
    server.start()

    await expect(
        page.get_by_test_id("stream-live").or_(page.get_by_test_id("stream-ended"))
    ).to_be_visible()
    status = page.get_by_test_id("task-status")
    await expect(status).to_have_attribute(
        "data-status", re.compile("completed|failed"), timeout=60_000
    )
    await expect(page.get_by_test_id("stream-ended")).to_be_visible()
    await shot(page, "14-resumed")

    # The page shows exactly the server's log: every message once, every chunk once, in order.
    expected = merged_messages(server.events(task_id))
    assert expected, "the slow agent sent no message"
    assert await page_messages(page) == expected
    for _, text in expected:
        ticks = [int(n) for n in re.findall(r"tick (\d+)", text)]
        assert ticks == sorted(set(ticks)), f"a chunk repeats or is out of order: {text!r}"


async def test_with_api_keys_the_page_asks_for_a_key_and_sends_it(
    browser: Browser, tmp_path: Path
) -> None:
    keyed = Server(db=tmp_path / "keyed.db", log=tmp_path / "keyed.log", api_keys="k-ada:ada:user")
    keyed.start()
    try:
        task = keyed.api(
            "POST", "/tasks", key="k-ada", json={"query": "hi there", "agent_name": "echo"}
        )
        context = await browser.new_context(viewport={"width": 1360, "height": 900})
        page = await context.new_page()
        await page.goto(f"{keyed.url}/#/tasks/{task['task_id']}")
        await expect(page.get_by_test_id("api-key-required")).to_be_visible()
        await shot(page, "15-api-key-asked")

        await page.get_by_test_id("api-key-input").fill("k-ada")
        await page.get_by_test_id("api-key-save").click()
        await expect(page.get_by_test_id("api-key-panel")).to_have_count(0)
        await expect(row(page, task["task_id"])).to_be_visible()
        # The stream is read with the key too.
        answer = page.locator('[data-testid="message"][data-role="agent"]')
        await expect(answer.last).to_contain_text("hi there")
        assert await page.evaluate("localStorage.getItem('taskcell.apiKey')") == "k-ada"
        await shot(page, "16-api-key-accepted")
        await context.close()
    finally:
        keyed.stop()


async def test_the_list_filters_and_pages(page: Page, server: Server) -> None:
    schedule = {"interval_minutes": 600, "timezone": "UTC"}
    ids = [
        server.api(
            "POST",
            "/tasks",
            json={
                "query": f"clock {n}",
                "title": f"Clock {n:02d}",
                "agent_name": "clock",
                "pattern": "recurring",
                "schedule_config": schedule,
                "run_immediately": False,
            },
        )["task_id"]
        for n in range(27)
    ]
    await page.reload()
    rows = page.get_by_test_id("task-row")
    await expect(rows).to_have_count(25)
    await expect(rows.first).to_contain_text("Clock 26")  # newest first
    await page.get_by_test_id("page-next").click()
    await expect(rows).to_have_count(2)
    await expect(row(page, ids[0])).to_be_visible()
    await shot(page, "17-list-page-2")
    await page.get_by_test_id("page-prev").click()
    await expect(rows).to_have_count(25)

    await page.get_by_test_id("filter-pattern").select_option("once")
    await expect(page.get_by_test_id("list-empty")).to_be_visible()
    await page.get_by_test_id("filter-pattern").select_option("recurring")
    await page.get_by_test_id("filter-agent").select_option("clock")
    await expect(rows).to_have_count(25)
    await page.get_by_test_id("filter-status").select_option("completed")
    await expect(page.get_by_test_id("list-empty")).to_be_visible()
