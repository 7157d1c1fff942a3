"""The worker: runs recorded events through their handlers, outside of any request.

The receiver hands it each committed delivery with one call, `dispatch`, and gets back a future
for the outcome, which it waits on for a short budget; the outcome is handed over once it is
committed. Events run at most `concurrency` at once, one at a time per repository, in arrival
order: each runs in a task that goes on with its repository's next events while they wait
(`_run_lane`). Each endpoint may hold at most its share of them, counting the threads its handlers
left running past their timeout (`bulkhead.py`), so an endpoint whose handlers hang delays only
its own events. A loop claims what no lane reaches (retries that fall due, replays, events another
process recorded). A handler never starts before its delivery is committed. A handler that raises
or overruns its time limit never reaches the Hub as an error: its event is retried with backoff,
then left dead for an operator to replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping

from starlette.responses import Response

from ..core.errors import EndpointGone, JournalUnavailable
from ..core.jobs import JobNotLaunched
from ..core.logs import current_event_id
from ..core.payload import WebhookPayload
from ..core.registry import Endpoint
from ..core.settings import Settings
from ..hub.client import CommitLedger, using_ledger
from ..hub.loop_guard import loop_guard_rejection
from ..journal import EventRecord, EventState, Journal, Recorded
from . import outcome as outcomes
from .bulkhead import EndpointLoad
from .invoke import call_handler
from .job_follower import JobFollower
from .job_report import WithReports
from .launch import Launcher, finish_attempt
from .outcome import Outcome, OutcomeFuture, add_waiter, record_failure, refuse_non_2xx, resolve, storable
from .threads import ThreadPerCall
from .throttle import Throttle

logger = logging.getLogger(__name__)

MAX_WAITING_IN_MEMORY = 10_000
"""Queued events whose parsed payload is kept; past that, they are read back from the journal."""
LANE_SLICE_SECONDS = 0.005
"""How long one repository's events may run back to back before the loop serves others."""
IDLE_POLL_SECONDS = 30.0
"""How often an idle worker looks at the journal anyway (another process may have written it)."""


