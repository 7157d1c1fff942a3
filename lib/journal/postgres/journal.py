"""The journal on PostgreSQL: one database shared by several receivers and workers (`DATABASE_URL`).

Each call is a transaction of its own, committed before it returns: a delivery `record` returns is
durable, so `durable` and `after_commit` have nothing to wait for, and a claim is committed before its
handler starts, so `attempt_started` has nothing to note. Every guarantee holds across replicas
because the database keeps it, not a process: a delivery key's row is locked while a copy of it is
recorded (`delivery_keys`), one order key never has two events running (a unique index), claims skip
rows another replica is claiming (`FOR UPDATE SKIP LOCKED`), and a running event carries its replica
and a lease the replica renews (`leases.py`); a live replica takes over the events of one whose lease
expired. The network is only ever awaited, never waited on: psycopg's async driver and pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ...core.errors import ConfigurationError, EventNotFound, JournalUnavailable
from ..records import (
    STOPPED_ON_LAST_ATTEMPT,
    Delivery,
    EventRecord,
    EventState,
    JournalDamage,
    Recorded,
    redelivery_note,
    redelivery_outcome,
)
from . import statements as sql
from .claims import PostgresClaims
from .connection import DatabaseTarget
from .jobs import PostgresJobs
from .leases import Background, Health
from .operations import PostgresOperations
from .reads import ConsoleReads, event_row
from .schema import migrate

logger = logging.getLogger(__name__)

POOL_WAIT_SECONDS = 5.0
"""How long a call waits for a connection before it is a 503: the Hub's timeout is 30 s."""
DOWN_WAIT_SECONDS = 1.0
"""The same while the database is known to be away."""
RECONNECT_GIVE_UP_SECONDS = 5.0
"""How long the pool keeps retrying one lost connection (1 s, 2 s, 4 s apart) before it drops it; the next
call then tries at once. Longer, and its doubling delays would leave a database that came back unused
for tens of seconds."""
DATABASE_ERRORS = (psycopg.Error, PoolTimeout, OSError)
LAZY_COMMITS = "SET synchronous_commit = off"
"""Every connection's default: a commit returns once the database holds it, before its disk flush. A claim,
an outcome or a replay then survives any crash of a replica, as a SQLite journal's commit survives a crash of
its process; only a crash of the database server itself may lose its last fraction of a second of them,
and those events run again. Deliveries are the exception (`FLUSHED_COMMIT`)."""
FLUSHED_COMMIT = "SET LOCAL synchronous_commit = on"
"""Recording a delivery waits for its disk flush (and a synchronous standby's, where there is one): it is
acknowledged to the Hub, which will not send it again."""


@contextlib.asynccontextmanager
async def _alone() -> AsyncIterator[None]:
    """No transaction around the statements: each commits on its own (the connection is in autocommit)."""
    yield


async def _lazy_commits(connection: psycopg.AsyncConnection[Any]) -> None:
    await connection.execute(LAZY_COMMITS)


def default_replica_id() -> str:
    """This process among the replicas: its host and process id, so that two on one machine differ, and
    a restarted container (same host name, same pid) recovers its own events at once."""
    return f"{socket.gethostname()}-{os.getpid()}"


