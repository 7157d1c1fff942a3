"""The console's Hub Jobs actions (`lib.ui.console_jobs.ConsoleJobs`) over a real SQLite journal.

Events are put in the states the worker leaves them in (claimed, `start_job` after a launch, `end_job`
when the job ended) through the journal's own calls, and the console is asked what an operator would
see and do: the job panel, a replay that must not launch a new paid job without a confirmation, a
re-run of dead events likewise, the health view's counts and job-hours. Every action refuses a
stranger and changes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from apprunner import SECRET

from lib import WebhooksServer
from lib.core.sample_events import sample_payload
from lib.core.settings import Settings
from lib.journal import EventState, JobRecord
from lib.journal.sqlite import SQLiteJournal
from lib.receiver.delivery import build_delivery
from lib.receiver.parsing import parse_payload
from lib.ui.access import Grant
from lib.ui.console_actions import Console, ConsoleLocked, ConsoleRefusal
from lib.ui.console_format import deliveries_frame
from lib.ui.console_jobs import ConsoleJobs
from lib.ui.job_format import duration, job_markdown
from lib.worker.job_report import report_delivery

ENDPOINT = "/webhooks/train"


def grant() -> Grant:
    return Grant(who="webhook secret", method="secret", expires_at=time.time() + 60)


@pytest.fixture
async def jobs(tmp_path: Path) -> AsyncIterator[ConsoleJobs]:
    server = WebhooksServer(
        settings=Settings(webhook_secrets=(SECRET,), data_dir=tmp_path, max_attempts=2),
        journal=SQLiteJournal(tmp_path / "j.sqlite3"),
    )

    @server.add_webhook
    def train(payload) -> None:
        return None

    yield ConsoleJobs(Console(server))
    await server.journal.close()


async def deliver(jobs: ConsoleJobs, repo: str = "acme/data", *, webhook_id: str = "w1"):
    """A commit to `repo` recorded as delivered; each repo is a lane of its own (a job holds its lane)."""
    body = json.dumps(sample_payload("commit", repo=repo, repo_type="dataset")).encode()
    delivery = build_delivery(
        endpoint=ENDPOINT,
        headers={"content-type": "application/json", "webhook-id": webhook_id},
        query_string="",
        body=body,
        payload=parse_payload(body),
        order_per_repo=True,
    )
    return await jobs.server.journal.record(delivery, skipped_reason=None, max_attempts=2, duplicate_window=600)


def a_job(event_id: int, **changes: object) -> JobRecord:
    """A job launched 5 min ago, running for 4 (times from now: the suite may run for many minutes)."""
    now = time.time()
    job = JobRecord(
        event_id=event_id,
        job_id=f"68a0{event_id:04d}",
        namespace="acme",
        flavor="a10g-small",
        stage="RUNNING",
        message=None,
        url=f"https://huggingface.co/jobs/acme/68a0{event_id:04d}",
        launched_at=now - 300,
        started_at=now - 240,
        finished_at=None,
        logs_tail=None,
        label=f"key-{event_id}",
        endpoint=ENDPOINT,
        timeout_seconds=3600.0,
    )
    return job.evolve(**changes)


async def job_running(jobs: ConsoleJobs, **job: object) -> int:
    """An event whose handler launched a job (as the worker leaves it): its id."""
    journal = jobs.server.journal
    unique = f"{time.monotonic_ns()}"
    event = (await deliver(jobs, f"acme/data-{unique}", webhook_id=f"w-{unique}")).event
    [claimed] = await journal.claim_due(now=time.time(), limit=1)
    await journal.start_job(claimed, job=a_job(event.id, **job), result={"job": "x"}, handler_ms=3.0)
    return event.id


async def job_ended(jobs: ConsoleJobs, stage: str, **job: object) -> int:
    event_id = await job_running(jobs)
    ended = a_job(event_id, stage=stage, finished_at=time.time() - 60, **job)
    await jobs.server.journal.end_job(ended, error=None if stage == "COMPLETED" else f"job {stage}")
    return event_id


@pytest.mark.anyio
async def test_a_running_job_shows_its_id_link_flavor_stage_and_time_and_can_be_cancelled(jobs: ConsoleJobs) -> None:
    event_id = await job_running(jobs)
    panel = await jobs.job_panel(grant(), event_id)
    assert panel.cancellable
    assert f"[`` 68a0{event_id:04d} ``](https://huggingface.co/jobs/acme/68a0{event_id:04d})" in panel.markdown
    assert "`` a10g-small ``" in panel.markdown and "**🏗️ running**" in panel.markdown
    assert "started 60 s later" in panel.markdown and "running for 4.0 min" in panel.markdown
    frame = deliveries_frame([await jobs.server.journal.get(event_id)])
    assert frame["State"].tolist() == ["🏗️ job running"]  # distinct from a handler running


@pytest.mark.anyio
async def test_a_failed_job_shows_the_hubs_message_and_the_tail_of_its_logs(jobs: ConsoleJobs) -> None:
    logs = "\n".join(f"step {i}" for i in range(100)) + "\nRuntimeError: CUDA out of memory\n"
    event_id = await job_ended(jobs, "ERROR", message="Job failed with exit code: 1", logs_tail=logs)
    panel = await jobs.job_panel(grant(), event_id)
    assert not panel.cancellable
    assert "**❌ error**: Job failed with exit code: 1" in panel.markdown
    assert "ran 3.0 min" in panel.markdown
    assert panel.markdown.rstrip().endswith("step 99\nRuntimeError: CUDA out of memory\n````")
    assert "step 70\n" not in panel.markdown  # the last 30 lines only
    assert (await jobs.server.journal.get(event_id)).state == EventState.DEAD


@pytest.mark.anyio
async def test_an_event_without_a_job_has_no_panel_and_nothing_to_cancel(jobs: ConsoleJobs) -> None:
    event_id = (await deliver(jobs)).event.id
    assert (await jobs.job_panel(grant(), event_id)).markdown == ""
    with pytest.raises(ConsoleRefusal, match=f"Event #{event_id} launched no Hub Job: there is nothing to cancel."):
        await jobs.cancel_job(grant(), event_id)
    with pytest.raises(ConsoleRefusal, match="There is no event #99"):
        await jobs.job_panel(grant(), 99)


@pytest.mark.anyio
async def test_latest_logs_of_an_ended_job_are_the_kept_ones_and_a_hub_error_is_said(
    jobs: ConsoleJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(Reading a running job's logs from the fake Hub is in test_console_jobs_browser.py.)"""
    ended = await job_ended(jobs, "ERROR", logs_tail="kept line")
    panel = await jobs.latest_logs(grant(), ended)
    assert "kept line" in panel.markdown and "fetched" not in panel.markdown
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("lib.hub.client.get_token", lambda: None)
    running = await job_running(jobs)
    with pytest.raises(ConsoleRefusal, match=f"Could not fetch the logs of job 68a0{running:04d}: HF_TOKEN is not set"):
        await jobs.latest_logs(grant(), running)


