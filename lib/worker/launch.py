"""Launching a Hub Job from a handler, at most once per event: `run_uv_job`, `run_job` and what is behind them.

The exactly-once key is a label derived from the event: its endpoint, its delivery key (the Hub's
`X-Webhook-Id`, the same on every redelivery) and its replay generation (a console replay is a
new generation, so a new job). Before launching, the Hub is asked for a job carrying that label;
if there is one (an earlier attempt launched it, and the process may have died before the journal
heard of it), it is adopted instead. Right after a launch the job is written to the journal.

Example:
    ```python
    from lib import WebhookPayload, run_uv_job

    def handle(payload: WebhookPayload):
        job = run_uv_job("jobs/train.py", script_args=["--dataset", payload.repo.name], timeout="1h")
        return {"job": job.id, "url": job.url}
    ```
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from huggingface_hub import JobInfo
from huggingface_hub.errors import HfHubHTTPError

from ..core.errors import JournalUnavailable, MissingToken
from ..core.jobs import REPORT_SUFFIX, JobLaunchError, JobNotLaunched, JobOptions, LaunchedJob
from ..core.registry import Endpoint
from ..core.settings import Settings
from ..hub.client import hub_client
from ..hub.jobs import HubJobs, JobSpec, timeout_seconds
from ..journal import EventRecord, JobRecord, Journal

logger = logging.getLogger(__name__)

DAY_SECONDS = 86_400.0
T = TypeVar("T")


async def on_hub(timeout: float, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking call of the Hub client on a thread, waiting at most `timeout` seconds for it.

    `huggingface_hub`'s HTTP client has no timeout of its own: a Hub that never answers would hold a
    launch (and the endpoint's launch lock) or the follower for ever. The thread may go on; we do not.

    Raises:
        JobLaunchError: no answer within `timeout` (WEBHOOK_JOB_HUB_TIMEOUT).
    """
    try:
        return await asyncio.wait_for(asyncio.to_thread(call, *args, **kwargs), timeout)
    except TimeoutError:
        raise JobLaunchError(f"The Hub did not answer within {timeout:g} s (WEBHOOK_JOB_HUB_TIMEOUT).") from None


@dataclass
class LaunchContext:
    """The handler run that may launch a job: set around every handler call by the worker."""

    launcher: Launcher
    event: EventRecord
    options: JobOptions
    loop: asyncio.AbstractEventLoop
    job: JobRecord | None = None
    """The job this run launched or adopted: the worker then follows it instead of finishing the event."""


_current: ContextVar[LaunchContext | None] = ContextVar("hub_webhooks_launch", default=None)


def exactly_once_label(event: EventRecord, *, space_id: str | None) -> str:
    """The label a job launched for this event carries: the same for every redelivery, retry and restart
    of the event, different for each console replay (and for each Space sharing one token)."""
    key = "\n".join((space_id or "", event.endpoint, event.delivery_key, str(event.replays)))
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def run_uv_job(
    script: str,
    *,
    script_args: list[str] | None = None,
    dependencies: list[str] | None = None,
    python: str | None = None,
    image: str | None = None,
    env: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
    flavor: str = "cpu-basic",
    timeout: int | float | str | None = None,
) -> LaunchedJob:
    """Launch a uv script on Hub Jobs for the event being handled, at most once per event.

    As `HfApi.run_uv_job`. `script` is a path in the Space's files (e.g. `"jobs/train.py"`, shipped
    with the job), a URL, or a command. `HF_TOKEN` goes to the job as a secret. `timeout` (seconds,
    or `"30m"`, `"2h"`) defaults to `WEBHOOK_JOB_TIMEOUT`; the job is followed until it ends.

    A plain `def handle` may call it directly; an `async def handle` calls
    `await asyncio.to_thread(run_uv_job, ...)`, since it waits on the Hub.

    Raises:
        JobNotLaunched: the endpoint's daily cap is reached (the event ends skipped, not failed).
        JobLaunchError: no token, the Hub refused, or not called from a handler.
    """
    spec = JobSpec(
        script=script,
        script_args=list(script_args or []),
        dependencies=list(dependencies or []),
        python=python,
        image=image,
        env=dict(env or {}),
        secrets=dict(secrets or {}),
        flavor=flavor,
    )
    return _launch(spec, timeout, "run_uv_job")


