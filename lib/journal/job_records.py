"""What the journal keeps about the Hub Jobs that handlers launch: one `JobRecord` per job, and `JobStats`.

An event whose handler launched a job is `job_running` until the job ends; its job is kept beside
it (a replayed event may have had several jobs: the newest is the one that counts). The journal
holds the job's identity (id, namespace, the label that finds it again on the Hub), what the
follower last saw (stage, message, times) and, once it ended, the tail of its logs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .rows import percentile

FINAL_JOB_STAGES = frozenset({"COMPLETED", "ERROR", "CANCELED", "DELETED", "TIMED_OUT"})
"""Stages a job never leaves. `TIMED_OUT` is ours: the job outlived its timeout plus a margin, so we
cancelled it and stopped following; the Hub's own are the other four."""


@dataclass(frozen=True, kw_only=True)
class JobRecord:
    """One Hub Job launched for an event, as last seen."""

    event_id: int
    job_id: str
    namespace: str
    flavor: str
    stage: str
    """SCHEDULING, RUNNING, COMPLETED, ERROR, CANCELED, DELETED, or TIMED_OUT (see `FINAL_JOB_STAGES`)."""
    message: str | None
    url: str
    """The job's page: `{HF_ENDPOINT}/jobs/{namespace}/{job_id}`."""
    launched_at: float
    started_at: float | None
    finished_at: float | None
    logs_tail: str | None
    label: str
    """The exactly-once key the job carries on the Hub (see `lib/worker/launch.py`)."""
    endpoint: str = ""
    """The endpoint whose handler launched it: the daily cap counts per endpoint."""
    timeout_seconds: float | None = None
    """The timeout the job was launched with; the follower gives up on it after this plus a margin."""
    reported: bool = False
    """Whether its end was handed to the endpoint's `on_job_end` (recorded as a report event), or
    found not to need it: the follower does this once per job, also across restarts."""

    @property
    def final(self) -> bool:
        return self.stage in FINAL_JOB_STAGES

    @property
    def succeeded(self) -> bool:
        return self.stage == "COMPLETED"

    @property
    def duration_seconds(self) -> float | None:
        """How long it ran (from its start, else its launch, to its end, else now is unknown: None)."""
        if self.finished_at is None:
            return None
        return max(0.0, self.finished_at - (self.started_at or self.launched_at))

    def evolve(self, **changes: Any) -> JobRecord:
        return replace(self, **changes)


@dataclass(frozen=True, kw_only=True)
class FollowedJob:
    """A job the follower must poll: its record, and what its event's lane holds."""

    job: JobRecord
    order_key: str | None
    waiting_event_id: int | None = None
    """The newest event queued behind it in its repository's lane, if any: under the "supersede"
    policy, the event the running job is cancelled for."""


@dataclass(frozen=True, kw_only=True)
class JobStats:
    """Job counts and durations since a point in time, for the console's health view and metrics."""

    since: float
    by_stage: dict[str, int] = field(default_factory=dict)
    """Jobs launched since `since`, by their stage now (final ones: how they ended)."""
    running: int = 0
    """Jobs not ended yet (SCHEDULING or RUNNING), whenever launched."""
    hours_by_day: list[tuple[str, float]] = field(default_factory=list)
    """Job-hours per UTC day (`YYYY-MM-DD`, oldest first) of the jobs that ended since `since`."""
    duration_p50: float | None = None
    duration_p95: float | None = None
    """Seconds, of the jobs that ended since `since`."""
    launched: int = 0


def job_stats_from_rows(since: float, by_stage: dict[str, int], running: int, ended: Iterable[Any]) -> JobStats:
    """`JobStats` from any backend's rows: the jobs launched since `since` by stage, how many run now, and
    each job that ended since `since` as a row with its UTC `day` and its `seconds`."""
    hours: dict[str, float] = {}
    seconds: list[float] = []
    for row in ended:
        hours[row["day"]] = hours.get(row["day"], 0.0) + max(0.0, row["seconds"]) / 3600
        seconds.append(max(0.0, row["seconds"]))
    durations = sorted(seconds)
    return JobStats(
        since=since,
        by_stage=by_stage,
        running=running,
        hours_by_day=sorted(hours.items()),
        duration_p50=percentile(durations, 0.5),
        duration_p95=percentile(durations, 0.95),
        launched=sum(by_stage.values()),
    )


def job_from_row(row: Any) -> JobRecord:
    """A `jobs` row (any backend's, indexed by column name) as a `JobRecord`."""
    return JobRecord(
        event_id=row["event_id"],
        job_id=row["job_id"],
        namespace=row["namespace"],
        flavor=row["flavor"],
        stage=row["stage"],
        message=row["message"],
        url=row["url"],
        launched_at=row["launched_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        logs_tail=row["logs_tail"],
        label=row["label"],
        endpoint=row["endpoint"],
        timeout_seconds=row["timeout_seconds"],
        reported=bool(row["reported"]),
    )


def job_columns(job: JobRecord) -> dict[str, Any]:
    """A `JobRecord` as the named parameters of a `jobs` row (every backend's upsert)."""
    return {
        "event_id": job.event_id,
        "label": job.label,
        "endpoint": job.endpoint,
        "job_id": job.job_id,
        "namespace": job.namespace,
        "flavor": job.flavor,
        "stage": job.stage,
        "message": job.message,
        "url": job.url,
        "launched_at": job.launched_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "timeout_seconds": job.timeout_seconds,
        "logs_tail": job.logs_tail,
    }
