"""The embedded journal: one SQLite file in WAL mode, and what each call of the `Journal` protocol does in it.

This module holds the domain rules only (what a delivery, a claim or an outcome writes); the rest
is in modules of their own: the schema and its migrations (`schema.py`), the SQL (`statements.py`),
when writes are committed (`write_behind.py`: the commit group, and the claims and outcomes kept
until it commits), the console's reads on a thread (`reader.py`), the note that keeps an
attempt counted when its claim was not committed yet (`starts_file.py`), opening the file
(`opening.py`), noticing lost acknowledged events (`damage.py`), the size cap (`size_cap.py`),
the recovery after a crash (`recovery.py`), and the console's listing, replays and pauses
(`operations.py`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..core.errors import JournalUnavailable
from .claims import anything_due, claim_within
from .damage import LossCheck
from .jobs import SQLiteJobs
from .opening import STARTS_SUFFIX, Opened, Opener, write_error_message
from .operations import SQLiteOperations
from .reader import ReadThread
from .records import (
    PRUNABLE_STATES,
    STOPPED_ON_LAST_ATTEMPT,
    Attempt,
    Delivery,
    EventRecord,
    EventState,
    JournalDamage,
    JournalStats,
    Recorded,
    redelivery_note,
    redelivery_outcome,
)
from .recovery import Recovery
from .rows import record_from_row, stats_from_rows
from .schema import connect
from .size_cap import SizeCap
from .snapshot import SNAPSHOT, JournalSnapshot, files_bytes, snapshot_of
from .starts_file import StartsFile
from .statements import (
    CLAIMABLE_EVENT,
    CLOSE_ATTEMPT,
    FAIL,
    FINISH,
    INSERT_EVENT,
    LANE_HEAD,
    LAST_ATTEMPT,
    LEFT_DEAD_AT_RECOVERY,
    MARK_RUNNING,
    NEXT_DUE,
    ORIGINAL,
    REQUEUE,
    SET_ACK_MS,
    SKIP,
)
from .write_behind import WriteBehind

logger = logging.getLogger(__name__)

__all__ = ["STARTS_SUFFIX", "SQLiteJournal"]


class SQLiteJournal(SQLiteJobs, SQLiteOperations):
    """The `Journal` on one SQLite file; see `protocol.py` for what each call promises (the Hub Jobs' calls
    are in `jobs.py`; listing, replays and pauses in `operations.py`).

    Args:
        path: the database file; its folder is created if missing.
        max_bytes: a cap on the file and its write-ahead log together; past it, recording fails (503)
            instead of filling the Space's disk (see `size_cap.py`). None for no cap.
        group_commit: share one commit among the writes of a turn of the event loop (the server,
            and the default), or commit each call on its own (see `write_behind.py`).

    Raises:
        ConfigurationError: the file cannot be opened, is not a journal, or is corrupt. It is
            never replaced silently: the message says how to move it aside. A full disk is not
            refused: the journal answers `JournalUnavailable` until it can open its file.
    """

    def __init__(self, path: Path, *, max_bytes: int | None = None, group_commit: bool = True) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.group_commit = group_commit
        self._closed = False
        self._opened: WriteBehind | None = None
        self._starts: StartsFile | None = None
        self._cap: SizeCap | None = None
        self._losses = LossCheck(path)
        self._recovery: Recovery | None = None
        """The recovery asked for, until it is committed."""
        self._opener = Opener(path, max_bytes=max_bytes, losses=self._losses)
        self._use(self._opener.open(at_start=True))
        self._reads = ReadThread(lambda: connect(self.path))

    def _use(self, opened: Opened | None) -> None:
        """Write to the file just opened; a recovery asked for while it could not be is made before anything."""
        if opened is None:
            return
        self._starts, self._cap = opened.starts, opened.cap
        self._opened = WriteBehind(
            opened.connection,
            grouped=self.group_commit,
            describe=self._write_error,
            on_commit=self._committed,
            next_id=opened.next_id,
        )
        if self._recovery is not None:  # asked for before the file could be opened: its starts file read now
            self._recovery = Recovery(opened.starts.started(), now=time.time(), deferred=True)
            self._opened.first(self._recovery, committed=self._recovered)

    @property
    def _writes(self) -> WriteBehind:
        """The commit group on the open file; while its disk is full, the file is opened again first.

        Raises:
            JournalUnavailable: the file cannot be opened yet.
        """
        if self._opened is None:
            if not self._closed:
                self._use(self._opener.open())
            if self._opened is None:
                raise self._opener.error
        return self._opened

    def _committed(self, everything: bool) -> None:
        """After each commit: note the newest delivery on disk beside the journal (see `damage.py`), keep the
        write-ahead log within its share of the cap, and, after a commit that left nothing kept in memory
        (every claim on disk), let the starts file be emptied once it has grown."""
        self._losses.acked.note(self._opened.newest_on_disk)  # type: ignore[union-attr]
        self._losses.reports.save_if_unsaved()
        if self._cap is not None:
            self._cap.after_commit()
        if everything and self._starts is not None:
            self._starts.all_claims_on_disk()

    def _write_error(self, exc: sqlite3.Error) -> str:
        return write_error_message(self.path, self.max_bytes, exc)

    def _read_here(self, sql: str, parameters: Any = ()) -> list[sqlite3.Row]:
        """A cheap read on the loop, through the writer's connection: it sees the open group's writes."""
        try:
            return self._writes.connection.execute(sql, parameters).fetchall()
        except sqlite3.Error as exc:
            raise JournalUnavailable(f"The event journal cannot be read ({exc}).") from None

    async def _read_committed(self, sql: str, parameters: Any = ()) -> list[sqlite3.Row]:
        """A read that may be slow (the console's), on a thread so deliveries do not wait behind it.

        What was written so far is committed first, on the loop (a commit without a sync is cheap),
        so the read sees every write made before it was asked for; a full disk must not stop reads.
        """
        with contextlib.suppress(JournalUnavailable):
            self._writes.commit()
        try:
            return await self._reads.read(sql, parameters)
        except sqlite3.Error as exc:
            raise JournalUnavailable(f"The event journal cannot be read ({exc}).") from None

    @staticmethod
    def _fetch(connection: sqlite3.Connection, event_id: int) -> EventRecord:
        return record_from_row(connection.execute("SELECT * FROM event_rows WHERE id = ?", (event_id,)).fetchone())

    # --- the request path -------------------------------------------------------------------

    async def record(
        self,
        delivery: Delivery,
        *,
        skipped_reason: str | None,
        max_attempts: int,
        duplicate_window: float,
    ) -> Recorded:
        with self._writes.write() as connection:
            original_row = connection.execute(ORIGINAL, (delivery.endpoint, delivery.delivery_key)).fetchone()
            decision, ended_the_process = "new", False
            if original_row is not None:
                left_dead = connection.execute(LEFT_DEAD_AT_RECOVERY, (original_row["id"], STOPPED_ON_LAST_ATTEMPT))
                ended_the_process = left_dead.fetchone() is not None
                decision = redelivery_outcome(
                    EventState(original_row["state"]),
                    original_row["finished_at"],
                    now=delivery.received_at,
                    window_seconds=duplicate_window,
                    ended_the_process=ended_the_process,
                )
            if decision == "requeue":
                connection.execute(REQUEUE, (max_attempts, original_row["id"]))
                self._hold_if_paused(connection, delivery.endpoint)
            if decision == "new":
                waiting = self._waiting_state(delivery.endpoint)  # queued, or paused while its endpoint is
                state, note, original_id = (
                    (EventState.SKIPPED, skipped_reason, None) if skipped_reason else (waiting, None, None)
                )
            else:
                state, original_id = EventState.DUPLICATE, original_row["id"]
                note = redelivery_note(
                    original_id, original_row["state"], decision, ended_the_process=ended_the_process
                )
            finished_at = (
                None if state in (EventState.QUEUED, EventState.RUNNING, EventState.PAUSED) else delivery.received_at
            )
            attempts = 1 if state == EventState.RUNNING else 0
            event_id = self._writes.take_id()
            connection.execute(
                INSERT_EVENT,
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
            self._writes.recorded(event_id)
            event = EventRecord.from_delivery(  # what was just written, rather than read back
                delivery,
                id=event_id,
                state=state,
                attempts=attempts,
                max_attempts=max_attempts,
                original_id=original_id,
                note=note,
                finished_at=finished_at,
            )
            original = self._fetch(connection, original_id) if original_id is not None else None
        outcome = {"new": "skipped" if state == EventState.SKIPPED else "new"}.get(decision, decision)
        if decision == "requeue":
            outcome = "requeued"
        return Recorded(event=event, outcome=outcome, original=original)  # type: ignore[arg-type]

    async def durable(self, event_id: int | None = None) -> None:
        await self._writes.durable(event_id)

    def set_ack_ms(self, event_id: int, ack_ms: float) -> None:
        """Kept in memory and written with the next commit: a statistic is not worth a commit of its own."""
        self._writes.defer(SET_ACK_MS, (ack_ms, event_id))

    async def prune(self, *, older_than: float, keep_max: int) -> int:
        states = tuple(state.value for state in PRUNABLE_STATES)
        marks = ", ".join("?" for _ in states)
        with self._writes.write() as connection:
            removed = connection.execute(
                f"DELETE FROM events WHERE state IN ({marks}) AND (received_at < ? OR id NOT IN "
                "(SELECT id FROM events ORDER BY id DESC LIMIT ?))",
                (*states, older_than, keep_max),
            ).rowcount
        return removed

    # --- the worker ---------------------------------------------------------------------------

    async def recover_interrupted(self) -> int:
        recovery = Recovery(self._starts.started() if self._starts is not None else {}, now=time.time())
        self._recovery = recovery
        try:
            writes = self._writes
            writes.first(recovery, committed=self._recovered)
            with writes.write(atomic=False) as connection:  # the transaction this begins runs the recovery first
                self._hold_paused(connection)  # then what it queued again of a paused endpoint is held
        except JournalUnavailable:
            recovery.deferred = True  # made first thing once the journal can write (see `_use`)
            raise
        return recovery.requeued

    def _recovered(self) -> None:
        """The recovery is on disk: the starts file may be emptied with the next commit."""
        recovery, self._recovery = self._recovery, None
        if self._starts is not None:
            self._starts.recovered()
        if recovery is not None and recovery.deferred:
            logger.warning("The journal can be written again: %d interrupted event(s) queued again.", recovery.requeued)

    async def claim_due(
        self, *, now: float, limit: int, per_endpoint: Mapping[str, int] | None = None
    ) -> list[EventRecord]:
        room = self._room_when_paused(per_endpoint)  # a paused endpoint has none
        if limit <= 0 or not self._read_here(*anything_due(now, room)):  # most wake-ups: no write transaction
            return []
        with self._writes.write() as connection:
            ids = claim_within(connection, self._writes.keep, now=now, limit=limit, room=room)
            return [self._fetch(connection, event_id) for event_id in ids]

    async def claim(self, event_id: int, *, now: float) -> bool:
        with self._writes.write(atomic=False) as connection:
            if connection.execute(CLAIMABLE_EVENT, {"id": event_id, "now": now}).fetchone() is None or self._held(
                connection, event_id
            ):
                return False
            self._writes.keep(MARK_RUNNING, (now, event_id))
            return True

    async def claim_next(self, order_key: str, *, now: float) -> int | None:
        with self._writes.write(atomic=False) as connection:
            head = connection.execute(LANE_HEAD, (order_key,)).fetchone()
            if head is None or head[1] in ("running", "job_running"):
                return None
            if (head[2] is not None and head[2] > now) or self._held(connection, head[0]):
                return None
            self._writes.keep(MARK_RUNNING, (now, head[0]))
            return head[0]

    async def runs_elsewhere(self, order_key: str | None) -> bool:
        return False  # the app is the one process running attempts on its file

    def attempt_started(self, event_id: int, attempt: int) -> None:
        if self._starts is not None:
            self._starts.note(event_id, attempt)

    def is_committed(self, event_id: int) -> bool:
        return self._opened is not None and self._opened.is_committed(event_id)

    def after_commit(self, callback: Callable[[], None]) -> None:
        if self._opened is None:
            callback()
        else:
            self._opened.after_commit(callback)

    def watch(self, callback: Callable[[], None]) -> None:
        """Nothing to watch: only this process writes the file."""

    def watch_ended(self, callback: Callable[[int], None]) -> None:
        """Nothing to watch: every attempt of this file's events runs in this process."""

    async def leads(self) -> bool:
        return True  # the one process of its file

    async def health(self) -> str | None:
        return None  # a full disk or a loss is reported through 503s and `damage()`

    async def next_due_at(self) -> float | None:
        return self._read_here(NEXT_DUE)[0][0]

    async def finish(self, event: EventRecord | int, *, result: Any, handler_ms: float) -> EventRecord:
        now = time.time()
        encoded = json.dumps(result, default=repr)
        event_id = event if isinstance(event, int) else event.id
        with self._writes.write(atomic=False) as connection:
            self._writes.keep(FINISH, (encoded, handler_ms, now, event_id))
            if isinstance(event, int):
                return self._fetch(connection, event_id)
        # The result as given: the worker stores only what JSON carries as it is (see `worker._storable`).
        return event.evolve(
            state=EventState.SUCCEEDED, result=result, error=None, handler_ms=handler_ms, finished_at=now
        )

    async def skip(self, event: EventRecord | int, *, reason: str) -> EventRecord:
        now = time.time()
        event_id = event if isinstance(event, int) else event.id
        with self._writes.write(atomic=False) as connection:
            self._writes.keep(SKIP, (reason, now, event_id))
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
        with self._writes.write() as connection:
            self._writes.keep(CLOSE_ATTEMPT, {"id": event_id, "now": now, "outcome": "failed", "detail": error})
            self._writes.keep(FAIL, (state.value, error, handler_ms, retry_at, finished_at, event_id))
            if isinstance(event, int):
                return self._fetch(connection, event_id)
        return event.evolve(
            state=state, error=error, handler_ms=handler_ms, next_attempt_at=retry_at, finished_at=finished_at
        )

    # --- the console --------------------------------------------------------------------------

    async def get(self, event_id: int) -> EventRecord | None:
        rows = await self._read_committed("SELECT * FROM event_rows WHERE id = ?", (event_id,))
        return record_from_row(rows[0]) if rows else None

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

    async def stats(self, *, since: float) -> JournalStats:
        rows = await self._read_committed(
            "SELECT endpoint, state, COUNT(*) FROM events WHERE received_at >= ? GROUP BY endpoint, state",
            (since,),
        )
        times = await self._read_committed(
            "SELECT ack_ms, handler_ms FROM events WHERE received_at >= ? "
            "AND (ack_ms IS NOT NULL OR handler_ms IS NOT NULL)",
            (since,),
        )
        return stats_from_rows(since, rows, times)

    async def snapshot(self, *, since: float) -> JournalSnapshot:
        return snapshot_of(
            await self._read_committed(SNAPSHOT, (since,)), since=since, size_bytes=files_bytes(self.path)
        )

    async def damage(self) -> list[JournalDamage]:
        return self._losses.reports.current()

    async def dismiss_damage(self) -> int:
        try:
            return self._losses.reports.dismiss()
        except OSError as exc:
            raise JournalUnavailable(f"The dismissal could not be saved ({exc}); the report stays.") from None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._opened is not None:
            self._opened.close()
        if self._starts is not None:
            self._starts.close()
        self._losses.close()
        self._reads.close()
