"""Hub Jobs end to end: the real app as a process, handlers that launch jobs, and the fake Hub's Jobs API
(tests/fakehub_jobs.py) driven by the test: each guarantee of issue 12 attacked over real HTTP.

- a launch happens at most once per event: three redeliveries, a handler that fails after launching,
  and a SIGKILL after the Hub accepted the job but before the journal heard of it, each leave one job;
- a job is followed to its end, after a restart too: COMPLETED -> succeeded, ERROR -> dead with its log
  tail, past its timeout -> cancelled and dead;
- `on_job_end` is recorded and retried like a handler, and comments once;
- the cost guards: the daily cap (skipped, never an error), "wait" and "supersede";
- no token, or a token the Hub refuses: a clear failure, and the app goes on.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apprunner import RunningApp, base_env, make_space, running_app, start_app, wait_until
from fakehub import FakeHub

from lib.core.sample_events import sample_payload

LAUNCHER = '''
"""Launches a job per commit; reports its end on the repo's discussion #1."""
import os
from pathlib import Path

from lib import JobEnd, WebhookPayload, hub_client, run_job

JOB_POLICY = os.environ.get("TEST_JOB_POLICY", "wait")


def handle(payload: WebhookPayload):
    command = ["python", "-c", "print('training')"]
    job = run_job("python:3.12", command, env={"REPO": payload.repo.name}, timeout=TIMEOUT)
    if "fails-after-launch" in payload.repo.name and not job.reused:
        raise RuntimeError("the handler failed after launching its job")
    return {"job": job.id, "reused": job.reused}


TIMEOUT = os.environ.get("TEST_JOB_TIMEOUT", "1h")


def on_job_end(job: JobEnd, payload: WebhookPayload):
    hub = hub_client()
    repo = payload.repo.name
    marker = f"job {job.id} ended {job.stage}"
    details = hub.get_discussion_details(repo, 1, repo_type=payload.repo.type)
    if not any(marker in (getattr(event, "content", "") or "") for event in details.events):
        hub.comment_discussion(repo, 1, f"{marker} in {job.duration_seconds} s", repo_type=payload.repo.type)
    flag = Path(os.environ["DATA_DIR"]) / f"reported-{job.id}"
    if not flag.exists():  # the first report "loses its answer" after commenting: it is retried
        flag.write_text("once")
        raise RuntimeError("the report failed after commenting")
    return {"reported": job.id}
'''

CAPPED = '''
"""At most one job a day."""
from lib import run_job

JOBS_PER_DAY = 1


def handle(payload):
    return {"job": run_job("python:3.12", ["true"]).id}
