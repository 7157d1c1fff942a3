"""The embedded journal: one SQLite file in WAL mode, and what each call of the `Journal` protocol does in it.

This module holds the domain rules only (what a delivery, a claim or an outcome writes); the rest
is in modules of their own: the schema and its migrations (`schema.py`), the SQL (`statements.py`),
when writes are committed (`write_behind.py`: the commit group, and the claims and outcomes kept
until it commits), the console's reads on a thread (`reader.py`), and the note that keeps an
attempt counted when its claim was not committed yet (`starts_file.py`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.errors import ConfigurationError, EventNotFound, JournalUnavailable
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
    CLAIMABLE_EVENT,
    CLOSE_ATTEMPT,
    CLOSE_RUNNING_ATTEMPTS,
    FAIL,
    FINISH,
    INSERT_EVENT,
    KEEP_LAST_ATTEMPT,
    LANE_HEAD,
    LAST_ATTEMPT,
    MARK_RUNNING,
    NEXT_DUE,
    ORIGINAL,
    REQUEUE,
    SET_ACK_MS,
    SKIP,
    UNFINISHED,
)
from .write_behind import WriteBehind

logger = logging.getLogger(__name__)

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


def _percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


class SQLiteJournal:
    """The `Journal` on one SQLite file; see `protocol.py` for what each call promises.

    Args:
        path: the database file; its folder is created if missing.
        max_bytes: a cap on the file's size; past it, recording fails (503) instead of filling the
            Space's disk. None for no cap.
        group_commit: share one commit among the writes of a turn of the event loop (the server,
            and the default), or commit each call on its own (see `write_behind.py`).

    Raises:
        ConfigurationError: the file cannot be opened, is not a journal, or is corrupt. It is
            never replaced silently: the message says how to move it aside.
    """

    def __init__(self, path: Path, *, max_bytes: int | None = None, group_commit: bool = True) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.group_commit = group_commit
        self._closed = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = connect(path)
            check_and_migrate(writer, max_bytes=max_bytes)
            last_id = writer.execute(
                "SELECT MAX(COALESCE((SELECT MAX(id) FROM events), 0), "
                "COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0))"
            ).fetchone()[0]
            self._starts = StartsFile(path.with_name(path.name + STARTS_SUFFIX))
        except (sqlite3.Error, OSError) as exc:
            raise ConfigurationError(
                f"The event journal at {path} cannot be used ({exc}). If the file is damaged, move it aside "
                "(its events are lost to the app, not deleted) or point DATA_DIR at another folder."
            ) from None
        self._writes = WriteBehind(
            writer, grouped=group_commit, describe=self._write_error, on_commit=self._committed, next_id=last_id + 1
        )
        self._reads = ReadThread(lambda: connect(self.path))

    def _committed(self, everything: bool) -> None:
        """After a commit that left nothing kept in memory, every claim is on disk: the starts file may be
        emptied once it has grown."""
        if everything:
            self._starts.all_claims_on_disk()

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
        return _record_from_row(connection.execute("SELECT * FROM event_rows WHERE id = ?", (event_id,)).fetchone())

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
            else:
                state, original_id = EventState.DUPLICATE, original_row["id"]
                note = (
                    f"redelivery of event {original_id}, which was {original_row['state']}: run again"
                    if decision == "requeue"
                    else f"redelivery of event {original_id}, which is {original_row['state']}: not run again"
                )
            finished_at = None if state in (EventState.QUEUED, EventState.RUNNING) else delivery.received_at
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
        now = time.time()
        lost_claims = [(attempt, event_id) for event_id, attempt in self._starts.started().items()]
        interrupted = {"now": now, "outcome": "interrupted", "detail": "the app stopped while this attempt ran"}
        with self._writes.write() as connection:
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

    async def claim_due(self, *, now: float, limit: int) -> list[EventRecord]:
        if limit <= 0:
            return []
        # Most wake-ups find nothing: answer those without a write transaction.
        if not self._read_here(CLAIMABLE, {"now": now, "limit": 1}):
            return []
        with self._writes.write() as connection:
            ids = [row[0] for row in connection.execute(CLAIMABLE, {"now": now, "limit": limit})]
            for event_id in ids:
                self._writes.keep(MARK_RUNNING, (now, event_id))
            return [self._fetch(connection, event_id) for event_id in ids]

    async def claim(self, event_id: int, *, now: float) -> bool:
        with self._writes.write(atomic=False) as connection:
            if connection.execute(CLAIMABLE_EVENT, {"id": event_id, "now": now}).fetchone() is None:
                return False
            self._writes.keep(MARK_RUNNING, (now, event_id))
            return True

    async def claim_next(self, order_key: str, *, now: float) -> int | None:
        with self._writes.write(atomic=False) as connection:
            head = connection.execute(LANE_HEAD, (order_key,)).fetchone()
            if head is None or head[1] == "running":
                return None
            if head[2] is not None and head[2] > now:
                return None
            self._writes.keep(MARK_RUNNING, (now, head[0]))
            return head[0]

    def attempt_started(self, event_id: int, attempt: int) -> None:
        self._starts.note(event_id, attempt)

    def is_committed(self, event_id: int) -> bool:
        return self._writes.is_committed(event_id)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._writes.after_commit(callback)

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
        with self._writes.write() as connection:
            row = connection.execute("SELECT state, original_id FROM events WHERE id = ?", (event_id,)).fetchone()
            if row is None:
                raise EventNotFound(f"No event {event_id} in the journal.")
            target = row["original_id"] if row["state"] == EventState.DUPLICATE else event_id
            connection.execute(KEEP_LAST_ATTEMPT, (target,))
            connection.execute(REQUEUE, (max_attempts, target))
            return self._fetch(connection, target)

    async def replay_dead(self, endpoint: str, *, max_attempts: int) -> list[int]:
        with self._writes.write() as connection:
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
        times = await self._read_committed(
            "SELECT ack_ms, handler_ms FROM events WHERE received_at >= ? "
            "AND (ack_ms IS NOT NULL OR handler_ms IS NOT NULL)",
            (since,),
        )
        ack = sorted(row[0] for row in times if row[0] is not None)
        handler = sorted(row[1] for row in times if row[1] is not None)
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

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writes.close()
        self._starts.close()
        self._reads.close()
