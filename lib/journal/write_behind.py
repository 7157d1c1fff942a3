"""When the SQLite journal's writes are committed: the commit group, and what must survive losing it.

A commit costs far more than the statements in it, so with `grouped=True` (the server) the writes
made on the event loop share one transaction: it commits at the end of the loop turn in which a
request awaits `durable()`, so a delivery is acknowledged only once it is on disk, and what nobody
waits for (claims, outcomes, acknowledgement times) rides along with that commit, or commits on its
own after `IDLE_COMMIT_SECONDS`. Each write is still all-or-nothing (a savepoint). With
`grouped=False` each write is its own transaction. The caller chooses; nothing here looks at which
thread or loop is calling.

Should a group's commit fail (the disk or the size cap is full), its deliveries are lost (their
requests answer 503 and the Hub sends them again), but not what the worker was told is done: claims
and outcomes. Those are kept in one queue of statements, each safe to run twice, until a commit
succeeds; after a failed commit they run again first thing in the next transaction. Statements
nobody waits for (acknowledgement times) join the same queue without being run at once.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from ..core.errors import JournalUnavailable

logger = logging.getLogger(__name__)

IDLE_COMMIT_SECONDS = 0.05
"""How long writes nobody waits for (outcomes, claims) may stay uncommitted, riding along with
the next delivery's commit instead of paying for one of their own."""

Statement = tuple[str, Any]
"""One SQL statement and its parameters."""


