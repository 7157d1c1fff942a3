"""The worker: runs recorded events through their handlers, outside of any request.

One loop claims due events from the journal (at most `concurrency` at once, one at a time per
repository, in arrival order) and runs each in a task that goes on with its repository's next
events while they wait (`_run_lane`), writing each outcome back. A handler never starts before its
delivery is committed. A handler that raises or overruns its time limit never reaches the Hub as
an error: its event is retried with backoff, then left dead for an operator to replay. A request
that wants to answer with the handler's result waits on `outcome()` for a short budget; the
outcome is handed over once it is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

from fastapi.encoders import jsonable_encoder
from starlette.responses import Response

from ..core.errors import EndpointGone, HandlerRefused, JournalUnavailable
from ..core.logs import current_event_id
from ..core.payload import WebhookPayload
from ..core.registry import Endpoint
from ..core.settings import Settings
from ..hub.client import CommitLedger, using_ledger
from ..hub.loop_guard import loop_guard_rejection
from ..journal import EventRecord, EventState, Journal, retry_delay
from .invoke import call_handler

logger = logging.getLogger(__name__)

MAX_WAITING_IN_MEMORY = 10_000
"""Queued events whose parsed payload is kept; past that, they are read back from the journal."""
LANE_SLICE_SECONDS = 0.005
"""How long one repository's events may run back to back before the loop serves others."""
IDLE_POLL_SECONDS = 30.0
"""How often an idle worker looks at the journal anyway (another process may have written it)."""


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended, for a request waiting to answer."""

    event: EventRecord
    response: Response | None = None
    """What the handler returned, when it returned a Starlette response itself."""


OutcomeFuture = asyncio.Future[Outcome | None]
"""What a waiting request holds: resolved with the outcome, or with None when it stopped waiting."""


def _storable(result: Any) -> tuple[Any, Response | None]:
    """Make a handler's return value storable as JSON (and keep a Response to send as-is)."""
    if isinstance(result, Response):
        body = bytes(result.body) if hasattr(result, "body") else b""
        return {"status_code": result.status_code, "body": body.decode("utf-8", "replace")}, result
    if _is_json(result):  # the usual case, a dict of strings and numbers: nothing to convert
        return result, None
    try:
        converted = jsonable_encoder(result)
    except Exception:
        return repr(result), None
    return (converted, None) if _is_json(converted) else (repr(result), None)


_FLAT = frozenset({str, int, bool, type(None)})


def _is_json(value: Any) -> bool:
    """Whether `value` is already what a JSON answer can carry (no NaN: a JSON response refuses it)."""
    if type(value) is dict and all(type(key) is str and type(item) in _FLAT for key, item in value.items()):
        return True  # the usual `{"status": "ok", ...}`, recognised without encoding it
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _resolve(waiters: list[OutcomeFuture], outcome: Outcome) -> None:
    for future in waiters:
        if not future.done():
            future.set_result(outcome)


class ThreadPerCall(Executor):
    """Runs each plain `def` handler on a thread of its own.

    Python cannot stop a thread, so a handler past its timeout keeps running. In a fixed pool of
    `concurrency` threads, a few stuck handlers would hold every thread and the events behind them
    would time out without ever starting, until every event was dead. Here a stuck handler only
    keeps its own thread; how many attempts run at once is the worker's bound, not the pool's.
    Threads are daemons: a handler still running at shutdown is interrupted like any other, and its
    event resumes at the next start.
    """

    def __init__(self) -> None:
        self._numbers = itertools.count(1)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)

        threading.Thread(target=run, name=f"handler-{next(self._numbers)}", daemon=True).start()
        return future


