"""Alerts from the real app (`python app.py`) to a loopback webhook receiver and to the fake Hub's discussions.

What each test tries to break: an ongoing problem sent twice (dedup), a problem that grows without
an update, a recovery without its comment, a second discussion for the same problem when it comes
back, a burst of problems past the hourly limit, a target that fails (kept, retried, shown), a
target that hangs (deliveries must not wait for it), the journal refusing deliveries.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from apprunner import RunningApp, base_env, fixture_body, fixture_json, make_space, start_app, wait_until
from fakehub import FakeHub, start_fake_hub
from prometheus_client.parser import text_string_to_metric_families

from lib import WebhooksServer
from lib.core.ops_settings import OpsSettings
from lib.core.settings import Settings
from lib.receiver.delivery import build_delivery
from lib.receiver.parsing import parse_payload
from lib.ui.access import Grant
from lib.ui.console_actions import Console

SPACE = "alice/hooks-space"
PAYLOAD = fixture_json("discussion-create-pr-opened.json")
FLAKY = '''\
"""Fails while the file `broken` exists beside the journal."""
import os
from pathlib import Path


def handle(payload):
    if (Path(os.environ["DATA_DIR"]) / "broken").exists():
        raise RuntimeError("broken on purpose")
    return {"ok": True}
'''
HANDLERS = {"flaky.py": FLAKY, "other.py": FLAKY}


class Loopback:
    """An incoming-webhook receiver on 127.0.0.1 that keeps what it is sent; it can fail or hang on demand."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.failures_left = 0
        self.hang_seconds = 0.0
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with owner.lock:
                    failing = owner.failures_left > 0
                    owner.failures_left -= 1 if failing else 0
                    hang = owner.hang_seconds
                time.sleep(hang)
                if not failing:
                    with owner.lock:
                        owner.bodies.append(body)
                self.send_response(500 if failing else 200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        with self.lock:
            return [body["text"] for body in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    receiver = Loopback()
    yield receiver
    receiver.close()


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with start_fake_hub() as fake:
        yield fake
    assert not fake.errors, fake.errors


def start(tmp_path: Path, hub: FakeHub, loopback: Loopback, *, space: bool = True, **env: str) -> RunningApp:
    token = hub.add_user("alice")
    if space:
        hub.add_repo(SPACE, "space", sdk="gradio")
    settings = base_env(
        tmp_path / "data",
        WEBHOOK_ALERT_URL=loopback.url,
        SPACE_ID=SPACE,
        WEBHOOK_MAX_ATTEMPTS="1",
        WEBHOOK_ALERT_CHECK_SECONDS="0.2",
        WEBHOOK_ALERT_FAILURE_RATE="1",  # these tests are about dead events; rates are tested below
        METRICS_TOKEN="scrape",
        **hub.client_env(token),
    )
    settings.update(env)
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    return start_app(make_space(tmp_path / "space", HANDLERS), settings)


def deliver(app: RunningApp, path: str = "/webhooks/flaky", webhook_id: str | None = None) -> httpx.Response:
    return app.post(path, PAYLOAD, headers={"webhook-id": webhook_id or uuid.uuid4().hex})


def break_handlers(app: RunningApp, broken: bool) -> None:
    marker = app.data_dir / "broken"
    if broken:
        marker.touch()
    else:
        marker.unlink()


def discussions(hub: FakeHub) -> list:
    return hub.discussions(SPACE, "space")


def comments(hub: FakeHub, num: int) -> list[str]:
    return [comment.content for comment in hub.discussion(SPACE, num, "space").comments]


def scrape(app: RunningApp) -> dict[tuple[str, tuple], float]:
    response = httpx.get(app.url + "/metrics", headers={"authorization": "Bearer scrape"}, timeout=10)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def waiting(app: RunningApp) -> dict[str, float]:
    """Alert messages each target has not taken yet, from /metrics."""
    samples = scrape(app)
    return {dict(labels)["target"]: v for (name, labels), v in samples.items() if "messages_waiting" in name}


def quiet_for(seconds: float, *counts) -> None:
    """Assert that nothing more arrives for `seconds` (several check intervals)."""
    before = [count() for count in counts]
    time.sleep(seconds)
    assert [count() for count in counts] == before


def test_a_dead_event_is_alerted_once_updated_when_it_grows_and_recovered_with_a_comment(
    tmp_path: Path, hub: FakeHub, loopback: Loopback
) -> None:
    app = start(tmp_path, hub, loopback)
    try:
        break_handlers(app, True)
        first = uuid.uuid4().hex
        assert deliver(app, webhook_id=first).status_code == 202
        wait_until(lambda: len(loopback.texts()) == 1 and discussions(hub), message="the first alert")
        [text] = loopback.texts()
        assert text.startswith("🔴 Dead events on /webhooks/flaky on the Space alice/hooks-space")
        assert "1 event(s) on /webhooks/flaky" in text
        assert loopback.bodies[0]["content"] == text  # Discord reads `content`, Slack `text`
        [discussion] = discussions(hub)
        assert discussion.title == "Alert: Dead events on /webhooks/flaky"
        assert discussion.status == "open" and discussion.author == "alice"

        # The same problem going on: nothing more, however many checks pass.
        quiet_for(1.5, lambda: len(loopback.texts()), lambda: len(comments(hub, discussion.num)))

        # It grows: one update, as a comment on the same discussion.
        second = uuid.uuid4().hex
        assert deliver(app, webhook_id=second).status_code == 202
        wait_until(lambda: len(loopback.texts()) == 2, message="the update")
        assert "(still going on, worse)" in loopback.texts()[1] and "2 event(s)" in loopback.texts()[1]
        wait_until(lambda: len(comments(hub, discussion.num)) == 2, message="the update's comment")

        # Fixed, and the Hub redelivers both: they run, nothing is dead, the problem recovers.
        break_handlers(app, False)
        for webhook_id in (first, second):
            assert deliver(app, webhook_id=webhook_id).status_code == 200
        wait_until(lambda: len(loopback.texts()) == 3, message="the recovery")
        assert loopback.texts()[2].startswith("✅ Recovered: Dead events on /webhooks/flaky")
        wait_until(lambda: discussions(hub)[0].status == "closed", message="the discussion closed")
        assert comments(hub, discussion.num)[-1].startswith("✅ Recovered")

        # It comes back: the same discussion, reopened, never a second one.
        break_handlers(app, True)
        assert deliver(app).status_code == 202
        wait_until(lambda: len(loopback.texts()) == 4, message="the alert again")
        wait_until(lambda: discussions(hub)[0].status == "open", message="the discussion reopened")
        assert len(discussions(hub)) == 1
        assert len(comments(hub, discussion.num)) == 4
        log = app.logs()
        assert "Alert (raise): Dead events on /webhooks/flaky" in log
        assert loopback.url not in log and "<WEBHOOK_ALERT_URL>" in log  # the URL is a credential
    finally:
        app.stop()


def test_a_restart_does_not_alert_again_and_a_lost_state_finds_the_discussion_by_title(
    tmp_path: Path, hub: FakeHub, loopback: Loopback
) -> None:
    app = start(tmp_path, hub, loopback)
    try:
        break_handlers(app, True)
        assert deliver(app).status_code == 202
        wait_until(lambda: len(loopback.texts()) == 1 and discussions(hub), message="the alert")
        wait_until(lambda: waiting(app) == {"webhook": 0, "discussion": 0}, message="both targets done")
    finally:
        app.kill()
    settings, folder = app.env, app.folder
    app = start_app(folder, settings)
    try:  # the problem still goes on, and was already sent: nothing again
        quiet_for(1.5, lambda: len(loopback.texts()))
    finally:
        app.stop()
    (app.data_dir / "alerts.json").unlink()  # a Space without persistent storage forgets everything
    app = start_app(folder, settings)
    try:
        wait_until(lambda: len(loopback.texts()) == 2, message="the alert sent again by a memoryless app")
        wait_until(lambda: len(comments(hub, 1)) == 2, message="the alert on the discussion found by its title")
        assert len(discussions(hub)) == 1
    finally:
        app.stop()


def test_past_the_hourly_limit_alerts_are_held_back_and_counted(
    tmp_path: Path, hub: FakeHub, loopback: Loopback
) -> None:
    app = start(tmp_path, hub, loopback, WEBHOOK_ALERT_MAX_PER_HOUR="2", WEBHOOK_ALERT_HUB_BUDGET="0.003")
    try:
        break_handlers(app, True)
        flaky_id = uuid.uuid4().hex
        assert deliver(app, "/webhooks/flaky", webhook_id=flaky_id).status_code == 202
        wait_until(lambda: len(loopback.texts()) == 1, message="the first alert")
        for _ in range(4):  # dead events, and past 3 triggers a day: two more problems, one allowed
            assert deliver(app, "/webhooks/other").status_code == 202
        # Each target takes an alert on its own: wait for both to have the second one before listening.
        wait_until(lambda: len(loopback.texts()) == 2 and len(discussions(hub)) == 2, message="the second alert")
        quiet_for(1.5, lambda: len(loopback.texts()), lambda: len(discussions(hub)))
        assert len(discussions(hub)) == 2
        assert "held back by WEBHOOK_ALERT_MAX_PER_HOUR=2" in app.logs()
        samples = scrape(app)
        open_problems = sum(v for (name, _), v in samples.items() if name == "hub_webhooks_alerts_open")
        assert open_problems == 3  # dead on both endpoints, /webhooks/other over budget: all tracked, two sent

        # A recovery always follows the alert it ends, though the hour's alerts are spent.
        break_handlers(app, False)
        assert deliver(app, "/webhooks/flaky", webhook_id=flaky_id).status_code == 200  # the Hub redelivers it
        wait_until(lambda: len(loopback.texts()) == 3, message="the recovery")
        assert loopback.texts()[2].startswith("✅ Recovered: Dead events on /webhooks/flaky")
    finally:
        app.stop()


def test_a_failing_target_is_retried_and_shown_and_never_holds_a_delivery(
    tmp_path: Path, hub: FakeHub, loopback: Loopback
) -> None:
    loopback.failures_left = 2
    app = start(tmp_path, hub, loopback, space=False)  # the Space repo does not exist yet: 404 from the Hub
    try:
        break_handlers(app, True)
        assert deliver(app).status_code == 202
        wait_until(lambda: "did not take an alert" in app.logs(), message="the failure logged")
        assert waiting(app)["discussion"] == 1
        wait_until(lambda: len(loopback.texts()) == 1, timeout=10, message="the webhook's third try taken")
        assert loopback.failures_left == 0  # both 500s were met, and the third try taken
        assert "The alert target webhook did not take an alert (try 1;" in app.logs()

        hub.add_repo(SPACE, "space", sdk="gradio")  # the discussion target can work now
        wait_until(lambda: discussions(hub), timeout=15, message="the discussion, retried")
        wait_until(lambda: waiting(app) == {"webhook": 0, "discussion": 0}, message="nothing waiting")

        # A target that hangs: deliveries are answered as fast as ever meanwhile.
        loopback.hang_seconds = 5.0
        break_handlers(app, False)
        break_handlers(app, True)
        assert deliver(app, "/webhooks/other").status_code == 202  # a new problem: its alert hangs 5 s
        started = time.monotonic()
        break_handlers(app, False)
        for _ in range(5):
            assert deliver(app, "/webhooks/flaky").status_code == 200
        assert time.monotonic() - started < 3
    finally:
        app.stop()


def test_the_journal_refusing_deliveries_is_alerted(tmp_path: Path, hub: FakeHub, loopback: Loopback) -> None:
    app = start(tmp_path, hub, loopback, WEBHOOK_JOURNAL_MAX_BYTES=str(64 * 1024), WEBHOOK_ALERT_HUB_BUDGET="1")
    try:
        body = {**PAYLOAD, "padding": "x" * 20_000}
        statuses = [
            app.post("/webhooks/flaky", body, headers={"webhook-id": uuid.uuid4().hex}).status_code for _ in range(20)
        ]
        assert 503 in statuses
        wait_until(
            lambda: any("The event journal is unavailable" in text for text in loopback.texts()), message="the alert"
        )
    finally:
        app.stop()


@pytest.mark.anyio
async def test_the_console_shows_a_failing_target_and_the_open_problem(tmp_path: Path, loopback: Loopback) -> None:
    """The console's Health tab (its backend function, with an operator's grant) over a real server whose
    alert webhook answers 500: the problem, the target failing with its error, the alert waiting."""
    loopback.failures_left = 1000
    ops = OpsSettings(alert_url=loopback.url, alert_discussions=False, check_seconds=0.1)
    server = WebhooksServer(settings=Settings(webhook_secrets=("s",), data_dir=tmp_path, ops=ops))
    server.add_webhook("/flaky")(lambda payload: None)
    journal = server.journal
    body = fixture_body("discussion-create-pr-opened.json")
    delivery = build_delivery(
        endpoint="/webhooks/flaky",
        headers={},
        query_string="",
        body=body,
        payload=parse_payload(body),
        order_per_repo=True,
    )
    recorded = await journal.record(delivery, skipped_reason=None, max_attempts=1, duplicate_window=600)
    await journal.claim_due(now=time.time(), limit=1)
    await journal.fail(recorded.event.id, error="boom", handler_ms=1.0, retry_at=None)
    await server.monitoring.start(lambda: journal, lambda: server.endpoints, dict)
    try:
        grant = Grant(who="webhook secret", method="secret", expires_at=time.time() + 60)
        for _ in range(100):
            panel = (await Console(server).health(grant)).usage_html
            if "is failing" in panel:
                break
            await asyncio.sleep(0.05)
        assert "🔴 Dead events on /webhooks/flaky" in panel
        assert "⚠️ <b>webhook</b> is failing: WEBHOOK_ALERT_URL answered HTTP 500." in panel
        assert "1 alert(s) waiting" in panel
        assert loopback.url not in panel
    finally:
        await server.monitoring.stop()
        await journal.close()
