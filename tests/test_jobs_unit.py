"""Hub Jobs without a Hub: what a handler module may declare (checked at start), the settings, the
exactly-once label, where `run_uv_job` refuses to run, the report endpoints, and how a local uv script
travels in the job. The Hub side is tested end to end in test_jobs_e2e.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import textwrap
import types
from pathlib import Path

import pytest
from journal_helpers import a_job, delivery

from lib import JobEnd, JobLaunchError, run_job, run_uv_job
from lib.core.errors import ConfigurationError, HandlerModuleError
from lib.core.jobs import REPORT_SUFFIX
from lib.core.registry import endpoint_from_module
from lib.core.settings import Settings
from lib.hub.jobs import INLINE_SCRIPT_VARIABLE, JobSpec, _inline_uv, timeout_seconds
from lib.journal import EventRecord, EventState
from lib.worker.job_report import WithReports, job_end
from lib.worker.launch import Launcher, exactly_once_label

HANDLER = '''\
"""Trains."""
from lib import JobEnd, WebhookPayload

{extra}

def handle(payload: WebhookPayload):
    return None
'''


def module(tmp_path: Path, extra: str, name: str = "train") -> Path:
    file = tmp_path / f"{name}.py"
    file.write_text(HANDLER.format(extra=textwrap.dedent(extra)))
    return file


def test_a_module_declares_its_job_policy_cap_and_report(tmp_path: Path) -> None:
    extra = """
    JOB_POLICY = "supersede"
    JOBS_PER_DAY = 3

    def on_job_end(job: JobEnd, payload: WebhookPayload):
        return job.stage
    """
    endpoint = endpoint_from_module(module(tmp_path, extra), package="jobs_unit_a")
    assert (endpoint.jobs.policy, endpoint.jobs.per_day) == ("supersede", 3)
    assert endpoint.jobs.on_job_end is not None
    plain = endpoint_from_module(module(tmp_path, "", name="plain"), package="jobs_unit_b")
    assert (plain.jobs.policy, plain.jobs.per_day, plain.jobs.on_job_end) == ("wait", None, None)


@pytest.mark.parametrize(
    "extra, message",
    [
        ('JOB_POLICY = "replace"', "JOB_POLICY must be 'wait' (a new event of a repo waits for its running job) or"),
        ("JOBS_PER_DAY = -1", "JOBS_PER_DAY must be a whole number >= 0"),
        ('JOBS_PER_DAY = "5"', "JOBS_PER_DAY must be a whole number >= 0"),
        ("on_job_end = 3", "on_job_end must be a function, got int"),
        ("def on_job_end(job, payload, repo): ...", "on_job_end cannot be given 'repo'"),
    ],
)
def test_a_wrong_job_declaration_stops_the_start_naming_the_file(tmp_path: Path, extra: str, message: str) -> None:
    file = module(tmp_path, extra)
    with pytest.raises(HandlerModuleError, match=r"train\.py") as raised:
        endpoint_from_module(file, package="jobs_unit_bad_" + str(abs(hash(extra))))
    assert message in str(raised.value)


def test_job_settings_are_read_and_checked() -> None:
    settings = Settings.from_env(
        {
            "WEBHOOK_JOBS_PER_DAY": "2",
            "WEBHOOK_JOB_TIMEOUT": "600",
            "WEBHOOK_JOB_POLL_MIN": "1",
            "WEBHOOK_JOB_POLL_MAX": "60",
        }
    )
    assert (settings.jobs_per_day, settings.job_timeout_seconds) == (2, 600.0)
    assert (settings.job_poll_min_seconds, settings.job_poll_max_seconds, settings.job_timeout_margin_seconds) == (
        1.0,
        60.0,
        600.0,
    )
    assert (Settings.from_env({}).jobs_per_day, Settings.from_env({}).job_hub_timeout_seconds) == (10, 60.0)
    assert Settings.from_env({"WEBHOOK_JOB_HUB_TIMEOUT": "2.5"}).job_hub_timeout_seconds == 2.5
    with pytest.raises(ConfigurationError, match="WEBHOOK_JOBS_PER_DAY must be a number of jobs >= 0"):
        Settings.from_env({"WEBHOOK_JOBS_PER_DAY": "many"})
    with pytest.raises(ConfigurationError, match="WEBHOOK_JOB_POLL_MAX must be at least WEBHOOK_JOB_POLL_MIN"):
        Settings.from_env({"WEBHOOK_JOB_POLL_MIN": "10", "WEBHOOK_JOB_POLL_MAX": "5"})


@pytest.mark.parametrize(
    "given, seconds", [(None, 3600), (90, 90), (2.5, 2), ("45", 45), ("30m", 1800), ("1.5h", 5400)]
)
def test_timeouts_read_as_the_client_reads_them(given: object, seconds: int) -> None:
    assert timeout_seconds(given, default=3600) == seconds  # type: ignore[arg-type]


@pytest.mark.parametrize("given", ["soon", "0", "-5m", "h"])
def test_a_timeout_that_is_not_one_is_refused(given: str) -> None:
    with pytest.raises(JobLaunchError, match="timeout must be seconds or a duration"):
        timeout_seconds(given, default=3600)


def an_event(key: str = "id:1", *, replays: int = 0, endpoint: str = "/webhooks/a") -> EventRecord:
    return EventRecord.from_delivery(
        delivery(key, endpoint=endpoint), id=7, state=EventState.RUNNING, attempts=1, max_attempts=3, replays=replays
    )


def test_the_exactly_once_label_follows_the_delivery_not_the_attempt() -> None:
    label = exactly_once_label(an_event(), space_id="acme/space")
    assert label == exactly_once_label(dataclasses.replace(an_event(), attempts=3, id=8), space_id="acme/space")
    others = {
        exactly_once_label(an_event(replays=1), space_id="acme/space"),  # a console replay
        exactly_once_label(an_event("id:2"), space_id="acme/space"),  # another delivery
        exactly_once_label(an_event(endpoint="/webhooks/b"), space_id="acme/space"),
        exactly_once_label(an_event(), space_id="acme/other"),  # another Space with the same token
    }
    assert label not in others and len(others) == 4
    assert label.isalnum() and len(label) == 40  # a valid Hub label value


def test_launching_outside_a_handler_is_refused_with_the_reason() -> None:
    with pytest.raises(JobLaunchError, match="only works inside `handle`"):
        run_uv_job("jobs/train.py")
    with pytest.raises(JobLaunchError, match="not in on_job_end: a report must not launch a job"):
        run_job("python:3.12", ["true"])


@pytest.mark.anyio
async def test_an_async_handler_must_not_block_the_loop_on_a_launch(tmp_path: Path) -> None:
    launcher = Launcher(journal=None, settings=Settings.from_env({}))  # type: ignore[arg-type]
    endpoint = endpoint_from_module(module(tmp_path, ""), package="jobs_unit_async")
    with launcher.context(an_event(), endpoint) as context:
        assert context is not None
        with pytest.raises(JobLaunchError, match=r"await asyncio.to_thread\(run_uv_job, ...\)"):
            run_uv_job("jobs/train.py")
    report = an_event(endpoint="/webhooks/a" + REPORT_SUFFIX)
    with launcher.context(report, endpoint) as context:
        assert context is None
        with pytest.raises(JobLaunchError, match="only works inside `handle`"):
            await asyncio.to_thread(run_uv_job, "jobs/train.py")


def test_report_endpoints_run_on_job_end_but_are_not_routes(tmp_path: Path) -> None:
    extra = """
    def on_job_end(job: JobEnd):
        return {"seen": job.stage, "ok": job.succeeded}
    """
    with_report = endpoint_from_module(module(tmp_path, extra), package="jobs_unit_report")
    plain = endpoint_from_module(module(tmp_path, "", name="plain"), package="jobs_unit_report_plain")
    routes = {with_report.path: with_report, plain.path: plain}
    view = WithReports(routes)
    assert list(view) == ["/webhooks/train", "/webhooks/train#on_job_end", "/webhooks/plain"]
    assert "/webhooks/plain#on_job_end" not in view and len(routes) == 2
    report = view["/webhooks/train#on_job_end"]
    end = JobEnd(
        id="j1",
        namespace="acme",
        url="u",
        flavor="cpu-basic",
        stage="ERROR",
        message="oom",
        started_at=1.0,
        finished_at=61.0,
        duration_seconds=60.0,
        logs_tail="MemoryError",
        event_id=7,
    )
    assert JobEnd.from_json(end.to_json()) == end

    request = types.SimpleNamespace(headers={"x-hub-webhooks-job-end": end.to_json()})
    assert report.handler(payload=None, request=request) == {"seen": "ERROR", "ok": False}


def test_job_end_is_built_from_the_journals_record() -> None:
    job = a_job(3, stage="COMPLETED", started_at=100.0, finished_at=130.0, logs_tail="done")
    end = job_end(job)
    assert (end.id, end.stage, end.duration_seconds, end.logs_tail, end.succeeded, end.event_id) == (
        job.job_id,
        "COMPLETED",
        30.0,
        "done",
        True,
        3,
    )


def test_a_local_uv_script_travels_in_the_job_and_runs_as_written(tmp_path: Path) -> None:
    """The command `_inline_uv` builds, run by a real shell with `uv` replaced by a stub that runs python."""
    script = tmp_path / "train.py"
    script.write_text('# /// script\n# dependencies = []\n# ///\nimport sys\nprint("args", sys.argv[1:], "$HOME")\n')
    env: dict[str, str] = {}
    spec = JobSpec(script="train.py", script_args=["--dataset", "acme/d"], dependencies=["numpy"], python="3.12")
    command = _inline_uv(spec, script, env)["command"]
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "uv").write_text('#!/bin/sh\nshift\nwhile [ "$1" != "${1#--}" ]; do shift 2; done\nexec python3 "$@"\n')
    (stub / "uv").chmod(0o755)
    ran = subprocess.run(
        command,
        env={INLINE_SCRIPT_VARIABLE: env[INLINE_SCRIPT_VARIABLE], "PATH": f"{stub}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert ran.stdout == "args ['--dataset', 'acme/d'] $HOME\n"
    assert command[4:9] == ["--with", "numpy", "--python", "3.12", "/tmp/train.py"]
    big = tmp_path / "big.py"
    big.write_text("#" * 70_000)
    with pytest.raises(JobLaunchError, match="over 64 KiB"):
        _inline_uv(JobSpec(script="big.py"), big, {})
