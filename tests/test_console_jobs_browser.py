"""The console's Hub Jobs in a real browser (Chromium through Playwright), on the real app started as a
process, whose handler launches a job on the local fake Hub (`tests/fakehub.py`, its Jobs API).

The test moves each job through its stages on the fake Hub, as the Hub would, and reads the console
as the operator does: the event is "job running" with the job's id, link, flavor and stage; then,
once the app's follower has seen the job end, its outcome and the tail of its logs (read from the Hub
on demand while it runs). Cancel and a replay that launches a new job are clicked like any console button.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator

import pytest
from apprunner import RunningApp, running_app, wait_until
from fakehub import FakeHub
from test_console_browser import TIMEOUT_MS, browser, delivery_row, unlock

from lib.core.sample_events import sample_payload

LAUNCHING_HANDLER = '''"""Launches one job per commit, on a GPU flavor."""
from lib import WebhookPayload, run_job


def handle(payload: WebhookPayload):
    job = run_job("python:3.12", ["python", "-c", "print('training')"], flavor="t4-small", timeout="10m")
    return {"job": job.id, "url": job.url}
'''


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, hub: FakeHub) -> Iterator[RunningApp]:
    token = hub.add_user("alice")
    with running_app(
        tmp_path_factory.mktemp("console-jobs-browser"),
        handlers={"train.py": LAUNCHING_HANDLER},
        WEBHOOK_MAX_ATTEMPTS="1",
        WEBHOOK_JOB_POLL_MIN="0.2",
        WEBHOOK_JOB_POLL_MAX="0.5",
        NO_PROXY="127.0.0.1,localhost",
        **hub.client_env(token=token),
    ) as app:
        yield app


__all__ = ["browser"]  # the module's Chromium, from test_console_browser (a fixture)


@pytest.fixture
def page(browser, app: RunningApp):
    """An unlocked console. `expect` waits as long as actions do: the table refreshes on a timer, and
    a loaded machine (two cores, several test runs) can take more than the default 5 s between two."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    page.goto(app.url)
    page.get_by_role("tab", name="Console 🔒").click()
    unlock(page)
    yield page
    expect.set_options(timeout=5_000)  # Playwright's default, for the other modules
    context.close()


def event_state(app: RunningApp, event_id: int) -> str:
    db = sqlite3.connect(f"file:{app.data_dir / 'journal.sqlite3'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT state FROM events WHERE id = ?", (event_id,)).fetchone()[0]
    finally:
        db.close()


def launch(app: RunningApp, hub: FakeHub, repo: str):
    """A commit to `repo` posted as the Hub does; (event id, the job its handler launched)."""
    before = len(hub.jobs)
    answer = app.post("/webhooks/train", sample_payload("commit", repo=repo), headers={"webhook-id": uuid.uuid4().hex})
    assert answer.is_success, answer.text
    event_id = int(answer.headers["x-webhook-event-id"])
    job = hub.jobs.wait_for_launches(before + 1)[-1]
    wait_until(lambda: event_state(app, event_id) == "job_running", message="the event to be job_running")
    return event_id, job


def show(page, event_id: int) -> None:
    page.locator("#event-number input").fill(str(event_id))
    page.locator("#event-number input").press("Enter")


def test_the_console_shows_a_running_job_then_its_outcome(page, app: RunningApp, hub: FakeHub) -> None:
    from playwright.sync_api import expect

    event_id, job = launch(app, hub, "acme/houses")
    hub.jobs.set_stage(job.id, "RUNNING")

    expect(delivery_row(page, "acme/houses")).to_contain_text("job running")
    delivery_row(page, "acme/houses").locator("[role=gridcell]").first.click()
    panel = page.locator("#event-job")
    expect(panel).to_contain_text(job.id)
    expect(panel).to_contain_text("t4-small")
    expect(panel).to_contain_text("running")
    link = panel.get_by_role("link", name=job.id)
    assert link.get_attribute("href").endswith(f"/jobs/alice/{job.id}")
    expect(page.locator("#cancel-job")).to_be_visible()

    hub.jobs.add_logs(job.id, "epoch 1/3 loss 0.9")  # while it runs, the logs are read from the Hub on demand
    page.locator("#job-logs").click()
    expect(panel).to_contain_text("epoch 1/3 loss 0.9")
    expect(panel).to_contain_text("(fetched ")

    hub.jobs.add_logs(job.id, "epoch 3/3 loss 0.1", "saved the model")
    hub.jobs.set_stage(job.id, "COMPLETED")
    wait_until(lambda: event_state(app, event_id) == "succeeded", message="the follower to see the job end")

    expect(delivery_row(page, "acme/houses")).to_contain_text("succeeded")
    show(page, event_id)
    expect(panel).to_contain_text("completed")
    expect(panel).to_contain_text("epoch 3/3 loss 0.1")
    expect(page.locator("#cancel-job")).to_be_hidden()


