"""The console in a real browser (Chromium through Playwright), on the real app started as a process.

One app serves the whole module, with a handler that counts its runs in a file and fails while a
flag file exists, and a fake Hub (`tests/fakehub.py`) reached through HF_ENDPOINT / HF_TOKEN in
the app's environment. Each test opens its own browser context, so it starts as a stranger.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from apprunner import SECRET, RunningApp, fixture_body, fixture_json, running_app, wait_until
from fakehub import FakeHub, start_fake_hub

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
COMMIT_REPO = "Wauplin/gradio-user-history"
DISCUSSION_REPO = "Wauplin/leaderboard"
TIMEOUT_MS = 20_000

COUNTING_HANDLER = '''"""Counts its runs in DATA_DIR/runs.txt, and fails while DATA_DIR/fail.flag exists."""
import os
from pathlib import Path

from lib import WebhookPayload


def handle(payload: WebhookPayload):
    data = Path(os.environ["DATA_DIR"])
    with (data / "runs.txt").open("a") as runs:
        runs.write(payload.repo.name + "\\n")
    if (data / "fail.flag").exists():
        raise RuntimeError("the model card has no license field")
    return {"ok": True}
'''


def chromium_or_fail() -> str:
    """Debian's Chromium. Browser tests are part of the suite: a missing browser is a failure, never a skip."""
    if CHROMIUM.exists():
        return str(CHROMIUM)
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(
            "Chromium is not installed, so the console's browser tests cannot run. Install it with "
            "`apt-get update && apt-get install -y chromium` (the `playwright` package comes from "
            "requirements-dev.txt; no `playwright install` is needed).",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    with start_fake_hub() as hub:
        yield hub


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, hub: FakeHub) -> Iterator[RunningApp]:
    token = hub.add_user("alice")
    with running_app(
        tmp_path_factory.mktemp("console-browser"),
        handlers={"count_runs.py": COUNTING_HANDLER},
        WEBHOOK_MAX_ATTEMPTS="1",
        NO_PROXY="127.0.0.1,localhost",
        **hub.client_env(token=token),
    ) as app:
        for fixture in ("repo-content-update-space-new-pr-ref.json", "discussion-update-pr-closed-space.json"):
            response = app.post("/webhooks/count_runs", fixture_body(fixture))
            assert response.status_code == 200, response.text
        yield app


@pytest.fixture(scope="module")
def browser():
    executable = chromium_or_fail()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app: RunningApp):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app.url)
    page.get_by_role("tab", name="Console 🔒").click()
    yield page
    context.close()


def runs(app: RunningApp) -> list[str]:
    path = app.data_dir / "runs.txt"
    return path.read_text().splitlines() if path.exists() else []


def unlock(page) -> None:
    from playwright.sync_api import expect

    page.locator("#console-secret input").fill(SECRET)
    page.locator("#console-unlock").click()
    expect(page.locator("#console-who")).to_contain_text("Console unlocked")


def delivery_row(page, text: str, *, nth: int = 0):
    return page.locator("#deliveries [role=row]", has_text=text).nth(nth)


def test_a_stranger_sees_the_public_part_and_no_event(page, app: RunningApp) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#console-lock")).to_be_visible()
    expect(page.locator("#console")).to_have_count(0)
    page.locator("#console-secret input").fill("not-the-secret")
    page.locator("#console-unlock").click()
    expect(page.locator("#console-lock-message")).to_contain_text("not one of this Space's webhook secrets")
    expect(page.locator("#console")).to_have_count(0)
    page.get_by_role("tab", name="Endpoints").click()
    page.get_by_role("tab", name="Console 🔒").click()
    expect(page.locator("#console-lock-message")).to_contain_text("not one of")  # not wiped by what follows
    html = page.content()
    assert COMMIT_REPO not in html and DISCUSSION_REPO not in html and SECRET not in html
    page.get_by_role("tab", name="Endpoints").click()
    expect(page.locator("#endpoints")).to_contain_text(app.url + "/webhooks/count_runs")
    expect(page.locator("#secret-status")).to_contain_text("Webhook secret: configured")