class PostgresJournal(PostgresClaims, ConsoleReads, PostgresOperations, PostgresJobs):
    """The `Journal` on a PostgreSQL database; see `protocol.py` for what each call promises.

    Building it touches no network: the pool opens, and the schema is created or migrated, on the
    first call. A database that cannot be reached makes each call raise `JournalUnavailable` (503)
    until it can; `health()` says so for the landing page and the console.

    Args:
        url: the `postgresql://` URL; only its host and database are ever shown (`target.description`).
        replica: this process's name among the replicas, stored on each event it runs.
        lease_seconds: how long a running event stays this replica's without a renewal; a replica
            renews its leases every third of it, and another takes the events over once it lapses.
        max_bytes: a cap on the journal's tables; past it, recording is a 503. None for no cap.
        pool_size: the most connections this process opens.
        runs_handlers: whether this process runs the events it records (its receiver has a worker). If
            not, each delivery it records wakes the other replicas' workers (`NOTIFY`); if so, it claims
            them itself, and the others look only at what waits unclaimed (`leases.UNCLAIMED_SECONDS`).

    Raises:
        ConfigurationError: the URL cannot be parsed.
    """

    def __init__(
        self,
        url: str,
        *,
        replica: str | None = None,
        lease_seconds: float = 30.0,
        max_bytes: int | None = None,
        pool_size: int = 10,
        runs_handlers: bool = True,
    ) -> None:
        self.target = DatabaseTarget(url)
        self.replica = replica or default_replica_id()
        self.lease_seconds = lease_seconds
        self.max_bytes = max_bytes
        self.pool_size = pool_size
        self.runs_handlers = runs_handlers
        self.health_state = Health(self.target.description)
        self._pool: AsyncConnectionPool | None = None
        self._opening = asyncio.Lock()
        self._ready = False
        self._closed = False
        self._recovery_pending = False
        self.recovered = 0
        """How many events the last recovery put back in the queue."""
        self._acks: dict[int, float] = {}
        self._acks_flush: asyncio.Task[None] | None = None
        self._watchers: list[Callable[[], None]] = []
        self._ended_watchers: list[Callable[[int], None]] = []
        self.running_here: set[int] = set()
        self._unwritten: list[tuple[str, dict[str, Any]]] = []
        """Outcomes the worker reported while the database was away, until the heartbeat writes them."""
        self._background = Background(self)
        self.full = False
        """The tables passed `max_bytes` at the last look (`leases.py` looks every few seconds)."""

    @property
    def _awaited_by(self) -> str | None:
        """Who waits for a recorded event's outcome: this replica when it runs handlers (its request waits
        within its budget, and is told if another replica ran the event), else nobody."""
        return self.replica if self.runs_handlers else None

    def __repr__(self) -> str:
        return f"PostgresJournal({self.target.description!r}, replica={self.replica!r})"

    # --- connections ----------------------------------------------------------------------------

    async def _open(self) -> AsyncConnectionPool:
        """The pool, opened and the schema current; the first call to succeed starts the background tasks."""
        if self._closed:
            raise JournalUnavailable("The event journal is closed.")
        if self._ready and self._pool is not None:
            return self._pool
        if self._opening.locked() and self.health_state.reason is not None:  # another call is trying: do not queue
            raise JournalUnavailable(self.health_state.reason)
        async with self._opening:
            if self._pool is None:
                self._pool = AsyncConnectionPool(
                    self.target.conninfo,
                    min_size=1,
                    max_size=self.pool_size,
                    open=False,
                    timeout=POOL_WAIT_SECONDS,
                    reconnect_timeout=RECONNECT_GIVE_UP_SECONDS,
                    kwargs={"row_factory": dict_row, "autocommit": True},
                    configure=_lazy_commits,
                    name="journal",
                )
                await self._pool.open(wait=False)
            if not self._ready:
                async with self._pool.connection(timeout=self._wait_seconds()) as connection:
                    try:
                        await migrate(connection)
                    except ConfigurationError as exc:
                        self.health_state.failed(exc.message)
                        raise JournalUnavailable(exc.message) from None
                self._ready = True
                self._background.start()
        return self._pool

    def _wait_seconds(self) -> float:
        """How long a call waits for a connection: briefly while the database is known to be away, so that a
        delivery is answered 503 at once and calls do not queue behind each other."""
        return POOL_WAIT_SECONDS if self.health_state.down_since is None else DOWN_WAIT_SECONDS

    @contextlib.asynccontextmanager
    async def transaction(
        self, doing: str, *, atomic: bool = True, pipelined: bool = False
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection in a transaction, committed on leaving; a database error is a 503 saying what failed.

        `atomic=False` for a call that runs one statement (or statements that stand alone): each commits
        as it runs, sparing the round trips of BEGIN and COMMIT, which are most of a short call's cost.
        `pipelined=True` sends statements without waiting for each one's answer until a result is read
        (psycopg's pipeline mode): BEGIN goes with the first statements, COMMIT with the last ones.
        Integrity errors are let through (a claim refused by the one-running-per-key index).
        """
        recovering = False
        try:
            pool = await self._open()
            async with (
                pool.connection(timeout=self._wait_seconds()) as connection,
                connection.pipeline() if pipelined else _alone(),
                connection.transaction() if atomic else _alone(),
            ):
                if self._recovery_pending:  # asked for while the database was away: made before any claim
                    recovering = True
                    self.recovered = await self._take_over(connection, mine=True)
                yield connection
        except psycopg.IntegrityError:
            raise
        except DATABASE_ERRORS as exc:
            error = self.target.unavailable(exc, doing)
            self.health_state.failed(error.message)
            raise error from None
        if recovering:
            self._recovery_pending = False
        self.health_state.ok()

    async def _rows(self, doing: str, query: str, parameters: Any = None) -> list[dict[str, Any]]:
        await self._flush_acks()
        async with self.transaction(doing, atomic=False) as connection:
            return await (await connection.execute(query, parameters)).fetchall()  # type: ignore[return-value]

    # --- the request path -----------------------------------------------------------------------

    async def record(
        self,
        delivery: Delivery,
        *,
        skipped_reason: str | None,
        max_attempts: int,
        duplicate_window: float,
    ) -> Recorded:
        if self.full:
            raise JournalUnavailable(
                f"The event journal's database holds more than WEBHOOK_JOURNAL_MAX_BYTES ({self.max_bytes}) "
                "bytes: prune it or raise the cap."
            )
        new = await self._record_new(delivery, skipped_reason=skipped_reason, max_attempts=max_attempts)
        if new is not None:
            return new
        async with self.transaction("record the delivery", pipelined=True) as connection:  # a redelivery
            await connection.execute(FLUSHED_COMMIT)
            if delivery.order_key is not None:
                await connection.execute(sql.KEY_LOCK, (delivery.order_key,))
            key = {"endpoint": delivery.endpoint, "key": delivery.delivery_key}
            original_row = await (await connection.execute(sql.TAKE_KEY, key)).fetchone()
            decision, ended_the_process = "new", False
            if original_row is not None:
                ended_the_process = (
                    original_row["state"] == EventState.DEAD and original_row["error"] == STOPPED_ON_LAST_ATTEMPT
                )
                decision = redelivery_outcome(
                    EventState(original_row["state"]),
                    original_row["finished_at"],
                    now=delivery.received_at,
                    window_seconds=duplicate_window,
                    ended_the_process=ended_the_process,
                )
            if decision == "requeue":
                await connection.execute(sql.REQUEUE, (max_attempts, original_row["id"]))  # type: ignore[index]
            if decision == "new":
                original_id = None
                state, note = (EventState.SKIPPED, skipped_reason) if skipped_reason else (EventState.QUEUED, None)
            else:
                state, original_id = EventState.DUPLICATE, original_row["id"]  # type: ignore[index]
                note = redelivery_note(
                    original_id,
                    original_row["state"],  # type: ignore[index]
                    decision,
                    ended_the_process=ended_the_process,
                )
            finished_at = None if state == EventState.QUEUED else delivery.received_at
            inserted = await connection.execute(
                sql.INSERT_EVENT,
                event_row(delivery, state, max_attempts, original_id, note, finished_at, awaited_by=self._awaited_by),
            )
            row = await inserted.fetchone()
            event_id, state = row["id"], EventState(row["state"])  # type: ignore[index]  # paused, should its endpoint be
            if decision == "new":
                await connection.execute(sql.SET_ORIGINAL, (event_id, delivery.endpoint, delivery.delivery_key))
            if not self.runs_handlers and (state == EventState.QUEUED or decision == "requeue"):
                await connection.execute(sql.NOTIFY, (sql.CHANNEL, ""))  # for the workers: nobody here runs it
            original = await self._fetch(connection, original_id) if original_id is not None else None
        event = EventRecord.from_delivery(
            delivery,
            id=event_id,
            state=state,
            attempts=0,
            max_attempts=max_attempts,
            original_id=original_id,
            note=note,
            finished_at=finished_at,
        )
        outcome = {"new": "skipped" if state == EventState.SKIPPED else "new", "requeue": "requeued"}.get(
            decision, decision
        )
        return Recorded(event=event, outcome=outcome, original=original)  # type: ignore[arg-type]

    async def _record_new(
        self, delivery: Delivery, *, skipped_reason: str | None, max_attempts: int
    ) -> Recorded | None:
        """Record a delivery whose key the journal has not seen, in one statement; None if it has seen it."""
        state, note = (EventState.SKIPPED, skipped_reason) if skipped_reason else (EventState.QUEUED, None)
        finished_at = None if state == EventState.QUEUED else delivery.received_at
        row = event_row(delivery, state, max_attempts, None, note, finished_at, awaited_by=self._awaited_by)
        row["notify"] = not self.runs_handlers
        async with self.transaction("record the delivery", atomic=False) as connection:
            recorded = await (await connection.execute(sql.RECORD_NEW, row)).fetchone()
        if recorded is None:
            return None
        event = EventRecord.from_delivery(
            delivery,
            id=recorded["event_id"],
            state=EventState(recorded["event_state"]),  # paused, should its endpoint be
            attempts=0,
            max_attempts=max_attempts,
            note=note,
            finished_at=finished_at,
        )
        return Recorded(event=event, outcome="skipped" if state == EventState.SKIPPED else "new", original=None)

    async def durable(self, event_id: int | None = None) -> None:
        """Nothing to wait for: every call committed before it returned."""

    def set_ack_ms(self, event_id: int, ack_ms: float) -> None:
        """Kept in memory and written in one batch a moment later, off the request path."""
        self._acks[event_id] = ack_ms
        if self._acks_flush is None or self._acks_flush.done():
            self._acks_flush = asyncio.get_running_loop().create_task(self._flush_acks(delay=0.1))

    async def _flush_acks(self, *, delay: float = 0.0) -> None:
        if delay:
            await asyncio.sleep(delay)
        if not self._acks:
            return
        acks, self._acks = self._acks, {}
        try:
            async with self.transaction("write acknowledgement times", atomic=False) as connection:
                await connection.execute(sql.SET_ACK_MS, (list(acks), list(acks.values())))
        except JournalUnavailable:
            pass  # a lost statistic, as the protocol allows

    async def prune(self, *, older_than: float, keep_max: int) -> int:
        async with self.transaction("prune finished events", atomic=False) as connection:
            return (await connection.execute(sql.PRUNE, {"older_than": older_than, "keep": keep_max})).rowcount

    # --- the worker (its claims are in `claims.py`) ---------------------------------------------

    def attempt_started(self, event_id: int, attempt: int) -> None:
        """Nothing to note: the claim was committed before its handler started."""

    def is_committed(self, event_id: int) -> bool:
        return True  # `record` commits before it returns, and an id it did not return comes from a commit

    def after_commit(self, callback: Callable[[], None]) -> None:
        callback()  # nothing waits to be made durable

    def watch(self, callback: Callable[[], None]) -> None:
        """Call `callback` when another replica queued something, or a dead replica's events were taken over."""
        self._watchers.append(callback)

    def changed(self) -> None:
        for callback in list(self._watchers):
            callback()

    def watch_ended(self, callback: Callable[[int], None]) -> None:
        """Call `callback(event_id)` when another replica ended an attempt of an event this one received."""
        self._ended_watchers.append(callback)

    def ended_elsewhere(self, event_id: int) -> None:
        for callback in list(self._ended_watchers):
            callback(event_id)

    async def health(self) -> str | None:
        return self.health_state.problem()

    async def leads(self) -> bool:
        """The replica whose listener holds `leases.LEAD_LOCK`; every replica while the database is away,
        since none can tell then and the outage is the one thing to say."""
        return self._background.leading or self.health_state.down_since is not None

    async def next_due_at(self) -> float | None:
        rows = await self._rows("read the next retry", sql.NEXT_DUE)
        return rows[0]["min"]

    async def finish(self, event: EventRecord | int, *, result: Any, handler_ms: float) -> EventRecord:
        now = time.time()
        parameters = {"result": json.dumps(result, default=repr), "handler_ms": handler_ms, "now": now}
        changed = await self._outcome(event, sql.FINISH, "record a success", parameters)
        if changed and not isinstance(event, int):
            return event.evolve(
                state=EventState.SUCCEEDED, result=result, error=None, handler_ms=handler_ms, finished_at=now
            )
        return await self._current(event)

    async def skip(self, event: EventRecord | int, *, reason: str) -> EventRecord:
        now = time.time()
        changed = await self._outcome(event, sql.SKIP, "record a skip", {"reason": reason, "now": now})
        if changed and not isinstance(event, int):
            return event.evolve(state=EventState.SKIPPED, note=reason, attempts=event.attempts - 1, finished_at=now)
        return await self._current(event)

    async def fail(
        self, event: EventRecord | int, *, error: str, handler_ms: float, retry_at: float | None
    ) -> EventRecord:
        now = time.time()
        state = EventState.FAILED if retry_at is not None else EventState.DEAD
        finished_at = None if retry_at is not None else now
        parameters = {
            "state": state.value,
            "error": error,
            "handler_ms": handler_ms,
            "retry_at": retry_at,
            "finished_at": finished_at,
            "now": now,
        }
        changed = await self._outcome(event, sql.FAIL, "record a failure", parameters)
        if changed and not isinstance(event, int):
            return event.evolve(
                state=state, error=error, handler_ms=handler_ms, next_attempt_at=retry_at, finished_at=finished_at
            )
        return await self._current(event)

    async def _outcome(self, event: EventRecord | int, statement: str, doing: str, parameters: dict[str, Any]) -> bool:
        """Write how this replica's attempt ended; False when it was not running here (any more).

        The worker's outcome (given the record) that cannot be written now is kept and written again by
        the heartbeat (`write_unwritten`) until it is: the event stays this replica's meanwhile, its lease
        renewed, so nobody runs it again unless this process dies first (then its lease lapses).
        """
        event_id = event if isinstance(event, int) else event.id
        parameters = {**parameters, "id": event_id, "replica": self.replica}
        try:
            async with self.transaction(doing, atomic=False) as connection:
                changed = (await (await connection.execute(statement, parameters)).fetchone()) is not None
        except JournalUnavailable:
            if isinstance(event, int):
                raise
            self._unwritten.append((statement, parameters))
            return True
        self.running_here.discard(event_id)
        return changed

    async def write_unwritten(self) -> None:
        """Write the outcomes kept while the database was away, oldest first (each safe to run twice)."""
        while self._unwritten:
            statement, parameters = self._unwritten[0]
            async with self.transaction("write a kept outcome", atomic=False) as connection:
                await connection.execute(statement, parameters)
            self._unwritten.pop(0)
            self.running_here.discard(parameters["id"])
            self.changed()  # its order key is free: the next event of it may run

    async def _current(self, event: EventRecord | int) -> EventRecord:
        event_id = event if isinstance(event, int) else event.id
        current = await self.get(event_id)
        if current is None:
            raise EventNotFound(f"No event {event_id} in the journal.")
        return current

    # --- the console ----------------------------------------------------------------------------

    async def damage(self) -> list[JournalDamage]:
        return []  # a committed transaction is the database's to keep: nothing acknowledged is lost here

    async def dismiss_damage(self) -> int:
        return 0

    async def close(self) -> None:
        if self._closed:
            return
        with contextlib.suppress(JournalUnavailable):
            await self._flush_acks()
        self._closed = True
        await self._background.stop()
        if self._pool is not None:
            await self._pool.close()
