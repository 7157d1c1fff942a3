"""What the console does about Hub Jobs, each action refusing anyone without the operator's grant.

An event whose handler launched a job shows it (`job_panel`); a job still running can be cancelled
(`cancel_job`: the server cancels it on the Hub, and its event ends dead), and its latest log lines
fetched from the Hub on demand (`latest_logs`: the journal keeps the tail only once the job ended). A replay of such an
event is a new run with an exactly-once key of its own, so it launches a new, billed job: `replay`
and `replay_dead` say so and wait for the operator to confirm (`replay_new_job`,
`replay_dead_new_jobs`) before they queue anything. The health view gets the jobs by outcome and
job-hours per day (`health`).

Kept beside `Console` (`console_actions.py`), which it uses for the grant check and the replays
themselves, so the console's other actions read as they did before jobs existed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import pandas as pd

from ..core.errors import HubWebhooksError
from ..core.jobs import REPORT_SUFFIX, JobEnd, JobNotRunning
from ..hub.client import hub_client
from ..hub.jobs import HubJobs
from ..journal import EventState, JobRecord
from ..worker.job_report import JOB_END_HEADER
from .console_actions import ALL, Console, ConsoleRefusal, event_number, require
from .console_format import endpoint_name, inline_code, when
from .job_format import (
    ENDED_STAGES,
    LOG_LINES,
    job_hours_frame,
    job_markdown,
    jobs_health_table,
    replay_warning,
    stage_label,
)

logger = logging.getLogger(__name__)

DEAD_SCAN_LIMIT = 1000
"""Dead events looked at for jobs before a re-run; more than that many dead events is a case for the logs."""


@dataclass(frozen=True)
class JobPanel:
    """One event's job as the console shows it; empty when its handler launched none."""

    markdown: str
    cancellable: bool


@dataclass(frozen=True)
class ReplayAnswer:
    """What a replay did, or why it waits: `confirm` shows the button that launches the new job(s)."""

    message: str
    confirm: bool


@dataclass(frozen=True)
class JobsHealth:
    table: str
    hours: pd.DataFrame


