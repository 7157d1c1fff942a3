"""How the console shows Hub Jobs: one event's job panel, the jobs' health table and job-hours per day.

Pure functions from the journal's `JobRecord` and `JobStats` to Markdown and DataFrames, like
`console_format.py` for events (kept apart so each stays readable in a sitting). Times are UTC, and
durations are what the operator pays for: from the job's start (or its launch, before it started)
to its end, or to now while it runs.
"""

from __future__ import annotations

import time

import pandas as pd

from ..journal import JobRecord, JobStats
from .console_format import fenced, inline_code, when

STAGE_LABELS = {
    "SCHEDULING": "⏳ scheduling",
    "RUNNING": "🏗️ running",
    "COMPLETED": "✅ completed",
    "ERROR": "❌ error",
    "CANCELED": "⏹️ canceled",
    "DELETED": "🗑️ deleted",
    "TIMED_OUT": "⌛ timed out (we stopped following it)",
}
ENDED_STAGES = ("COMPLETED", "ERROR", "CANCELED", "DELETED", "TIMED_OUT")
"""How a job ended, in the order the health table lists them."""
JOB_HOURS_COLUMNS = ["day", "job-hours"]
LOG_LINES = 30
"""The tail of the logs shown: enough for a traceback's end, short enough to read in the panel."""


def duration(seconds: float | None) -> str:
    """`42 s`, `3.5 min`, `2.1 h`; `–` when unknown."""
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def stage_label(stage: str) -> str:
    return STAGE_LABELS.get(stage, stage)


def job_markdown(job: JobRecord, *, now: float | None = None) -> str:
    """The job panel of one event: id with its link, flavor, stage and message, times, the tail of its logs."""
    now = time.time() if now is None else now
    lines = [
        f"**Hub Job** [{inline_code(job.job_id)}]({job.url}) · {inline_code(job.flavor)} · "
        f"**{stage_label(job.stage)}**" + (f": {job.message}" if job.message else ""),
    ]
    times = [f"launched {when(job.launched_at, now=now)} UTC"]
    if job.started_at is not None:
        times.append(f"started {duration(job.started_at - job.launched_at)} later")
    if job.finished_at is not None:
        times.append(f"ran {duration(job.duration_seconds)}, ended {when(job.finished_at, now=now)} UTC")
    elif job.stage not in ENDED_STAGES:
        times.append(f"running for {duration(now - (job.started_at or job.launched_at))}")
    lines.append(" · ".join(times))
    if job.logs_tail:
        tail = "\n".join(job.logs_tail.rstrip().splitlines()[-LOG_LINES:])
        lines.append(f"Last lines of its logs:\n\n{fenced(tail)}")
    elif job.stage in ENDED_STAGES:
        lines.append("No log lines were kept.")
    return "\n\n".join(lines)


def replay_warning(event_id: int, job: JobRecord) -> str:
    """What the operator must know before replaying an event that launched a job."""
    return (
        f"**Replaying event #{event_id} launches a new Hub Job.** Its handler launched "
        f"[{inline_code(job.job_id)}]({job.url}) ({inline_code(job.flavor)}, {stage_label(job.stage)}); a replay "
        "is a new run with a key of its own, so the same handler starts a new, billed job. "
        "Click **Replay and launch a new job** to go ahead."
    )


def jobs_health_table(day: JobStats, week: JobStats) -> str:
    """Jobs by outcome, running now, durations and job-hours, for the last day and week; empty without jobs."""
    if not (week.launched or week.running or day.running):
        return ""

    def hours(stats: JobStats) -> str:
        return f"{sum(h for _, h in stats.hours_by_day):.2f}"

    def pair(stats: JobStats) -> str:
        if stats.duration_p50 is None:
            return "–"
        return f"{duration(stats.duration_p50)} / {duration(stats.duration_p95)}"

    rows = [("Launched", f"{day.launched}", f"{week.launched}")]
    rows += [
        (stage_label(stage).split(" (")[0], f"{day.by_stage.get(stage, 0)}", f"{week.by_stage.get(stage, 0)}")
        for stage in ENDED_STAGES
        if day.by_stage.get(stage) or week.by_stage.get(stage)
    ]
    rows += [
        ("Running now", f"{day.running}", ""),
        ("Duration, p50 / p95", pair(day), pair(week)),
        ("Job-hours", hours(day), hours(week)),
    ]
    return "**Hub Jobs**\n\n| | Last 24 h | Last 7 days |\n|---|---:|---:|\n" + "\n".join(
        f"| {a} | {b} | {c} |" for a, b, c in rows
    )


def job_hours_frame(stats: JobStats) -> pd.DataFrame:
    """Job-hours per UTC day, oldest first: the data of the job-hours bar plot."""
    return pd.DataFrame([(day, round(hours, 3)) for day, hours in stats.hours_by_day], columns=JOB_HOURS_COLUMNS)