def run_job(
    image: str,
    command: list[str],
    *,
    env: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
    flavor: str = "cpu-basic",
    timeout: int | float | str | None = None,
) -> LaunchedJob:
    """Launch a Docker image and command on Hub Jobs for the event being handled, at most once per event.

    As `HfApi.run_job`; see `run_uv_job` for the rest.
    """
    spec = JobSpec(image=image, command=list(command), env=dict(env or {}), secrets=dict(secrets or {}), flavor=flavor)
    return _launch(spec, timeout, "run_job")


def _launch(spec: JobSpec, timeout: int | float | str | None, name: str) -> LaunchedJob:
    context = _current.get()
    if context is None:
        raise JobLaunchError(
            f"{name} launches a job for the event being handled, so it only works inside `handle` "
            "(not at import, not in on_job_end: a report must not launch a job)."
        )
    if context.job is not None:  # one event, one job: a second call returns the first
        return _launched(context.job, reused=True)
    with contextlib.suppress(RuntimeError):
        if asyncio.get_running_loop() is context.loop:
            raise JobLaunchError(
                f"{name} waits on the Hub, which would block every other event: in an `async def handle`, "
                f"call it as `await asyncio.to_thread({name}, ...)`, or make the handler a plain `def`."
            )
    seconds = timeout_seconds(timeout, default=int(context.launcher.settings.job_timeout_seconds))
    spec = JobSpec(**{**spec.__dict__, "timeout_seconds": seconds})
    running = asyncio.run_coroutine_threadsafe(context.launcher.launch(context, spec), context.loop)
    return running.result()


def _launched(job: JobRecord, *, reused: bool) -> LaunchedJob:
    return LaunchedJob(id=job.job_id, namespace=job.namespace, url=job.url, flavor=job.flavor, reused=reused)


def job_record(info: JobInfo, *, event_id: int, endpoint: str, label: str, timeout: float | None) -> JobRecord:
    """The journal's record of a job as the Hub describes it."""
    stamp = lambda moment: moment.timestamp() if moment is not None else None  # noqa: E731
    return JobRecord(
        event_id=event_id,
        job_id=info.id,
        namespace=info.owner.name,
        flavor=str(getattr(info.flavor, "value", info.flavor) or "cpu-basic"),
        stage=str(getattr(info.status.stage, "value", info.status.stage)),
        message=info.status.message,
        url=info.url,
        launched_at=stamp(info.created_at) or time.time(),
        started_at=stamp(info.started_at),
        finished_at=stamp(info.finished_at),
        logs_tail=None,
        label=label,
        endpoint=endpoint,
        timeout_seconds=timeout,
    )


def refused(exc: Exception, what: str) -> JobLaunchError:
    """A clear message for an error of the Hub (or a missing token) met while launching."""
    if isinstance(exc, MissingToken):
        return JobLaunchError(f"No job was launched: {exc.message}")
    status = getattr(getattr(exc, "response", None), "status_code", None)
    hint = ""
    if status in (401, 403):
        hint = (
            " The Hub refused the token: set HF_TOKEN (a Space secret) to a token with write access to the "
            "namespace the jobs run in, then replay the event."
        )
    elif status == 402:
        hint = " Jobs need credits (or a PRO/Enterprise plan) on the account: add some, then replay the event."
    return JobLaunchError(f"The Hub refused to {what} (HTTP {status}): {str(exc).splitlines()[0]}.{hint}")


