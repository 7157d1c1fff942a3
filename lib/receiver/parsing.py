"""Turning the bytes of a request into a `WebhookPayload`, with errors a sender can act on.

Sans-I/O: these functions take what arrived (a length header, chunks, bytes) and return or
raise; the HTTP adapter in `server.py` only feeds them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic import ValidationError

from ..core.errors import MalformedPayload, PayloadTooLarge
from ..core.payload import WebhookPayload

MAX_REPORTED_ERRORS = 10


class BadRequest(MalformedPayload):
    """The body is not JSON at all (400), as opposed to JSON that is not a payload (422)."""

    status_code = 400


def check_declared_length(content_length: str | None, *, limit: int) -> None:
    """Refuse an oversized body from its `Content-Length` alone, before reading a byte of it."""
    if content_length is None:
        return
    if not (content_length.isascii() and content_length.isdigit()):  # int() also takes "-1", "+5", "1_0"
        raise BadRequest(f"Content-Length must be a whole number of bytes, got {content_length!r}.")
    declared = int(content_length)
    if declared > limit:
        raise PayloadTooLarge(f"The body is {declared} bytes; this endpoint accepts at most {limit} bytes.")


async def read_limited(chunks: AsyncIterator[bytes], *, limit: int) -> bytes:
    """Read a streamed body, stopping as soon as it passes `limit` (no `Content-Length` needed)."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        check_body_size(len(body), limit=limit)
    return bytes(body)


def check_body_size(size: int, *, limit: int) -> None:
    """Refuse a body (or the part read so far) larger than `limit`."""
    if size > limit:
        raise PayloadTooLarge(f"The body is larger than {limit} bytes, the most this endpoint accepts.")


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
