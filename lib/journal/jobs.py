"""The SQLite journal's Hub Jobs: the `Journal` calls about jobs, as a mixin of `SQLiteJournal`.

Kept apart from `sqlite.py` (the events' own rules) because a job is a second thing with a life of
its own: launched by a handler, followed by the worker, reported back. Every write is kept by the
commit group (`WriteBehind.keep`) like a claim or an outcome, and has the same effect when run twice:
the job's row is an upsert that never takes a final stage back, and the event's changes are guarded by
its state.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from .job_records import (
    FINAL_JOB_STAGES,
    FollowedJob,
    JobRecord,
    JobStats,
    job_columns,
    job_from_row,
    job_stats_from_rows,
)
from .records import EventRecord, EventState

if TYPE_CHECKING:
    from .write_behind import WriteBehind

_FINAL = "('" + "', '".join(sorted(FINAL_JOB_STAGES)) + "')"
UPSERT_JOB = f"""
INSERT INTO jobs (event_id, label, endpoint, job_id, namespace, flavor, stage, message, url, launched_at,
                  started_at, finished_at, timeout_seconds, logs_tail)
VALUES (:event_id, :label, :endpoint, :job_id, :namespace, :flavor, :stage, :message, :url, :launched_at,
        :started_at, :finished_at, :timeout_seconds, :logs_tail)
ON CONFLICT (event_id, label) DO UPDATE SET
    job_id = excluded.job_id, namespace = excluded.namespace, flavor = excluded.flavor, stage = excluded.stage,
    message = excluded.message, url = excluded.url, started_at = COALESCE(excluded.started_at, jobs.started_at),
    finished_at = excluded.finished_at, logs_tail = COALESCE(excluded.logs_tail, jobs.logs_tail),
    timeout_seconds = COALESCE(excluded.timeout_seconds, jobs.timeout_seconds)
WHERE jobs.stage NOT IN {_FINAL}
"""
"""The job as last seen; a job that ended is never taken back to running by a late, older sighting."""
START_JOB = (
    "UPDATE events SET state = 'job_running', result = ?, error = NULL, handler_ms = ? "
    "WHERE id = ? AND state = 'running'"
)
JOB_SUCCEEDED = "UPDATE events SET state = 'succeeded', finished_at = ? WHERE id = ? AND state = 'job_running'"
CLOSE_JOB_ATTEMPT = (
    "INSERT OR REPLACE INTO attempts (event_id, number, started_at, finished_at, outcome, detail) "
    "SELECT id, attempts, COALESCE(started_at, :now), :now, 'failed', :detail FROM events "
    "WHERE id = :id AND state = 'job_running'"
)
JOB_FAILED = (
    "UPDATE events SET state = 'dead', error = ?, next_attempt_at = NULL, finished_at = ? "
    "WHERE id = ? AND state = 'job_running'"
)
"""A job that did not complete leaves its event dead, not failed: a retry would find the same job again by its
label (one event, one job), so only a replay, which launches a new job, can do better."""
NEWEST_JOB = "SELECT * FROM jobs WHERE event_id = ? ORDER BY launched_at DESC, rowid DESC LIMIT 1"
FOLLOWED = """
SELECT jobs.*, e.order_key AS order_key, (
    SELECT MAX(w.id) FROM events AS w INDEXED BY events_unfinished
    WHERE e.order_key IS NOT NULL AND w.order_key = e.order_key AND w.id > e.id
      AND w.state IN ('queued', 'running', 'failed', 'job_running') AND w.state IN ('queued', 'failed')
) AS waiting_event_id
FROM events AS e INDEXED BY events_unfinished
JOIN jobs ON jobs.rowid = (SELECT j.rowid FROM jobs AS j WHERE j.event_id = e.id
                          ORDER BY j.launched_at DESC, j.rowid DESC LIMIT 1)