class Launcher:
    """Launches (or finds again) each event's job, within each endpoint's daily cap, and records it."""

    def __init__(self, journal: Journal, settings: Settings, *, cwd: Path | None = None) -> None:
        self.journal = journal
        self.settings = settings
        self.cwd = cwd or Path.cwd()
        self._locks: dict[str, asyncio.Lock] = {}
        self._thread_lock = threading.Lock()

    @contextlib.contextmanager
    def context(self, event: EventRecord, endpoint: Endpoint) -> Iterator[LaunchContext | None]:
        """Let the handler run for `event` launch its job (not a report's: `on_job_end` launches nothing)."""
        if event.endpoint.endswith(REPORT_SUFFIX):
            yield None
            return
        options = getattr(endpoint, "jobs", None) or JobOptions()
        context = LaunchContext(self, event, options, asyncio.get_running_loop())
        token = _current.set(context)
        try:
            yield context
        finally:
            _current.reset(token)

    async def launch(self, context: LaunchContext, spec: JobSpec) -> LaunchedJob:
        """On the loop: the Hub's job with this event's label, else a new one if the cap allows; recorded."""
        event = context.event
        label = exactly_once_label(event, space_id=self.settings.space_id)
        async with self._locks.setdefault(event.endpoint, asyncio.Lock()):  # the cap counts one launch at a time
            wait = self.settings.job_hub_timeout_seconds
            try:
                hub = HubJobs(hub_client())
                namespace = await on_hub(wait, lambda: hub.namespace)
                found = await on_hub(wait, hub.find, label, namespace)
            except (MissingToken, HfHubHTTPError) as exc:
                raise refused(exc, "look for this event's job") from None
            if found is None:
                await self._check_cap(event, context.options)
                try:
                    found = await on_hub(wait, hub.run, spec, namespace=namespace, label=label, cwd=self.cwd)
                except HfHubHTTPError as exc:
                    raise refused(exc, "launch the job") from None
                except JobLaunchError as exc:  # no answer: the Hub may have the job; the next attempt finds it
                    raise JobLaunchError(
                        f"{exc.message} It may have launched the job: the event's next attempt looks for it by "
                        "its label before launching another."
                    ) from None
                logger.info("Launched Hub Job %s (%s) for this event: %s", found.id, spec.flavor, found.url)
                reused = False
            else:
                logger.info("Found this event's Hub Job %s again (launched by an earlier attempt).", found.id)
                reused = True
            record = job_record(
                found, event_id=event.id, endpoint=event.endpoint, label=label, timeout=spec.timeout_seconds
            )
            context.job = record
            try:  # the Hub has it: so must the journal, before anything else can go wrong
                await self.journal.record_job(record)
                await self.journal.durable()
            except JournalUnavailable as exc:  # the label finds it again on the next attempt
                logger.error("Could not record job %s in the journal yet (%s).", record.job_id, exc.message)
            return _launched(record, reused=reused)

    async def _check_cap(self, event: EventRecord, options: JobOptions) -> None:
        cap = options.per_day if options.per_day is not None else self.settings.jobs_per_day
        launched = await self.journal.jobs_launched_since(event.endpoint, since=time.time() - DAY_SECONDS)
        if launched >= cap:
            raise JobNotLaunched(
                f"no job launched: {event.endpoint} launched {launched} job(s) in the last 24 hours, its cap "
                f"(JOBS_PER_DAY in its module, else WEBHOOK_JOBS_PER_DAY) is {cap}"
            )


async def finish_attempt(
    journal: Journal,
    event: EventRecord,
    launch: LaunchContext | None,
    result: Any,
    handler_ms: float,
    *,
    then: Callable[[], None],
) -> EventRecord:
    """A handler returned: its event succeeded, or, if it launched a job, it is `job_running` (and `then` is
    called, to have the job followed)."""
    if launch is None or launch.job is None:
        return await journal.finish(event, result=result, handler_ms=handler_ms)
    started = await journal.start_job(event, job=launch.job, result=result, handler_ms=handler_ms)
    then()
    return started
