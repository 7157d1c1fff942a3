"""The SQLite journal's operator calls: listing events by filter, replays (one event, every dead one of
an endpoint, every one a filter matches), and pausing an endpoint.

A mixin of `SQLiteJournal`, kept apart from `sqlite.py` (the events' own rules).

A pause lives in a small table of its own, `endpoint_pauses`, created by the first pause: it adds
nothing to the schema's version, so it composes with any migration, and a journal that was never
paused has no such table. The journal keeps the paused endpoints in memory too (read once, then
changed only here), since every delivery asks whether its endpoint is paused: a pause is one
process's decision on its own file.

While an endpoint is paused, none of its events is claimed (`claim_due` gives it no room, `claim`
and `claim_next` refuse it), and every event of it that would wait to run is `paused` instead:
its queued and failed events when it is paused, and later a new delivery, a redelivery's requeue
or a replay. Resuming queues them again; their order keys keep their order, since an order key
belongs to one endpoint (`receiver/delivery.py`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..core.errors import EventNotFound
from .records import EventRecord, EventState
from .rows import record_from_row
from .selection import REPLAYABLE_STATES, EventFilter, filter_clause
from .statements import KEEP_LAST_ATTEMPT, REPLAYED, REQUEUE

if TYPE_CHECKING:
    from .write_behind import WriteBehind

PAUSES_TABLE = (
    "CREATE TABLE IF NOT EXISTS endpoint_pauses (endpoint TEXT PRIMARY KEY, paused_at REAL NOT NULL) WITHOUT ROWID"
)
HOLD = "UPDATE events SET state = 'paused' WHERE endpoint = ? AND state IN ('queued', 'failed')"
"""An endpoint's events that wait to run are held: queued ones, and failed ones waiting for a retry."""
RELEASE = "UPDATE events SET state = 'queued', next_attempt_at = NULL WHERE endpoint = ? AND state = 'paused'"
_REPLAYABLE = "('" + "', '".join(REPLAYABLE_STATES) + "')"


