"""Test a handler in a plain pytest test: one handler module, one event, no server.

`run_handler` loads the module as the server does (`lib.core.registry`), validates the payload as
the request path does, applies the module's `EVENTS` filter and the loop guard as the server does
before a handler runs, and calls `handle` with the same arguments the worker gives it
(`lib.worker.invoke`): a plain `def` on a thread of its own, under a time limit. It returns a
`HandlerRun` saying what happened: the result, or that the event was skipped and why, or the error.

A handler that calls the Hub through `hub_client()` gets the Hub you pass: `hub=` any stand-in
object (its methods are what the handler calls), or `hub_endpoint=` and `token=` for a real client
pointed at a local fake Hub. Without either, `hub_client()` gives the handler an object that
raises `MissingToken` on first use: a test never reaches the real Hub by accident, with whatever
token the machine has. (`hub=lib.hub_client()` uses the real Hub on purpose.)

Example:
    ```python
    from lib.testing import run_handler

    def test_logs_a_summary_of_each_commit():
        run = run_handler("handlers/log_events.py", "commit", repo="my-org/my-model")
        assert run.result["summary"].startswith("repo.content/update on my-org/my-model")

    def test_skips_datasets():
        run = run_handler("handlers/model_card_check.py", "commit", repo_type="dataset")
        assert run.skipped and "repo type 'dataset'" in run.reason
    ```
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .core.errors import MissingToken
from .core.payload import WebhookPayload
from .core.registry import Endpoint, endpoint_from_module
from .core.sample_events import SAMPLE_KINDS, sample_payload
from .core.settings import Settings
from .hub.client import LEDGER_FILE, CommitLedger, HubClient, using_hub, using_ledger
from .hub.loop_guard import loop_guard_rejection
from .journal import EventRecord, EventState
from .receiver.delivery import build_delivery
from .receiver.parsing import parse_payload
from .worker.invoke import call_handler
from .worker.outcome import refuse_non_2xx, storable
from .worker.threads import ThreadPerCall

__all__ = ["HandlerRun", "NoHub", "load_handler", "run_handler", "run_handler_async"]

HANDLERS = Path("handlers")


@dataclass(frozen=True)
class HandlerRun:
    """What happened to one event: skipped (and why), failed (and how), or the handler's result."""

    payload: WebhookPayload
    skipped: bool = False
    reason: str | None = None
    """Why it was skipped: the `EVENTS` filter's or the loop guard's reason, as the console shows it."""
    result: Any = None
    """What `handle` returned, as it returned it."""
    stored: Any = None
    """What the server keeps of it and answers the Hub with: JSON as is, anything else as its `repr`
    (a `Response` as its status and body)."""
    error: BaseException | None = None
    """What made the attempt fail: the exception `handle` raised, a `TimeoutError`, or a `HandlerRefused`
    for a returned `Response` with a non-2xx status. The server would retry the event."""

    @property
    def ok(self) -> bool:
        """It ran and succeeded."""
        return not self.skipped and self.error is None


class NoHub:
    """What `hub_client()` gives a handler whose test passed no Hub: every use raises, saying how to give one."""

    def __getattr__(self, name: str) -> Any:
        raise MissingToken(
            f"The handler used hub_client().{name}, but its test gave it no Hub. Pass hub=<a stand-in>, or "
            "hub_endpoint=<a fake Hub's URL> and token=..., to run_handler (hub=lib.hub_client() for the real Hub)."
        )


def load_handler(handler: str | Path) -> Endpoint:
    """A handler module as the server registers it: a file path, or a module name in ./handlers.

    Raises:
        HandlerModuleError: the module is broken, with the same message the server would stop with.
        FileNotFoundError: no such file.
    """
    file = Path(handler)
    if file.suffix != ".py":
        file = HANDLERS / f"{handler}.py"
    if not file.is_file():
        raise FileNotFoundError(f"No handler module at {file}: give a path like handlers/log_events.py.")
    return endpoint_from_module(file)


def _body(payload: str | Path | Mapping[str, Any] | bytes, sample: dict[str, Any]) -> bytes:
    """The bytes the Hub would send: a sample kind, a fixture file, a dict, or the bytes themselves."""
    if sample and not (isinstance(payload, str) and payload in SAMPLE_KINDS):
        raise TypeError(f"Sample options {sorted(sample)} only apply to a sample kind ({', '.join(SAMPLE_KINDS)}).")
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, Mapping):
        return json.dumps(payload).encode()
    if isinstance(payload, str) and payload in SAMPLE_KINDS:
        return json.dumps(sample_payload(payload, **sample)).encode()
    path = Path(payload)
    if not path.is_file():
        raise FileNotFoundError(
            f"{payload!r} is neither a sample kind ({', '.join(SAMPLE_KINDS)}) nor a payload file "
            "(see tests/fixtures/README.md)."
        )
    return path.read_bytes()