@pytest.mark.anyio
async def test_a_job_that_ended_is_not_cancelled_again(jobs: ConsoleJobs) -> None:
    event_id = await job_ended(jobs, "COMPLETED")
    with pytest.raises(ConsoleRefusal, match=r"has already ended \(✅ completed\)"):
        await jobs.cancel_job(grant(), event_id)


@pytest.mark.anyio
async def test_replaying_an_event_that_launched_a_job_says_so_and_waits_for_the_confirmation(jobs: ConsoleJobs) -> None:
    journal = jobs.server.journal
    event_id = await job_ended(jobs, "COMPLETED")
    before = await journal.get(event_id)

    answer = await jobs.replay(grant(), event_id)

    assert answer.confirm
    assert f"Replaying event #{event_id} launches a new Hub Job." in answer.message
    assert "a10g-small" in answer.message and "Replay and launch a new job" in answer.message
    assert await journal.get(event_id) == before  # nothing queued yet

    confirmed = await jobs.replay_new_job(grant(), event_id)
    assert not confirmed.confirm and f"Replaying event #{event_id}" in confirmed.message
    after = await journal.get(event_id)
    assert (after.state, after.replays) == (EventState.QUEUED, before.replays + 1)


@pytest.mark.anyio
async def test_a_duplicate_of_an_event_with_a_job_warns_too(jobs: ConsoleJobs) -> None:
    """Replaying a duplicate replays its original: the job that counts is the original's."""
    original = await job_ended(jobs, "COMPLETED")
    event = await jobs.server.journal.get(original)
    again = await jobs.server.journal.record(
        build_delivery(
            endpoint=ENDPOINT,
            headers=dict(event.headers),
            query_string="",
            body=event.body,
            payload=parse_payload(event.body),
            order_per_repo=True,
        ),
        skipped_reason=None,
        max_attempts=2,
        duplicate_window=600,
    )
    assert again.event.state == EventState.DUPLICATE and again.event.id != original
    answer = await jobs.replay(grant(), again.event.id)
    assert answer.confirm and f"launched [`` 68a0{original:04d} ``]" in answer.message