class SQLiteOperations:
    """The console's listing, replays and pauses on `SQLiteJournal`'s file; see `protocol.py` for what each promises."""

    _writes: WriteBehind
    _pauses: dict[str, float] | None = None
    """The paused endpoints and since when, once read from the file."""

    if TYPE_CHECKING:

        async def _read_committed(self, sql: str, parameters: Any = ()) -> list[sqlite3.Row]: ...

        @staticmethod
        def _fetch(connection: sqlite3.Connection, event_id: int) -> EventRecord: ...

    def _paused_now(self) -> dict[str, float]:
        """The paused endpoints, read from the file the first time."""
        if self._pauses is None:
            connection = self._writes.connection
            exists = connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'endpoint_pauses'").fetchone()
            rows = connection.execute("SELECT endpoint, paused_at FROM endpoint_pauses").fetchall() if exists else []
            self._pauses = {row[0]: row[1] for row in rows}
        return self._pauses

    def _waiting_state(self, endpoint: str) -> EventState:
        """The state of an event of `endpoint` about to wait for its run: paused while its endpoint is."""
        return EventState.PAUSED if endpoint in self._paused_now() else EventState.QUEUED

    def _hold_if_paused(self, connection: sqlite3.Connection, endpoint: str) -> None:
        """After queueing events of `endpoint` again (a requeue, a replay): held, should it be paused."""
        if endpoint in self._paused_now():
            connection.execute(HOLD, (endpoint,))

    def _hold_paused(self, connection: sqlite3.Connection) -> None:
        """Hold what waits to run of every paused endpoint (after the recovery queued interrupted events again)."""
        for endpoint in self._paused_now():
            connection.execute(HOLD, (endpoint,))

    def _held(self, connection: sqlite3.Connection, event_id: int) -> bool:
        """Whether the event belongs to a paused endpoint (its claim is refused, whatever its state)."""
        if not self._paused_now():
            return False
        row = connection.execute("SELECT endpoint FROM events WHERE id = ?", (event_id,)).fetchone()
        return row is not None and row[0] in self._paused_now()

    def _room_when_paused(self, room: Mapping[str, int] | None) -> Mapping[str, int]:
        """The room a scan claims within: none at all for a paused endpoint."""
        paused = self._paused_now()
        return {**(room or {}), **dict.fromkeys(paused, 0)} if paused else room or {}

    def _requeue(self, connection: sqlite3.Connection, event_id: int, endpoint: str, max_attempts: int) -> None:
        """Queue one event again for a replay, keeping its success in the history (held if its endpoint is paused)."""
        connection.execute(KEEP_LAST_ATTEMPT, (event_id,))
        connection.execute(REPLAYED, (event_id,))  # a new generation: a Hub Job it launches is a new one
        connection.execute(REQUEUE, (max_attempts, event_id))
        self._hold_if_paused(connection, endpoint)

    async def pause(self, endpoint: str, *, now: float) -> int:
        pauses = self._paused_now()
        with self._writes.write() as connection:
            connection.execute(PAUSES_TABLE)
            connection.execute("INSERT OR IGNORE INTO endpoint_pauses VALUES (?, ?)", (endpoint, now))
            held = connection.execute(HOLD, (endpoint,)).rowcount
        pauses.setdefault(endpoint, now)  # at once: a delivery recorded before the commit is held too
        await self._kept()
        return held

    async def resume(self, endpoint: str) -> int:
        pauses = self._paused_now()
        if endpoint not in pauses:
            return 0
        with self._writes.write() as connection:
            connection.execute("DELETE FROM endpoint_pauses WHERE endpoint = ?", (endpoint,))
            released = connection.execute(RELEASE, (endpoint,)).rowcount
        del pauses[endpoint]
        await self._kept()
        return released

    async def _kept(self) -> None:
        """Wait for a pause or a resume to be durable (the operator is told it survives a restart); if its
        commit was lost, the paused endpoints are read from the file again."""
        try:
            await self._writes.durable()
        except BaseException:
            self._pauses = None
            raise

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
        condition, parameters = filter_clause(
            EventFilter(
                endpoint=endpoint,
                state=state,
                repo=repo,
                scope=scope,
                received_from=received_from,
                received_until=received_until,
            )
        )
        where = f"WHERE {condition}" if condition else ""
        rows = await self._read_committed(
            f"SELECT * FROM event_rows {where} ORDER BY id DESC LIMIT ?", (*parameters, limit)
        )
        return [record_from_row(row) for row in rows]

    async def replay(self, event_id: int, *, max_attempts: int) -> EventRecord:
        with self._writes.write() as connection:
            row = connection.execute("SELECT state, original_id, endpoint FROM events WHERE id = ?", (event_id,))
            row = row.fetchone()
            if row is None:
                raise EventNotFound(f"No event {event_id} in the journal.")
            target = row["original_id"] if row["state"] == EventState.DUPLICATE else event_id
            self._requeue(connection, target, row["endpoint"], max_attempts)
            return self._fetch(connection, target)

    async def replay_dead(self, endpoint: str, *, max_attempts: int) -> list[int]:
        with self._writes.write() as connection:
            ids = [
                row[0]
                for row in connection.execute(
                    "SELECT id FROM events WHERE endpoint = ? AND state = 'dead' ORDER BY id", (endpoint,)
                )
            ]
            connection.executemany(REPLAYED, [(event_id,) for event_id in ids])
            connection.executemany(REQUEUE, [(max_attempts, event_id) for event_id in ids])
            self._hold_if_paused(connection, endpoint)
            return ids

    async def paused(self) -> dict[str, float]:
        return dict(self._paused_now())

    async def matching(self, where: EventFilter, *, limit: int) -> list[int]:
        condition, parameters = filter_clause(where)
        rows = await self._read_committed(
            f"SELECT id FROM events WHERE state IN {_REPLAYABLE} {'AND ' + condition if condition else ''} "
            "ORDER BY id LIMIT ?",
            (*parameters, limit),
        )
        return [row[0] for row in rows]

    async def replay_many(self, event_ids: Sequence[int], *, max_attempts: int) -> list[int]:
        replayed: list[int] = []
        with self._writes.write() as connection:
            for event_id in sorted(set(event_ids)):
                row = connection.execute(
                    f"SELECT endpoint FROM events WHERE id = ? AND state IN {_REPLAYABLE}", (event_id,)
                ).fetchone()
                if row is not None:
                    self._requeue(connection, event_id, row[0], max_attempts)
                    replayed.append(event_id)
        return replayed
