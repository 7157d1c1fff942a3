"""The `Journal` protocol: the calls the receiver, the worker and the console make on the journal.

`SQLiteJournal` (`sqlite.py`) is the embedded implementation; a server database for several
replicas would implement the same protocol and leave the request path untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .records import Attempt, Delivery, EventRecord, JournalStats, Recorded


class Journal(Protocol):
    """The calls made on the journal. Implementations must be safe to call from several threads."""

    def record(
        self,
        delivery: Delivery,
        *,
        skipped_reason: str | None,
        max_attempts: int,
        duplicate_window: float,
        start_if_idle: bool = False,
    ) -> Recorded:
        """Write a delivery in one transaction, deciding new / skipped / duplicate / requeued.

        With `start_if_idle`, a new event whose order key has nothing unfinished is written as
        already running (attempt 1), so the caller runs it without going through the queue.
        """
        ...

    def claim_due(self, *, now: float, limit: int) -> list[EventRecord]:
        """Mark up to `limit` due events running (respecting per-order-key FIFO) and return them."""
        ...

    def claim_next(self, order_key: str, *, now: float) -> int | None:
        """Claim the oldest unfinished event of `order_key` if it may run now; its id, or None."""
        ...

    def attempt_started(self, event_id: int, attempt: int) -> None:
        """Note that a handler is about to run, in a way that survives the process dying right after.

        A claim may still be uncommitted when its handler starts (claims are committed in groups);
        `recover_interrupted` counts an attempt noted here whose claim was lost, so a handler that
        kills the process still uses up its attempts.
        """
        ...

    def is_committed(self, event_id: int) -> bool:
        """Whether the delivery recorded as `event_id` is on disk (a handler must not run before)."""
        ...

    def next_due_at(self) -> float | None:
        """When the earliest waiting retry is due, so the worker can sleep until then."""
        ...

    def finish(self, event: EventRecord | int, *, result: Any, handler_ms: float) -> EventRecord:
        """Record a successful attempt. Given the claimed record rather than its id, the returned
        record is built from it instead of being read back (the worker's case)."""
        ...

    def skip(self, event: EventRecord | int, *, reason: str) -> EventRecord:
        """A claimed event that must not run after all: skipped, its attempt undone."""
        ...

    def fail(self, event: EventRecord | int, *, error: str, handler_ms: float, retry_at: float | None) -> EventRecord:
        """Record a failed attempt; `retry_at=None` makes the event dead."""
        ...

    def set_ack_ms(self, event_id: int, ack_ms: float) -> None: ...

    async def durable(self, event_id: int | None = None) -> None:
        """Return once the writes made so far are safe from a crash of the process.

        With `event_id`, raise only if that delivery itself was lost (see `SQLiteJournal.durable`).
        """
        ...

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the writes made so far are committed (or their commit failed)."""
        ...

    def recover_interrupted(self) -> int:
        """Put events left running by a crash back in the queue; returns how many."""
        ...

    def get(self, event_id: int) -> EventRecord | None: ...

    def attempts(self, event_id: int) -> list[Attempt]: ...

    def list_recent(
        self,
        *,
        limit: int = 100,
        endpoint: str | None = None,
        state: str | None = None,
        repo: str | None = None,
        scope: str | None = None,
    ) -> list[EventRecord]: ...

    def replay(self, event_id: int, *, max_attempts: int) -> EventRecord:
        """Run an event again whatever its state (an operator asked for it)."""
        ...

    def replay_dead(self, endpoint: str, *, max_attempts: int) -> list[int]: ...

    def stats(self, *, since: float) -> JournalStats: ...

    def prune(self, *, older_than: float, keep_max: int) -> int:
        """Delete finished events older than `older_than` or beyond the newest `keep_max`."""
        ...

    def close(self) -> None: ...