def test_a_job_that_fails_shows_the_hubs_message_and_its_logs(page, app: RunningApp, hub: FakeHub) -> None:
    from playwright.sync_api import expect

    event_id, job = launch(app, hub, "acme/broken")
    hub.jobs.add_logs(job.id, "Traceback (most recent call last):", "RuntimeError: CUDA out of memory")
    hub.jobs.set_stage(job.id, "ERROR", message="Job failed with exit code: 1")
    wait_until(lambda: event_state(app, event_id) == "dead", message="the job's failure to end the event")

    expect(delivery_row(page, "acme/broken")).to_contain_text("dead")
    show(page, event_id)
    expect(page.locator("#event-job")).to_contain_text("error: Job failed with exit code: 1")
    expect(page.locator("#event-job")).to_contain_text("RuntimeError: CUDA out of memory")
    expect(page.locator("#event-attempts")).to_contain_text("RuntimeError: CUDA out of memory")


def test_cancel_stops_the_job_on_the_hub(page, app: RunningApp, hub: FakeHub) -> None:
    from playwright.sync_api import expect

    event_id, job = launch(app, hub, "acme/too-long")
    show(page, event_id)
    page.locator("#cancel-job").click()
    expect(page.locator("#console-action")).to_contain_text(f"Cancelled Hub Job {job.id}")
    assert hub.jobs.get(job.id).stage == "CANCELED"
    wait_until(lambda: event_state(app, event_id) == "dead", message="the cancelled job to end its event")
    expect(page.locator("#cancel-job")).to_be_hidden()


def test_replaying_an_event_with_a_job_asks_before_launching_a_new_one(page, app: RunningApp, hub: FakeHub) -> None:
    from playwright.sync_api import expect

    event_id, job = launch(app, hub, "acme/replayed")
    hub.jobs.set_stage(job.id, "COMPLETED")
    wait_until(lambda: event_state(app, event_id) == "succeeded", message="the job to complete")

    other, _ = launch(app, hub, "acme/not-replayed")
    launched = len(hub.jobs)
    show(page, event_id)
    page.locator("#replay-event").click()
    expect(page.locator("#console-action")).to_contain_text(f"Replaying event #{event_id} launches a new Hub Job")
    expect(page.locator("#confirm-replay")).to_be_visible()
    assert len(hub.jobs) == launched and event_state(app, event_id) == "succeeded"  # nothing yet

    show(page, other)  # the operator looks at another event meanwhile: the confirmation is still for the first
    page.locator("#confirm-replay").click()
    expect(page.locator("#console-action")).to_contain_text(f"Replaying event #{event_id}")
    expect(page.locator("#confirm-replay")).to_be_hidden()
    new = hub.jobs.wait_for_launches(launched + 1)[-1]
    assert new.id != job.id
    wait_until(lambda: event_state(app, event_id) == "job_running", message="the replay's job to be followed")
    assert event_state(app, other) == "job_running" and len(hub.jobs) == launched + 1
    show(page, event_id)
    expect(page.locator("#event-job")).to_contain_text(new.id)


def test_the_health_tab_counts_jobs_and_job_hours(page, app: RunningApp, hub: FakeHub) -> None:
    from playwright.sync_api import expect

    event_id, job = launch(app, hub, "acme/counted")
    hub.jobs.set_stage(job.id, "RUNNING")
    hub.jobs.set_stage(job.id, "COMPLETED")
    wait_until(lambda: event_state(app, event_id) == "succeeded", message="the job to complete")
    page.get_by_role("tab", name="Health").click()
    expect(page.locator("#job-health")).to_contain_text("Hub Jobs")
    expect(page.locator("#job-health")).to_contain_text("✅ completed")
    expect(page.locator("#job-health")).to_contain_text("Job-hours")
    expect(page.locator("#job-hours-plot")).to_be_visible()
