"""The event journal's vocabulary: what is stored about a delivery, and the rules every backend shares.

Every authenticated delivery is recorded before it is acknowledged, and handlers run from the
journal, never from the request. The calls made on a journal are the `Journal` protocol
(`protocol.py`); these records are what they take and return.
"""

from __future__ import annotations

import random
from dataclasses import MISSING, dataclass, field, fields
from enum import StrEnum
from typing import Any, Literal


class EventState(StrEnum):
    """Where an event is in its life; `failed` will be retried, `dead` will not (until replayed)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    DEAD = "dead"
    PAUSED = "paused"
    """Held while its endpoint is paused: recorded and acknowledged, run (queued again) on resume."""
    JOB_RUNNING = "job_running"
    """The handler returned after launching a Hub Job, which is followed until it ends."""


UNFINISHED_STATES = (EventState.QUEUED, EventState.RUNNING, EventState.FAILED, EventState.JOB_RUNNING)
"""States retention never prunes and per-repo ordering waits on."""
PRUNABLE_STATES = (EventState.SUCCEEDED, EventState.SKIPPED, EventState.DUPLICATE)


RAW_SCOPE = "raw"
"""The scope of a raw delivery: an authenticated POST whose body is not a Hub payload (an empty one,
say), accepted only by a handler that takes no payload, as the reference accepts it. It is recorded,
retried and replayed like any event, but it is no Hub event: its action is `RAW_ACTION`, it has no
repository, and no Hub scope is called this."""
RAW_ACTION = "post"


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

    @property
    def is_raw(self) -> bool:
        """Not a Hub event: a POST whose body is not a payload, for a handler that takes none."""
        return self.scope == RAW_SCOPE


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
    replica: str | None = None
    """Which replica ran its latest attempt, when the journal is shared by several (PostgreSQL); else None."""
    replays: int = 0
    """How many times an operator replayed it: each replay is a new generation, with a Hub Job of its own."""

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
    outcome: Literal["running", "succeeded", "failed", "interrupted", "job_running"]
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


STOPPED_ON_LAST_ATTEMPT = (
    "The app stopped during the last allowed attempt (did the handler crash the process?). Replay it once fixed."
)
"""The error of an event that `recover_interrupted` left dead: its handler may be what ended the process."""


def redelivery_outcome(
    original_state: EventState,
    finished_at: float | None,
    *,
    now: float,
    window_seconds: float,
    ended_the_process: bool = False,
) -> Literal["duplicate", "requeue", "new"]:
    """Decide what a delivery whose key the journal already holds should do.

    The Hub retries a delivery, and its Replay button sends it again, with the same `Webhook-Id`.
    A repeat of work in progress, or of a success moments ago, is answered without running the
    handler twice; a repeat of a failure runs it again now; a repeat long after a success is
    someone pressing Replay on purpose, and runs as a new event.

    An event left dead because the app stopped during its last attempt (`ended_the_process`: its
    error is `STOPPED_ON_LAST_ATTEMPT`) stays dead: its handler may be what ended the process, and
    the Hub retries a delivery whose request died with the process, so running it again at each
    retry would take the app down again each time. Only a replay from the console runs it again.
    """
    if original_state in (EventState.QUEUED, EventState.RUNNING, EventState.JOB_RUNNING):
        return "duplicate"
    if original_state == EventState.DEAD and ended_the_process:
        return "duplicate"
    if original_state in (EventState.FAILED, EventState.DEAD):
        return "requeue"
    if original_state == EventState.PAUSED:  # it will run on resume: once is enough
        return "duplicate"
    if finished_at is not None and now - finished_at <= window_seconds:
        return "duplicate"
    return "new"


_STATE_PHRASES = {
    EventState.QUEUED: "is still queued",
    EventState.RUNNING: "is running now",
    EventState.SUCCEEDED: "has already succeeded",
    EventState.FAILED: "had failed",
    EventState.DEAD: "had failed every attempt",
}


def redelivery_note(original_id: int, original_state: str, decision: str, *, ended_the_process: bool = False) -> str:
    """What the duplicate row of a redelivery says, and its answer's `detail`, in plain words."""
    if ended_the_process and original_state == EventState.DEAD and decision != "requeue":
        return (
            f"a repeat of event {original_id}, which ended the process on its last attempt: it stays dead, "
            "not run again; replay it from the console once fixed"
        )
    phrase = _STATE_PHRASES.get(EventState(original_state), f"is {original_state}")
    outcome = "run again" if decision == "requeue" else "not run again"
    return f"a repeat of event {original_id}, which {phrase}: {outcome}"


def retry_delay(attempt: int, *, base_seconds: float, max_seconds: float) -> float:
    """Exponential backoff with full jitter, so many failing events do not retry in lockstep."""
    ceiling = min(max_seconds, base_seconds * 2 ** max(0, attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, kw_only=True)
class JournalDamage:
    """Acknowledged events the journal no longer holds, found when it opened; reported until dismissed.

    An acknowledged event is one the Hub will not send again by itself: once lost, only an operator
    who replays those deliveries from the Hub's webhook activity gets them run.
    """

    first_id: int
    last_id: int
    """The lost events are among ids `first_id`..`last_id`. Some of those ids may never have been
    acknowledged (a delivery answered 503 keeps its id, which is never reused), so the range says
    "at most"."""
    cause: str
    """What was found, in a sentence: "the journal file was empty (truncated to 0 bytes?)"."""
    found_at: float
    acknowledged_until: float | None = None
    """About when the last of them was acknowledged, if known."""
    kept_until: float | None = None
    """When the newest event the journal still holds was received; None when it holds none."""

    @property
    def count(self) -> int:
        """How many ids the loss spans: the most events it can have taken."""
        return self.last_id - self.first_id + 1