class Worker:
    """Runs events from `journal` through `endpoints`; start it once the event loop runs."""

    def __init__(
        self,
        journal: Journal,
        endpoints: Mapping[str, Endpoint],
        settings: Settings,
        *,
        ledger: CommitLedger | None = None,
        on_attempt: Callable[[EventRecord], None] | None = None,
    ) -> None:
        self.journal = journal
        self.on_attempt = on_attempt  # told how each attempt ended (metrics, alerts): it notes it, never raises
        self.endpoints = WithReports(endpoints)  # and each `on_job_end`'s report endpoint (`job_report.py`)
        self.settings = settings
        self.ledger = ledger
        """The commits this Space made: the loop guard asks it right before a `repo.content` event runs,
        and handlers' `hub_client()` records into it (see `lib/hub/loop_guard.py`)."""
        self.executor = ThreadPerCall()
        self.bulkhead = Throttle(settings.endpoint_share, endpoints)
        """Each endpoint's share of the slots, the threads its timed-out handlers left running, its RATE_LIMIT."""
        self.launcher = Launcher(journal, settings)
        self.jobs = JobFollower(journal, self.endpoints, settings, notify=self.notify)
        """Follows the Hub Jobs handlers launched (`launch.py`), from the journal: after a restart too."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._waiters: dict[int, list[OutcomeFuture]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._waiting: dict[int, tuple[EventRecord, WebhookPayload | None]] = {}
        """Events dispatched here that wait their turn, with their parsed payload, until a claim takes them."""
        self._waiting_lanes: Counter[str | None] = Counter()
        """How many of `_waiting` each order key has: which repositories have events in memory."""
        self._running_keys: Counter[str | None] = Counter()
        self._scan_needed = True
        """Whether the journal may hold claimable events that no lane hand-over will reach."""
        self._capacity_bound = True
        """The last scan filled every free slot, so events may still wait for one."""

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            interrupted = await self.journal.recover_interrupted()
            waiting = (await self.journal.stats(since=0.0)).by_state
            for path in await self.journal.paused():  # said at every start: a forgotten pause looks like an outage
                logger.warning("%s is paused: its events wait until it is resumed from the console.", path)
        except JournalUnavailable as exc:  # a full disk: the app starts anyway, and answers 503 until there is room
            logger.error("Cannot resume the events in the journal yet: %s", exc.message)
            interrupted, waiting = 0, {}  # the journal makes the recovery before anything else it writes
        queued, retrying = waiting.get("queued", 0), waiting.get("failed", 0)  # queued includes the interrupted
        if queued or retrying:
            logger.warning(
                "Resuming %d event(s) from the journal: %d interrupted when the app stopped, %d queued, "
                "%d waiting to retry.",
                queued + retrying,
                interrupted,
                queued - interrupted,
                retrying,
            )
        self.journal.watch(self.notify)  # another replica queued work: look now, not at the next poll
        self.journal.watch_ended(lambda event_id: outcomes.answer_from_journal(self.journal, self._waiters, event_id))
        self._loop_task = asyncio.create_task(self._run(), name="webhook-worker")
        self.jobs.start()

    async def stop(self) -> None:
        """Stop claiming; running handlers are cancelled and their events resume on next start."""
        self._stopping = True
        await self.jobs.stop()
        tasks = list(self._running.values())
        if self._loop_task is not None:
            tasks.append(self._loop_task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.executor.shutdown(wait=False, cancel_futures=True)

    def load(self) -> dict[str, EndpointLoad]:
        """What each endpoint holds now: attempts running, threads stuck past their timeout, its share.

        Every registered endpoint, and any other still holding a thread (its handler was removed).
        """
        return {path: self.bulkhead.load(path) for path in dict.fromkeys([*self.endpoints, *self.bulkhead.busy()])}

    def notify(self) -> None:
        """Something changed in the journal (a replay, a requeue): look at it now, not at the next timer."""
        self._scan_needed = True
        self._wake.set()
        self.jobs.wake(only_if_following=True)  # a new event of a repository may supersede its job

    def dispatch(self, recorded: Recorded, payload: WebhookPayload | None) -> OutcomeFuture | None:
        """Take a delivery the journal just recorded and run what it asks for; the one way in.

        A new event is held here with its parsed payload, for whichever claim takes it: its
        repository's lane when the event before it ends, or `_admit` once its delivery's commit has
        ended, which starts it at once if its repository runs nothing here and a slot is free (the
        journal still refuses the claim if another process holds the repository). A redelivery of
        a failure puts the original back in the queue, which the worker scans once that is committed.

        Returns:
            A future resolved with the outcome of the attempt that runs for this delivery (or with
            None by whoever stops waiting first); None when nothing runs (skipped, duplicate).
        """
        if recorded.outcome in ("skipped", "duplicate") or recorded.runs.state == EventState.PAUSED:
            return None  # a paused endpoint's event runs once it is resumed (a scan claims it)
        event = recorded.runs
        future: OutcomeFuture = asyncio.get_running_loop().create_future()
        add_waiter(self._waiters, event.id, future)  # before anything can run it
        if recorded.outcome == "requeued":
            # Not before the requeue is on disk: a scan would claim it from the open group, and a handler
            # that kills the process would then run again and again, uncounted, at each of the Hub's retries.
            self.journal.after_commit(lambda: self._requeued(recorded, future))
        else:
            held = self._hold(event, payload)
            self.journal.after_commit(lambda: self._admit(event, held))
        return future

    def _admit(self, event: EventRecord, held: bool) -> None:
        """A dispatched event, once its delivery's commit ended: start it now, leave it waiting, or drop it."""
        if not self.journal.is_committed(event.id):  # lost with its group: the request answers 503
            self._take_waiting(event.id)
            resolve(self._waiters.pop(event.id, []), None)
            return
        if not held:  # too many waiting to keep its payload: a scan will claim it from the journal
            self.notify()
            return
        if event.id not in self._waiting:
            return  # claimed meanwhile: its lane hands the outcome over
        if event.order_key is not None and event.order_key in self._running_keys:
            return  # its repository's lane here hands it over when the event before it ends
        if len(self._running) < self.settings.concurrency and self.bulkhead.has_room(event.endpoint):
            _, payload = self._take_waiting(event.id)  # type: ignore[misc]
            self.bulkhead.started(event.endpoint, time.time())  # counted now: its claim comes later (`_claim`)
            self._start(event, payload, claimed=False)
        else:
            self.notify()  # the next free slot (of the pool, or of its endpoint's share) scans

    def _requeued(self, recorded: Recorded, future: OutcomeFuture) -> None:
        """A redelivery's requeue, once its commit ended: scan for it, or stop waiting if it was lost (503)."""
        if self.journal.is_committed(recorded.event.id):
            self.notify()
            return
        waiters = self._waiters.get(recorded.runs.id, [])
        if future in waiters:
            waiters.remove(future)
            if not waiters:
                del self._waiters[recorded.runs.id]
        if not future.done():
            future.set_result(None)

    def _hold(self, event: EventRecord, payload: WebhookPayload | None) -> bool:
        """Keep a waiting event's parsed payload for the claim that takes it; False past the memory bound."""
        if len(self._waiting) >= MAX_WAITING_IN_MEMORY:
            return False
        self._waiting[event.id] = (event, payload)
        self._waiting_lanes[event.order_key] += 1
        return True

    def _start(self, event: EventRecord, payload: WebhookPayload | None, *, claimed: bool = True) -> None:
        """Run `event` in a lane task of its own: claimed by a scan, or (`claimed=False`) to claim first."""
        self._occupy(
            event, asyncio.create_task(self._run_lane(event, payload, claimed=claimed), name=f"event-{event.id}")
        )

    def _occupy(self, event: EventRecord, task: asyncio.Task[None]) -> None:
        """`event` runs in `task`: it holds a slot, its repository and a place in its endpoint's share."""
        self._running_keys[event.order_key] += 1
        self._running[event.id] = task
        self.bulkhead.enter(event.endpoint)

    async def _start_claimed(self, event_id: int, claimed: EventRecord | None = None) -> None:
        """Start an event a claim just marked running."""
        started = await self._claimed(event_id, claimed)
        if started is not None:
            self._start(*started)

    async def _claimed(
        self, event_id: int, claimed: EventRecord | None = None
    ) -> tuple[EventRecord, WebhookPayload | None] | None:
        """An event a claim just marked running, from memory when this process queued it."""
        cached = self._take_waiting(event_id)
        if cached is not None:
            event, payload = cached
            return event.evolve(state=EventState.RUNNING, attempts=event.attempts + 1), payload
        if claimed is not None:
            return claimed, None
        event = await self.journal.get(event_id)  # claimed: every later read sees it running
        return (event, None) if event is not None else None

    def _take_waiting(self, event_id: int) -> tuple[EventRecord, WebhookPayload | None] | None:
        cached = self._waiting.pop(event_id, None)
        if cached is not None:
            order_key = cached[0].order_key
            self._waiting_lanes[order_key] -= 1
            if self._waiting_lanes[order_key] <= 0:
                del self._waiting_lanes[order_key]
        return cached

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                if self._scan_needed:
                    self._scan_needed = False
                    await self._claim_and_start()
                timeout = await self._seconds_until_next_due()
            except JournalUnavailable as exc:
                logger.error("The worker cannot use the journal (%s); trying again in 5 s.", exc.message)
                timeout = 5.0
            except Exception:  # a bug here must not silently stop all processing
                logger.exception("The worker loop failed; trying again in 5 s.")
                timeout = 5.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _claim_and_start(self) -> None:
        free = self.settings.concurrency - len(self._running)
        room = self.bulkhead.room(self.endpoints)
        claimed = await self.journal.claim_due(now=(now := time.time()), limit=free, per_endpoint=room)
        for event in claimed:  # each takes its slot now; its lane waits for the claim's commit (`_run_lane`)
            self.bulkhead.started(event.endpoint, now)
            await self._start_claimed(event.id, event)
        # Every slot filled: more may be waiting, so the next free slot must scan again. (An endpoint
        # at its share scans again when it makes room: see `_release`.)
        self._capacity_bound = len(claimed) >= free

    async def _hand_over(self, finished: EventRecord) -> tuple[EventRecord, WebhookPayload | None] | None:
        """After an attempt: claim the next event of the same repository, and scan only if needed."""
        following = None
        if (
            finished.order_key is not None
            and len(self._running) < self.settings.concurrency
            and self.bulkhead.has_room(finished.endpoint)  # not if its handler left a thread stuck in its place
        ):
            next_id = await self.journal.claim_next(finished.order_key, now=(now := time.time()))
            if next_id is not None:
                self.bulkhead.started(finished.endpoint, now)
                following = await self._claimed(next_id)
        if (
            self._capacity_bound
            or finished.state != EventState.SUCCEEDED
            or self.bulkhead.throttled  # an endpoint at its rate limit: the loop must sleep until it has room
            or any(key is None or key not in self._running_keys for key in self._waiting_lanes)  # idle lanes wait
        ):
            self.notify()
        return following

    async def _run_lane(self, event: EventRecord, payload: WebhookPayload | None, *, claimed: bool = True) -> None:
        """Run an event, then the next ones of its repository in the same task while they wait.

        A burst for one repository then runs in one turn of the event loop when its handlers do
        not wait on anything, so the answers go out together and the deliveries that follow are
        committed together, instead of one event, one answer and one commit per turn.
        """
        task = asyncio.current_task()
        if not claimed:
            taken = await self._claim(event, payload)
            if taken is None:
                return
            event = taken
        else:
            # A scan's claim: on disk before the handler starts, and with it what queued the event (a
            # replay, a redelivery's requeue) if that was still in the open group. The claims of one scan
            # share the commit. If it fails, the claim is written again with the next one, and the starts
            # file still counts the attempt.
            with contextlib.suppress(JournalUnavailable):
                await self.journal.durable()
        slice_ends = time.monotonic() + LANE_SLICE_SECONDS
        while True:
            outcome = await self._attempt(event, payload)
            if outcome is None:
                return
            try:
                following = await self._hand_over(outcome.event)
            except JournalUnavailable as exc:
                logger.error("Could not start the next event (%s); the worker will retry.", exc.message)
                self.notify()
                following = None
            self._resolve_waiters(outcome)
            if following is None:
                return
            event, payload = following
            self._occupy(event, task)  # type: ignore[arg-type]
            if time.monotonic() > slice_ends:  # let requests and other repositories have the loop
                await asyncio.sleep(0)
                slice_ends = time.monotonic() + LANE_SLICE_SECONDS

    async def _claim(self, event: EventRecord, payload: WebhookPayload | None) -> EventRecord | None:
        """Claim a dispatched event in the journal: the event as it runs now, or None if it must wait.

        The journal refuses when the repository is busy (here, or in another process, which then runs
        it in turn) or the event was claimed already.
        """
        try:
            taken = await self.journal.claim(event.id, now=(now := time.time()))
        except JournalUnavailable as exc:
            logger.error("Could not start event %d (%s); the worker will retry.", event.id, exc.message)
            taken = False
        if taken:
            self.bulkhead.claimed(event.endpoint, now)  # its rate limit counts it from its claim time
            # On disk before the handler starts, as a claim made with its delivery would be: whoever
            # reads the journal (the console, a restart) sees it running. If the commit fails, the claim
            # is written again with the next one, and the starts file still counts the attempt.
            with contextlib.suppress(JournalUnavailable):
                await self.journal.durable()
            return event.evolve(state=EventState.RUNNING, attempts=event.attempts + 1)
        self._release(event)
        try:
            elsewhere = await self.journal.runs_elsewhere(event.order_key)
        except JournalUnavailable:
            elsewhere = False
        if elsewhere:  # that process's lane takes it next, and its outcome comes back here (`watch_ended`)
            return None
        if payload is not None:
            self._hold(event, payload)
        if event.order_key is None or event.order_key not in self._running_keys:
            self.notify()  # nothing here will hand it over: a scan must look
        return None

    def _release(self, event: EventRecord, *, stuck: int = 0) -> None:
        """The event no longer runs in this process: its slot and its repository are free again, and its
        place in its endpoint's share unless its handler left `stuck` threads running."""
        self._running.pop(event.id, None)
        self._running_keys[event.order_key] -= 1
        if self._running_keys[event.order_key] <= 0:
            del self._running_keys[event.order_key]
        if self.bulkhead.leave(event.endpoint, stuck=stuck):
            self.notify()  # its endpoint had no room: events of it may wait in the journal
        if stuck and not self._stopping:
            self.bulkhead.report_stuck(event.endpoint, timeout=self.settings.handler_timeout_seconds)

    def _stuck_thread_ended(self, endpoint: str) -> None:
        """Called from a stuck handler's thread as it ends: hand it to the loop."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the app is stopping
                loop.call_soon_threadsafe(self._free_stuck_place, endpoint)

    def _free_stuck_place(self, endpoint: str) -> None:
        self.bulkhead.thread_ended(endpoint)
        self.notify()

    async def _seconds_until_next_due(self) -> float:
        due = min(filter(None, (await self.journal.next_due_at(), self.bulkhead.next_room_at())), default=None)
        if due is None:
            self._scan_needed = True  # the idle poll also looks for work other processes recorded
            return IDLE_POLL_SECONDS
        delay = max(0.0, due - time.time())
        if delay == 0.0:
            self._scan_needed = True
        return min(IDLE_POLL_SECONDS, delay)

    async def _attempt(self, event: EventRecord, payload: WebhookPayload | None = None) -> Outcome | None:
        """Run one attempt and record how it ended.

        None when there is no outcome to hand on: the delivery was never committed (its request
        answers 503), or how the attempt ended could not be recorded either.
        """
        token = current_event_id.set(event.id)
        started = time.perf_counter()
        response: Response | None = None
        threads = self.executor.for_attempt(event.id)  # never alongside a previous attempt still running
        try:
            if not self.journal.is_committed(event.id):  # claimed by a scan in the turn it was recorded
                with contextlib.suppress(JournalUnavailable):
                    await self.journal.durable()
                if not self.journal.is_committed(event.id):  # a scan claimed it from a group since lost
                    logger.info("Not run: its delivery could not be recorded (answered 503; the Hub retries).")
                    self.notify()
                    return None
            # Noted before the handler runs, even if its claim is not committed yet: a handler that
            # kills the process then uses up its attempts and ends dead, instead of crashing every restart.
            self.journal.attempt_started(event.id, event.attempts)
            endpoint = self.endpoints.get(event.endpoint)
            if endpoint is None:
                raise EndpointGone(f"no handler is registered for {event.endpoint} any more")
            reason = self._loop_guard(event, payload)
            if reason is not None:
                finished = await self.journal.skip(event, reason=reason)
                logger.info("Skipped before running: %s.", reason)
            else:
                # A timeout scope rather than `wait_for`, which on Python 3.11 wraps the handler in a
                # task of its own: two more turns of the event loop for every event.
                async with asyncio.timeout(self.settings.handler_timeout_seconds):
                    # `hub_client()` in the handler records our commits in the ledger; `run_uv_job` launches here
                    with using_ledger(self.ledger), self.launcher.context(event, endpoint) as launch:
                        result = await call_handler(
                            endpoint.handler, endpoint.arguments, event, executor=threads, payload=payload
                        )
                stored, response = storable(result)
                refuse_non_2xx(response)
                elapsed = (time.perf_counter() - started) * 1000
                finished = await finish_attempt(self.journal, event, launch, stored, elapsed, then=self.jobs.wake)
                logger.debug("Handled by %s in %.1f ms (attempt %d).", event.endpoint, elapsed, event.attempts)
        except asyncio.CancelledError:
            raise
        except JobNotLaunched as exc:  # over the endpoint's daily cap: nothing went wrong, nothing to retry
            finished = await self.journal.skip(event, reason=exc.message)
        except Exception as exc:
            elapsed = (time.perf_counter() - started) * 1000
            if isinstance(exc, TimeoutError):
                error = f"The handler did not finish within {self.settings.handler_timeout_seconds:g} s."
            else:
                error = "".join(traceback.format_exception(exc)).strip()
            try:
                finished = await record_failure(self.journal, self.settings, event, error, elapsed)
            except JournalUnavailable as journal_error:
                # Not even the failure can be written: the event stays `running`, which the next start
                # turns back into `queued` (at-least-once). Waiting requests answer 202 when their budget ends.
                logger.error(
                    "Could not record how attempt %d ended (%s); the event will run again after a restart.",
                    event.attempts,
                    journal_error.message,
                )
                return None
            response = None
        finally:
            path = event.endpoint
            self._release(event, stuck=threads.leave(lambda: self._stuck_thread_ended(path)))
            current_event_id.reset(token)
        if self.on_attempt is not None:
            self.on_attempt(finished)
        return Outcome(finished, response)

    def _resolve_waiters(self, outcome: Outcome) -> None:
        """Hand the outcome to the requests waiting for it, once it is committed (they report it)."""
        waiters = self._waiters.pop(outcome.event.id, None)
        if waiters:
            self.journal.after_commit(lambda: resolve(waiters, outcome))

    def _loop_guard(self, event: EventRecord, payload: WebhookPayload | None) -> str | None:
        """Why an event caused by our own commits must not run, or None.

        Asked right before the handler would run, not at arrival: a commit of ours can come back
        before the handler that made it has recorded it as ours, and the echo runs after that
        handler (same repository), by which time the commit is known.
        """
        if self.ledger is None or not event.scope.startswith("repo.content"):  # only commits come back
            return None
        return loop_guard_rejection(payload or WebhookPayload.model_validate_json(event.body), self.ledger)
