"""The PostgreSQL journal's Hub Jobs: the `Journal` calls about jobs, as a mixin of `PostgresJournal`.

The same rules as the SQLite journal's (`lib/journal/jobs.py`): a job's row is an upsert that never
takes a final stage back, and the event's changes are guarded by its state, so every write has the
effect of once. Each call is a transaction of its own, committed before it returns.
"""

from __future__ import annotations

import json
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

from ..job_records import (
    FINAL_JOB_STAGES,
    FollowedJob,
    JobRecord,
    JobStats,
    job_columns,
    job_from_row,
    job_stats_from_rows,
)
from ..records import EventRecord, EventState
from .statements import TELL_RECEIVER

FINAL = list(sorted(FINAL_JOB_STAGES))
UPSERT_JOB = """
INSERT INTO jobs (event_id, label, endpoint, job_id, namespace, flavor, stage, message, url, launched_at,
                  started_at, finished_at, timeout_seconds, logs_tail)
VALUES (%(event_id)s, %(label)s, %(endpoint)s, %(job_id)s, %(namespace)s, %(flavor)s, %(stage)s, %(message)s,
        %(url)s, %(launched_at)s, %(started_at)s, %(finished_at)s, %(timeout_seconds)s, %(logs_tail)s)
ON CONFLICT (event_id, label) DO UPDATE SET
    job_id = EXCLUDED.job_id, namespace = EXCLUDED.namespace, flavor = EXCLUDED.flavor, stage = EXCLUDED.stage,
    message = EXCLUDED.message, url = EXCLUDED.url, started_at = COALESCE(EXCLUDED.started_at, jobs.started_at),
    finished_at = EXCLUDED.finished_at, logs_tail = COALESCE(EXCLUDED.logs_tail, jobs.logs_tail),
    timeout_seconds = COALESCE(EXCLUDED.timeout_seconds, jobs.timeout_seconds)
WHERE jobs.stage <> ALL(%(final)s)
"""
START_JOB = f"""
WITH ended AS (
    UPDATE events SET state = 'job_running', result = %(result)s, error = NULL, handler_ms = %(handler_ms)s,
        lease_until = NULL
    WHERE id = %(id)s AND state = 'running' AND replica = %(replica)s RETURNING id, awaited_by
) {TELL_RECEIVER}
"""
JOB_SUCCEEDED = "UPDATE events SET state = 'succeeded', finished_at = %s WHERE id = %s AND state = 'job_running'"
CLOSE_JOB_ATTEMPT = """
INSERT INTO attempts (event_id, number, started_at, finished_at, outcome, detail, replica)
SELECT id, attempts, COALESCE(started_at, %(now)s), %(now)s, 'failed', %(detail)s, replica FROM events
WHERE id = %(id)s AND state = 'job_running'
ON CONFLICT (event_id, number) DO UPDATE SET
    finished_at = EXCLUDED.finished_at, outcome = EXCLUDED.outcome, detail = EXCLUDED.detail
"""
JOB_FAILED = (
    "UPDATE events SET state = 'dead', error = %s, next_attempt_at = NULL, finished_at = %s "
    "WHERE id = %s AND state = 'job_running'"
)
NEWEST_JOB = "SELECT * FROM jobs WHERE event_id = %s ORDER BY launched_at DESC, seq DESC LIMIT 1"
FOLLOWED = """
SELECT jobs.*, e.order_key AS order_key, (
    SELECT MAX(w.id) FROM events AS w
    WHERE e.order_key IS NOT NULL AND w.order_key = e.order_key AND w.id > e.id AND w.state IN ('queued', 'failed')
) AS waiting_event_id
FROM events AS e
JOIN jobs ON jobs.seq = (SELECT j.seq FROM jobs AS j WHERE j.event_id = e.id
                         ORDER BY j.launched_at DESC, j.seq DESC LIMIT 1)
WHERE e.state = 'job_running'
ORDER BY e.id
"""