@pytest.mark.anyio
async def test_an_event_without_a_job_is_replayed_at_once(jobs: ConsoleJobs) -> None:
    event_id = (await deliver(jobs)).event.id
    answer = await jobs.replay(grant(), event_id)
    assert not answer.confirm and answer.message.startswith(f"Replaying event #{event_id}")


async def dead_report(jobs: ConsoleJobs, event_id: int) -> int:
    """The report of an event's ended job (as the follower records it), whose `on_job_end` failed every time."""
    journal = jobs.server.journal
    job, event = await journal.job_for(event_id), await journal.get(event_id)
    recorded = await journal.record(
        report_delivery(job, event, now=time.time()), skipped_reason=None, max_attempts=1, duplicate_window=600
    )
    [claimed] = await journal.claim_due(now=time.time(), limit=1)
    assert claimed.id == recorded.event.id
    await journal.fail(claimed.id, error="HfHubHTTPError: 500", handler_ms=1.0, retry_at=None)
    assert (await journal.get(claimed.id)).state == EventState.DEAD
    return claimed.id


@pytest.mark.anyio
async def test_a_report_shows_the_job_it_reports_on_and_is_replayed_without_asking(jobs: ConsoleJobs) -> None:
    event_id = await job_ended(jobs, "COMPLETED", logs_tail="RESULT {}")
    report = await dead_report(jobs, event_id)

    panel = await jobs.job_panel(grant(), report)
    assert panel.markdown.startswith(f"Reports the end of event #{event_id}'s job.")
    assert f"68a0{event_id:04d}" in panel.markdown and not panel.cancellable
    with pytest.raises(ConsoleRefusal, match="launched no Hub Job"):
        await jobs.cancel_job(grant(), report)

    answer = await jobs.replay(grant(), report)  # a report launches nothing: no confirmation
    assert not answer.confirm and answer.message.startswith(f"Replaying event #{report}")


@pytest.mark.anyio
async def test_re_running_dead_events_includes_dead_reports(jobs: ConsoleJobs) -> None:
    """A dead report is counted in the verdict's dead events, so Re-run dead events must re-run it too."""
    report = await dead_report(jobs, await job_ended(jobs, "COMPLETED"))
    answer = await jobs.replay_dead(grant(), ENDPOINT)  # the report's job completed: it launches no new job
    assert not answer.confirm
    assert answer.message == f"Re-running 1 dead event(s): `` train#on_job_end `` #{report}"
    assert (await jobs.server.journal.get(report)).state == EventState.QUEUED