def test_unlocking_shows_the_deliveries_of_real_posts(page) -> None:
    from playwright.sync_api import expect

    unlock(page)
    expect(delivery_row(page, COMMIT_REPO)).to_contain_text("succeeded")
    expect(delivery_row(page, DISCUSSION_REPO)).to_contain_text("discussion/update")
    expect(page.locator("#console-summary")).to_contain_text("Working")
    delivery_row(page, DISCUSSION_REPO).locator("[role=gridcell]").first.click()
    expect(page.locator("#event-title")).to_contain_text(DISCUSSION_REPO)
    expect(page.locator("#event-attempts")).to_contain_text("Attempt 1")
    page.get_by_role("tab", name="Payload").click()
    expect(page.locator("#event-payload")).to_contain_text('"scope": "discussion"')
    page.get_by_role("tab", name="Headers").click()
    expect(page.locator("#event-headers")).to_contain_text("content-type")
    expect(page.locator("#event-headers")).not_to_contain_text(SECRET)


def test_replay_runs_the_handler_again(page, app: RunningApp) -> None:
    from playwright.sync_api import expect

    unlock(page)
    delivery_row(page, COMMIT_REPO).locator("[role=gridcell]").first.click()
    expect(page.locator("#event-title")).to_contain_text(COMMIT_REPO)
    before = runs(app).count(COMMIT_REPO)
    page.locator("#replay-event").click()
    expect(page.locator("#console-action")).to_contain_text("Replaying event #")
    wait_until(lambda: runs(app).count(COMMIT_REPO) == before + 1, message="the handler to run again")
    page.locator("#event-number input").press("Enter")
    expect(page.locator("#event-attempts")).to_contain_text("Attempt 2")


def test_dead_events_are_re_run_with_one_click_after_the_fix(page, app: RunningApp) -> None:
    from playwright.sync_api import expect

    flag = app.data_dir / "fail.flag"
    flag.touch()
    try:
        failed = app.post("/webhooks/count_runs", fixture_body("discussion-create-pr-opened.json"))
        assert failed.status_code == 202 and failed.json()["status"] == "dead"
        unlock(page)
        expect(page.locator("#console-summary")).to_contain_text("1 dead event(s)")
        expect(page.locator("#console-summary")).to_contain_text("the model card has no license field")
    finally:
        flag.unlink()  # the fix, pushed
    before = len(runs(app))
    page.locator("#rerun-dead").click()
    expect(page.locator("#console-action")).to_contain_text("Re-running 1 dead event(s)")
    wait_until(lambda: len(runs(app)) == before + 1, message="the dead event to run again")
    expect(page.locator("#console-summary")).to_contain_text("Working")
    expect(page.locator("#rerun-dead")).to_be_hidden()


def test_a_test_event_sent_from_the_console_arrives_marked_as_a_test(page, app: RunningApp) -> None:
    from playwright.sync_api import expect

    unlock(page)
    page.get_by_role("tab", name="Test events").click()
    page.locator("#test-repo input").fill("console-user/sent-from-console")
    page.locator("#test-send").click()
    expect(page.locator("#test-result")).to_contain_text("HTTP 200")
    expect(page.locator("#test-result")).to_contain_text("marked 🧪 test")
    wait_until(lambda: "console-user/sent-from-console" in runs(app), message="the test event to reach the handler")
    page.get_by_role("tab", name="Deliveries").click()
    row = delivery_row(page, "console-user/sent-from-console")
    expect(row).to_contain_text("🧪 test")
    expect(row).to_contain_text("repo.content/update")
    expect(page.locator("#event-title")).to_contain_text("test event")


