"""The request path's second step, read: the request's headers and its body, never past the limit.

Sans-I/O at heart: the size checks take a length or chunks and return or raise; `read_body` only
feeds them from the ASGI `receive` channel. A Hub payload arrives in one message, which is taken
as is; a streamed body is counted chunk by chunk and refused as soon as it passes the limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.types import Message, Receive, Scope

from ..core.errors import PayloadTooLarge
from .parsing import BadRequest


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (ASGI servers lower-case them); the first of repeats wins."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return headers


async def read_body(receive: Receive, headers: dict[str, str], *, limit: int) -> bytes:
    """The whole body, refused from its `Content-Length` before a byte is read, or as soon as it passes `limit`.

    Raises:
        BadRequest: a `Content-Length` that is not a number, or a client gone mid-body (400).
        PayloadTooLarge: the body is (or announces itself as) larger than `limit` (413).
    """
    check_declared_length(headers.get("content-length"), limit=limit)
    first = await receive()
    if first["type"] == "http.request" and not first.get("more_body", False):
        body: bytes = first.get("body", b"")
        check_body_size(len(body), limit=limit)
        return body
    return await read_limited(_body_chunks(receive, first), limit=limit)


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


async def _body_chunks(receive: Receive, first: Message) -> AsyncIterator[bytes]:
    """The body as the ASGI server hands it over, for `read_limited` to count."""
    message = first
    while True:
        if message["type"] == "http.disconnect":
            raise BadRequest("The client disconnected before sending the whole body.")
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
        message = await receive()
