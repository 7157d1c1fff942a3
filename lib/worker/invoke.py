"""Calling a user's handler with the arguments it asks for, the way FastAPI would have.

Handlers written for `huggingface_hub.WebhooksServer` were FastAPI routes: they could ask for the
payload (any pydantic model, or a plain dict), `request: Request` and `BackgroundTasks`. Ours run
from the journal, not from the request, so those arguments are rebuilt from what was recorded
(same body, same headers but the secret), which also makes retries and restarts see the same
request. The signature is read once, at registration, so a parameter we cannot supply fails at
start instead of on the first event.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from fastapi import BackgroundTasks, Request

from ..core.arguments import Argument
from ..core.logs import current_handler_logger, handler_logger_name
from ..core.payload import WebhookPayload
from ..journal import EventRecord


def rebuild_request(event: EventRecord) -> Request:
    """A Starlette `Request` carrying the recorded body and headers (never the secret)."""
    body_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if body_sent:
            return {"type": "http.disconnect"}
        body_sent = True
        return {"type": "http.request", "body": event.body, "more_body": False}

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": event.endpoint,
        "raw_path": event.endpoint.encode(),
        "root_path": "",
        "query_string": event.query.encode(),
        "headers": [(name.encode("latin-1"), value.encode("latin-1")) for name, value in event.headers.items()],
        "client": None,
        "server": None,
        "state": {"event_id": event.id},
    }
    return Request(scope, receive)


async def call_handler(
    func: Callable[..., Any],
    plan: tuple[Argument, ...],
    event: EventRecord,
    *,
    executor: Executor,
    payload: WebhookPayload | None = None,
) -> Any:
    """Run one attempt: the handler, then the background tasks it queued, and return its result.

    A plain `def` runs in `executor` so it cannot block the event loop; it keeps the caller's
    context variables (the event id in log lines). `payload`, when the request already parsed
    the body, saves parsing it again.
    """
    kwargs: dict[str, Any] = {}
    background: BackgroundTasks | None = None
    for argument in plan:
        if argument.kind == "model" and payload is not None and argument.model is WebhookPayload:
            kwargs[argument.name] = payload
        elif argument.kind == "model":
            kwargs[argument.name] = argument.model.model_validate_json(event.body)  # type: ignore[union-attr]
        elif argument.kind == "dict":
            kwargs[argument.name] = json.loads(event.body)
        elif argument.kind == "request":
            kwargs[argument.name] = rebuild_request(event)
        else:  # made only for handlers that ask for it; one for all such parameters
            background = background or BackgroundTasks()
            kwargs[argument.name] = background
    logger_name = current_handler_logger.set(handler_logger_name(func))  # `lib.log` lines carry the handler's name
    try:
        if inspect.iscoroutinefunction(func):
            result = await func(**kwargs)
        else:
            context = contextvars.copy_context()
            call = functools.partial(context.run, func, **kwargs)
            result = await asyncio.get_running_loop().run_in_executor(executor, call)
            if inspect.isawaitable(result):
                result = await result
        if background is not None:
            await background()
    finally:
        current_handler_logger.reset(logger_name)
    return result
