"""The PostgreSQL journal's operator calls: listing events by filter, replays (one event, every dead one of
an endpoint, every one a filter matches), pausing an endpoint, and the snapshot metrics and alerts read.

A mixin of `PostgresJournal`, with the same rules as the SQLite journal's (`lib/journal/operations.py`),
except where a pause lives: in `endpoint_pauses`, which every replica's claims read
(`statements.NOT_PAUSED`), so a pause made at one console holds the endpoint at every replica at once,
and a resume at any of them lets them all go on. Nothing about pauses is kept in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from ...core.errors import EventNotFound
from ..records import EventRecord, EventState
from ..selection import REPLAYABLE_STATES, EventFilter, filter_clause
from ..snapshot import JournalSnapshot, snapshot_of
from . import statements as sql
from .reads import event_record

REPLAYABLE = [str(state) for state in REPLAYABLE_STATES]
HOLD = "UPDATE events SET state = 'paused' WHERE endpoint = %s AND state IN ('queued', 'failed')"
"""An endpoint's events that wait to run are held: queued ones, and failed ones waiting for a retry."""
RELEASE = "UPDATE events SET state = 'queued', next_attempt_at = NULL WHERE endpoint = %s AND state = 'paused'"
SNAPSHOT = (
    "SELECT endpoint, state, COUNT(*) AS count, MIN(received_at) AS oldest, "
    "COUNT(*) FILTER (WHERE received_at >= %s) AS since "
    "FROM events GROUP BY endpoint, state"
)
"""`lib/journal/snapshot.py`'s query in PostgreSQL's words: the same columns, in the same order."""


class PostgresOperations:
    """`list_recent`, `replay`, `replay_dead`, `matching`, `replay_many`, `pause`, `resume`, `paused` and
    `snapshot`, through the journal's `_rows` and `transaction` (`journal.py`)."""

    if TYPE_CHECKING:  # given by `PostgresJournal` and `ConsoleReads`

        async def _rows(self, doing: str, query: str, parameters: Any = None) -> list[dict[str, Any]]: ...

        def transaction(self, doing: str, *, atomic: bool = True) -> AbstractAsyncContextManager[Any]: ...

        @staticmethod
        async def _fetch(connection: Any, event_id: int) -> EventRecord | None: ...

    async def list_recent(
        self,
        *,
        limit: int = 100,
        endpoint: str | None = None,
        state: str | None = None,
        repo: str | None = None,
        scope: str | None = None,
        received_from: float | None = None,
        received_until: float | None = None,
    ) -> list[EventRecord]:
        where = EventFilter(
            endpoint=endpoint,
            state=state,
            repo=repo,
            scope=scope,
            received_from=received_from,
            received_until=received_until,
        )
        condition, parameters = filter_clause(where, placeholder="%s")
        rows = await self._rows(
            "list events",
            f"SELECT * FROM events {'WHERE ' + condition if condition else ''} ORDER BY id DESC LIMIT %s",
            (*parameters, limit),
        )
        return [event_record(row) for row in rows]

    @staticmethod
    async def _requeue(connection: Any, event_ids: list[int], max_attempts: int) -> None:
        """Queue events again for a replay (held if their endpoint is paused), their success kept in the history,
        each a new generation (a Hub Job it launches is a new one)."""
        if not event_ids:
            return
        async with connection.cursor() as cursor:  # `executemany` pipelines: a bulk replay is not a round trip each
            await cursor.executemany(sql.KEEP_LAST_ATTEMPT, [(event_id,) for event_id in event_ids])
            await cursor.executemany(sql.REPLAYED, [(event_id,) for event_id in event_ids])
            await cursor.executemany(sql.REQUEUE, [(max_attempts, event_id) for event_id in event_ids])
        await connection.execute(sql.NOTIFY, (sql.CHANNEL, ""))

    async def replay(self, event_id: int, *, max_attempts: int) -> EventRecord:
        async with self.transaction("replay an event") as connection:
            row = await (
                await connection.execute("SELECT state, original_id FROM events WHERE id = %s FOR UPDATE", (event_id,))
            ).fetchone()
            if row is None:
                raise EventNotFound(f"No event {event_id} in the journal.")
            target = row["original_id"] if row["state"] == EventState.DUPLICATE else event_id
            await self._requeue(connection, [target], max_attempts)
            return await self._fetch(connection, target)  # type: ignore[return-value]

    async def replay_dead(self, endpoint: str, *, max_attempts: int) -> list[int]:
        async with self.transaction("replay dead events") as connection:
            rows = await (
                await connection.execute(
                    "SELECT id FROM events WHERE endpoint = %s AND state = 'dead' ORDER BY id FOR UPDATE", (endpoint,)
                )
            ).fetchall()
            ids = [row["id"] for row in rows]
            await self._requeue(connection, ids, max_attempts)
            return ids

    async def matching(self, where: EventFilter, *, limit: int) -> list[int]:
        condition, parameters = filter_clause(where, placeholder="%s")
        rows = await self._rows(
            "find the events to replay",
            f"SELECT id FROM events WHERE state = ANY(%s) {'AND ' + condition if condition else ''} "
            "ORDER BY id LIMIT %s",
            (REPLAYABLE, *parameters, limit),
        )
        return [row["id"] for row in rows]

    async def replay_many(self, event_ids: Sequence[int], *, max_attempts: int) -> list[int]:
        async with self.transaction("replay events") as connection:
            rows = await (
                await connection.execute(
                    "SELECT id FROM events WHERE id = ANY(%s) AND state = ANY(%s) ORDER BY id FOR UPDATE",
                    (sorted(set(event_ids)), REPLAYABLE),
                )
            ).fetchall()
            ids = [row["id"] for row in rows]
            await self._requeue(connection, ids, max_attempts)
            return ids

    async def pause(self, endpoint: str, *, now: float) -> int:
        async with self.transaction("pause an endpoint") as connection:
            await connection.execute(
                "INSERT INTO endpoint_pauses (endpoint, paused_at) VALUES (%s, %s) ON CONFLICT (endpoint) DO NOTHING",
                (endpoint, now),
            )
            return (await connection.execute(HOLD, (endpoint,))).rowcount

    async def resume(self, endpoint: str) -> int:
        async with self.transaction("resume an endpoint") as connection:
            removed = await connection.execute("DELETE FROM endpoint_pauses WHERE endpoint = %s", (endpoint,))
            if removed.rowcount == 0:
                return 0
            released = (await connection.execute(RELEASE, (endpoint,))).rowcount
            await connection.execute(sql.NOTIFY, (sql.CHANNEL, ""))  # every replica's worker looks now
            return released

    async def paused(self) -> dict[str, float]:
        rows = await self._rows("read the paused endpoints", "SELECT endpoint, paused_at FROM endpoint_pauses")
        return {row["endpoint"]: row["paused_at"] for row in rows}

    async def snapshot(self, *, since: float) -> JournalSnapshot:
        rows = await self._rows("read what the journal holds", SNAPSHOT, (since,))
        size = await self._rows("read the journal's size", sql.JOURNAL_BYTES)
        return snapshot_of(
            (list(row.values()) for row in rows), since=since, size_bytes=int(next(iter(size[0].values())))
        )
