"""The console's reads on the PostgreSQL journal (an event, its attempts, statistics),
and how its rows read back and are written.

Each read first writes the acknowledgement times still kept in memory, so it sees every write made
before it was asked for, as the protocol promises.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from ..records import Attempt, Delivery, EventRecord, EventState, JournalStats
from ..rows import record_from_row, stats_from_rows
from . import statements as sql


class ConsoleReads:
    """`get`, `attempts` and `stats`, through the journal's
    `_rows` and `transaction` (`journal.py`)."""

    async def _rows(self, doing: str, query: str, parameters: Any = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def transaction(self, doing: str, *, atomic: bool = True) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError

    @staticmethod
    async def _fetch(connection: Any, event_id: int) -> EventRecord | None:
        row = await (await connection.execute("SELECT * FROM events WHERE id = %s", (event_id,))).fetchone()
        return event_record(row) if row is not None else None

    async def get(self, event_id: int) -> EventRecord | None:
        rows = await self._rows("read an event", "SELECT * FROM events WHERE id = %s", (event_id,))
        return event_record(rows[0]) if rows else None

    async def attempts(self, event_id: int) -> list[Attempt]:
        rows = await self._rows("read an event's attempts", sql.ATTEMPTS, {"id": event_id})
        return [Attempt(**row) for row in rows]

    async def stats(self, *, since: float) -> JournalStats:
        counts = await self._rows("read statistics", sql.STATS_COUNTS, (since,))
        times = await self._rows("read statistics", sql.STATS_TIMES, (since,))
        return stats_from_rows(
            since,
            ((row["endpoint"], row["state"], row["count"]) for row in counts),
            ((row["ack_ms"], row["handler_ms"]) for row in times),
        )


def event_record(row: Mapping[str, Any]) -> EventRecord:
    """A row of `events` as an `EventRecord`, with the replica that ran it."""
    return record_from_row(row).evolve(replica=row["replica"])  # type: ignore[arg-type]


def event_row(
    delivery: Delivery,
    state: EventState,
    max_attempts: int,
    original_id: int | None,
    note: str | None,
    finished_at: float | None,
    *,
    awaited_by: str | None,
) -> dict[str, Any]:
    """The columns of a delivery's new row; `awaited_by` is the replica whose request waits for its outcome
    (the one that recorded it, if it runs handlers; None for a receive-only replica, which answers at once)."""
    return {
        "awaited_by": awaited_by,
        "endpoint": delivery.endpoint,
        "delivery_key": delivery.delivery_key,
        "webhook_id": delivery.webhook_id,
        "received_at": delivery.received_at,
        "headers": json.dumps(delivery.headers),
        "query": delivery.query,
        "scope": delivery.scope,
        "action": delivery.action,
        "repo_name": delivery.repo_name,
        "repo_type": delivery.repo_type,
        "order_key": delivery.order_key,
        "is_test": delivery.is_test,
        "state": state.value,
        "max_attempts": max_attempts,
        "original_id": original_id,
        "note": note,
        "finished_at": finished_at,
        "body": delivery.body,
    }