class PostgresJobs:
    """The job calls of the `Journal` protocol (see `protocol.py`), through `PostgresJournal.transaction`."""

    replica: str
    running_here: set[int]

    def transaction(self, doing: str, *, atomic: bool = True) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError

    async def _rows(self, doing: str, query: str, parameters: Any = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def _fetch(self, connection: Any, event_id: int) -> EventRecord | None:
        raise NotImplementedError

    async def record_job(self, job: JobRecord) -> None:
        async with self.transaction("record a job", atomic=False) as connection:
            await connection.execute(UPSERT_JOB, job_columns(job) | {"final": FINAL})

    async def start_job(self, event: EventRecord, *, job: JobRecord, result: Any, handler_ms: float) -> EventRecord:
        async with self.transaction("record a launched job") as connection:
            await connection.execute(UPSERT_JOB, job_columns(job) | {"final": FINAL})
            stored = json.dumps(result, default=repr)
            parameters = {"result": stored, "handler_ms": handler_ms, "id": event.id, "replica": self.replica}
            await connection.execute(START_JOB, parameters)
        self.running_here.discard(event.id)  # a job's event has no lease: the job follower watches it
        return event.evolve(state=EventState.JOB_RUNNING, result=result, error=None, handler_ms=handler_ms)

    async def end_job(self, job: JobRecord, *, error: str | None) -> EventRecord | None:
        now = job.finished_at if job.finished_at is not None else time.time()
        async with self.transaction("record a job's end") as connection:
            await connection.execute(UPSERT_JOB, job_columns(job) | {"final": FINAL})
            if error is None:
                await connection.execute(JOB_SUCCEEDED, (now, job.event_id))
            else:
                await connection.execute(CLOSE_JOB_ATTEMPT, {"id": job.event_id, "now": now, "detail": error})
                await connection.execute(JOB_FAILED, (error, now, job.event_id))
            return await self._fetch(connection, job.event_id)

    async def job_reported(self, event_id: int, label: str) -> None:
        async with self.transaction("record a job's report", atomic=False) as connection:
            await connection.execute(
                "UPDATE jobs SET reported = TRUE WHERE event_id = %s AND label = %s", (event_id, label)
            )

    async def job_for(self, event_id: int) -> JobRecord | None:
        rows = await self._rows("read a job", NEWEST_JOB, (event_id,))
        return job_from_row(rows[0]) if rows else None

    async def job_for_label(self, label: str) -> JobRecord | None:
        rows = await self._rows(
            "read a job", "SELECT * FROM jobs WHERE label = %s ORDER BY launched_at DESC LIMIT 1", (label,)
        )
        return job_from_row(rows[0]) if rows else None

    async def jobs_to_follow(self) -> list[FollowedJob]:
        return [
            FollowedJob(job=job_from_row(row), order_key=row["order_key"], waiting_event_id=row["waiting_event_id"])
            for row in await self._rows("read the jobs to follow", FOLLOWED)
        ]

    async def jobs_to_report(self) -> list[JobRecord]:
        rows = await self._rows(
            "read the jobs to report",
            "SELECT * FROM jobs WHERE NOT reported AND stage = ANY(%s) ORDER BY finished_at",
            (FINAL,),
        )
        return [job_from_row(row) for row in rows]

    async def jobs_launched_since(self, endpoint: str, *, since: float) -> int:
        rows = await self._rows(
            "count launched jobs",
            "SELECT COUNT(*) AS n FROM jobs WHERE endpoint = %s AND launched_at >= %s",
            (endpoint, since),
        )
        return int(rows[0]["n"])

    async def job_stats(self, *, since: float) -> JobStats:
        counts = await self._rows(
            "read job statistics",
            "SELECT stage, COUNT(*) AS n FROM jobs WHERE launched_at >= %s GROUP BY stage",
            (since,),
        )
        by_stage = {row["stage"]: row["n"] for row in counts}
        running = await self._rows(
            "read job statistics", "SELECT COUNT(*) AS n FROM jobs WHERE stage <> ALL(%s)", (FINAL,)
        )
        ended = await self._rows(
            "read job statistics",
            "SELECT to_char(to_timestamp(finished_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, "
            "finished_at - COALESCE(started_at, launched_at) AS seconds "
            "FROM jobs WHERE stage = ANY(%s) AND finished_at >= %s ORDER BY finished_at",
            (FINAL, since),
        )
        return job_stats_from_rows(since, by_stage, int(running[0]["n"]), ended)
