"""The event journal's vocabulary and interface: what is stored about a delivery, and the calls
the receiver, the worker and the console make on it.

Every authenticated delivery is recorded before it is acknowledged, and handlers run from the
journal, never from the request. `SQLiteJournal` (in `sqlite_journal.py`) is the embedded
implementation; a server database for several replicas would implement `Journal` and leave the
request path untouched.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from enum import StrEnum
from typing import Any, Literal, Protocol


class EventState(StrEnum):
    """Where an event is in its life; `failed` will be retried, `dead` will not (until replayed)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    DEAD = "dead"


UNFINISHED_STATES = (EventState.QUEUED, EventState.RUNNING, EventState.FAILED)
"""States retention never prunes and per-repo ordering waits on."""
PRUNABLE_STATES = (EventState.SUCCEEDED, EventState.SKIPPED, EventState.DUPLICATE)


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """One authenticated request, as it arrived (the secret already removed)."""

    endpoint: str
    delivery_key: str
    webhook_id: str | None
    received_at: float
    headers: dict[str, str]
    query: str
    body: bytes
    scope: str
    action: str
    repo_name: str
    repo_type: str
    order_key: str | None
    """Events with the same key run one at a time in arrival order; None runs unordered."""
    is_test: bool = False


@dataclass(frozen=True, kw_only=True)
class EventRecord(Delivery):
    """An event as the journal holds it: the delivery, and what became of it."""

    id: int
    state: EventState
    attempts: int
    max_attempts: int
    next_attempt_at: float | None = None
    original_id: int | None = None
    """For a duplicate: the event it repeats."""
    note: str | None = None
    """Why it was skipped, or what happened to the original of a duplicate."""
    result: Any = None
    error: str | None = None
    ack_ms: float | None = None
    handler_ms: float | None = None
    finished_at: float | None = None

    @classmethod
    def from_delivery(cls, delivery: Delivery, **state: Any) -> EventRecord:
        """The record of `delivery` with the given state fields (`id`, `state`, `attempts` ...)."""
        record = object.__new__(cls)  # as `evolve`: the generated __init__ re-sets 26 frozen fields one by one
        record.__dict__.update(_RECORD_DEFAULTS, **delivery.__dict__, **state)
        return record

    def evolve(self, **changes: Any) -> EventRecord:
        """A copy with some fields changed: `dataclasses.replace` without re-checking every field,
        which the worker would otherwise pay on every event."""
        changed = object.__new__(type(self))
        changed.__dict__.update(self.__dict__, **changes)
        return changed


_RECORD_DEFAULTS = {item.name: item.default for item in fields(EventRecord) if item.default is not MISSING}


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One run of a handler on an event."""

    event_id: int
    number: int
    started_at: float
    finished_at: float | None
    outcome: Literal["running", "succeeded", "failed", "interrupted"]
    detail: str | None
    """The result (JSON) on success, the traceback on failure."""


@dataclass(frozen=True, kw_only=True)
class Recorded:
    """What `Journal.record` did with a delivery."""

    event: EventRecord
    """The row written for this delivery."""
    outcome: Literal["new", "skipped", "duplicate", "requeued"]
    original: EventRecord | None = None
    """For a duplicate or a requeue: the earlier event with the same delivery key."""

    @property
    def runs(self) -> EventRecord:
        """The event whose handler runs for this delivery: the original when it was requeued."""
        return self.original if self.outcome == "requeued" and self.original is not None else self.event


@dataclass(frozen=True, kw_only=True)
class JournalStats:
    """Counts and durations since a point in time, for the landing page and the console."""

    since: float
    by_state: dict[str, int] = field(default_factory=dict)
    by_endpoint: dict[str, dict[str, int]] = field(default_factory=dict)
    ack_ms_p50: float | None = None
    ack_ms_p95: float | None = None
    handler_ms_p50: float | None = None
    handler_ms_p95: float | None = None
    deliveries: int = 0


def redelivery_outcome(
    original_state: EventState, finished_at: float | None, *, now: float, window_seconds: float
) -> Literal["duplicate", "requeue", "new"]:
    """Decide what a delivery whose key the journal already holds should do.

    The Hub retries a delivery, and its Replay button sends it again, with the same `Webhook-Id`.
    A repeat of work in progress, or of a success moments ago, is answered without running the
    handler twice; a repeat of a failure runs it again now; a repeat long after a success is
    someone pressing Replay on purpose, and runs as a new event.
    """
    if original_state in (EventState.QUEUED, EventState.RUNNING):
        return "duplicate"
    if original_state in (EventState.FAILED, EventState.DEAD):
        return "requeue"
    if finished_at is not None and now - finished_at <= window_seconds:
        return "duplicate"
    return "new"


def retry_delay(attempt: int, *, base_seconds: float, max_seconds: float) -> float:
    """Exponential backoff with full jitter, so many failing events do not retry in lockstep."""
    ceiling = min(max_seconds, base_seconds * 2 ** max(0, attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


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