def test_hub_webhooks_are_listed_and_created_from_the_console(page, app: RunningApp, hub: FakeHub) -> None:
    from playwright.sync_api import expect

    unlock(page)
    page.get_by_role("tab", name="Hub registration").click()
    expect(page.locator("#hub-message")).to_contain_text("No Hub webhook points at")
    page.locator("#hub-sync").click()
    expect(page.locator("#hub-message")).to_contain_text("created")
    expect(page.locator("#hub-table")).to_contain_text(app.url + "/webhooks/count_runs")
    expect(page.locator("#hub-table")).to_contain_text("the Space's")
    (webhook,) = hub.webhooks()
    assert (webhook.url, webhook.secret, webhook.owner) == (app.url + "/webhooks/count_runs", SECRET, "alice")
    assert SECRET not in page.content()


def test_the_health_tab_counts_states_and_the_hub_limit(page) -> None:
    from playwright.sync_api import expect

    unlock(page)
    page.get_by_role("tab", name="Health").click()
    expect(page.locator("#health-table")).to_contain_text("Deliveries")
    expect(page.locator("#hub-usage")).to_contain_text("/ 1,000")
    expect(page.locator("#states-plot")).to_be_visible()


def open_unlocked(browser, app: RunningApp, width: int):
    context = browser.new_context(viewport={"width": width, "height": 844})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app.url)
    page.get_by_role("tab", name="Console 🔒").click()
    unlock(page)
    return context, page


def header_boxes(page) -> dict[str, dict | None]:
    """Each column header's box on screen (None when not displayed)."""
    from playwright.sync_api import expect

    expect(delivery_row(page, COMMIT_REPO)).to_be_visible()
    return {
        name: page.locator(f'#deliveries th[aria-colindex="{index}"]').bounding_box()
        for index, name in enumerate(DELIVERY_COLUMNS, start=1)
    }


@pytest.mark.parametrize("width", [390, 1280])
def test_the_deliveries_table_keeps_its_key_columns_in_view(browser, app: RunningApp, width: int) -> None:
    """On a phone the table showed # and Time and cut the rest off the screen; now the columns that say
    what happened fill the width and the others are left to the event's detail."""
    context, page = open_unlocked(browser, app, width)
    try:
        boxes = header_boxes(page)
        shown = [name for name, box in boxes.items() if box is not None and box["width"] > 0]
        assert shown == (PHONE_COLUMNS if width < 640 else DELIVERY_COLUMNS)
        for name in shown:  # whole, inside the window: nothing to scroll sideways to
            assert boxes[name]["x"] >= 0 and boxes[name]["x"] + boxes[name]["width"] <= width, (name, boxes[name])
        for index in (3, 5, 6):  # state, event, repo: whole, not cut off with an ellipsis
            cell = delivery_row(page, COMMIT_REPO).locator(f'[role=gridcell][aria-colindex="{index}"] .text')
            assert cell.evaluate("e => e.scrollWidth <= e.clientWidth"), cell.inner_text()
    finally:
        context.close()


def test_the_event_number_box_has_a_visible_label(page) -> None:
    from playwright.sync_api import expect

    unlock(page)
    expect(page.locator("#event-number").get_by_text("Event #")).to_be_visible()


def test_the_console_tab_shows_the_lock_only_while_locked(page) -> None:
    from playwright.sync_api import expect

    unlock(page)
    expect(page.get_by_role("tab", name="Console 🔒")).to_have_count(0)
    expect(page.get_by_role("tab", name="Console", exact=True)).to_be_visible()
    page.get_by_role("button", name="Lock", exact=True).click()
    expect(page.get_by_role("tab", name="Console 🔒")).to_be_visible()
    expect(page.locator("#console-lock")).to_be_visible()


def test_a_local_page_says_the_hub_cannot_reach_it_and_how_to_get_a_public_url(page, app: RunningApp) -> None:
    from playwright.sync_api import expect

    notice = page.locator("#local-url")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("the Hub cannot reach it")
    expect(notice).to_contain_text("GRADIO_SHARE=true bin/run")
    expect(notice).to_contain_text("Deploy as a Space")
    page.get_by_role("tab", name="Set up on the Hub").click()
    expect(page.locator("#setup")).to_contain_text("only works on this machine")
    expect(page.locator("#setup")).not_to_contain_text("Webhook URL")
    page.get_by_role("tab", name="Endpoints").click()
    expect(page.locator("#endpoints")).to_contain_text("Local URL")


