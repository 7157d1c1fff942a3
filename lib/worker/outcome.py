"""What an attempt ends with, for the request that waits to answer with it, and how a failed one is recorded.

A handler's return value becomes the answer's JSON and the journal's stored result, so it must be
something JSON carries: `storable` converts it once, and keeps a Starlette `Response` the handler
made itself, to be sent as it is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from fastapi.encoders import jsonable_encoder
from starlette.responses import Response

from ..core.errors import HandlerRefused, JournalUnavailable
from ..core.settings import Settings
from ..journal import EventRecord, Journal, retry_delay

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended, for a request waiting to answer."""

    event: EventRecord
    response: Response | None = None
    """What the handler returned, when it returned a Starlette response itself."""


OutcomeFuture = asyncio.Future[Outcome | None]
"""What a waiting request holds: resolved with the outcome, or with None when it stopped waiting."""


def storable(result: Any) -> tuple[Any, Response | None]:
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


def refuse_non_2xx(response: Response | None) -> None:
    """A handler that returns a non-2xx `Response` says it failed: raise, so the attempt counts as failed.

    Raises:
        HandlerRefused: `response` has a status outside 200-299.
    """
    if response is not None and not 200 <= response.status_code < 300:
        raise HandlerRefused(f"the handler returned an HTTP {response.status_code} response")


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


def resolve(waiters: list[OutcomeFuture], outcome: Outcome | None) -> None:
    """Hand `outcome` (None: nothing to report, stop waiting) to the waiters that still wait."""
    for future in waiters:
        if not future.done():
            future.set_result(outcome)


_ANSWERING: set[asyncio.Task[None]] = set()


def answer_from_journal(journal: Journal, waiters: dict[int, list[OutcomeFuture]], event_id: int) -> None:
    """Hand the outcome of an attempt another process ran to the requests waiting for it here, read back
    from the journal (a handler's own `Response` is then its stored form, as a replay shows it)."""
    if not waiters.get(event_id):
        return

    async def answer() -> None:
        try:
            event = await journal.get(event_id)
        except JournalUnavailable:
            return  # the request answers 202 when its budget ends
        if event is not None:
            resolve(waiters.pop(event_id, []), Outcome(event))

    task = asyncio.get_running_loop().create_task(answer(), name=f"answer-{event_id}")
    _ANSWERING.add(task)
    task.add_done_callback(_ANSWERING.discard)


def add_waiter(waiters: dict[int, list[OutcomeFuture]], event_id: int, future: OutcomeFuture) -> None:
    """Add `future` to the waiters of `event_id`, and drop it from there once resolved, by whoever resolves it.

    With a journal shared by several replicas, an event dispatched here may run on another one: its
    request stops waiting when its budget ends, and nothing here would ever pop its waiters otherwise.
    """
    waiters.setdefault(event_id, []).append(future)

    def forget(done: OutcomeFuture) -> None:
        pending = waiters.get(event_id)
        if pending is not None and done in pending:
            pending.remove(done)
            if not pending:
                del waiters[event_id]

    future.add_done_callback(forget)


async def record_failure(
    journal: Journal, settings: Settings, event: EventRecord, error: str, elapsed_ms: float
) -> EventRecord:
    """Record a failed attempt: retried after a backoff with jitter while attempts are left, else dead."""
    retry_at = None
    if event.attempts < event.max_attempts:
        delay = retry_delay(
            event.attempts, base_seconds=settings.retry_base_seconds, max_seconds=settings.retry_max_seconds
        )
        retry_at = time.time() + delay
        logger.warning(
            "Attempt %d/%d failed; retrying in %.0f s:\n%s", event.attempts, event.max_attempts, delay, error
        )
    else:
        logger.error(
            "Attempt %d/%d failed; the event is dead (replay it from the console):\n%s",
            event.attempts,
            event.max_attempts,
            error,
        )
    return await journal.fail(event, error=error, handler_ms=elapsed_ms, retry_at=retry_at)
