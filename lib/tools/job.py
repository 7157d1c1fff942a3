"""Hub Job mode: `python -m lib.job <handler>` runs one handler on the event a Hub Job was given.

A Hub webhook can start a Job instead of calling a URL: the Job gets the payload in the
`WEBHOOK_PAYLOAD` environment variable (and `WEBHOOK_ID`, `WEBHOOK_REPO_ID`, `WEBHOOK_REPO_TYPE`,
`WEBHOOK_SECRET`, which is not checked: the Hub itself started the Job). The handler module is
loaded exactly as the server loads it, its `EVENTS` filter and the loop guard apply, and the exit
code tells the Job's status:

- 0: handled (the result is printed as JSON on stdout), or skipped (a line saying why);
- 1: the handler raised (the traceback goes to stderr, then a one-line summary);
- 2: nothing could run (unknown handler, missing or malformed payload).

The loop guard remembers commits in DATA_DIR; a Job starts with an empty one unless DATA_DIR is a
mounted volume, so a Job that commits to a repo it watches should not rely on it.

Example:
    ```
    WEBHOOK_PAYLOAD="$(cat event.json)" HF_TOKEN=hf_... python -m lib.job model_card_check
    ```
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi.encoders import jsonable_encoder
from starlette.responses import Response

from ..core.errors import ConfigurationError, HubWebhooksError, WebhookError
from ..core.logs import configure_logging
from ..core.payload import WebhookPayload
from ..core.registry import Endpoint, endpoint_from_module
from ..hub.client import own_commits
from ..hub.loop_guard import loop_guard_rejection
from ..journal import EventRecord, EventState
from ..receiver.delivery import WEBHOOK_ID_HEADER, build_delivery
from ..receiver.parsing import parse_payload
from ..worker.invoke import call_handler

logger = logging.getLogger("lib.job")  # not __main__ under `python -m`

PAYLOAD_VARIABLE = "WEBHOOK_PAYLOAD"
EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2


class JobError(HubWebhooksError):
    """The job cannot run at all; the message says what to fix."""


def load_endpoint(directory: Path, name: str) -> Endpoint:
    """`handlers/<name>.py` as the server would register it.

    Raises:
        JobError: no such module (the message lists the available ones), or it is broken.
    """
    file = directory / f"{name.removesuffix('.py')}.py"
    if not file.is_file():
        available = sorted(f.stem for f in directory.glob("*.py") if not f.name.startswith("_"))
        raise JobError(
            f"No handler {name!r}: {file} does not exist. Available in {directory}/: "
            f"{', '.join(available) or '(none)'}."
        )
    try:
        return endpoint_from_module(file)
    except ConfigurationError as exc:
        raise JobError(str(exc)) from None


def read_payload(environ: Mapping[str, str]) -> tuple[bytes, WebhookPayload]:
    """The body and parsed payload from `WEBHOOK_PAYLOAD`.

    Raises:
        JobError: the variable is missing, empty, or not a Hub webhook payload.
    """
    raw = environ.get(PAYLOAD_VARIABLE)
    if raw is None or not raw.strip():
        raise JobError(
            f"{PAYLOAD_VARIABLE} is not set: a Hub webhook that targets a Job sets it to the event's JSON. "
            f'To try locally: {PAYLOAD_VARIABLE}="$(cat event.json)" python -m lib.job <handler>.'
        )
    body = raw.encode()
    try:
        return body, parse_payload(body)
    except WebhookError as exc:
        raise JobError(f"{PAYLOAD_VARIABLE} is unusable: {exc.message}") from None


def _event_record(endpoint: Endpoint, body: bytes, payload: WebhookPayload, environ: Mapping[str, str]) -> EventRecord:
    """The one-off journal record `call_handler` rebuilds the handler's arguments from."""
    headers = {"content-type": "application/json"}
    if environ.get("WEBHOOK_ID"):
        headers[WEBHOOK_ID_HEADER] = environ["WEBHOOK_ID"]
    delivery = build_delivery(
        endpoint=endpoint.path, headers=headers, query_string="", body=body, payload=payload, order_per_repo=False
    )
    return EventRecord.from_delivery(delivery, id=0, state=EventState.RUNNING, attempts=1, max_attempts=1)


async def run_handler(endpoint: Endpoint, event: EventRecord) -> Any:
    """Run the handler once, a plain `def` in a thread as the worker does."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="handler") as executor:
        return await call_handler(endpoint.handler, endpoint.arguments, event, executor=executor)


def _printable(result: Any) -> Any:
    if isinstance(result, Response):
        return {"status_code": result.status_code, "body": bytes(result.body).decode("utf-8", errors="replace")}
    return jsonable_encoder(result)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the job; returns the exit code (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m lib.job",
        description=f"Run one handler on the Hub event in ${PAYLOAD_VARIABLE} (Hub Job mode).",
    )
    parser.add_argument("handler", help="the module name in the handlers folder, e.g. model_card_check")
    parser.add_argument("--handlers", type=Path, default=Path("handlers"), help="the handlers folder (./handlers)")
    args = parser.parse_args(argv)
    env = os.environ if environ is None else environ
    configure_logging()

    try:
        endpoint = load_endpoint(args.handlers, args.handler)
        body, payload = read_payload(env)
    except JobError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    logger.info(
        "Job for webhook %s: %s/%s on %s (%s)",
        env.get("WEBHOOK_ID", "?"),
        payload.event.scope,
        payload.event.action,
        payload.repo.name,
        payload.repo.type,
    )
    reason = endpoint.events.rejection(payload) or loop_guard_rejection(payload, own_commits())
    if reason:
        print(f"skipped: {reason}")
        return EXIT_OK
    try:
        result = asyncio.run(run_handler(endpoint, _event_record(endpoint, body, payload, env)))
    except Exception as exc:
        traceback.print_exc()
        print(f"error: the {endpoint.name} handler failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(_printable(result), ensure_ascii=False))
    return EXIT_OK