def test_pause_resume_and_a_filtered_bulk_replay_are_clicked_through(page, app: RunningApp) -> None:
    """Pause the endpoint, see a delivery held, resume it and see it run; then filter on one repository's dead
    events received in the last hour, count them, confirm, and see exactly those run again."""
    from playwright.sync_api import expect

    def post(repo: str, sha: str) -> dict:
        body = fixture_json("repo-content-update-space-new-pr-ref.json")
        body["repo"].update(name=repo, headSha=sha)
        response = app.post("/webhooks/count_runs", body, headers={"webhook-id": f"browser-{repo}-{sha}"})
        assert response.status_code in (200, 202), response.text
        return response.json()

    unlock(page)
    page.get_by_role("tab", name="Pause & limits").click()
    expect(page.locator("#pauses-status")).to_contain_text("▶️ running")
    page.locator("#pause-endpoint-button").click()
    expect(page.locator("#pause-message")).to_contain_text("Paused")
    expect(page.locator("#pauses-status")).to_contain_text("paused since")
    assert post("browser/held", "1" * 40)["status"] == "paused"
    page.get_by_role("tab", name="Deliveries").click()
    expect(delivery_row(page, "browser/held")).to_contain_text("paused")
    assert "browser/held" not in runs(app)
    page.get_by_role("tab", name="Pause & limits").click()
    page.locator("#resume-endpoint-button").click()
    expect(page.locator("#pause-message")).to_contain_text("Resumed")
    expect(page.locator("#pause-message")).to_contain_text("1 held event(s) queued")
    wait_until(lambda: "browser/held" in runs(app), message="the held event to run on resume")
    expect(page.locator("#pauses-status")).to_contain_text("▶️ running")

    flag = app.data_dir / "fail.flag"
    flag.touch()
    try:
        for n, repo in enumerate(["browser/bulk", "browser/bulk", "browser/other"]):
            assert post(repo, f"{n}" * 40)["status"] == "dead"
    finally:
        flag.unlink()  # the fix, pushed
    before = runs(app).count("browser/bulk")
    page.get_by_role("tab", name="Deliveries").click()
    page.locator("#filter-state input").click()
    page.get_by_role("option", name="💀 dead").click()
    page.get_by_label("Repo").fill("browser/bulk")
    page.get_by_label("Repo").press("Enter")
    page.locator("#filter-received input").click()
    page.get_by_role("option", name="Last hour").click()
    expect(delivery_row(page, "browser/bulk", nth=1)).to_contain_text("dead")
    expect(page.locator("#deliveries")).not_to_contain_text("browser/other")
    page.locator("#bulk-replay-count").click()
    expect(page.locator("#bulk-replay-message")).to_contain_text("2 event(s) will run again")
    expect(page.locator("#bulk-replay-confirm")).to_have_text("Replay these 2 event(s)")
    page.locator("#bulk-replay-confirm").click()
    expect(page.locator("#bulk-replay-message")).to_contain_text("Replaying 2 event(s)")
    expect(page.locator("#bulk-replay-confirm")).to_be_hidden()
    wait_until(lambda: runs(app).count("browser/bulk") == before + 2, message="the two dead events to run again")
    assert runs(app).count("browser/other") == 1  # not matched, not replayed


# --- reading well on a phone, and saying what it is ---------------------------------------------------------

DELIVERY_COLUMNS = ["#", "Time (UTC)", "State", "Endpoint", "Event", "Repo", "Tries", "Ack ms", "Run ms", "Test"]
PHONE_COLUMNS = ["#", "State", "Endpoint", "Event", "Repo"]