@pytest.mark.anyio
async def test_re_running_dead_events_that_launched_jobs_asks_first(jobs: ConsoleJobs) -> None:
    journal = jobs.server.journal
    failed = [await job_ended(jobs, "ERROR"), await job_ended(jobs, "CANCELED")]

    answer = await jobs.replay_dead(grant(), "All")

    assert answer.confirm
    assert f"launches 2 new Hub Job(s)**: #{failed[0]}, #{failed[1]}" in answer.message
    assert [(await journal.get(i)).state for i in failed] == [EventState.DEAD, EventState.DEAD]
    confirmed = await jobs.replay_dead_new_jobs(grant(), ENDPOINT)
    assert "Re-running 2 dead event(s)" in confirmed.message and not confirmed.confirm
    assert [(await journal.get(i)).state for i in failed] == [EventState.QUEUED, EventState.QUEUED]
    with pytest.raises(ConsoleRefusal, match="No endpoint elsewhere"):
        await jobs.replay_dead(grant(), "/webhooks/elsewhere")


@pytest.mark.anyio
async def test_the_health_view_counts_jobs_by_outcome_and_job_hours_per_day(jobs: ConsoleJobs) -> None:
    assert (await jobs.health(grant())).table == ""  # no job: no section
    await job_running(jobs)
    await job_ended(jobs, "COMPLETED", started_at=time.time() - 1860)  # 30 min
    await job_ended(jobs, "COMPLETED", started_at=time.time() - 960)  # 15 min
    await job_ended(jobs, "ERROR", started_at=time.time() - 420)  # 6 min

    health = await jobs.health(grant())

    rows = {line.split("|")[1].strip(): line.split("|")[2:4] for line in health.table.splitlines()[4:]}
    assert rows["Launched"] == [" 4 ", " 4 "]
    assert rows["✅ completed"] == [" 2 ", " 2 "] and rows["❌ error"] == [" 1 ", " 1 "]
    assert rows["Running now"][0] == " 1 "
    assert rows["Job-hours"] == [" 0.85 ", " 0.85 "]
    assert rows["Duration, p50 / p95"][0].strip().startswith("15.0 min / ")
    assert health.hours["job-hours"].sum() == pytest.approx(0.85, abs=1e-3)
    assert len(health.hours) == 1  # all today


@pytest.mark.anyio
async def test_every_job_action_refuses_a_stranger_and_changes_nothing(jobs: ConsoleJobs) -> None:
    journal = jobs.server.journal
    running, dead = await job_running(jobs), await job_ended(jobs, "ERROR")
    before = [await journal.get(running), await journal.get(dead)]
    strangers = [None, Grant(who="x", method="secret", expires_at=time.time() - 1), {"expires_at": 1e12}, "unlocked"]
    calls = [
        (jobs.job_panel, running),
        (jobs.cancel_job, running),
        (jobs.latest_logs, running),
        (jobs.replay, dead),
        (jobs.replay_new_job, dead),
        (jobs.replay_dead, "All"),
        (jobs.replay_dead_new_jobs, "All"),
        (jobs.health,),
    ]
    for stranger in strangers:
        for action, *args in calls:
            with pytest.raises(ConsoleLocked):
                await action(stranger, *args)
    assert [await journal.get(running), await journal.get(dead)] == before
    assert (await journal.job_for(running)).stage == "RUNNING"


def test_durations_read_in_the_unit_that_fits() -> None:
    assert [duration(s) for s in (None, 42, 89.6, 90, 3000, 5400, 36000)] == [
        "–",
        "42 s",
        "90 s",
        "1.5 min",
        "50.0 min",
        "1.5 h",
        "10.0 h",
    ]


def test_a_job_that_ended_without_logs_says_so() -> None:
    now = time.time()
    job = a_job(1, stage="DELETED", finished_at=now, message="deleted by its owner")
    text = job_markdown(job, now=now)
    assert "**🗑️ deleted**: deleted by its owner" in text and "No log lines were kept." in text
