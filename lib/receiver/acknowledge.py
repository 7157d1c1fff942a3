"""The request path's last step, acknowledge: the answer the Hub gets for a recorded delivery.

Nothing is acknowledged before it is on disk: the delivery first, then the outcome the answer
reports (the worker hands it over once committed). A delivery the journal could not commit is a
503 (the Hub retries); every other answer is a 2xx. The Hub gives up after 30 s and counts that
as a failure, so the answer waits for the handler only within
`WEBHOOK_ACK_BUDGET`: 200 with the handler's result when it ends in time, as the reference
answers, else 202 `queued` while the handler carries on. A skipped or duplicate delivery runs
nothing and is answered at once, and so is one for a paused endpoint (202 `paused`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi.responses import JSONResponse, Response

from ..journal import EventRecord, EventState, Journal, Recorded
from ..worker import OutcomeFuture

EVENT_ID_HEADER = "X-Webhook-Event-Id"
PAUSED_DETAIL = "The endpoint is paused: the event is recorded and runs when an operator resumes it."


async def acknowledge(
    journal: Journal, recorded: Recorded, outcome: OutcomeFuture | None, *, budget: float
) -> Response:
    """The answer to a delivery, once it is durable, naming its event in `X-Webhook-Event-Id`.

    Args:
        journal: where the delivery was recorded.
        recorded: what the journal made of the delivery.
        outcome: the future `Worker.dispatch` returned, resolved when the handler's attempt ends
            (None when nothing runs: skipped, duplicate, or no worker).
        budget: how long to wait for the handler before answering 202.

    Raises:
        JournalUnavailable: the delivery could not be committed (503).
    """
    await journal.durable(recorded.event.id)
    content, status = await _content(recorded, outcome, budget=budget)
    event_id = str(recorded.event.id)
    if isinstance(content, Response):  # the handler's own response, sent as it made it
        content.headers[EVENT_ID_HEADER] = event_id
        return content
    return Acknowledgement(content, status, event_id)


async def _content(recorded: Recorded, outcome: OutcomeFuture | None, *, budget: float) -> tuple[Any, int]:
    """The answer's JSON content (or the handler's own `Response`) and status."""
    event = recorded.event
    if recorded.outcome == "skipped":
        return {"status": "skipped", "event_id": event.id, "reason": event.note}, 200
    if recorded.outcome == "duplicate":
        original = recorded.original
        return {
            "status": "duplicate",
            "event_id": event.id,
            "original_event_id": event.original_id,
            "original_state": original.state if original else None,
            "detail": event.note,
            "why": why_duplicate(event),
            "to_send_a_new_event": TO_SEND_A_NEW_EVENT,
        }, 200
    if recorded.runs.state == EventState.PAUSED:
        return {"status": "paused", "event_id": recorded.runs.id, "detail": PAUSED_DETAIL}, 202
    if outcome is None:  # no worker to wait for
        return {"status": "queued", "event_id": recorded.runs.id}, 202
    return await _wait_for_handler(recorded.runs.id, outcome, budget=budget)


async def _wait_for_handler(event_id: int, future: OutcomeFuture, *, budget: float) -> tuple[Any, int]:
    """200 with the handler's result if it ends within the budget, else 202: never the Hub's 30 s."""
    # A timer that resolves the future with None, rather than a timeout scope around the await:
    # one timer handle per request and no cancelling of this task.
    expiry = asyncio.get_running_loop().call_later(budget, _give_up, future)
    outcome = await future
    expiry.cancel()
    if outcome is None:
        return {"status": "queued", "event_id": event_id}, 202
    if outcome.event.state == EventState.SKIPPED:
        return {"status": "skipped", "event_id": event_id, "reason": outcome.event.note}, 200
    if outcome.event.state == EventState.SUCCEEDED:
        return (outcome.response if outcome.response is not None else outcome.event.result), 200
    if outcome.event.state == EventState.JOB_RUNNING:  # accepted: it goes on, on the Hub's compute
        return {
            "status": "job_running",
            "event_id": event_id,
            "result": outcome.event.result,
            "detail": "The handler launched a Hub Job; the event ends when the job does.",
        }, 202
    retrying = outcome.event.state == EventState.FAILED
    return {
        "status": outcome.event.state,
        "event_id": event_id,
        "detail": "The handler failed; the event is recorded and "
        + ("will be retried." if retrying else "can be replayed from the console."),
    }, 202


TO_SEND_A_NEW_EVENT = (
    "`python -m lib.send KIND` gives each send its own Webhook-Id; with curl, send a new Webhook-Id header."
)
"""The second half of a duplicate's answer: a body re-sent by hand (curl) is a repeat, and how not to."""


def why_duplicate(event: EventRecord) -> str:
    """What made a delivery a repeat of an earlier one, in the words of the request that was sent."""
    if event.delivery_key.startswith("id:"):
        same = f"It carries the same Webhook-Id ({event.webhook_id}) as event {event.original_id}"
    else:
        same = (
            f"It has no Webhook-Id header and the same event (scope, action, repository, commit, discussion) "
            f"as event {event.original_id}"
        )
    return (
        f"{same}. The Hub's retries and its Replay button send a delivery again that way; a repeat of an event "
        "still running, or that succeeded within WEBHOOK_DUPLICATE_WINDOW, is answered without running it twice."
    )


def _give_up(future: OutcomeFuture) -> None:
    """The acknowledgement budget is spent: the request answers 202 and the handler carries on."""
    if not future.done():
        future.set_result(None)


class Acknowledgement(JSONResponse):
    """The JSON answer to a delivery, naming its event: a `JSONResponse` whose headers are written
    in one step, since every delivery gets one."""

    def __init__(self, content: Any, status_code: int, event_id: str) -> None:
        self.status_code = status_code
        self.background = None
        self.body = self.render(content)
        self.raw_headers = [
            (b"content-length", str(len(self.body)).encode()),
            (b"content-type", b"application/json"),
            (EVENT_ID_HEADER.lower().encode(), event_id.encode()),
        ]