WHERE e.state IN ('queued', 'running', 'failed', 'job_running') AND e.state = 'job_running'
ORDER BY e.id
"""
"""The newest job of every `job_running` event, and the newest event waiting behind it in its lane."""


class SQLiteJobs:
    """The job calls of the `Journal` protocol (see `protocol.py`), over `SQLiteJournal`'s file and commit group."""

    if TYPE_CHECKING:  # what `SQLiteJournal` provides
        _writes: WriteBehind

        def _read_here(self, sql: str, parameters: Any = ()) -> list[sqlite3.Row]: ...

        async def _read_committed(self, sql: str, parameters: Any = ()) -> list[sqlite3.Row]: ...

        @staticmethod
        def _fetch(connection: sqlite3.Connection, event_id: int) -> EventRecord: ...

    async def record_job(self, job: JobRecord) -> None:
        with self._writes.write(atomic=False):
            self._writes.keep(UPSERT_JOB, job_columns(job))

    async def start_job(self, event: EventRecord, *, job: JobRecord, result: Any, handler_ms: float) -> EventRecord:
        with self._writes.write():
            self._writes.keep(UPSERT_JOB, job_columns(job))
            self._writes.keep(START_JOB, (json.dumps(result, default=repr), handler_ms, event.id))
        return event.evolve(state=EventState.JOB_RUNNING, result=result, error=None, handler_ms=handler_ms)

    async def end_job(self, job: JobRecord, *, error: str | None) -> EventRecord | None:
        now = job.finished_at if job.finished_at is not None else time.time()
        with self._writes.write() as connection:
            self._writes.keep(UPSERT_JOB, job_columns(job))
            if error is None:
                self._writes.keep(JOB_SUCCEEDED, (now, job.event_id))
            else:
                self._writes.keep(CLOSE_JOB_ATTEMPT, {"id": job.event_id, "now": now, "detail": error})
                self._writes.keep(JOB_FAILED, (error, now, job.event_id))
            row = connection.execute("SELECT id FROM events WHERE id = ?", (job.event_id,)).fetchone()
            return self._fetch(connection, job.event_id) if row is not None else None

    async def job_reported(self, event_id: int, label: str) -> None:
        with self._writes.write(atomic=False):
            self._writes.keep("UPDATE jobs SET reported = 1 WHERE event_id = ? AND label = ?", (event_id, label))

    async def job_for(self, event_id: int) -> JobRecord | None:
        rows = await self._read_committed(NEWEST_JOB, (event_id,))
        return job_from_row(rows[0]) if rows else None

    async def job_for_label(self, label: str) -> JobRecord | None:
        rows = self._read_here("SELECT * FROM jobs WHERE label = ? ORDER BY launched_at DESC LIMIT 1", (label,))
        return job_from_row(rows[0]) if rows else None

    async def jobs_to_follow(self) -> list[FollowedJob]:
        return [
            FollowedJob(job=job_from_row(row), order_key=row["order_key"], waiting_event_id=row["waiting_event_id"])
            for row in self._read_here(FOLLOWED)
        ]

    async def jobs_to_report(self) -> list[JobRecord]:
        rows = self._read_here(f"SELECT * FROM jobs WHERE reported = 0 AND stage IN {_FINAL} ORDER BY finished_at")
        return [job_from_row(row) for row in rows]

    async def jobs_launched_since(self, endpoint: str, *, since: float) -> int:
        rows = self._read_here("SELECT COUNT(*) FROM jobs WHERE endpoint = ? AND launched_at >= ?", (endpoint, since))
        return int(rows[0][0])

    async def job_stats(self, *, since: float) -> JobStats:
        by_stage = {
            stage: count
            for stage, count in await self._read_committed(
                "SELECT stage, COUNT(*) FROM jobs WHERE launched_at >= ? GROUP BY stage", (since,)
            )
        }
        running = await self._read_committed(f"SELECT COUNT(*) FROM jobs WHERE stage NOT IN {_FINAL}")
        ended = await self._read_committed(
            "SELECT date(finished_at, 'unixepoch') AS day, finished_at - COALESCE(started_at, launched_at) AS seconds "
            f"FROM jobs WHERE stage IN {_FINAL} AND finished_at >= ? ORDER BY finished_at",
            (since,),
        )
        return job_stats_from_rows(since, by_stage, int(running[0][0]), ended)
