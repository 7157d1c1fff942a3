"""The PostgreSQL journal's claims: what its workers take to run, and what dead replicas left running.

A mixin of `PostgresJournal`. Claims skip rows another replica is claiming (`FOR UPDATE SKIP LOCKED`),
and the one-running-per-key index refuses a second running event of one repository whichever replica
claims it (an `IntegrityError`, read as "not now"). A claim is a lazy commit (`journal.LAZY_COMMITS`):
it survives any crash of a replica, so a handler that kills its process has its attempt counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import psycopg

from ..records import STOPPED_ON_LAST_ATTEMPT, EventRecord, EventState
from . import statements as sql
from .reads import event_record

logger = logging.getLogger(__name__)


class PostgresClaims:
    """`recover_interrupted`, `claim_due`, `claim`, `claim_next` and `runs_elsewhere`, and the heartbeat's
    looks at expired leases and unclaimed events, through the journal's `transaction` and `_rows`."""

    replica: str
    lease_seconds: float
    recovered: int
    _recovery_pending: bool
    running_here: set[int]
    """The events whose claim this replica saw succeed and whose outcome it has not written yet: the
    only leases it renews. A claim whose answer was lost (the connection cut as it committed) runs
    nowhere: its lease lapses and a replica takes it over, this one included."""
    _refused: tuple[str, bool] | None = None
    """The order key of the last claim refused, and whether another replica ran that repository then."""

    if TYPE_CHECKING:  # given by `PostgresJournal`

        async def _rows(self, doing: str, query: str, parameters: Any = None) -> list[dict[str, Any]]: ...

        def transaction(
            self, doing: str, *, atomic: bool = True, pipelined: bool = False
        ) -> AbstractAsyncContextManager[Any]: ...

    async def recover_interrupted(self) -> int:
        """Take back the events this replica (a previous process of the same name) left running."""
        self._recovery_pending = True  # kept until a transaction that makes it commits (see `transaction`)
        async with self.transaction("recover interrupted events"):
            pass
        return self.recovered

    async def _take_over(self, connection: psycopg.AsyncConnection[Any], *, mine: bool) -> int:
        """Requeue (or leave dead) the events left running by this replica before (`mine`) or by any
        replica whose lease expired; how many went back in the queue."""
        parameters = {"replica": self.replica if mine else None, "now": time.time(), "stopped": STOPPED_ON_LAST_ATTEMPT}
        rows = await (await connection.execute(sql.TAKE_OVER, parameters)).fetchall()
        others = sorted({row["replica"] for row in rows if row["replica"] != self.replica})
        if others:
            logger.warning(
                "Took over %d event(s) from replica(s) %s, whose lease expired: they run again here or elsewhere.",
                len(rows),
                ", ".join(others),
            )
        if rows:
            await connection.execute(sql.NOTIFY, (sql.CHANNEL, ""))
        return sum(1 for row in rows if row["state"] != EventState.DEAD)  # queued, or paused with their endpoint

    async def take_over_expired(self) -> int:
        """The heartbeat's look for dead replicas' events (`leases.py`)."""
        async with self.transaction("take over expired leases", atomic=False) as connection:
            return await self._take_over(connection, mine=False)

    async def waits_unclaimed(self, seconds: float) -> bool:
        """Whether an event waits in the queue, received more than `seconds` ago (the heartbeat's look)."""
        return bool(await self._rows("look for unclaimed events", sql.WAITS_UNCLAIMED, (time.time() - seconds,)))

    def _claiming(self, now: float, **more: Any) -> dict[str, Any]:
        return {"now": now, "replica": self.replica, "lease": self.lease_seconds, **more}

    async def claim_due(
        self, *, now: float, limit: int, per_endpoint: Mapping[str, int] | None = None
    ) -> list[EventRecord]:
        if limit <= 0:
            return []
        left = dict(per_endpoint or {})
        taken: list[dict[str, Any]] = []
        try:
            async with self.transaction("claim due events", pipelined=True) as connection:
                while len(taken) < limit:
                    full = [path for path, places in left.items() if places <= 0]
                    rows = await (
                        await connection.execute(
                            sql.CANDIDATES, {"now": now, "limit": limit - len(taken), "full": full}
                        )
                    ).fetchall()
                    chosen, skipped = [], False
                    for row in rows:
                        places = left.get(row["endpoint"])
                        if places is not None:
                            if places <= 0:
                                skipped = True
                                continue
                            left[row["endpoint"]] = places - 1
                        chosen.append(row["id"])
                    if chosen:
                        marked = await connection.execute(sql.MARK_RUNNING, self._claiming(now, ids=chosen))
                        taken += await marked.fetchall()
                    if not skipped:
                        break
        except psycopg.IntegrityError:  # another replica's claim of the same order key won the race
            return []
        self.running_here.update(row["id"] for row in taken)
        return sorted((event_record(row) for row in taken), key=lambda event: event.id)

    async def claim(self, event_id: int, *, now: float) -> bool:
        try:
            async with self.transaction("claim an event", atomic=False) as connection:
                row = await (await connection.execute(sql.CLAIM_ONE, self._claiming(now, id=event_id))).fetchone()
        except psycopg.IntegrityError:
            return False
        if row is not None and row["id"] is not None:
            self.running_here.add(event_id)
            return True
        if row is not None and row["order_key"] is not None:
            self._refused = (row["order_key"], row["elsewhere"])
        return False

    async def claim_next(self, order_key: str, *, now: float) -> int | None:
        try:
            async with self.transaction("claim the next event", atomic=False) as connection:
                row = await (await connection.execute(sql.CLAIM_NEXT, self._claiming(now, key=order_key))).fetchone()
        except psycopg.IntegrityError:
            return None
        if row is None:
            return None
        self.running_here.add(row["id"])
        return row["id"]

    async def runs_elsewhere(self, order_key: str | None) -> bool:
        if order_key is None:
            return False
        refused, self._refused = self._refused, None
        if refused is not None and refused[0] == order_key:
            return refused[1]  # read by the claim just refused (the worker's one question after a refusal)
        rows = await self._rows(
            "look for the repository's running event", sql.RUNS_ELSEWHERE, (order_key, self.replica)
        )
        return bool(rows)
