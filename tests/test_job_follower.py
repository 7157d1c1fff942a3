"""The launcher and the follower in this process, on a real journal, against the fake Hub's Jobs API: a
launch recorded at once, Hub errors while following (polled again later with a longer interval, never an
end), and the console's Cancel. The app-level guarantees are in test_jobs_e2e.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fakehub import FakeHub, fake_hub  # noqa: F401  (pytest fixture)
from journal_helpers import delivery, record

from lib import run_job
from lib.core.jobs import JobNotLaunched, JobNotRunning, JobOptions
from lib.core.registry import Endpoint
from lib.core.settings import Settings
from lib.journal import EventState, SQLiteJournal
from lib.worker.job_follower import JobFollower
from lib.worker.launch import Launcher

pytestmark = pytest.mark.anyio

SETTINGS = Settings.from_env({"DATA_DIR": "/tmp/unused", "WEBHOOK_JOB_POLL_MIN": "0.05", "WEBHOOK_JOB_POLL_MAX": "0.4"})
ENDPOINT = Endpoint.create("/webhooks/a", lambda payload: None, jobs=JobOptions())


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[SQLiteJournal]:
    opened = SQLiteJournal(tmp_path / "journal.sqlite3")
    yield opened
    await opened.close()


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:  # noqa: F811  (the fixture imported above)
    return fake_hub


@pytest.fixture
def token(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> str:
    token = hub.add_user("bot")
    monkeypatch.setenv("HF_TOKEN", token)
    return token


async def launched(journal: SQLiteJournal, repo: str = "org/model") -> int:
    """An event whose handler launched a job (through the real launcher) and returned."""
    event = (await record(journal, delivery(repo=repo))).event
    assert await journal.claim(event.id, now=event.received_at)
    claimed = await journal.get(event.id)
    with Launcher(journal, SETTINGS).context(claimed, ENDPOINT) as launch:
        job = await asyncio.to_thread(run_job, "python:3.12", ["python", "train.py"], flavor="t4-small", timeout="2h")
    assert launch is not None and launch.job is not None and not job.reused
    assert (await journal.job_for(event.id)).job_id == job.id  # recorded before the handler returned
    await journal.start_job(claimed, job=launch.job, result={"job": job.id}, handler_ms=1.0)
    return event.id


async def test_hub_errors_while_following_are_polled_again_later_never_an_end(
    hub: FakeHub, token: str, journal: SQLiteJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = await launched(journal)
    [job] = hub.jobs.all()
    assert (job.flavor, job.timeout_seconds, job.secrets["HF_TOKEN"]) == ("t4-small", 7200, token)
    follower = JobFollower(journal, {ENDPOINT.path: ENDPOINT}, SETTINGS, notify=lambda: None)

    monkeypatch.setenv("HF_TOKEN", "hf_revoked")  # the Hub now refuses every request (401)
    waits = []
    for _ in range(4):
        waits.append(await follower.follow_once())
        await asyncio.sleep(waits[-1])
    assert follower.requests_made(event_id) == 4
    assert (await journal.get(event_id)).state == EventState.JOB_RUNNING
    assert waits[0] < waits[1] < waits[2] <= 0.4  # backing off, up to the longest interval

    monkeypatch.setenv("HF_TOKEN", token)
    hub.jobs.set_stage(job.id, "RUNNING")
    await asyncio.sleep(await follower.follow_once())
    await follower.follow_once()
    assert (await journal.job_for(event_id)).stage == "RUNNING"
    hub.jobs.set_stage(job.id, "COMPLETED")
    for _ in range(10):
        await asyncio.sleep(await follower.follow_once())
        if (await journal.get(event_id)).state != EventState.JOB_RUNNING:
            break
    assert (await journal.get(event_id)).state == EventState.SUCCEEDED
    assert await journal.jobs_to_follow() == []


async def test_the_console_cancels_a_running_job_once(hub: FakeHub, token: str, journal: SQLiteJournal) -> None:
    follower = JobFollower(journal, {ENDPOINT.path: ENDPOINT}, SETTINGS, notify=lambda: None)
    plain = (await record(journal, delivery(repo="org/plain"))).event
    with pytest.raises(JobNotRunning, match=f"Event {plain.id} launched no Hub Job"):
        await follower.cancel(plain.id)

    event_id = await launched(journal)
    [job] = hub.jobs.all()
    cancelled = await follower.cancel(event_id)
    assert (cancelled.stage, cancelled.message) == ("CANCELED", "cancelled from the console")
    assert hub.jobs.get(job.id).stage == "CANCELED"
    event = await journal.get(event_id)
    assert event.state == EventState.DEAD and "ended CANCELED: cancelled from the console" in event.error
    with pytest.raises(JobNotRunning, match="has ended already \\(CANCELED\\)"):
        await follower.cancel(event_id)


async def test_a_second_launch_in_one_handler_run_returns_the_same_job(
    hub: FakeHub, token: str, journal: SQLiteJournal
) -> None:
    event = (await record(journal, delivery(repo="org/twice"))).event
    [claimed] = await journal.claim_due(now=event.received_at, limit=1)
    with Launcher(journal, SETTINGS).context(claimed, ENDPOINT):
        first = await asyncio.to_thread(run_job, "python:3.12", ["true"])
        second = await asyncio.to_thread(run_job, "python:3.12", ["false"])
    assert (second.id, second.reused, first.reused) == (first.id, True, False)
    assert len(hub.jobs.all()) == 1


async def test_a_replay_launches_a_new_job_and_a_retry_does_not(
    hub: FakeHub, token: str, journal: SQLiteJournal
) -> None:
    event_id = await launched(journal, repo="org/replayed")
    follower = JobFollower(journal, {ENDPOINT.path: ENDPOINT}, SETTINGS, notify=lambda: None)
    await follower.cancel(event_id)  # ends it dead

    async def run_again() -> str:
        event = await journal.get(event_id)
        assert await journal.claim(event_id, now=event.received_at + 1)
        claimed = await journal.get(event_id)
        with Launcher(journal, SETTINGS).context(claimed, ENDPOINT):
            job = await asyncio.to_thread(run_job, "python:3.12", ["python", "train.py"])
        await journal.fail(claimed, error="boom", handler_ms=1.0, retry_at=None)
        return job.id

    key = (await journal.get(event_id)).delivery_key
    requeued = await record(journal, delivery(key, repo="org/replayed"))  # the Hub's redelivery of that delivery
    assert requeued.outcome == "requeued"
    first = hub.jobs.all()[0].id
    assert await run_again() == first  # same generation: found again, not launched
    await journal.replay(event_id, max_attempts=3)  # the console's replay: a new generation
    second = await run_again()
    assert second != first and [job.id for job in hub.jobs.all()] == [first, second]


async def test_the_daily_cap_counts_from_the_journal_across_a_restart(hub: FakeHub, token: str, tmp_path: Path) -> None:
    capped = Endpoint.create("/webhooks/a", lambda payload: None, jobs=JobOptions(per_day=1))
    path = tmp_path / "capped.sqlite3"
    journal = SQLiteJournal(path)
    try:
        await launched(journal, repo="org/first")
    finally:
        await journal.close()
    journal = SQLiteJournal(path)  # the app restarted
    try:
        event = (await record(journal, delivery(repo="org/second"))).event
        assert await journal.claim(event.id, now=event.received_at)
        claimed = await journal.get(event.id)
        refused = r"launched 1 job\(s\) in the last 24 hours, its cap .* is 1"
        with Launcher(journal, SETTINGS).context(claimed, capped), pytest.raises(JobNotLaunched, match=refused):
            await asyncio.to_thread(run_job, "python:3.12", ["true"])
        assert len(hub.jobs.all()) == 1
    finally:
        await journal.close()