class ConsoleJobs:
    """The console's job actions for one `Console` (its server, its grant check)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.server = console.server

    async def job_panel(self, grant: object, event_id: int | float | str | None) -> JobPanel:
        """The event's job; for a report (`on_job_end`), the job it reports on; empty for any other event."""
        require(grant)
        number = event_number(event_id, missing="Pick a delivery first.")
        job = await self._job_of(number)
        if job is not None:
            return JobPanel(job_markdown(job), job.stage not in ENDED_STAGES)
        reported = await self._reported_job(number)
        if reported is None:
            return JobPanel("", False)
        return JobPanel(f"Reports the end of event #{reported.event_id}'s job.\n\n{job_markdown(reported)}", False)

    async def latest_logs(self, grant: object, event_id: int | float | str | None) -> JobPanel:
        """The job panel with the last lines of its logs read from the Hub now (a running job's are not kept)."""
        require(grant)
        number = event_number(event_id, missing="Pick the event whose job's logs to fetch.")
        job = await self._job_of(number)
        if job is None:
            raise ConsoleRefusal(f"Event #{number} launched no Hub Job: there are no logs to fetch.")
        if job.stage not in ENDED_STAGES:
            try:
                tail = await asyncio.to_thread(_logs_tail, job)
            except Exception as exc:  # MissingToken, the Hub's HTTP errors, a dropped stream: all say why
                raise ConsoleRefusal(f"Could not fetch the logs of job {job.job_id}: {exc}") from None
            job = job.evolve(logs_tail=f"{tail}\n(fetched {when(time.time())} UTC)" if tail else None)
        return JobPanel(job_markdown(job), job.stage not in ENDED_STAGES)

    async def cancel_job(self, grant: object, event_id: int | float | str | None) -> str:
        """Cancel the event's running job on the Hub (the bill stops); its event then ends failed."""
        require(grant)
        number = event_number(event_id, missing="Pick the event whose job to cancel.")
        job = await self.server.journal.job_for(number)
        if job is None:
            raise ConsoleRefusal(f"Event #{number} launched no Hub Job: there is nothing to cancel.")
        if job.stage in ENDED_STAGES:
            raise ConsoleRefusal(f"Job {job.job_id} of event #{number} has already ended ({stage_label(job.stage)}).")
        try:
            job = await self.server.cancel_job(number)
        except JobNotRunning as exc:  # it ended meanwhile, or no worker runs: the message says which
            raise ConsoleRefusal(str(exc)) from None
        except HubWebhooksError as exc:  # the Hub refused
            raise ConsoleRefusal(f"Could not cancel job {job.job_id}: {exc}") from None
        logger.info("Console: cancelled job %s of event %d.", job.job_id, number)
        return f"Cancelled Hub Job {inline_code(job.job_id)} of event #{number}: {stage_label(job.stage)}."

    async def replay(self, grant: object, event_id: int | float | str | None) -> ReplayAnswer:
        """Replay now, unless the event launched a job: then say a replay launches a new one, and wait."""
        require(grant)
        number = event_number(event_id, missing="Pick a delivery to replay first.")
        job = await self._job_of(number)
        if job is not None:
            return ReplayAnswer(replay_warning(number, job), True)
        return ReplayAnswer(await self.console.replay(grant, number), False)

    async def replay_new_job(self, grant: object, event_id: int | float | str | None) -> ReplayAnswer:
        """The operator confirmed: replay the event, whose handler launches a new job."""
        require(grant)
        return ReplayAnswer(await self.console.replay(grant, event_id), False)

    async def replay_dead(self, grant: object, endpoint: str | None) -> ReplayAnswer:
        """Re-run the dead events, unless some launched a job: then say how many new jobs that launches, and wait."""
        require(grant)
        with_jobs = await self._dead_with_jobs(endpoint)
        if with_jobs:
            shown = ", ".join(f"#{event_id}" for event_id in with_jobs[:10]) + (" ..." if len(with_jobs) > 10 else "")
            return ReplayAnswer(
                f"**Re-running these dead events launches {len(with_jobs)} new Hub Job(s)**: {shown} launched one "
                "each, and a re-run is a new run with a key of its own. Click **Re-run and launch new jobs** to go "
                "ahead.",
                True,
            )
        return ReplayAnswer(await self.console.replay_dead(grant, endpoint), False)

    async def replay_dead_new_jobs(self, grant: object, endpoint: str | None) -> ReplayAnswer:
        """The operator confirmed: re-run the dead events, new jobs and all."""
        require(grant)
        return ReplayAnswer(await self.console.replay_dead(grant, endpoint), False)

    async def health(self, grant: object) -> JobsHealth:
        """Jobs by outcome, running now, durations and job-hours for the last day and week."""
        require(grant)
        now = time.time()
        day = await self.server.journal.job_stats(since=now - 86400)
        week = await self.server.journal.job_stats(since=now - 7 * 86400)
        return JobsHealth(jobs_health_table(day, week), job_hours_frame(week))

    async def _job_of(self, number: int) -> JobRecord | None:
        """The job of an event, or of the original a duplicate repeats (what a replay would run)."""
        journal = self.server.journal
        event = await journal.get(number)
        if event is None:
            raise ConsoleRefusal(f"There is no event #{number} (it may have been pruned).")
        if event.state == EventState.DUPLICATE and event.original_id is not None:
            number = event.original_id
        return await journal.job_for(number)

    async def _reported_job(self, number: int) -> JobRecord | None:
        """The job a report event (`<path>#on_job_end`) reports on, from the job's end it carries."""
        event = await self.server.journal.get(number)
        carried = dict(event.headers).get(JOB_END_HEADER) if event is not None else None
        if event is None or not event.endpoint.endswith(REPORT_SUFFIX) or carried is None:
            return None
        try:
            end = JobEnd.from_json(carried)
        except (ValueError, TypeError):  # not what the follower writes: show nothing rather than fail
            return None
        return await self.server.journal.job_for(end.event_id)

    async def _dead_with_jobs(self, endpoint: str | None) -> list[int]:
        journal = self.server.journal
        paths = list(self.server.endpoints) if endpoint in (None, "", ALL) else [endpoint]
        if any(path not in self.server.endpoints for path in paths):
            raise ConsoleRefusal(f"No endpoint {endpoint_name(str(endpoint))}.")
        found = []
        for path in paths:
            for event in await journal.list_recent(limit=DEAD_SCAN_LIMIT, endpoint=path, state=EventState.DEAD):
                if await journal.job_for(event.id) is not None:
                    found.append(event.id)
        return sorted(found)


def _logs_tail(job: JobRecord) -> str:
    """The job's last lines as the Hub has them now (blocking: a thread's work; a few seconds on the Hub)."""
    return HubJobs(hub_client()).logs_tail(job.job_id, job.namespace, lines=LOG_LINES)