class WriteBehind:
    """Owns the transactions of the journal's writer connection: the commit group, its idle timer,
    `durable`, `after_commit`, which deliveries are committed, and the statements kept to run again.

    Args:
        connection: the writer connection, in autocommit mode (transactions are begun here).
        grouped: share one transaction among the writes of the event loop (True), or commit each
            write on its own (False). Grouped writes must be made on a running event loop.
        describe: the message a `JournalUnavailable` carries for an error of SQLite.
        on_commit: called after each commit, with whether every kept statement is now on disk.
        next_id: the first event id to hand out.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        *,
        grouped: bool,
        describe: Callable[[sqlite3.Error], str],
        on_commit: Callable[[bool], None],
        next_id: int,
    ) -> None:
        self.connection = connection
        self.grouped = grouped
        self._describe = describe
        self._on_commit = on_commit
        self._atomic_write = _Write(self, atomic=True)
        self._single_write = _Write(self, atomic=False)
        self._done: asyncio.Future[None] | None = None
        """The open group's end, for `durable()` and `after_commit`; None when no group is open."""
        self._timer: asyncio.Handle | None = None
        self._commit_soon = False
        self._statements: list[Statement] = []
        """Statements to keep until a commit succeeds; the first `_ran` ran in the open transaction.

        Claims and outcomes: whoever made them was told they were done and has moved on, so losing
        them with a failed commit would leave an event `running` for ever. The rest wait to run
        with the next transaction (acknowledgement times, and everything after a failed commit).
        """
        self._ran = 0
        self._write_starts = 0
        """Where the current write's own kept statements begin, so a failed write takes them back."""
        self._next_id = next_id
        """Ids are handed out here and never again, not even those of a group that failed to commit:
        the worker may still hold such an event, and must not mistake a later delivery for it."""
        self._recorded_up_to = self._committed_up_to = next_id - 1
        """The newest event id written, committed or not, and the newest committed (or lost)."""
        self.newest_on_disk = next_id - 1
        """The newest event id whose delivery a commit put on disk (never one of a lost group)."""
        self._first: tuple[Callable[[sqlite3.Connection], None], Callable[[], None]] | None = None
        self._first_ran = False
        """Statements every transaction runs first until one that ran them commits (see `first`)."""
        self._lost_ids: set[int] = set()
        """Ids of deliveries whose group failed to commit (answered 503): never on disk."""
        self._lost = JournalUnavailable("The event journal could not record this delivery; retry later.")
        """Why the last group failed, for the deliveries it took with it."""

    # --- writing -------------------------------------------------------------------------------

    def write(self, *, atomic: bool = True) -> _Write:
        """One write, all of it or none of it: `with writes.write() as connection: ...`.

        `atomic=False` spares the savepoint to a write of a single statement, which SQLite
        already makes all-or-nothing. Raises `JournalUnavailable` when it fails.
        """
        return self._atomic_write if atomic else self._single_write

    def keep(self, sql: str, parameters: Any) -> None:
        """Run, inside the current write, a statement that must survive the loss of its group: a claim
        or an outcome. It must have the same effect if run twice."""
        self.connection.execute(sql, parameters)
        if self.grouped:
            self._statements.insert(self._ran, (sql, parameters))  # after those run so far, before any waiting
            self._ran += 1

    def defer(self, sql: str, parameters: Any) -> None:
        """Run a statement nobody waits for with the next commit (or earlier, with the next transaction)."""
        self._statements.append((sql, parameters))

    def first(self, statements: Callable[[sqlite3.Connection], None], *, committed: Callable[[], None]) -> None:
        """Have every transaction from now on run `statements` first, until one that ran them commits; then
        call `committed`. Nothing is written before them: a transaction whose `statements` fail does not
        begin (`JournalUnavailable`). They must have the same effect if run twice."""
        if self._done is not None:  # what was written before them is committed first, on its own
            self._commit_group()
        self._first = (statements, committed)

    def take_id(self) -> int:
        """A new event id, never handed out before."""
        event_id, self._next_id = self._next_id, self._next_id + 1
        return event_id

    def recorded(self, event_id: int) -> None:
        """The delivery `event_id` is written in the current transaction: committed with it."""
        self._recorded_up_to = event_id

    # --- what is committed -----------------------------------------------------------------------

    def is_committed(self, event_id: int) -> bool:
        return event_id <= self._committed_up_to and event_id not in self._lost_ids

    async def durable(self, event_id: int | None = None) -> None:
        """Wait until the writes made so far are committed: what an acknowledgement promises.

        Args:
            event_id: wait only until that delivery is on disk, and fail only if it was lost;
                later writes are another group's business.

        Raises:
            JournalUnavailable: the commit failed and took the writes (or that delivery) with it.
        """
        if event_id is not None and self.is_committed(event_id):
            return
        done = self._done
        if done is not None:
            self._commit_at_end_of_turn()
            try:
                await asyncio.shield(done)
            except JournalUnavailable:
                if event_id is None or not self.is_committed(event_id):
                    raise
        if event_id is not None and not self.is_committed(event_id):  # lost with a group that ended earlier
            raise self._lost

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the writes made so far are committed, soon (at once if they are).

        It is called when the group ends even if its commit failed: what it reports (an outcome)
        is then kept and written again with the next transaction.
        """
        done = self._done
        if done is None:
            callback()
            return
        self._commit_at_end_of_turn()
        done.add_done_callback(lambda _: callback())

    def commit(self) -> None:
        """Commit now the open group and any statement waiting to run, so that another connection
        sees every write made so far. A failed commit is handled as any group's.

        Raises:
            JournalUnavailable: no transaction could begin to run the waiting statements.
        """
        if self._done is not None:
            self._commit_group()
        if self._ran < len(self._statements):
            with self.write(atomic=False):
                pass  # the transaction runs what waits
            if self._done is not None:
                self._commit_group()

    def close(self) -> None:
        """Commit what can be committed, then close the connection."""
        try:
            self.commit()
        except JournalUnavailable as exc:
            logger.warning("Some journal writes were not saved at shutdown: %s", exc.message)
        self.connection.close()

    # --- the group ---------------------------------------------------------------------------------

    def _begin(self) -> None:
        """Begin a transaction (for a group, or for one write), and run what waits from earlier ones."""
        connection = self.connection
        loop = asyncio.get_running_loop() if self.grouped else None
        try:
            connection.execute("BEGIN IMMEDIATE")
            if self._first is not None:
                self._first[0](connection)
                self._first_ran = True
            self._run_waiting()
        except sqlite3.Error as exc:
            self._first_ran = False
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise JournalUnavailable(self._describe(exc)) from None
        if loop is not None:
            self._done = loop.create_future()
            self._commit_soon = False
            self._timer = loop.call_later(IDLE_COMMIT_SECONDS, self._commit_group)

    def _run_waiting(self) -> None:
        """Run the statements waiting since an earlier transaction (each is safe to run twice).

        If they do not fit yet (the journal is still full), they wait for the next transaction and
        this one goes on without them. Raises `sqlite3.Error` only if the transaction itself is gone.
        """
        waiting = len(self._statements) - self._ran
        if not waiting:
            return
        connection = self.connection
        connection.execute("SAVEPOINT waiting")
        try:
            for sql, parameters in self._statements[self._ran :]:
                connection.execute(sql, parameters)
            connection.execute("RELEASE waiting")
        except sqlite3.Error as exc:
            logger.warning("Could not yet write %d earlier statement(s) to the journal: %s", waiting, exc)
            if not connection.in_transaction:
                raise
            connection.execute("ROLLBACK TO waiting")
            connection.execute("RELEASE waiting")
            return
        self._ran = len(self._statements)

    def _commit_at_end_of_turn(self) -> None:
        """Commit the open group at the end of this turn of the loop instead of after the idle delay."""
        if not self._commit_soon:
            self._commit_soon = True
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_soon(self._commit_group)

    def _commit_group(self) -> None:
        if self._done is None:  # already committed (by `commit()` or `close()`)
            return
        try:
            self._commit_transaction()
        except JournalUnavailable as error:
            logger.error("A group of journal writes was lost: %s", error.message)
            self._end_group(error)
        else:
            self._end_group(None)

    def _commit_transaction(self) -> None:
        connection = self.connection
        try:
            self._run_waiting()
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            error = JournalUnavailable(self._describe(exc))
            self._lost_transaction(error)
            raise error from None
        del self._statements[: self._ran]
        self._ran = 0
        if self._recorded_up_to > self._committed_up_to:
            self.newest_on_disk = self._recorded_up_to
        self._committed_up_to = self._recorded_up_to
        self._on_commit(not self._statements)
        if self._first_ran and self._first is not None:
            committed = self._first[1]
            self._first, self._first_ran = None, False
            committed()

    def _lost_transaction(self, error: JournalUnavailable) -> None:
        """The open transaction is gone: its deliveries with it (answered 503), its kept statements
        back to waiting, to run again with the next transaction (and what must run first, first)."""
        self._ran = 0
        self._first_ran = False
        if self._recorded_up_to > self._committed_up_to:
            self._lost = error
            self._lost_ids.update(range(self._committed_up_to + 1, self._recorded_up_to + 1))
            self._committed_up_to = self._recorded_up_to

    def _end_group(self, error: JournalUnavailable | None) -> None:
        """Close the group and tell `durable()` waiters and `after_commit` callbacks how it ended."""
        done = self._done
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._done = None
        if done is not None and not done.done():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)
                done.exception()  # retrieved here, so a group nobody awaited does not warn

    def _undo_write(self, error: JournalUnavailable, atomic: bool) -> None:
        """Undo one failed write, its kept statements too; if SQLite undid the whole group, lose the group."""
        connection = self.connection
        del self._statements[self._write_starts : self._ran]
        self._ran = self._write_starts
        if self.grouped and connection.in_transaction:
            if atomic:
                connection.execute("ROLLBACK TO write")
                connection.execute("RELEASE write")
            return
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        self._lost_transaction(error)
        self._end_group(error)


class _Write:
    """One write: in the open group (opening it if needed) under a savepoint, or a transaction of its own.

    A class rather than a generator-based context manager: it is entered three times per event.
    """

    __slots__ = ("atomic", "writes")

    def __init__(self, writes: WriteBehind, *, atomic: bool) -> None:
        self.writes = writes
        self.atomic = atomic

    def __enter__(self) -> sqlite3.Connection:
        writes = self.writes
        if writes._done is None or not writes.grouped:
            writes._begin()
        writes._write_starts = writes._ran
        connection = writes.connection
        if self.atomic:
            try:
                connection.execute("SAVEPOINT write")
            except sqlite3.Error as exc:
                error = JournalUnavailable(writes._describe(exc))
                writes._undo_write(error, atomic=False)
                raise error from None
        return connection

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, traceback: Any) -> None:
        writes = self.writes
        if kind is None:
            try:
                if self.atomic:
                    writes.connection.execute("RELEASE write")
                if not writes.grouped:
                    writes._commit_transaction()
                return
            except sqlite3.Error as error:
                exc, kind = error, type(error)
            except JournalUnavailable:  # the commit failed; the transaction is already undone
                raise
        if issubclass(kind, sqlite3.Error):
            error = JournalUnavailable(writes._describe(exc))  # type: ignore[arg-type]
            writes._undo_write(error, self.atomic)
            raise error from None
        writes._undo_write(JournalUnavailable("A journal write was interrupted."), self.atomic)
