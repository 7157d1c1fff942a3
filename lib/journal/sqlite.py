"""The embedded journal: one SQLite file in WAL mode.

WAL with `synchronous=NORMAL` makes each commit survive a crash of the process (the Space
restarting, SIGKILL), which is what an acknowledgement promises. Writes share one connection under
a lock; the console's reads run on a thread of their own (`reader.py`) once the loop's open group is
committed, so they see every earlier write and never hold up deliveries.

A commit costs far more than the statements in it, so on the event loop writes are grouped
(`_transaction`): the deliveries of one turn share one commit, and what nobody waits for (claims,
outcomes, acknowledgement times) rides along with it. Should a group's commit fail, its deliveries
are answered 503 and its claims and outcomes are run again with the next group (`_carry`). A
handler may start before its claim is committed: `starts_file.py` keeps such attempts counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, JournalUnavailable
from .reader import ReadThread
from .records import (
    PRUNABLE_STATES,
    Attempt,
    Delivery,
    EventRecord,
    EventState,
    JournalStats,
    Recorded,
    redelivery_outcome,
)
from .schema import check_and_migrate, connect
from .starts_file import StartsFile
from .statements import (
    CLAIMABLE,
    CLOSE_ATTEMPT,
    CLOSE_RUNNING_ATTEMPTS,
    KEEP_LAST_ATTEMPT,
    LANE_HEAD,
    LAST_ATTEMPT,
    MARK_RUNNING,
    NEXT_DUE,
    REQUEUE,
    UNFINISHED,
)

logger = logging.getLogger(__name__)

IDLE_COMMIT_SECONDS = 0.05
"""How long writes nobody waits for (outcomes, claims) may stay uncommitted, riding along with
the next delivery's commit instead of paying for one of their own."""
STARTS_SUFFIX = "-starts"
"""Beside the journal: the starts file (see `starts_file.py`)."""


def _record_from_row(row: sqlite3.Row) -> EventRecord:
    return EventRecord(
        id=row["id"],
        endpoint=row["endpoint"],
        delivery_key=row["delivery_key"],
        webhook_id=row["webhook_id"],
        received_at=row["received_at"],
        headers=json.loads(row["headers"]),
        query=row["query"],
        body=bytes(row["body"]),
        scope=row["scope"],
        action=row["action"],
        repo_name=row["repo_name"],
        repo_type=row["repo_type"],
        order_key=row["order_key"],
        is_test=bool(row["is_test"]),
        state=EventState(row["state"]),
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        next_attempt_at=row["next_attempt_at"],
        original_id=row["original_id"],
        note=row["note"],
        result=json.loads(row["result"]) if row["result"] is not None else None,
        error=row["error"],
        ack_ms=row["ack_ms"],
        handler_ms=row["handler_ms"],
        finished_at=row["finished_at"],
    )


def _new_record(
    event_id: int,
    delivery: Delivery,
    state: EventState,
    attempts: int,
    max_attempts: int,
    original_id: int | None,
    note: str | None,
    finished_at: float | None,
) -> EventRecord:
    """The row just inserted, built from what was written instead of read back."""
    return EventRecord.from_delivery(
        delivery,
        id=event_id,
        state=state,
        attempts=attempts,
        max_attempts=max_attempts,
        original_id=original_id,
        note=note,
        finished_at=finished_at,
    )


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


class _GroupWrite:
    """One write inside the open group, under a savepoint unless it is a single statement.

    A class rather than a generator-based context manager: it is entered three times per event.
    """

    __slots__ = ("atomic", "journal")

    def __init__(self, journal: SQLiteJournal, atomic: bool) -> None:
        self.journal = journal
        self.atomic = atomic

    def __enter__(self) -> sqlite3.Connection:
        connection = self.journal._writer
        if self.atomic:
            try:
                connection.execute("SAVEPOINT write")
            except sqlite3.Error as exc:
                raise JournalUnavailable(self.journal._write_error(exc)) from None
        return connection

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, traceback: Any) -> None:
        journal = self.journal
        if kind is None:
            if not self.atomic:
                return
            try:
                journal._writer.execute("RELEASE write")
                return
            except sqlite3.Error as error:
                exc, kind = error, type(error)
        if issubclass(kind, sqlite3.Error):
            error = JournalUnavailable(journal._write_error(exc))  # type: ignore[arg-type]
            journal._undo_savepoint(error, self.atomic)
            raise error from None
        journal._undo_savepoint(JournalUnavailable("A journal write was interrupted."), self.atomic)


