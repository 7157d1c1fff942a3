"""The request path's third step, validate: the body's bytes as a `WebhookPayload`, or an error a sender can act on.

Sans-I/O: it takes bytes and returns or raises; reading them is `body.py`'s job. A handler that
takes no payload accepts any body (`payload_or_raw`), as with the reference.
"""

from __future__ import annotations

from pydantic import ValidationError

from ..core.errors import MalformedPayload
from ..core.payload import WebhookPayload

MAX_REPORTED_ERRORS = 10


class BadRequest(MalformedPayload):
    """The body is not JSON at all (400), as opposed to JSON that is not a payload (422)."""

    status_code = 400


def _describe(error: dict) -> str:
    location = ".".join(str(part) for part in error["loc"]) or "(body)"
    return f"{location}: {error['msg']}"


def parse_payload(body: bytes) -> WebhookPayload:
    """Validate a body as a Hub webhook payload.

    Raises:
        BadRequest: the body is empty or not JSON (400).
        MalformedPayload: the JSON is not a webhook payload; the message lists each problem (422).
    """
    if not body.strip():
        raise BadRequest("The body is empty; the Hub sends a JSON webhook payload.")
    try:
        return WebhookPayload.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if errors[0]["type"] == "json_invalid":
            raise BadRequest(f"The body is not valid JSON: {errors[0]['ctx']['error']}.") from None
        problems = "; ".join(_describe(error) for error in errors[:MAX_REPORTED_ERRORS])
        more = f" (and {len(errors) - MAX_REPORTED_ERRORS} more)" if len(errors) > MAX_REPORTED_ERRORS else ""
        raise MalformedPayload(f"The body is JSON but not a Hub webhook payload: {problems}{more}.") from None


def payload_or_raw(body: bytes) -> WebhookPayload | None:
    """The payload, or None for a raw delivery, for an endpoint whose handler takes no payload.

    The reference calls such a handler for any authenticated POST (it was a FastAPI route that
    never read its body), so a body that is not a Hub payload, an empty one included, is not
    refused here; it is recorded and run as a raw delivery. A body that is a payload is a Hub event
    like any other (its `EVENTS` filter, its repository's order, its duplicates).
    """
    try:
        return parse_payload(body)
    except MalformedPayload:
        return None