def _record(endpoint: Endpoint, body: bytes, payload: WebhookPayload) -> EventRecord:
    """The journal record the worker would run, so the handler's arguments are rebuilt exactly as there."""
    delivery = build_delivery(
        endpoint=endpoint.path,
        headers={"content-type": "application/json"},
        query_string="",
        body=body,
        payload=payload,
        order_per_repo=False,
    )
    return EventRecord.from_delivery(delivery, id=0, state=EventState.RUNNING, attempts=1, max_attempts=1)


async def run_handler_async(
    handler: str | Path | Endpoint,
    payload: str | Path | Mapping[str, Any] | bytes,
    *,
    hub: Any = None,
    hub_endpoint: str | None = None,
    token: str | None = None,
    ledger: CommitLedger | None = None,
    timeout: float = Settings.handler_timeout_seconds,
    **sample: Any,
) -> HandlerRun:
    """`run_handler`, for an async test (`await run_handler_async(...)`)."""
    endpoint = handler if isinstance(handler, Endpoint) else load_handler(handler)
    body = _body(payload, sample)
    parsed = parse_payload(body)  # a payload the server would refuse (400, 422) raises here
    with tempfile.TemporaryDirectory(prefix="handler-test-") as scratch:
        if ledger is None:  # (not `ledger or`: an empty ledger is falsy)
            ledger = CommitLedger(Path(scratch) / LEDGER_FILE)  # never the checkout's ./data
        if hub is None:
            hub = HubClient(endpoint=hub_endpoint, token=token, ledger=ledger) if hub_endpoint else NoHub()
        reason = endpoint.events.rejection(parsed) or loop_guard_rejection(parsed, ledger)
        if reason:
            return HandlerRun(parsed, skipped=True, reason=reason)
        try:
            async with asyncio.timeout(timeout):
                with using_ledger(ledger), using_hub(hub):
                    result = await call_handler(
                        endpoint.handler,
                        endpoint.arguments,
                        _record(endpoint, body, parsed),
                        executor=ThreadPerCall().for_attempt(),
                        payload=parsed,
                    )
            stored, response = storable(result)
            refuse_non_2xx(response)
        except Exception as exc:
            return HandlerRun(parsed, error=exc)
        return HandlerRun(parsed, result=result, stored=stored)


def run_handler(
    handler: str | Path | Endpoint,
    payload: str | Path | Mapping[str, Any] | bytes,
    *,
    hub: Any = None,
    hub_endpoint: str | None = None,
    token: str | None = None,
    ledger: CommitLedger | None = None,
    timeout: float = Settings.handler_timeout_seconds,
    **sample: Any,
) -> HandlerRun:
    """Run one handler module on one event, as the server would, without a server.

    Args:
        handler: the module's file (`"handlers/discussion_bot.py"`), or its name in ./handlers.
        payload: a sample kind of `python -m lib.send` (`"commit"`, `"comment"` ...), a payload
            file (`"tests/fixtures/discussion-create-pr-opened.json"`), a dict, or raw bytes.
        hub: what `hub_client()` returns inside the handler: any stand-in with the methods it calls
            (by default a `NoHub`, which raises on first use).
        hub_endpoint: instead of `hub`, the URL of a (fake) Hub for a real `HubClient`, with `token`.
        token: the token that client sends.
        ledger: the commits the loop guard knows as this Space's (`own_commits(tmp_path)` to keep them
            across runs); a fresh empty one by default, never the checkout's ./data.
        timeout: the handler's time limit, in seconds (the server's `WEBHOOK_HANDLER_TIMEOUT`).
        **sample: with a sample kind, `repo=`, `repo_type=` and payload keys to change
            (`comment={"content": "/ping"}`), as `lib.core.sample_events.sample_payload` takes them.

    Returns:
        A `HandlerRun`: `.skipped` and `.reason`, or `.result` (and `.stored`), or `.error`.

    Raises:
        HandlerModuleError: the module would stop the server at start.
        MalformedPayload: the payload is one the server would refuse (400 or 422).

    Example:
        ```python
        run = run_handler("handlers/discussion_bot.py", "comment", comment={"content": "/ping"}, hub=StandIn())
        assert run.ok and run.result == {"answered": True, "discussion": run.payload.discussion.num}
        ```
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("run_handler() was called inside an event loop: use `await run_handler_async(...)`.")
    return asyncio.run(
        run_handler_async(
            handler, payload, hub=hub, hub_endpoint=hub_endpoint, token=token, ledger=ledger, timeout=timeout, **sample
        )
    )
