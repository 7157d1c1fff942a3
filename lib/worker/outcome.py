"""What an attempt ends with, for the request that waits to answer with it.

A handler's return value becomes the answer's JSON and the journal's stored result, so it must be
something JSON carries: `storable` converts it once, and keeps a Starlette `Response` the handler
made itself, to be sent as it is.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from fastapi.encoders import jsonable_encoder
from starlette.responses import Response

from ..core.errors import HandlerRefused
from ..journal import EventRecord


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