class Worker:
    """Runs events from `journal` through `endpoints`; start it once the event loop runs."""

    def __init__(
        self,
        journal: Journal,
        endpoints: Mapping[str, Endpoint],
        settings: Settings,
        *,
        ledger: CommitLedger | None = None,
    ) -> None:
        self.journal = journal
        self.endpoints = endpoints
        self.settings = settings
        self.ledger = ledger
        """The commits this Space made: the loop guard asks it right before a `repo.content` event runs,
        and handlers' `hub_client()` records into it (see `lib/hub/loop_guard.py`)."""
        self.executor = ThreadPerCall()
        self._wake = asyncio.Event()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._reserved = 0
        """Slots promised to requests that may start their event themselves (see `reserve`)."""
        self._waiters: dict[int, list[OutcomeFuture]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._waiting: dict[int, tuple[EventRecord, WebhookPayload]] = {}
        self._waiting_lanes: Counter[str | None] = Counter()
        """How many of `_waiting` each order key has: which repositories have events in memory."""
        """Events this process queued, with their parsed payload, until a claim takes them."""
        self._running_keys: Counter[str | None] = Counter()
        self._scan_needed = True
        """Whether the journal may hold claimable events that no lane hand-over will reach."""
        self._capacity_bound = True
        """The last scan filled every free slot, so events may still wait for one."""

    async def start(self) -> None:
        interrupted = await self.journal.recover_interrupted()
        waiting = (await self.journal.stats(since=0.0)).by_state
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
        self._loop_task = asyncio.create_task(self._run(), name="webhook-worker")

    async def stop(self) -> None:
        """Stop claiming; running handlers are cancelled and their events resume on next start."""
        if self._loop_task is not None:
            self._loop_task.cancel()
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        self.executor.shutdown(wait=False, cancel_futures=True)

    def notify(self) -> None:
        """Something changed in the journal (a replay, a requeue): look at it now, not at the next timer."""
        self._scan_needed = True
        self._wake.set()

    def queued(self, event: EventRecord, payload: WebhookPayload) -> None:
        """The request path queued `event` behind its repository's others: keep its payload for later."""
        if len(self._waiting) < MAX_WAITING_IN_MEMORY:
            self._waiting[event.id] = (event, payload)
            self._waiting_lanes[event.order_key] += 1
        if event.order_key is None or event.order_key not in self._running_keys:
            self.notify()

    def reserve(self, order_key: str | None) -> bool:
        """Hold a slot for a request about to record an event, so it can start the event at once.

        The common case, an event whose repository has nothing pending, then skips the round
        trip through the queue. The request must hand the slot back with `start_now` or `release`.
        No slot when this process already runs or holds an event of the same repository: the new
        one waits its turn anyway, and the journal is spared asking.
        """
        if len(self._running) + self._reserved >= self.settings.concurrency:
            return False
        if order_key is not None and (order_key in self._running_keys or order_key in self._waiting_lanes):
            return False
        self._reserved += 1
        return True

    def release(self) -> None:
        """Give back a reserved slot the request did not use (its event was queued or a duplicate)."""
        self._reserved -= 1

    def start_now(self, event: EventRecord, payload: WebhookPayload) -> None:
        """Run an event the journal recorded as already running, in a slot from `reserve`."""
        self._reserved -= 1
        self._start(event, payload)

    def _start(self, event: EventRecord, payload: WebhookPayload | None) -> None:
        self._running_keys[event.order_key] += 1
        self._running[event.id] = asyncio.create_task(self._run_lane(event, payload), name=f"event-{event.id}")

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
        event = await self.journal.get(event_id)
        if event is None:
            return None
        if event.state != EventState.RUNNING:  # claimed, the claim not written yet (`claim_next`)
            event = event.evolve(state=EventState.RUNNING, attempts=event.attempts + 1)
        return event, None

    def outcome(self, event_id: int) -> OutcomeFuture:
        """A future resolved when the event's current attempt ends (success or failure)."""
        future: OutcomeFuture = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(event_id, []).append(future)
        return future

    def discard(self, event_id: int) -> None:
        """The delivery of a queued event could not be committed (503): it no longer exists."""
        self._take_waiting(event_id)

    def _take_waiting(self, event_id: int) -> tuple[EventRecord, WebhookPayload] | None:
        cached = self._waiting.pop(event_id, None)
        if cached is not None:
            order_key = cached[0].order_key
            self._waiting_lanes[order_key] -= 1
            if self._waiting_lanes[order_key] <= 0:
                del self._waiting_lanes[order_key]
        return cached

    def forget(self, event_id: int, future: OutcomeFuture) -> None:
        """The request stopped waiting (budget spent): drop its future."""
        waiters = self._waiters.get(event_id, [])
        if future in waiters:
            waiters.remove(future)
        if not waiters:
            self._waiters.pop(event_id, None)

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
        free = self.settings.concurrency - len(self._running) - self._reserved
        claimed = await self.journal.claim_due(now=time.time(), limit=free)
        for event in claimed:
            await self._start_claimed(event.id, event)
        # Every slot filled: more may be waiting, so the next free slot must scan again.
        self._capacity_bound = len(claimed) >= free

    async def _hand_over(self, finished: EventRecord) -> tuple[EventRecord, WebhookPayload | None] | None:
        """After an attempt: claim the next event of the same repository, and scan only if needed."""
        following = None
        if finished.order_key is not None and len(self._running) + self._reserved < self.settings.concurrency:
            next_id = await self.journal.claim_next(finished.order_key, now=time.time())
            if next_id is not None:
                following = await self._claimed(next_id)
        if (
            self._capacity_bound
            or finished.state != EventState.SUCCEEDED
            or any(key is None or key not in self._running_keys for key in self._waiting_lanes)  # idle lanes wait
        ):
            self.notify()
        return following

    async def _run_lane(self, event: EventRecord, payload: WebhookPayload | None) -> None:
        """Run an event, then the next ones of its repository in the same task while they wait.

        A burst for one repository then runs in one turn of the event loop when its handlers do
        not wait on anything, so the answers go out together and the deliveries that follow are
        committed together, instead of one event, one answer and one commit per turn.
        """
        task = asyncio.current_task()
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
            self._running_keys[event.order_key] += 1
            self._running[event.id] = task  # type: ignore[assignment]
            if time.monotonic() > slice_ends:  # let requests and other repositories have the loop
                await asyncio.sleep(0)
                slice_ends = time.monotonic() + LANE_SLICE_SECONDS

    async def _seconds_until_next_due(self) -> float:
        due = await self.journal.next_due_at()
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
        try:
            if not self.journal.is_committed(event.id):  # recorded in this turn: wait for its commit
                with contextlib.suppress(JournalUnavailable):
                    await self.journal.durable()
                if not self.journal.is_committed(event.id):
                    logger.info("Not run: its delivery could not be recorded (answered 503; the Hub retries).")
                    self._resolve_waiters(Outcome(event))  # the waiting request answers 503 now
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
                    with using_ledger(self.ledger):  # `hub_client()` in the handler records our commits there
                        result = await call_handler(
                            endpoint.handler, endpoint.arguments, event, executor=self.executor, payload=payload
                        )
                stored, response = _storable(result)
                if response is not None and not 200 <= response.status_code < 300:
                    raise HandlerRefused(f"the handler returned an HTTP {response.status_code} response")
                elapsed = (time.perf_counter() - started) * 1000
                finished = await self.journal.finish(event, result=stored, handler_ms=elapsed)
                logger.debug("Handled by %s in %.1f ms (attempt %d).", event.endpoint, elapsed, event.attempts)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            elapsed = (time.perf_counter() - started) * 1000
            if isinstance(exc, TimeoutError):
                error = f"The handler did not finish within {self.settings.handler_timeout_seconds:g} s."
            else:
                error = "".join(traceback.format_exception(exc)).strip()
            try:
                finished = await self._record_failure(event, error, elapsed)
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
            self._running.pop(event.id, None)
            self._running_keys[event.order_key] -= 1
            if self._running_keys[event.order_key] <= 0:
                del self._running_keys[event.order_key]
            current_event_id.reset(token)
        return Outcome(finished, response)

    def _resolve_waiters(self, outcome: Outcome) -> None:
        """Hand the outcome to the requests waiting for it, once it is committed (they report it)."""
        waiters = self._waiters.pop(outcome.event.id, None)
        if waiters:
            self.journal.after_commit(lambda: _resolve(waiters, outcome))

    def _loop_guard(self, event: EventRecord, payload: WebhookPayload | None) -> str | None:
        """Why an event caused by our own commits must not run, or None.

        Asked right before the handler would run, not at arrival: a commit of ours can come back
        before the handler that made it has recorded it as ours, and the echo runs after that
        handler (same repository), by which time the commit is known.
        """
        if self.ledger is None or not event.scope.startswith("repo.content"):  # only commits come back
            return None
        return loop_guard_rejection(payload or WebhookPayload.model_validate_json(event.body), self.ledger)

    async def _record_failure(self, event: EventRecord, error: str, elapsed_ms: float) -> EventRecord:
        retry_at = None
        if event.attempts < event.max_attempts:
            delay = retry_delay(
                event.attempts,
                base_seconds=self.settings.retry_base_seconds,
                max_seconds=self.settings.retry_max_seconds,
            )
            retry_at = time.time() + delay
            logger.warning(
                "Attempt %d/%d failed; retrying in %.0f s:\n%s",
                event.attempts,
                event.max_attempts,
                delay,
                error,
            )
        else:
            logger.error(
                "Attempt %d/%d failed; the event is dead (replay it from the console):\n%s",
                event.attempts,
                event.max_attempts,
                error,
            )
        return await self.journal.fail(event, error=error, handler_ms=elapsed_ms, retry_at=retry_at)