Statement = tuple[str, Any]
"""One SQL statement and its parameters, kept to be run again (see `SQLiteJournal._carry`)."""


class SQLiteJournal:
    """The `Journal` on one SQLite file; see `protocol.py` for what each call means.

    Args:
        path: the database file; its folder is created if missing.
        max_bytes: a cap on the file's size; past it, recording fails (503) instead of filling the
            Space's disk. None for no cap.

    Raises:
        ConfigurationError: the file cannot be opened, is not a journal, or is corrupt. It is
            never replaced silently: the message says how to move it aside.
    """

    def __init__(self, path: Path, *, max_bytes: int | None = None, group_commit: bool = True) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.group_commit = group_commit
        self._write_lock = threading.Lock()
        self._batch_thread: int | None = None
        self._batch_done: asyncio.Future[None] | None = None
        self._batch_loop: asyncio.AbstractEventLoop | None = None
        self._batch_commit: asyncio.Handle | None = None
        self._batch_commit_soon = False
        self._batch_transitions: list[Statement] = []
        self._carry: list[Statement] = []
        """Transitions of a group whose commit failed: run again first thing in the next transaction.

        Whoever made them was told they were done (an outcome recorded, an event claimed), and the
        worker has moved on; losing them would leave an event `running` in the journal for ever.
        """
        self._pending_claims: dict[int, float] = {}
        """Events claimed by `claim_next` whose claim is not written yet: event id -> start time.

        A handler that returns at once is finished before the group commits; its claim is then
        written with its outcome in one UPDATE instead of two. Claims still pending are written
        when the group commits, and before anything that must see them (`claim_due`, a failure).
        """
        self._ack_lock = threading.Lock()
        self._pending_ack_ms: list[tuple[float, int]] = []
        self._reads = ReadThread(lambda: connect(self.path))
        self._closed = False
        self._lost = JournalUnavailable("The event journal could not record this delivery; retry later.")
        """Why the last group failed, for the deliveries it took with it."""
        self._recorded_up_to = 0
        """The newest event id written, committed or not; `_committed_up_to` is the newest committed."""
        self._committed_up_to = 0
        self._next_id = 1
        """Ids are handed out here and never again, not even those of a group that failed to commit:
        the worker may still hold such an event, and must not mistake a later delivery for it."""
        self._lost_ids: set[int] = set()
        """Ids of deliveries whose group failed to commit (answered 503): never on disk."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = connect(path)
            check_and_migrate(self._writer, max_bytes=max_bytes)
            self._committed_up_to = self._recorded_up_to = self._writer.execute(
                "SELECT MAX(COALESCE((SELECT MAX(id) FROM events), 0), "
                "COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0))"
            ).fetchone()[0]
            self._next_id = self._committed_up_to + 1
            self._starts = StartsFile(path.with_name(path.name + STARTS_SUFFIX))
        except (sqlite3.Error, OSError) as exc:
            raise ConfigurationError(
                f"The event journal at {path} cannot be used ({exc}). If the file is damaged, move it aside "
                "(its events are lost to the app, not deleted) or point DATA_DIR at another folder."
            ) from None

    def _transaction(self, *, grouped: bool = True, atomic: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        """One write: all of it lands or none of it does.

        On a thread running an event loop, writes share one transaction (group commit): a commit
        costs far more than the statements in it, and a busy receiver makes many writes a second.
        The group commits at the end of the loop turn in which a request awaits `durable()`, so a
        delivery is acknowledged only once it is on disk; writes nobody waits for ride along with
        that commit, or commit on their own after `IDLE_COMMIT_SECONDS`. Each write is still
        all-or-nothing (a savepoint). Elsewhere (console threads, tests) each call is its own
        transaction. `atomic=False` spares the savepoint to a write of a single statement, which
        SQLite already makes all-or-nothing.
        """
        if self._batch_thread != threading.get_ident():
            loop = _running_loop() if grouped and self.group_commit else None
            if loop is None:
                return self._own_transaction()
            self._open_batch(loop)
        return _GroupWrite(self, atomic)

    @contextmanager
    def _own_transaction(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            connection = self._writer
            carried: list[Statement] = []
            try:
                connection.execute("BEGIN IMMEDIATE")
                carried = self._run_carry(connection)
                yield connection
                self._flush_ack_ms(connection)
                connection.execute("COMMIT")
                self._committed()
            except sqlite3.Error as exc:
                self._rollback(carried)
                raise JournalUnavailable(self._write_error(exc)) from None
            except BaseException:
                self._rollback(carried)
                raise

    def _rollback(self, carried: list[Statement]) -> None:
        if self._writer.in_transaction:
            self._writer.execute("ROLLBACK")
        self._carry = carried + self._carry
        self._forget_uncommitted()

    def _transition(self, connection: sqlite3.Connection, sql: str, parameters: Any) -> None:
        """A write made after an event was claimed; kept with its group to be run again if the group is lost."""
        connection.execute(sql, parameters)
        self._carried_along(sql, parameters)

    def _carried_along(self, sql: str, parameters: Any) -> None:
        """Keep, with the open group, a statement that re-does a write just made (see `_carry`)."""
        if self._batch_thread is not None:
            self._batch_transitions.append((sql, parameters))

    def _run_carry(self, connection: sqlite3.Connection) -> list[Statement]:
        """Run again the transitions of a group that failed to commit (each is safe to run twice).

        Returns what it ran, to be carried again should this transaction fail too.
        """
        carried, self._carry = self._carry, []
        if not carried:
            return []
        connection.execute("SAVEPOINT carry")
        try:
            for sql, parameters in carried:
                connection.execute(sql, parameters)
            connection.execute("RELEASE carry")
        except sqlite3.Error as exc:  # still no room: they wait for the next transaction
            logger.warning("Could not yet record %d earlier outcome(s): %s", len(carried), exc)
            if connection.in_transaction:
                connection.execute("ROLLBACK TO carry")
                connection.execute("RELEASE carry")
            self._carry = carried
            return []
        return carried

    def _undo_savepoint(self, error: JournalUnavailable, atomic: bool) -> None:
        """Undo one write of a group; if SQLite already undid the whole group (disk full), fail the group."""
        connection = self._writer
        if connection.in_transaction:
            if atomic:
                connection.execute("ROLLBACK TO write")
                connection.execute("RELEASE write")
            return
        if self._batch_thread is not None:
            self._end_batch(error)

    def _open_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin the transaction this loop's writes go into, until `durable()` or the idle timer commits it."""
        self._write_lock.acquire()
        try:
            self._writer.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._write_lock.release()
            raise JournalUnavailable(self._write_error(exc)) from None
        self._batch_thread = threading.get_ident()
        self._batch_loop = loop
        self._batch_done = loop.create_future()
        self._batch_commit = loop.call_later(IDLE_COMMIT_SECONDS, self._commit_batch)
        self._batch_commit_soon = False
        self._batch_transitions = self._run_carry(self._writer)

    def _commit_batch(self) -> None:
        if self._batch_thread is None:  # already committed, by close()
            return
        connection = self._writer
        try:
            self._write_pending_claims(connection)
            self._flush_ack_ms(connection)
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            error = JournalUnavailable(self._write_error(exc))
            logger.error("A group of journal writes was lost: %s", error.message)
            self._end_batch(error)
        else:
            self._end_batch(None)
            self._committed()

    def _end_batch(self, error: JournalUnavailable | None) -> None:
        """Close the group: tell `durable()` waiters how it ended, keep its transitions if it failed."""
        done = self._batch_done
        if done is not None and not done.done():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)
                done.exception()  # retrieved here, so a group nobody awaited does not warn
        if error is not None:
            self._lost = error
            self._carry = self._batch_transitions + self._carry
            self._forget_uncommitted()
        if self._batch_commit is not None:
            self._batch_commit.cancel()
        self._batch_transitions = []
        self._batch_commit = None
        self._batch_loop = None
        self._batch_thread = None
        self._batch_done = None
        self._write_lock.release()

    def attempt_started(self, event_id: int, attempt: int) -> None:
        self._starts.note(event_id, attempt)

    def is_committed(self, event_id: int) -> bool:
        return event_id <= self._committed_up_to and event_id not in self._lost_ids

    def _forget_uncommitted(self) -> None:
        """The deliveries recorded since the last commit are gone (answered 503)."""
        self._lost_ids.update(range(self._committed_up_to + 1, self._recorded_up_to + 1))
        self._committed_up_to = self._recorded_up_to

    def _committed(self) -> None:
        """Every write made so far is on disk: so are the deliveries recorded, and every claim, so the
        starts file may be emptied once it has grown."""
        self._committed_up_to = self._recorded_up_to
        if not self._carry:
            self._starts.all_claims_on_disk()

    async def durable(self, event_id: int | None = None) -> None:
        """Wait until the writes made so far are committed: what an acknowledgement promises.

        Args:
            event_id: wait only until that delivery (recorded by this process) is on disk, and fail
                only if it was lost; later writes are another group's business.

        Raises:
            JournalUnavailable: the commit failed and took the writes (or that delivery) with it.
        """
        if event_id is not None and self.is_committed(event_id):
            return
        done = self._batch_done
        if done is not None and self._batch_thread == threading.get_ident():
            self._commit_soon()
            try:
                await asyncio.shield(done)
            except JournalUnavailable:
                if event_id is None or not self.is_committed(event_id):
                    raise
        if event_id is not None and not self.is_committed(event_id):  # lost with a group that ended earlier
            raise self._lost

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the writes made so far on this thread's loop are committed, soon.

        It is called when the group ends even if its commit failed: what it reports (an outcome)
        is then kept and written with the next group (`_carry`).
        """
        done = self._batch_done
        if done is None or self._batch_thread != threading.get_ident():
            callback()
            return
        self._commit_soon()
        done.add_done_callback(lambda _: callback())

    def _commit_soon(self) -> None:
        """Commit the open group at the end of this turn of the loop instead of after the idle delay."""
        if not self._batch_commit_soon:
            self._batch_commit_soon = True
            if self._batch_commit is not None:
                self._batch_commit.cancel()
            self._batch_commit = asyncio.get_running_loop().call_soon(self._commit_batch)

    def _write_error(self, exc: sqlite3.Error) -> str:
        """Say why a write failed; a full journal is the one an operator can fix by configuration."""
        if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_FULL:
            return f"The event journal cannot be written ({exc}); retry later."
        limit = (
            f"its cap of {self.max_bytes} bytes (WEBHOOK_JOURNAL_MAX_BYTES)"
            if self.max_bytes is not None
            else "the free space on its disk"
        )
        return (
            f"The event journal is full: recording this would exceed {limit}. Nothing was recorded; retry "
            "later. Raise the cap or lower WEBHOOK_RETENTION_DAYS / WEBHOOK_RETENTION_MAX_EVENTS."
        )

    def _read_here(self, sql: str, parameters: Any = ()) -> list[sqlite3.Row]:
        """A cheap read on the loop, through the writer's connection: it sees the open group's writes."""
        if self._pending_ack_ms and self._batch_thread == threading.get_ident():
            with contextlib.suppress(sqlite3.Error):
                self._flush_ack_ms(self._writer)
        try:
            return self._writer.execute(sql, parameters).fetchall()
        except sqlite3.Error as exc:
            raise JournalUnavailable(f"The event journal cannot be read ({exc}).") from None

    async def _read_committed(self, sql: str, parameters: Any = ()) -> list[sqlite3.Row]:
        """A read that may be slow (the console's), run on a thread so deliveries do not wait behind it.

        The open group is committed first, on the loop (a commit without a sync is cheap), so the
        read sees every write made before it was asked for.
        """
        if self._batch_thread == threading.get_ident():
            self._commit_batch()
        if self._pending_ack_ms or self._carry:
            with contextlib.suppress(JournalUnavailable), self._transaction(grouped=False):
                pass  # writes what waits in memory, so the read sees it; a full disk must not stop reads
        try:
            return await self._reads.read(sql, parameters)
        except sqlite3.Error as exc:
            raise JournalUnavailable(f"The event journal cannot be read ({exc}).") from None

    @staticmethod
    def _fetch(connection: sqlite3.Connection, event_id: int) -> EventRecord:
        return _record_from_row(connection.execute("SELECT * FROM event_rows WHERE id = ?", (event_id,)).fetchone())

    # --- the request path -------------------------------------------------------------------

    async def record(
        self,
        delivery: Delivery,
        *,
        skipped_reason: str | None,
        max_attempts: int,
        duplicate_window: float,
        start_if_idle: bool = False,
    ) -> Recorded:
        with self._transaction() as connection:
            original_row = connection.execute(
                "SELECT id, state, finished_at FROM events WHERE endpoint = ? AND delivery_key = ? "
                "AND state != 'duplicate' ORDER BY id DESC LIMIT 1",
                (delivery.endpoint, delivery.delivery_key),
            ).fetchone()
            decision = "new"
            if original_row is not None:
                decision = redelivery_outcome(
                    EventState(original_row["state"]),
                    original_row["finished_at"],
                    now=delivery.received_at,
                    window_seconds=duplicate_window,
                )
            if decision == "requeue":
                connection.execute(REQUEUE, (max_attempts, original_row["id"]))
            if decision == "new":
                state, note, original_id = (
                    (EventState.SKIPPED, skipped_reason, None) if skipped_reason else (EventState.QUEUED, None, None)
                )
                if state == EventState.QUEUED and start_if_idle and self._lane_is_idle(connection, delivery.order_key):
                    state = EventState.RUNNING
            else:
                state, original_id = EventState.DUPLICATE, original_row["id"]
                note = (
                    f"redelivery of event {original_id}, which was {original_row['state']}: run again"
                    if decision == "requeue"
                    else f"redelivery of event {original_id}, which is {original_row['state']}: not run again"
                )
            finished_at = None if state in (EventState.QUEUED, EventState.RUNNING) else delivery.received_at
            attempts = 1 if state == EventState.RUNNING else 0
            event_id, self._next_id = self._next_id, self._next_id + 1
            connection.execute(
                "INSERT INTO events (id, endpoint, delivery_key, webhook_id, received_at, headers, query, scope, "
                "action, repo_name, repo_type, order_key, is_test, state, attempts, max_attempts, original_id, note, "
                "finished_at, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event_id,
                    delivery.endpoint,
                    delivery.delivery_key,
                    delivery.webhook_id,
                    delivery.received_at,
                    json.dumps(delivery.headers),
                    delivery.query,
                    delivery.scope,
                    delivery.action,
                    delivery.repo_name,
                    delivery.repo_type,
                    delivery.order_key,
                    int(delivery.is_test),
                    state.value,
                    attempts,
                    max_attempts,
                    original_id,
                    note,
                    finished_at,
                    delivery.received_at if state == EventState.RUNNING else None,
                ),
            )
            connection.execute("INSERT INTO bodies (event_id, body) VALUES (?, ?)", (event_id, delivery.body))
            self._recorded_up_to = event_id
            event = _new_record(event_id, delivery, state, attempts, max_attempts, original_id, note, finished_at)
            original = self._fetch(connection, original_id) if original_id is not None else None
        outcome = {"new": "skipped" if state == EventState.SKIPPED else "new"}.get(decision, decision)
        if decision == "requeue":
            outcome = "requeued"
        return Recorded(event=event, outcome=outcome, original=original)  # type: ignore[arg-type]

    @staticmethod
    def _lane_is_idle(connection: sqlite3.Connection, order_key: str | None) -> bool:
        """No earlier event of this order key is waiting or running, so a new one may start now."""
        if order_key is None:
            return True
        query = f"SELECT 1 FROM events WHERE order_key = ? AND {UNFINISHED} LIMIT 1"
        return connection.execute(query, (order_key,)).fetchone() is None

    def set_ack_ms(self, event_id: int, ack_ms: float) -> None:
        """Kept in memory and written with the next transaction: a statistic is not worth a commit."""
        with self._ack_lock:
            self._pending_ack_ms.append((ack_ms, event_id))

    def _flush_ack_ms(self, connection: sqlite3.Connection) -> None:
        with self._ack_lock:
            pending, self._pending_ack_ms = self._pending_ack_ms, []
        if pending:
            connection.executemany("UPDATE events SET ack_ms = ? WHERE id = ?", pending)

    # --- the worker ---------------------------------------------------------------------------

    async def claim_due(self, *, now: float, limit: int) -> list[EventRecord]:
        if limit <= 0:
            return []
        # Most wake-ups find nothing: answer those without a write transaction.
        if not self._read_here(CLAIMABLE, {"now": now, "limit": 1}):
            return []
        with self._transaction() as connection:
            self._write_pending_claims(connection)  # so their repositories are seen as busy
            ids = [row[0] for row in connection.execute(CLAIMABLE, {"now": now, "limit": limit})]
            for event_id in ids:
                self._transition(connection, MARK_RUNNING, (now, event_id))
            return [self._fetch(connection, event_id) for event_id in ids]

    async def claim_next(self, order_key: str, *, now: float) -> int | None:
        """Claim the oldest unfinished event of one order key if it may run now; its id, or None.

        The worker calls this when an event finishes, to hand its repository's next event over
        without scanning every queue (what `claim_due` does). In a group the claim itself is
        written later (see `_pending_claims`); this process already treats the event as running.
        """
        with self._transaction(atomic=False) as connection:
            head = connection.execute(LANE_HEAD, (order_key,)).fetchone()
            if head is None or head[1] == "running" or head[0] in self._pending_claims:
                return None
            if head[2] is not None and head[2] > now:
                return None
            if self._batch_thread is not None:  # in a group: written with the outcome, or when it commits
                self._pending_claims[head[0]] = now
            else:
                self._transition(connection, MARK_RUNNING, (now, head[0]))
            return head[0]

    def _write_pending_claims(self, connection: sqlite3.Connection) -> None:
        if self._pending_claims:
            claims = [(started_at, event_id) for event_id, started_at in self._pending_claims.items()]
            self._pending_claims.clear()
            for claim in claims:
                self._transition(connection, MARK_RUNNING, claim)

    async def next_due_at(self) -> float | None:
        rows = self._read_here(NEXT_DUE)
        return rows[0][0]

    async def finish(self, event: EventRecord | int, *, result: Any, handler_ms: float) -> EventRecord:
        now = time.time()
        encoded = json.dumps(result, default=repr)
        event_id = event if isinstance(event, int) else event.id
        claimed_at = self._pending_claims.pop(event_id, None)
        with self._transaction(atomic=False) as connection:
            if claimed_at is None:
                self._transition(
                    connection,
                    "UPDATE events SET state = 'succeeded', result = ?, error = NULL, handler_ms = ?, "
                    "finished_at = ? WHERE id = ? AND state = 'running'",
                    (encoded, handler_ms, now, event_id),
                )
            else:  # claimed and finished within one group: one write for both
                self._transition(
                    connection,
                    "UPDATE events SET state = 'succeeded', result = ?, error = NULL, handler_ms = ?, "
                    "finished_at = ?, attempts = attempts + 1, started_at = ?, next_attempt_at = NULL "
                    f"WHERE id = ? AND {UNFINISHED} AND state != 'running'",
                    (encoded, handler_ms, now, claimed_at, event_id),
                )
            if isinstance(event, int):
                return self._fetch(connection, event_id)
        # The result as given: the worker stores only what JSON carries as it is (see `worker._storable`).
        return event.evolve(
            state=EventState.SUCCEEDED, result=result, error=None, handler_ms=handler_ms, finished_at=now
        )

    async def skip(self, event: EventRecord | int, *, reason: str) -> EventRecord:
        now = time.time()
        event_id = event if isinstance(event, int) else event.id
        with self._transaction() as connection:
            self._write_pending_claims(connection)
            self._transition(
                connection,
                "UPDATE events SET state = 'skipped', note = ?, attempts = attempts - 1, finished_at = ? "
                "WHERE id = ? AND state = 'running'",
                (reason, now, event_id),
            )
            if isinstance(event, int):
                return self._fetch(connection, event_id)
        return event.evolve(state=EventState.SKIPPED, note=reason, attempts=event.attempts - 1, finished_at=now)

    async def fail(
        self, event: EventRecord | int, *, error: str, handler_ms: float, retry_at: float | None
    ) -> EventRecord:
        now = time.time()
        state = EventState.FAILED if retry_at is not None else EventState.DEAD
        finished_at = None if retry_at is not None else now
        event_id = event if isinstance(event, int) else event.id
        with self._transaction() as connection:
            self._write_pending_claims(connection)
            self._transition(
                connection, CLOSE_ATTEMPT, {"id": event_id, "now": now, "outcome": "failed", "detail": error}
            )
            self._transition(
                connection,
                "UPDATE events SET state = ?, error = ?, handler_ms = ?, next_attempt_at = ?, finished_at = ? "
                "WHERE id = ? AND state = 'running'",
                (state.value, error, handler_ms, retry_at, finished_at, event_id),
            )
            if isinstance(event, int):
                return self._fetch(connection, event_id)
        return event.evolve(
            state=state, error=error, handler_ms=handler_ms, next_attempt_at=retry_at, finished_at=finished_at
        )

    async def recover_interrupted(self) -> int:
        now = time.time()
        lost_claims = [(attempt, event_id) for event_id, attempt in self._starts.started().items()]
        interrupted = {"now": now, "outcome": "interrupted", "detail": "the app stopped while this attempt ran"}
        with self._transaction() as connection:
            connection.execute(CLOSE_RUNNING_ATTEMPTS, interrupted)
            # A handler that started while its claim was still uncommitted: the claim died with the
            # process, the start note did not. That attempt counts too, as if its claim had landed.
            connection.executemany(
                "UPDATE events SET state = 'running', attempts = ?, started_at = NULL "
                f"WHERE id = ? AND {UNFINISHED} AND attempts < ?1",
                lost_claims,
            )
            if lost_claims:
                connection.execute(CLOSE_RUNNING_ATTEMPTS, interrupted)
            # An event whose last allowed attempt was cut short may be what crashed the process:
            # running it again on every start would crash every start, so it is left dead instead.
            connection.execute(
                f"UPDATE events SET state = 'dead', finished_at = ?, error = 'The app stopped during the last "
                "allowed attempt (did the handler crash the process?). Replay it once fixed.' "
                f"WHERE {UNFINISHED} AND state = 'running' AND attempts >= max_attempts",
                (now,),
            )
            requeued = connection.execute(
                f"UPDATE events SET state = 'queued' WHERE {UNFINISHED} AND state = 'running'"
            ).rowcount
        self._starts.recovered()  # emptied with the next commit, once this one is on disk
        return requeued

    # --- the console --------------------------------------------------------------------------

    async def get(self, event_id: int) -> EventRecord | None:
        rows = await self._read_committed("SELECT * FROM event_rows WHERE id = ?", (event_id,))
        return _record_from_row(rows[0]) if rows else None

    async def attempts(self, event_id: int) -> list[Attempt]:
        """The attempts table's rows, then the one the event row holds (running, or the success)."""
        rows = await self._read_committed(
            "SELECT event_id, number, started_at, finished_at, outcome, detail FROM attempts WHERE event_id = :id "
            f"UNION ALL {LAST_ATTEMPT} AND id = :id ORDER BY number",
            {"id": event_id},
        )
        return [
            Attempt(
                event_id=row["event_id"],
                number=row["number"],
                started_at=row["started_at"],
                finished_at=row["finished_at"],
                outcome=row["outcome"],
                detail=row["detail"],
            )
            for row in rows
        ]

    async def list_recent(
        self,
        *,
        limit: int = 100,
        endpoint: str | None = None,
        state: str | None = None,
        repo: str | None = None,
        scope: str | None = None,
    ) -> list[EventRecord]:
        clauses, parameters = [], []
        for column, value in (("endpoint", endpoint), ("state", state), ("repo_name", repo)):
            if value:
                clauses.append(f"{column} = ?")
                parameters.append(value)
        if scope:
            clauses.append("(scope = ? OR scope LIKE ? ESCAPE '\\')")
            escaped = scope.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            parameters += [scope, escaped + ".%"]
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = await self._read_committed(
            f"SELECT * FROM event_rows {where} ORDER BY id DESC LIMIT ?", (*parameters, limit)
        )
        return [_record_from_row(row) for row in rows]

    async def replay(self, event_id: int, *, max_attempts: int) -> EventRecord:
        with self._transaction() as connection:
            row = connection.execute("SELECT state, original_id FROM events WHERE id = ?", (event_id,)).fetchone()
            if row is None:
                raise KeyError(f"No event {event_id} in the journal.")
            target = row["original_id"] if row["state"] == EventState.DUPLICATE else event_id
            connection.execute(KEEP_LAST_ATTEMPT, (target,))
            connection.execute(REQUEUE, (max_attempts, target))
            return self._fetch(connection, target)

    async def replay_dead(self, endpoint: str, *, max_attempts: int) -> list[int]:
        with self._transaction() as connection:
            ids = [
                row[0]
                for row in connection.execute(
                    "SELECT id FROM events WHERE endpoint = ? AND state = 'dead' ORDER BY id", (endpoint,)
                )
            ]
            connection.executemany(REQUEUE, [(max_attempts, event_id) for event_id in ids])
            return ids

    async def stats(self, *, since: float) -> JournalStats:
        rows = await self._read_committed(
            "SELECT endpoint, state, COUNT(*) FROM events WHERE received_at >= ? GROUP BY endpoint, state",
            (since,),
        )
        by_state: dict[str, int] = {}
        by_endpoint: dict[str, dict[str, int]] = {}
        for endpoint, state, count in rows:
            by_state[state] = by_state.get(state, 0) + count
            by_endpoint.setdefault(endpoint, {})[state] = count
        ack = sorted(
            row[0]
            for row in await self._read_committed(
                "SELECT ack_ms FROM events WHERE received_at >= ? AND ack_ms IS NOT NULL", (since,)
            )
        )
        handler = sorted(
            row[0]
            for row in await self._read_committed(
                "SELECT handler_ms FROM events WHERE received_at >= ? AND handler_ms IS NOT NULL", (since,)
            )
        )
        return JournalStats(
            since=since,
            by_state=by_state,
            by_endpoint=by_endpoint,
            ack_ms_p50=_percentile(ack, 0.5),
            ack_ms_p95=_percentile(ack, 0.95),
            handler_ms_p50=_percentile(handler, 0.5),
            handler_ms_p95=_percentile(handler, 0.95),
            deliveries=sum(by_state.values()),
        )

    async def prune(self, *, older_than: float, keep_max: int) -> int:
        states = tuple(state.value for state in PRUNABLE_STATES)
        marks = ", ".join("?" for _ in states)
        with self._transaction() as connection:
            removed = connection.execute(
                f"DELETE FROM events WHERE state IN ({marks}) AND (received_at < ? OR id NOT IN "
                "(SELECT id FROM events ORDER BY id DESC LIMIT ?))",
                (*states, older_than, keep_max),
            ).rowcount
        return removed

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._batch_thread == threading.get_ident():
            self._commit_batch()
        if self._pending_ack_ms:
            with contextlib.suppress(JournalUnavailable), self._transaction(grouped=False):
                pass
        with self._write_lock:
            self._writer.close()
        self._starts.close()
        self._reads.close()