'''


@pytest.fixture(scope="module")
def token(hub: FakeHub) -> str:
    return hub.add_user("bot", orgs=["acme"])


def app_env(hub: FakeHub, folder: Path, token: str | None, **extra: str) -> dict[str, str]:
    env = {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(folder / "hf_home"),
        "NO_PROXY": "127.0.0.1,localhost",
        "WEBHOOK_JOB_POLL_MIN": "0.1",
        "WEBHOOK_JOB_POLL_MAX": "0.3",
        "WEBHOOK_RETRY_BASE": "0.1",
        "WEBHOOK_RETRY_MAX": "0.2",
        "WEBHOOK_MAX_ATTEMPTS": "3",
        "WEBHOOK_ACK_BUDGET": "20",  # the answer waits for the launch: what it says is then known
        **extra,
    }
    if token is not None:
        env["HF_TOKEN"] = token
    return env


@pytest.fixture(scope="module")
def app(hub: FakeHub, token: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    folder = tmp_path_factory.mktemp("jobs")
    handlers = {"launcher.py": LAUNCHER, "capped.py": CAPPED}
    with running_app(folder, handlers=handlers, **app_env(hub, folder, token)) as running:
        yield running


def new_repo(hub: FakeHub, name: str) -> str:
    repo = f"acme/{name}-{uuid.uuid4().hex[:8]}"
    hub.add_repo(repo)
    hub.add_discussion(repo, "Training results", author="bot")
    return repo


def post(app: RunningApp, endpoint: str, repo: str, *, webhook_id: str | None = None) -> int:
    answer = app.post(
        f"/webhooks/{endpoint}",
        sample_payload("commit", repo=repo),
        headers={"webhook-id": webhook_id or uuid.uuid4().hex},
    )
    assert answer.status_code in (200, 202), answer.text
    return int(answer.headers["x-webhook-event-id"])


def rows(app: RunningApp, sql: str, *parameters: Any) -> list[dict[str, Any]]:
    db = sqlite3.connect(f"file:{app.data_dir / 'journal.sqlite3'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute(sql, parameters)]
    finally:
        db.close()


def event(app: RunningApp, event_id: int) -> dict[str, Any]:
    return rows(app, "SELECT * FROM events WHERE id = ?", event_id)[0]


def wait_state(app: RunningApp, event_id: int, *states: str, timeout: float = 20.0) -> dict[str, Any]:
    return wait_until(
        lambda: (row := event(app, event_id))["state"] in states and row,
        timeout=timeout,
        message=f"event {event_id} to be {' or '.join(states)}",
    )


def jobs_of(hub: FakeHub, repo: str) -> list[Any]:
    return [job for job in hub.jobs.all() if job.environment.get("REPO") == repo]


def report_of(app: RunningApp, event_id: int) -> dict[str, Any]:
    """The report event of `event_id`'s job, once it ran."""
    label = rows(app, "SELECT label FROM jobs WHERE event_id = ?", event_id)[0]["label"]
    return wait_until(
        lambda: (
            (
                found := rows(
                    app, "SELECT * FROM events WHERE delivery_key = ? AND state != 'duplicate'", f"job-end:{label}"
                )
            )
            and found[0]["state"] in ("succeeded", "dead")
            and found[0]
        ),
        message=f"the report of event {event_id}",
    )


def test_redeliveries_launch_one_job_which_is_followed_to_success_and_reported_once(
    app: RunningApp, hub: FakeHub
) -> None:
    repo = new_repo(hub, "three-deliveries")
    webhook_id = uuid.uuid4().hex
    answer = app.post("/webhooks/launcher", sample_payload("commit", repo=repo), headers={"webhook-id": webhook_id})
    assert answer.status_code == 202, answer.text  # accepted: the work goes on, on the Hub
    first = int(answer.headers["x-webhook-event-id"])
    [job] = jobs_of(hub, repo)
    assert answer.json() == {
        "status": "job_running",
        "event_id": first,
        "result": {"job": job.id, "reused": False},
        "detail": "The handler launched a Hub Job; the event ends when the job does.",
    }
    assert post(app, "launcher", repo, webhook_id=webhook_id) != first  # answered duplicate
    assert post(app, "launcher", repo, webhook_id=webhook_id) != first
    [job] = jobs_of(hub, repo)
    assert job.secrets["HF_TOKEN"].startswith("hf_fake_bot") and "HF_TOKEN" not in job.environment
    assert set(job.labels) >= {"hub-webhooks-event"}
    assert (
        rows(app, "SELECT COUNT(*) AS n FROM events WHERE original_id = ? AND state = 'duplicate'", first)[0]["n"] == 2
    )

    hub.jobs.set_stage(job.id, "RUNNING")
    hub.jobs.add_logs(job.id, "epoch 1: loss 0.5", "epoch 2: loss 0.2")
    wait_until(lambda: rows(app, "SELECT stage FROM jobs WHERE event_id = ?", first)[0]["stage"] == "RUNNING")
    hub.jobs.set_stage(job.id, "COMPLETED")
    done = wait_state(app, first, "succeeded")
    assert json.loads(done["result"]) == {"job": job.id, "reused": False}
    stored = rows(app, "SELECT * FROM jobs WHERE event_id = ?", first)[0]
    assert (stored["stage"], stored["job_id"]) == ("COMPLETED", job.id)
    assert stored["logs_tail"].endswith("epoch 2: loss 0.2")

    # The report: recorded as its own event, failed once after commenting, retried, commented once.
    report = report_of(app, first)
    assert (report["state"], report["attempts"], report["endpoint"]) == (
        "succeeded",
        2,
        "/webhooks/launcher#on_job_end",
    )
    comments = [c.content for c in hub.discussion(repo, 1).comments if f"job {job.id} ended COMPLETED" in c.content]
    assert len(comments) == 1
    assert len(jobs_of(hub, repo)) == 1  # the report launched nothing


def test_a_handler_that_fails_after_launching_finds_its_job_again(app: RunningApp, hub: FakeHub) -> None:
    repo = new_repo(hub, "fails-after-launch")
    event_id = post(app, "launcher", repo)
    running = wait_state(app, event_id, "job_running")
    assert running["attempts"] == 2
    [job] = jobs_of(hub, repo)
    assert json.loads(running["result"]) == {"job": job.id, "reused": True}
    hub.jobs.set_stage(job.id, "CANCELED", message="cancelled by alice")
    dead = wait_state(app, event_id, "dead")
    assert f"The Hub Job {job.id} ended CANCELED: cancelled by alice" in dead["error"]


def test_a_job_that_ends_in_error_leaves_its_event_dead_with_the_log_tail(app: RunningApp, hub: FakeHub) -> None:
    repo = new_repo(hub, "error")
    webhook_id = uuid.uuid4().hex
    event_id = post(app, "launcher", repo, webhook_id=webhook_id)
    wait_state(app, event_id, "job_running")
    [job] = jobs_of(hub, repo)
    hub.jobs.add_logs(job.id, *[f"step {n}" for n in range(100)], "Traceback (most recent call last):", "MemoryError")
    hub.jobs.set_stage(job.id, "ERROR", message="Job failed with exit code: 1")
    dead = wait_state(app, event_id, "dead")
    assert f"The Hub Job {job.id} ended ERROR: Job failed with exit code: 1" in dead["error"]
    assert dead["error"].endswith("Traceback (most recent call last):\nMemoryError")
    assert "step 59" not in dead["error"] and "step 99" in dead["error"]  # the tail only
    [attempt] = rows(app, "SELECT * FROM attempts WHERE event_id = ?", event_id)
    assert (attempt["outcome"], attempt["detail"]) == ("failed", dead["error"])
    assert report_of(app, event_id)["state"] == "succeeded"
    # The Hub's Replay of that delivery runs the handler again, which finds the same job: still one, still dead.
    assert post(app, "launcher", repo, webhook_id=webhook_id) != event_id
    wait_until(lambda: event(app, event_id)["attempts"] == 2, message="the redelivery to run the handler again")
    assert wait_state(app, event_id, "dead")["error"] == dead["error"]
    assert len(jobs_of(hub, repo)) == 1


def test_a_repos_next_event_waits_for_its_running_job(app: RunningApp, hub: FakeHub) -> None:
    repo = new_repo(hub, "wait")
    first = post(app, "launcher", repo)
    wait_state(app, first, "job_running")
    second = post(app, "launcher", repo)
    other = new_repo(hub, "elsewhere")
    elsewhere = post(app, "launcher", other)
    wait_state(app, elsewhere, "job_running")  # other repositories go on
    assert event(app, second)["state"] == "queued"
    assert len(jobs_of(hub, repo)) == 1
    [job] = jobs_of(hub, repo)
    hub.jobs.set_stage(job.id, "COMPLETED")
    wait_state(app, first, "succeeded")
    wait_state(app, second, "job_running")
    assert len(jobs_of(hub, repo)) == 2


def test_the_daily_cap_skips_events_with_the_reason(app: RunningApp, hub: FakeHub) -> None:
    first = post(app, "capped", new_repo(hub, "cap-1"))
    wait_state(app, first, "job_running")
    second = post(app, "capped", new_repo(hub, "cap-2"))
    skipped = wait_state(app, second, "skipped")
    assert "launched 1 job(s) in the last 24 hours, its cap (JOBS_PER_DAY" in skipped["note"]
    assert skipped["error"] is None
    assert rows(app, "SELECT COUNT(*) AS n FROM jobs WHERE endpoint = '/webhooks/capped'")[0]["n"] == 1


def test_supersede_cancels_the_running_job_for_the_newer_event(hub: FakeHub, token: str, tmp_path: Path) -> None:
    env = app_env(hub, tmp_path, token, TEST_JOB_POLICY="supersede")
    with running_app(tmp_path, handlers={"launcher.py": LAUNCHER}, **env) as app:
        repo = new_repo(hub, "supersede")
        first = post(app, "launcher", repo)
        wait_state(app, first, "job_running")
        second = post(app, "launcher", repo)
        wait_state(app, second, "job_running")
        dead = wait_state(app, first, "dead")
        older, newer = jobs_of(hub, repo)
        assert f"ended CANCELED: superseded by event #{second}" in dead["error"]
        assert (hub.jobs.get(older.id).stage, hub.jobs.get(newer.id).stage) == ("CANCELED", "SCHEDULING")


def test_a_job_past_its_timeout_and_margin_is_cancelled_and_its_event_dead(
    hub: FakeHub, token: str, tmp_path: Path
) -> None:
    env = app_env(hub, tmp_path, token, TEST_JOB_TIMEOUT="1", WEBHOOK_JOB_TIMEOUT_MARGIN="1")
    with running_app(tmp_path, handlers={"launcher.py": LAUNCHER}, **env) as app:
        repo = new_repo(hub, "timeout")
        event_id = post(app, "launcher", repo)
        [job] = wait_until(lambda: jobs_of(hub, repo))
        assert job.timeout_seconds == 1
        hub.jobs.set_stage(job.id, "RUNNING")  # the Hub never ends it
        dead = wait_state(app, event_id, "dead")
        assert "ended TIMED_OUT: still RUNNING past its timeout of 1 s" in dead["error"]
        assert hub.jobs.get(job.id).stage == "CANCELED"  # the bill stops


def test_a_kill_after_the_hub_accepted_the_job_still_leaves_one_job_followed_after_restarts(
    hub: FakeHub, token: str, tmp_path: Path
) -> None:
    folder = make_space(tmp_path / "space", {"launcher.py": LAUNCHER})
    env = base_env(tmp_path / "data", **app_env(hub, tmp_path, token))
    repo = new_repo(hub, "sigkill")
    hub.jobs.hold_run_responses()  # the Hub stores the job and never answers
    app = start_app(folder, env)
    try:
        event_id = post(app, "launcher", repo)
        [job] = wait_until(lambda: jobs_of(hub, repo), message="the job to reach the Hub")
        app.kill()  # before the journal heard of the job
    finally:
        hub.jobs.allow_runs()
    assert rows(app, "SELECT COUNT(*) AS n FROM jobs")[0]["n"] == 0
    assert event(app, event_id)["state"] == "running"

    app = start_app(folder, env)
    try:
        running = wait_state(app, event_id, "job_running")
        assert json.loads(running["result"]) == {"job": job.id, "reused": True}
        assert [found.id for found in jobs_of(hub, repo)] == [job.id]
        app.kill()
    finally:
        app.stop()
    hub.jobs.set_stage(job.id, "COMPLETED")  # while the app is down

    app = start_app(folder, env)
    try:
        wait_state(app, event_id, "succeeded")  # followed again after the restart
        assert [found.id for found in jobs_of(hub, repo)] == [job.id]
    finally:
        app.stop()


def test_no_token_or_a_refused_token_is_a_clear_failure_and_the_app_goes_on(hub: FakeHub, tmp_path: Path) -> None:
    folder = make_space(tmp_path / "space", {"launcher.py": LAUNCHER})
    repo = new_repo(hub, "tokens")
    reader = hub.add_user("reader", role="read", orgs=["acme"])
    cases = [(None, "HF_TOKEN is not set"), (reader, "The Hub refused the token"), ("hf_nobody", "refused the token")]
    for n, (token, expected) in enumerate(cases):
        env = base_env(tmp_path / f"data-{n}", **app_env(hub, tmp_path, token, WEBHOOK_MAX_ATTEMPTS="2"))
        app = start_app(folder, env)
        try:
            event_id = post(app, "launcher", repo)
            dead = wait_state(app, event_id, "dead")
            assert "JobLaunchError" in dead["error"] and expected in dead["error"], dead["error"]
            assert dead["attempts"] == 2  # retried with its backoff like any failure, then left dead
            again = post(app, "launcher", repo)  # the app still answers, nothing crashed
            wait_state(app, again, "dead")
            assert app.process.poll() is None
        finally:
            app.stop()
    assert jobs_of(hub, repo) == []


def test_a_launch_the_hub_accepted_without_answering_is_found_again_not_repeated(
    hub: FakeHub, token: str, tmp_path: Path
) -> None:
    """The Hub stores the job, then its answer is lost (a 504), or never comes (past WEBHOOK_JOB_HUB_TIMEOUT):
    the attempt fails saying so, and the retry adopts the job it launched."""
    env = app_env(hub, tmp_path, token, WEBHOOK_JOB_HUB_TIMEOUT="1", WEBHOOK_ACK_BUDGET="0.5")
    with running_app(tmp_path, handlers={"launcher.py": LAUNCHER}, **env) as app:
        for misbehave, expected in (
            (lambda: hub.jobs.fail_run_responses(504), "The Hub refused to launch the job (HTTP 504)"),
            (hub.jobs.hold_run_responses, "The Hub did not answer within 1 s (WEBHOOK_JOB_HUB_TIMEOUT). It may have"),
        ):
            repo = new_repo(hub, "lost-answer")
            misbehave()
            try:
                event_id = post(app, "launcher", repo)
                running = wait_state(app, event_id, "job_running")  # the retry adopted it, misbehaving or not
            finally:
                hub.jobs.allow_runs()
            [job] = jobs_of(hub, repo)
            assert json.loads(running["result"]) == {"job": job.id, "reused": True}
            [failed] = rows(app, "SELECT * FROM attempts WHERE event_id = ?", event_id)
            assert failed["outcome"] == "failed" and expected in failed["detail"], failed["detail"]
