"""The `Journal` protocol: the calls the receiver, the worker and the console make on the journal.

`SQLiteJournal` (`sqlite.py`) is the embedded implementation; a server database a network away
(several replicas sharing one journal) implements the same protocol and leaves the request path,
the worker and the console untouched. `tests/test_journal_conformance.py` is the contract in code:
every backend must pass it unchanged.

Calls are made from one event loop, the server's, never from several threads at once, so an
implementation needs no locks of its own. The calls that may touch storage are coroutines, so a
backend that waits on a network or a disk awaits it instead of blocking the loop: deliveries,
handlers and the console all share that loop. Four calls stay plain functions because they only
touch memory and sit on the hot path of every event: `is_committed`, `after_commit`,
`attempt_started` (one append to a local file at most) and `set_ack_ms`.

Writes are all-or-nothing, and "written" is not "durable": a write is seen by every later call as
soon as it returns, and is safe from a crash of the process once `durable()` returns (or an
`after_commit` callback runs). Every failure to read or write storage raises `JournalUnavailable`
(from `lib.core.errors`), which the request path answers 503 so the Hub sends the delivery again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from .job_records import FollowedJob, JobRecord, JobStats
from .records import Attempt, Delivery, EventRecord, JournalDamage, JournalStats, Recorded
from .selection import EventFilter
from .snapshot import JournalSnapshot


class Journal(Protocol):
    """Where deliveries are recorded before they are acknowledged, and where handlers run from."""

    # --- the request path ----------------------------------------------------------------------

    async def record(
        self,
        delivery: Delivery,
        *,
        skipped_reason: str | None,
        max_attempts: int,
        duplicate_window: float,
    ) -> Recorded:
        """Write a delivery, deciding new / skipped / duplicate / requeued (see `redelivery_outcome`).

        All of it is written or none of it: the new row and, for a redelivery of a failure, the
        original put back in the queue. The event's id is larger than every id handed out before by
        this journal, and never handed out again, even if its write is later lost. A second
        delivery with the same `(endpoint, delivery_key)` is decided against the first one, so
        recording the Hub's retries is idempotent: a handler runs once per delivery key (unless
        the first run failed, or ended longer than `duplicate_window` seconds ago). An event that
        `recover_interrupted` left dead stays dead when redelivered: only `replay` runs it again.

        Not durable on return: await `durable(event.id)` before acknowledging.

        Raises:
            JournalUnavailable: nothing was written (the journal is full or unreachable).
        """
        ...

    async def durable(self, event_id: int | None = None) -> None:
        """Return once the writes made before this call are safe from a crash of the process.

        This is what an acknowledgement promises. Claims, outcomes and acknowledgement times
        written before the call are made durable along with the deliveries.

        Args:
            event_id: wait only for that delivery (one `record` returned): return at once if it is
                already durable, and raise only if that delivery itself was lost.

        Raises:
            JournalUnavailable: the writes (or that delivery) were lost and will not be retried by
                the journal: the delivery does not exist and its request must answer 503. Claims and
                outcomes lost with them are not: the journal writes them again with its next write.
        """
        ...

    def set_ack_ms(self, event_id: int, ack_ms: float) -> None:
        """Note how long acknowledging `event_id` took, for the console's statistics.

        Only queued: written with a later write, and lost if the process dies first (a statistic
        is not worth a commit of its own). Never waits.

        Raises:
            JournalUnavailable: may be raised; the caller treats it as a lost statistic.
        """
        ...

    async def prune(self, *, older_than: float, keep_max: int) -> int:
        """Delete finished events received before `older_than` or beyond the newest `keep_max`; how many.

        Only succeeded, skipped and duplicate events go, with their attempts (and jobs); queued, running,
        failed, job_running and dead events are never pruned, whatever their age or number.

        Raises:
            JournalUnavailable: nothing was deleted.
        """
        ...

    # --- the worker ----------------------------------------------------------------------------

    async def recover_interrupted(self) -> int:
        """Put the events a crash left running back in the queue; returns how many. Called once, at start.

        Their attempt is closed as interrupted and still counts, including an attempt whose claim
        was lost but which `attempt_started` noted. An event cut short on its last allowed attempt
        is made dead instead (its handler may be what killed the process), with the error
        `STOPPED_ON_LAST_ATTEMPT` (`records.py`), and a redelivery of it is a duplicate: the Hub
        retries the delivery whose request died with the process. Running it twice changes nothing more.

        Raises:
            JournalUnavailable: the journal cannot be written now (its disk is full). The recovery is
                not dropped: the journal makes it before anything else it writes, as soon as it can
                write, so no event is claimed before the events a crash left running are requeued.
        """
        ...

    async def claim_due(
        self, *, now: float, limit: int, per_endpoint: Mapping[str, int] | None = None
    ) -> list[EventRecord]:
        """Mark up to `limit` events due at `now` running (attempt + 1) and return them, oldest first.

        Events of one order key run one at a time in id order: only the oldest unfinished event
        of a key is ever claimable, and only while no event of that key runs; a failed one waiting
        for its retry holds the others back until it is dead. Events without an order key are
        claimed side by side. A claimed event is never claimed again while it runs.

        Args:
            per_endpoint: the most events of each endpoint named to claim (the room each has left of
                its share of the worker; 0 claims none of it). Endpoints not named are limited by
                `limit` only. The events claimed are still the oldest due of the endpoints with room:
                an endpoint without room never keeps another's events from being claimed, however
                many of its own are due.

        Not durable on return (see `attempt_started`).

        Raises:
            JournalUnavailable: nothing was claimed.
        """
        ...

    async def claim(self, event_id: int, *, now: float) -> bool:
        """Mark one queued event running (attempt + 1) if it may run now; whether it was claimed.

        How the worker starts a delivery it was just handed, without scanning. Same rules as
        `claim_due`: the event must be due, and, with an order key, the oldest unfinished event of
        its key with none of its key running; so a second claim of the same event is refused.
        """
        ...

    async def claim_next(self, order_key: str, *, now: float) -> int | None:
        """Claim the oldest unfinished event of `order_key` if it may run now; its id, or None.

        The worker's hand-over when an event ends, to start its repository's next event without
        scanning every queue. Same rules and guarantees as `claim_due`: the event is running (its
        attempt counted) as soon as this returns, and every later call sees it so.
        """
        ...

    async def runs_elsewhere(self, order_key: str | None) -> bool:
        """Whether another process runs an event of `order_key` now (a replica sharing this journal).

        The worker asks when a claim was refused: the request then stops waiting for an outcome that
        would come in that process. Always False for a journal only one process uses (SQLite).
        """
        ...

    def attempt_started(self, event_id: int, attempt: int) -> None:
        """Note, before a handler runs, that this attempt began, so that it counts even if the process dies.

        A claim may not be durable yet when its handler starts; if the handler kills the process,
        `recover_interrupted` counts the attempt from this note, so a handler that crashes every
        start ends dead after its attempts instead of crashing the app for ever. A backend whose
        claims are durable when `claim_*` returns may do nothing here. Never raises, never waits
        on a network: at most one append to a local file.
        """
        ...

    def is_committed(self, event_id: int) -> bool:
        """Whether the delivery `record` returned as `event_id` is known durable (a handler must not run before).

        Answered from memory, never from storage: True once the delivery's write is durable;
        False while it may still be lost, and for ever once it was lost (its id is never reused).
        A backend whose `record` is durable on return answers True for every id it returned.
        """
        ...

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the loop) once the writes made before this call are durable, soon.

        It is also called if their commit failed: what it reports (an outcome) is then written
        again by the journal, never lost. With nothing waiting to be made durable, it is called at
        once. Only registers the callback: never waits, never raises.
        """
        ...

    def watch(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the loop) whenever events may have become claimable by no call of this process:
        another replica queued or requeued them, or took over a dead replica's. Only registers it.

        So a worker sharing a journal hears of work at once, not at its next poll. A backend that no
        other process writes never calls it.
        """
        ...

    def watch_ended(self, callback: Callable[[int], None]) -> None:
        """Call `callback(event_id)` (on the loop) when another process ended an attempt of an event this
        process recorded. Only registers it.

        So the request waiting to answer with that event's outcome answers as soon as it is known,
        whichever replica ran it. A backend that no other process writes never calls it.
        """
        ...

    async def leads(self) -> bool:
        """Whether this process speaks for every process sharing the journal: the alerts are sent by one.

        Always True for a journal one process uses. A backend of several replicas elects one, and lets
        every replica speak when it cannot tell (its database away).
        """
        ...

    async def health(self) -> str | None:
        """What an operator must know about the journal's storage now, in a sentence (its database cannot
        be reached since when, and that deliveries get 503 meanwhile); None when all is well.

        Cheap, from memory (a coroutine all the same, like every read the console makes): the landing
        page and the console ask on every visit.
        """
        ...

    async def next_due_at(self) -> float | None:
        """When the earliest failed event waiting for its retry is due, so the worker can sleep until then."""
        ...

    async def finish(self, event: EventRecord | int, *, result: Any, handler_ms: float) -> EventRecord:
        """Record that the running attempt of `event` succeeded with `result` (stored as JSON, else its repr).

        Only a running event changes: running it twice has the effect of once. Given the claimed
        record rather than its id, the returned record is built from it instead of read back (the
        worker's case). Durable with the next commit (`durable`, `after_commit`): if that commit
        fails, the journal writes it again with its next write.

        Raises:
            JournalUnavailable: it could not be written; the event stays running, and the next start
                runs it again (at least once).
        """
        ...

    async def fail(
        self, event: EventRecord | int, *, error: str, handler_ms: float, retry_at: float | None
    ) -> EventRecord:
        """Record that the running attempt of `event` failed with `error`; `retry_at=None` makes it dead.

        A failed event is claimable again from `retry_at`; a dead one only after a replay. The
        attempt is kept in `attempts` with `error` as its detail. Guarantees as for `finish`.
        """
        ...

    async def skip(self, event: EventRecord | int, *, reason: str) -> EventRecord:
        """A claimed event that must not run after all: skipped with `reason`, its attempt undone.

        Guarantees as for `finish`.
        """
        ...

    # --- Hub Jobs (launched by handlers, followed by the worker) ---------------------------------

    async def record_job(self, job: JobRecord) -> None:
        """Keep a job as last seen: written as soon as the Hub accepted it, then each time its stage changes.

        One row per `(event_id, label)`: writing it again updates it, except that a job already in a
        final stage keeps it (a late, older sighting never takes it back). Guarantees as for `finish`.
        """
        ...

    async def start_job(self, event: EventRecord, *, job: JobRecord, result: Any, handler_ms: float) -> EventRecord:
        """The running attempt of `event` launched `job` and returned `result`: the event is `job_running`.

        The job is kept as by `record_job`, in the same write. A `job_running` event is unfinished: it
        is never claimed, retried, requeued by a redelivery (a duplicate), replayed or pruned, its
        repository's later events wait behind it, and `recover_interrupted` leaves it as it is (its
        job is followed again). Guarantees as for `finish`.
        """
        ...

    async def end_job(self, job: JobRecord, *, error: str | None) -> EventRecord | None:
        """`job` ended (its stage is final): keep it, and end its event if that is still `job_running`.

        `error=None`: the event succeeded (its result is the handler's). Otherwise the event is dead
        with `error` as its attempt's detail (a retry would find the same job again: only a replay,
        which launches a new one, runs it again). Returns the event as it now is, None if unknown.
        Guarantees as for `finish`.
        """
        ...

    async def job_reported(self, event_id: int, label: str) -> None:
        """The end of that job was handed on (its report recorded, or none needed): `jobs_to_report` drops it."""
        ...

    async def job_for(self, event_id: int) -> JobRecord | None:
        """The newest job the event launched (a replayed event may have launched several), or None."""
        ...

    async def job_for_label(self, label: str) -> JobRecord | None:
        """The job kept with that exactly-once label, or None; sees every earlier write, cheap."""
        ...

    async def jobs_to_follow(self) -> list[FollowedJob]:
        """The newest job of every `job_running` event, oldest event first, with the newest event waiting
        behind it in its repository's lane (for the "supersede" policy). Cheap: the follower asks often."""
        ...

    async def jobs_to_report(self) -> list[JobRecord]:
        """Jobs in a final stage whose end was not handed on yet (`job_reported`), oldest end first."""
        ...

    async def jobs_launched_since(self, endpoint: str, *, since: float) -> int:
        """How many jobs `endpoint`'s handlers launched since `since` (the daily cap); sees every earlier write."""
        ...

    async def job_stats(self, *, since: float) -> JobStats:
        """Jobs launched since `since` by stage, jobs running now, job-hours per day and durations of those ended."""
        ...

    # --- the console ---------------------------------------------------------------------------

    async def get(self, event_id: int) -> EventRecord | None:
        """The event as stored, or None (never recorded, lost with a failed commit, or pruned).

        Like every read, it sees every write made on this journal before the call.
        """
        ...

    async def attempts(self, event_id: int) -> list[Attempt]:
        """Every attempt of the event in order, the running or successful one last; [] if none or unknown."""
        ...

    async def list_recent(
        self,
        *,
        limit: int = 100,
        endpoint: str | None = None,
        state: str | None = None,
        repo: str | None = None,
        scope: str | None = None,
        received_from: float | None = None,
        received_until: float | None = None,
    ) -> list[EventRecord]:
        """The newest events first, at most `limit`, matching every filter given (as `EventFilter` says).

        `scope` matches that scope and the scopes under it by dotted segment (`repo` matches
        `repo.content`, not `repo_content`); `received_from` is included, `received_until` excluded.
        """
        ...

    async def replay(self, event_id: int, *, max_attempts: int) -> EventRecord:
        """Queue an event to run again now, whatever its state, with `max_attempts` more attempts.

        Replaying a duplicate replays its original; a running or job_running event is left as it is
        (returned as it is). The earlier attempts stay in its history. A replay is a new generation
        (`EventRecord.replays` + 1): a Hub Job its handler launches is a new one, unlike a
        redelivery's requeue, which finds the job it launched before. Returns the event as it now is.

        Raises:
            EventNotFound: there is no such event.
            JournalUnavailable: nothing was changed.
        """
        ...

    async def replay_dead(self, endpoint: str, *, max_attempts: int) -> list[int]:
        """Queue every dead event of `endpoint` again (as `replay` does); their ids, oldest first."""
        ...

    async def matching(self, where: EventFilter, *, limit: int) -> list[int]:
        """The ids of the events matching `where` that a bulk replay runs again, oldest first, at most `limit`.

        Only events in `REPLAYABLE_STATES` (`selection.py`): succeeded, failed, dead, skipped. Reads
        every earlier write.
        """
        ...

    async def replay_many(self, event_ids: Sequence[int], *, max_attempts: int) -> list[int]:
        """Queue each of `event_ids` again (as `replay` does) if it is still in `REPLAYABLE_STATES`; the ids
        queued, in id order. All in one write: all of them, or none (`JournalUnavailable`). An id that is
        unknown, or whose event is now queued, paused or running, is left as it is."""
        ...

    # --- pausing an endpoint (the console's operator) ------------------------------------------

    async def pause(self, endpoint: str, *, now: float) -> int:
        """Hold `endpoint`'s events until `resume`; how many waiting events it holds now.

        Durable on return, and kept across restarts. While paused: its queued events and its failed
        ones waiting for a retry are `paused`, and so is every event of it that would be queued later
        (a new delivery, a redelivery's requeue, a replay); deliveries are still recorded as usual.
        No claim takes an event of a paused endpoint, whatever its state (`claim_due` gives it no room,
        `claim` and `claim_next` refuse it). An attempt already running ends as it would; should it
        fail, its retry waits for the resume. Pausing a paused endpoint keeps its first pause time.

        Raises:
            JournalUnavailable: the pause could not be made durable; the endpoint is not paused.
        """
        ...

    async def resume(self, endpoint: str) -> int:
        """Queue `endpoint`'s paused events again and let claims take them; how many. Durable on return.

        They run in their order keys' order (an order key belongs to one endpoint), as claims allow.
        Resuming an endpoint that is not paused changes nothing (0).
        """
        ...

    async def paused(self) -> dict[str, float]:
        """The paused endpoints and when each was paused. Cheap: every scan of the worker may ask."""
        ...

    async def stats(self, *, since: float) -> JournalStats:
        """Counts by state and endpoint and acknowledgement and handler times of the events received since `since`."""
        ...

    async def snapshot(self, *, since: float) -> JournalSnapshot:
        """Every event held now, counted by endpoint and state, with the oldest one's arrival and how many
        arrived since `since`; and the journal's size. What `/metrics` and the alert checks read.

        Cheap: one grouped read, asked at every scrape. It sees every write made before the call.

        Raises:
            JournalUnavailable: the journal cannot be read (an alert of its own).
        """
        ...

    async def damage(self) -> list[JournalDamage]:
        """The acknowledged events this journal found missing when it opened, until an operator dismisses them.

        An acknowledgement promises the event is kept; a journal that finds it broke that promise
        (its file emptied, replaced by an older copy, its write-ahead log lost after a crash) says so
        here, for the landing page and the console, and keeps saying so across restarts until
        `dismiss_damage`. The ids it lost are never handed out again. A backend that cannot lose
        acknowledged events returns []. Cheap: answered from what the journal keeps in memory.
        """
        ...

    async def dismiss_damage(self) -> int:
        """The operator has dealt with the reported losses: stop reporting them; how many reports were dismissed.

        A loss dismissed is not reported again, not even by a restart before the next delivery.

        Raises:
            JournalUnavailable: the dismissal could not be kept; the reports stay.
        """
        ...

    async def close(self) -> None:
        """Make every write durable if it can, then let go of storage. No call may follow.

        A coroutine: a network backend closes its connections by awaiting them.
        """
        ...
