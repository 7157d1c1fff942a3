"""`GET /metrics` on the real app (`python app.py`) over HTTP, read with `prometheus_client`'s own parser.

Every value is checked against what the test sent: so many deliveries of each outcome, so many
refusals by status, so many handler runs by result, the events the journal holds by state. A
stranger, with no token, a wrong one or the wrong scheme, gets the same bare 401. After a
restart the process counters start again from 0 (Prometheus' `rate()` expects that) and the
state series still say what the journal holds.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from apprunner import SECRET, RunningApp, base_env, fixture_json, make_space, start_app, wait_until
from prometheus_client.parser import text_string_to_metric_families

METRICS_TOKEN = "prometheus-scrape-T0ken"
OK = fixture_json("discussion-create-pr-opened.json")
CONTENT = fixture_json("repo-content-update-space-new-pr-ref.json")

HANDLERS = {
    "ok.py": '"""Succeeds."""\n\n\ndef handle(payload):\n    return {"ok": True}\n',
    "boom.py": '"""Always fails."""\n\n\ndef handle(payload):\n    raise RuntimeError("boom")\n',
    "discussions.py": (
        '"""Discussions only."""\nfrom lib import Events\n\nEVENTS = Events(scope="discussion")\n\n\n'
        "def handle(payload):\n    return {}\n"
    ),
}


def start(folder: Path, data_dir: Path) -> RunningApp:
    env = base_env(data_dir, METRICS_TOKEN=METRICS_TOKEN, WEBHOOK_MAX_ATTEMPTS="1", METRICS_MAX_AGE="0")
    return start_app(make_space(folder, HANDLERS), env)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[RunningApp]:
    running = start(tmp_path / "space", tmp_path / "data")
    try:
        yield running
    finally:
        running.stop()


def deliver(app: RunningApp, path: str, body: dict, *, webhook_id: str | None = None, **kwargs) -> httpx.Response:
    headers = {"webhook-id": webhook_id or uuid.uuid4().hex}
    return app.post(path, body, headers=headers, **kwargs)


def scrape(app: RunningApp, token: str = METRICS_TOKEN) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of `/metrics`, by name and labels, parsed by prometheus_client."""
    response = httpx.get(app.url + "/metrics", headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def journal_counts(app: RunningApp) -> dict[tuple[str, str], int]:
    db = sqlite3.connect(f"file:{app.data_dir / 'journal.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT endpoint, state, COUNT(*) FROM events GROUP BY endpoint, state").fetchall()
    finally:
        db.close()
    return {(endpoint, state): count for endpoint, state, count in rows}


def test_the_series_say_what_was_sent(app: RunningApp) -> None:
    for _ in range(7):
        assert deliver(app, "/webhooks/ok", OK).status_code == 200
    repeated = uuid.uuid4().hex
    assert deliver(app, "/webhooks/ok", OK, webhook_id=repeated).status_code == 200
    assert deliver(app, "/webhooks/ok", OK, webhook_id=repeated).json()["status"] == "duplicate"
    for _ in range(3):
        assert deliver(app, "/webhooks/boom", OK).status_code == 202
    assert deliver(app, "/webhooks/discussions", CONTENT).json()["status"] == "skipped"
    assert deliver(app, "/webhooks/discussions", OK).status_code == 200
    assert deliver(app, "/webhooks/ok", OK, secret=None).status_code == 401
    assert deliver(app, "/webhooks/ok", OK, secret="wrong").status_code == 403
    assert deliver(app, "/webhooks/ok", OK, secret="wrong").status_code == 403
    assert app.post("/webhooks/ok", b"{not json").status_code == 400
    wait_until(lambda: journal_counts(app).get(("/webhooks/boom", "dead")) == 3, message="3 dead events")

    samples = scrape(app)
    deliveries = "hub_webhooks_deliveries_total"
    assert value(samples, deliveries, endpoint="/webhooks/ok", outcome="new", status="200") == 8
    assert value(samples, deliveries, endpoint="/webhooks/ok", outcome="duplicate", status="200") == 1
    assert value(samples, deliveries, endpoint="/webhooks/boom", outcome="new", status="202") == 3
    assert value(samples, deliveries, endpoint="/webhooks/discussions", outcome="skipped", status="200") == 1
    assert value(samples, deliveries, endpoint="/webhooks/discussions", outcome="new", status="200") == 1
    assert value(samples, deliveries, endpoint="/webhooks/ok", outcome="refused", status="401") == 1
    assert value(samples, deliveries, endpoint="/webhooks/ok", outcome="refused", status="403") == 2
    assert value(samples, deliveries, endpoint="/webhooks/ok", outcome="refused", status="400") == 1
    total = sum(v for (name, _), v in samples.items() if name == deliveries)
    assert total == 7 + 2 + 3 + 2 + 4

    runs = "hub_webhooks_handler_runs_total"
    assert value(samples, runs, endpoint="/webhooks/ok", result="succeeded") == 8
    assert value(samples, runs, endpoint="/webhooks/boom", result="dead") == 3
    assert value(samples, runs, endpoint="/webhooks/discussions", result="succeeded") == 1
    assert value(samples, "hub_webhooks_handler_duration_seconds_count", endpoint="/webhooks/ok") == 8
    assert value(samples, "hub_webhooks_handler_duration_seconds_count", endpoint="/webhooks/boom") == 3
    # Every recorded delivery's acknowledgement is timed; the refused ones are not recorded.
    assert value(samples, "hub_webhooks_ack_duration_seconds_count", endpoint="/webhooks/ok") == 9
    assert value(samples, "hub_webhooks_ack_duration_seconds_bucket", endpoint="/webhooks/ok", le="+Inf") == 9

    # The state series agree with the journal itself, row for row.
    counts = journal_counts(app)
    assert counts[("/webhooks/ok", "succeeded")] == 8
    for (endpoint, state), count in counts.items():
        assert value(samples, "hub_webhooks_events", endpoint=endpoint, state=state) == count
    assert sum(v for (name, _), v in samples.items() if name == "hub_webhooks_events") == sum(counts.values()) == 14
    assert value(samples, "hub_webhooks_dead_events", endpoint="/webhooks/boom") == 3
    assert value(samples, "hub_webhooks_dead_events", endpoint="/webhooks/ok") == 0
    assert value(samples, "hub_webhooks_queue_depth", endpoint="/webhooks/ok") == 0
    assert value(samples, "hub_webhooks_oldest_queued_age_seconds", endpoint="/webhooks/ok") == 0
    assert value(samples, "hub_webhooks_hub_triggers_24h", endpoint="/webhooks/ok") == 9
    assert value(samples, "hub_webhooks_hub_triggers_24h", endpoint="/webhooks/discussions") == 2
    assert value(samples, "hub_webhooks_hub_trigger_limit") == 1000
    assert value(samples, "hub_webhooks_journal_up") == 1
    files = [app.data_dir / "journal.sqlite3", app.data_dir / "journal.sqlite3-wal"]
    size = value(samples, "hub_webhooks_journal_size_bytes")
    assert size >= (app.data_dir / "journal.sqlite3").stat().st_size > 0
    assert size <= sum(path.stat().st_size for path in files if path.exists()) + 1024 * 1024
    assert value(samples, "hub_webhooks_handlers_running", endpoint="/webhooks/ok") == 0


def test_a_queue_that_waits_shows_its_depth_and_age(tmp_path: Path) -> None:
    slow = {"slow.py": '"""Sleeps."""\nimport time\n\n\ndef handle(payload):\n    time.sleep(3)\n    return {}\n'}
    env = base_env(
        tmp_path / "data",
        METRICS_TOKEN=METRICS_TOKEN,
        WEBHOOK_ACK_BUDGET="0",
        WEBHOOK_CONCURRENCY="1",
        METRICS_MAX_AGE="0",
    )
    app = start_app(make_space(tmp_path / "space", slow), env)
    try:
        for _ in range(3):  # one order key (the same repo): one runs, two wait in the queue
            assert deliver(app, "/webhooks/slow", OK).status_code == 202

        def aged() -> dict | None:
            samples = scrape(app)
            age = value(samples, "hub_webhooks_oldest_queued_age_seconds", endpoint="/webhooks/slow")
            return samples if age >= 1 else None

        samples = wait_until(aged, timeout=10, message="an oldest queued event at least 1 s old")
        assert value(samples, "hub_webhooks_queue_depth", endpoint="/webhooks/slow") == 2
        assert value(samples, "hub_webhooks_events", endpoint="/webhooks/slow", state="running") == 1
        assert value(samples, "hub_webhooks_handlers_running", endpoint="/webhooks/slow") == 1
        assert value(samples, "hub_webhooks_oldest_queued_age_seconds", endpoint="/webhooks/slow") < 30
    finally:
        app.stop()


def test_after_a_restart_the_counters_start_again_and_the_state_is_the_journals(tmp_path: Path) -> None:
    app = start(tmp_path / "space", tmp_path / "data")
    try:
        for _ in range(4):
            assert deliver(app, "/webhooks/ok", OK).status_code == 200
        assert (
            value(scrape(app), "hub_webhooks_deliveries_total", endpoint="/webhooks/ok", outcome="new", status="200")
            == 4
        )
    finally:
        app.kill()  # SIGKILL: nothing is saved on the way out
    app = start(tmp_path / "space", tmp_path / "data")
    try:
        samples = scrape(app)
        assert (
            value(samples, "hub_webhooks_deliveries_total", endpoint="/webhooks/ok", outcome="new", status="200") == 0
        )
        assert value(samples, "hub_webhooks_events", endpoint="/webhooks/ok", state="succeeded") == 4
        assert value(samples, "hub_webhooks_hub_triggers_24h", endpoint="/webhooks/ok") == 4
        assert deliver(app, "/webhooks/ok", OK).status_code == 200
        samples = scrape(app)
        assert (
            value(samples, "hub_webhooks_deliveries_total", endpoint="/webhooks/ok", outcome="new", status="200") == 1
        )
        assert value(samples, "hub_webhooks_events", endpoint="/webhooks/ok", state="succeeded") == 5
    finally:
        app.stop()


STRANGERS = [
    {},
    {"authorization": "Bearer wrong-token"},
    {"authorization": "Bearer"},
    {"authorization": f"Basic {METRICS_TOKEN}"},
    {"authorization": METRICS_TOKEN},
    {"x-webhook-secret": SECRET},
    {"authorization": f"Bearer {METRICS_TOKEN}x"},
    {"authorization": f"Bearer {METRICS_TOKEN[:-1]}"},
]


def test_a_stranger_gets_a_bare_401(app: RunningApp) -> None:
    for headers in STRANGERS:
        response = httpx.get(app.url + "/metrics", headers=headers, timeout=10)
        query = httpx.get(app.url + f"/metrics?token={METRICS_TOKEN}&secret={SECRET}", headers=headers, timeout=10)
        for answer in (response, query):
            assert answer.status_code == 401, headers
            assert answer.text == "Unauthorized\n"
            assert answer.headers["www-authenticate"] == "Bearer"
            assert "hub_webhooks" not in answer.text


def test_scrapes_closer_than_the_max_age_reuse_the_journal_read_but_never_the_counters(tmp_path: Path) -> None:
    app = start_app(make_space(tmp_path / "space", HANDLERS), base_env(tmp_path / "data", METRICS_TOKEN=METRICS_TOKEN))
    try:
        assert deliver(app, "/webhooks/ok", OK).status_code == 200
        first = scrape(app)
        assert value(first, "hub_webhooks_events", endpoint="/webhooks/ok", state="succeeded") == 1
        assert deliver(app, "/webhooks/ok", OK).status_code == 200
        second = scrape(app)  # within the default 5 s: the journal's series are the last read's
        assert value(second, "hub_webhooks_events", endpoint="/webhooks/ok", state="succeeded") == 1
        assert value(second, "hub_webhooks_deliveries_total", endpoint="/webhooks/ok", outcome="new", status="200") == 2
        time.sleep(5)
        third = scrape(app)
        assert value(third, "hub_webhooks_events", endpoint="/webhooks/ok", state="succeeded") == 2
    finally:
        app.stop()


def test_the_webhook_secret_is_a_token_too(app: RunningApp) -> None:
    assert value(scrape(app, token=SECRET), "hub_webhooks_journal_up") == 1


def test_without_any_token_metrics_are_off_and_say_nothing(tmp_path: Path) -> None:
    env = base_env(tmp_path / "data")
    del env["WEBHOOK_SECRET"]
    app = start_app(make_space(tmp_path / "space", HANDLERS), env)
    try:
        for headers in ({}, {"authorization": "Bearer"}, {"authorization": "Bearer anything"}):
            response = httpx.get(app.url + "/metrics", headers=headers, timeout=10)
            assert (response.status_code, response.text) == (401, "Unauthorized\n")
        assert "GET /metrics is off" in app.logs()
    finally:
        app.stop()
