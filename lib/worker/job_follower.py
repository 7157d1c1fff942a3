"""Following the Hub Jobs that handlers launched, to their end, and handing each end on.

One task polls every `job_running` event's job with `inspect_job`: first `WEBHOOK_JOB_POLL_MIN`
seconds after it is seen, then twice as long each time up to `WEBHOOK_JOB_POLL_MAX`, so a job costs
a number of requests that grows with the logarithm of the interval range plus its duration divided
by the longest interval, and never past its deadline (its timeout plus `WEBHOOK_JOB_TIMEOUT_MARGIN`):
then it is cancelled (to stop the bill) and ends `TIMED_OUT`. What to follow is read from the journal
on every pass, so a restart resumes every job where the journal left it. A Hub error while polling is
logged and polled again later, never an end.

When a job ends, the last lines of its logs are fetched, the job and its event are ended in the
journal in one write (succeeded when the job COMPLETED, else dead with the message and log tail as
the attempt's error), the worker is woken (the repository's lane is free), and the end is recorded
as a report event for the module's `on_job_end` (`job_report.py`). Under `JOB_POLICY = "supersede"`,
a job whose repository has a newer event waiting is cancelled for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from huggingface_hub.errors import HfHubHTTPError

from ..core.errors import HubWebhooksError, JournalUnavailable
from ..core.jobs import JobLaunchError, JobNotRunning
from ..core.registry import Endpoint
from ..core.settings import Settings
from ..hub.client import hub_client
from ..hub.jobs import HubJobs
from ..journal import JobRecord, Journal
from .job_report import report_delivery
from .launch import job_record, on_hub, refused

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 40
"""How many of a job's last log lines are kept with its end (the attempt's error, `JobEnd.logs_tail`)."""


@dataclass
class _Polling:
    next_at: float
    interval: float = 0.0
    requests: int = 0


def job_error(job: JobRecord) -> str:
    """The error a job that did not complete leaves on its event: what the Hub said, and its last log lines."""
    error = f"The Hub Job {job.job_id} ended {job.stage}" + (f": {job.message}" if job.message else "") + f"\n{job.url}"
    if job.logs_tail:
        error += f"\n--- the last lines of its logs ---\n{job.logs_tail}"
    return error


class JobFollower:
    """Polls each running job until it ends, then ends its event and records its report."""

    def __init__(
        self,
        journal: Journal,
        endpoints: Mapping[str, Endpoint],
        settings: Settings,
        *,
        notify: Callable[[], None],
    ) -> None:
        self.journal = journal
        self.endpoints = endpoints
        self.settings = settings
        self._notify = notify
        self._polling: dict[tuple[int, str], _Polling] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="job-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def wake(self, *, only_if_following: bool = False) -> None:
        """A job started or ended, or an event arrived that may supersede one: look now (`only_if_following`:
        only if a job is followed, so the worker's every wake-up costs nothing when no job runs)."""
        if not only_if_following or self._polling:
            self._wake.set()

    def requests_made(self, event_id: int) -> int:
        """How many times this process asked the Hub about that event's job (for tests and logs)."""
        return sum(polling.requests for (followed, _), polling in self._polling.items() if followed == event_id)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                timeout = await self.follow_once()
            except JournalUnavailable as exc:
                logger.error("The job follower cannot use the journal (%s); trying again in 5 s.", exc.message)
                timeout = 5.0
            except Exception:  # a bug here must not stop following every job
                logger.exception("Following the Hub Jobs failed; trying again in 5 s.")
                timeout = 5.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def follow_once(self) -> float:
        """One pass over every job to follow; returns how long to sleep before the next."""
        now = time.time()
        followed = await self.journal.jobs_to_follow()
        keys = {(item.job.event_id, item.job.label) for item in followed}
        for key in [key for key in self._polling if key not in keys]:
            del self._polling[key]
        for item in followed:
            job = item.job
            polling = self._polling.setdefault((job.event_id, job.label), _Polling(next_at=now))
            endpoint = self.endpoints.get(job.endpoint)
            if item.waiting_event_id is not None and endpoint is not None and endpoint.jobs.policy == "supersede":
                await self._cancel(
                    job, polling, stage="CANCELED", message=f"superseded by event #{item.waiting_event_id}"
                )
            elif now > self._deadline(job):
                timeout = job.timeout_seconds or self.settings.job_timeout_seconds
                message = f"still {job.stage} past its timeout of {timeout:g} s and the margin: cancelled, not followed"
                await self._cancel(job, polling, stage="TIMED_OUT", message=message)
            elif polling.next_at <= now:
                await self._poll(job, polling)
        await self._report_ended()
        waits = [polling.next_at - time.time() for polling in self._polling.values()]
        return min([self.settings.job_poll_max_seconds, *waits]) if waits else 30.0

    def _deadline(self, job: JobRecord) -> float:
        timeout = job.timeout_seconds or self.settings.job_timeout_seconds
        return job.launched_at + timeout + self.settings.job_timeout_margin_seconds

    def _later(self, polling: _Polling) -> None:
        minimum, maximum = self.settings.job_poll_min_seconds, self.settings.job_poll_max_seconds
        polling.interval = min(maximum, polling.interval * 2) if polling.interval else minimum
        polling.next_at = time.time() + polling.interval

    async def _poll(self, job: JobRecord, polling: _Polling) -> None:
        polling.requests += 1
        try:
            hub = HubJobs(hub_client())
            info = await on_hub(self.settings.job_hub_timeout_seconds, hub.inspect, job.job_id, job.namespace)
        except HfHubHTTPError as exc:
            if getattr(exc.response, "status_code", None) == 404:
                await self._end(job.evolve(stage="DELETED", message="the Hub no longer knows this job"), fetch=False)
                return
            logger.warning("Could not ask the Hub about job %s (%s); asking again later.", job.job_id, exc)
            self._later(polling)
            return
        except Exception as exc:  # no token any more, the network: keep following
            logger.warning("Could not ask the Hub about job %s (%s); asking again later.", job.job_id, exc)
            self._later(polling)
            return
        seen = job_record(info, event_id=job.event_id, endpoint=job.endpoint, label=job.label, timeout=None)
        seen = seen.evolve(launched_at=job.launched_at, timeout_seconds=job.timeout_seconds)
        if seen.final:
            await self._end(seen)
            return
        if (seen.stage, seen.started_at, seen.message) != (job.stage, job.started_at, job.message):
            await self.journal.record_job(seen)
        self._later(polling)

    async def _cancel(self, job: JobRecord, polling: _Polling, *, stage: str, message: str) -> None:
        """Cancel a job on the Hub, then end it as `stage`.

        A Hub error leaves a superseded job to try again later (its newer event waits for it), but not a
        timed-out one: the Hub stops a job at its own timeout anyway, and following it for ever is what
        the deadline is there to prevent.
        """
        polling.requests += 1
        try:
            hub = HubJobs(hub_client())
            await on_hub(self.settings.job_hub_timeout_seconds, hub.cancel, job.job_id, job.namespace)
        except Exception as exc:
            if getattr(getattr(exc, "response", None), "status_code", None) != 404:
                if stage != "TIMED_OUT":
                    logger.warning("Could not cancel job %s (%s); trying again later.", job.job_id, exc)
                    self._later(polling)
                    return
                logger.warning("Could not cancel job %s (%s); no longer following it anyway.", job.job_id, exc)
        logger.warning("Hub Job %s cancelled: %s.", job.job_id, message)
        await self._end(job.evolve(stage=stage, message=message, finished_at=time.time()))

    async def _end(self, job: JobRecord, *, fetch: bool = True) -> JobRecord:
        """The job ended: its logs' tail, then the job and its event ended in the journal; the lane is free."""
        if fetch:
            job = job.evolve(logs_tail=await self._tail(job))
        if job.finished_at is None:
            job = job.evolve(finished_at=time.time())
        event = await self.journal.end_job(job, error=None if job.succeeded else job_error(job))
        with contextlib.suppress(JournalUnavailable):
            await self.journal.durable()
        logger.info(
            "Hub Job %s of event %d ended %s; the event is %s.",
            job.job_id,
            job.event_id,
            job.stage,
            event.state if event else "gone",
        )
        self._polling.pop((job.event_id, job.label), None)
        self._notify()  # the repository's next event may run now
        self.wake()  # and its report be recorded
        return job

    async def _tail(self, job: JobRecord) -> str | None:
        try:
            hub = HubJobs(hub_client())
            wait = self.settings.job_hub_timeout_seconds
            return await on_hub(wait, hub.logs_tail, job.job_id, job.namespace, lines=LOG_TAIL_LINES)
        except Exception as exc:
            logger.warning("Could not read the logs of job %s (%s).", job.job_id, exc)
            return None

    async def _report_ended(self) -> None:
        """Record a report event for each ended job whose module has `on_job_end`; mark every one handed on."""
        for job in await self.journal.jobs_to_report():
            endpoint = self.endpoints.get(job.endpoint)
            event = await self.journal.get(job.event_id) if endpoint and endpoint.jobs.on_job_end else None
            if event is not None:
                await self.journal.record(
                    report_delivery(job, event, now=time.time()),
                    skipped_reason=None,
                    max_attempts=self.settings.max_attempts,
                    duplicate_window=self.settings.duplicate_window_seconds,
                )
            await self.journal.job_reported(job.event_id, job.label)
            with contextlib.suppress(JournalUnavailable):
                await self.journal.durable()
            if event is not None:
                self._notify()

    async def cancel(self, event_id: int, *, reason: str = "cancelled from the console") -> JobRecord:
        """Cancel the running job of `event_id` on the Hub and end it (and its event) as CANCELED.

        Raises:
            JobNotRunning: the event launched no job, or its job has ended already.
            JobLaunchError: the Hub refused to cancel it.
        """
        job = await self.journal.job_for(event_id)
        if job is None:
            raise JobNotRunning(f"Event {event_id} launched no Hub Job.")
        if job.final:
            raise JobNotRunning(f"The Hub Job of event {event_id} has ended already ({job.stage}).")
        try:
            hub = HubJobs(hub_client())
            await on_hub(self.settings.job_hub_timeout_seconds, hub.cancel, job.job_id, job.namespace)
        except JobLaunchError:  # no answer: said as it is
            raise
        except (HfHubHTTPError, HubWebhooksError) as exc:
            raise refused(exc, "cancel the job") from None
        return await self._end(job.evolve(stage="CANCELED", message=reason, finished_at=time.time()))
