"""What every part of the console wires its listeners with: the options, and a reusable step.

Every console listener is private (no "Use via API" entry; access is still checked by the function
itself) and the timers' are quiet (no progress flicker every few seconds). Refreshing the
deliveries and showing an event run after several triggers owned by other tabs (an unlock, a
replay, a test event), so a tab hands the others a `Step` rather than its components.

A listener that turns a `Console` action's result into component updates runs the action through
`call`, which takes a plain function and a coroutine function alike, so the wiring does not depend
on which an action is (the journal's reads, and so the actions reading it, may be either).

A call whose inputs the page never sends (too few, of the wrong kind) is refused before the
listener runs, with a plain answer and one log line (`refuse_malformed_calls`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread
import gradio as gr
from gradio.block_function import BlockFunction
from gradio.blocks import Block
from gradio.events import Dependency

from ..console_actions import InvalidCall

logger = logging.getLogger(__name__)

PRIVATE: dict[str, Any] = {"api_visibility": "private"}
"""Every console listener: hidden from the API docs and the client libraries."""
QUIET: dict[str, Any] = {**PRIVATE, "show_progress": "hidden"}
"""Listeners that run on their own (timers, filters, follow-ups): no progress overlay."""

T = TypeVar("T")


@dataclass(frozen=True)
class Step:
    """A listener function with its inputs and outputs, to register on any number of triggers."""

    fn: Callable[..., Any]
    inputs: list[Block]
    outputs: list[Block]

    def on(self, trigger: Callable[..., Dependency], api_name: str, **options: Any) -> Dependency:
        """Register on `trigger`: a component's event (`button.click`) or a previous listener's `.then`."""
        return trigger(self.fn, self.inputs, self.outputs, api_name=api_name, **options)


def unchanged(count: int) -> tuple:
    """Leave `count` outputs as they are."""
    return tuple(gr.skip() for _ in range(count))


async def resolved(value: T | Awaitable[T]) -> T:
    """`value` itself, or what it resolves to when it is awaitable."""
    return await value if inspect.isawaitable(value) else value  # type: ignore[return-value]


async def call(action: Callable[..., T | Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Run a console action, awaited if it is async, else in a worker thread, as Gradio runs listeners.

    A sync action reads the journal (SQLite) or calls the Hub: run on the event loop, it would hold
    up the deliveries the same loop serves, so it goes to a thread exactly as it did when Gradio
    called it directly.
    """
    if inspect.iscoroutinefunction(action):
        return await action(*args, **kwargs)
    return await resolved(await anyio.to_thread.run_sync(partial(action, *args, **kwargs)))


def refuse_malformed_calls(page: gr.Blocks, listeners: Collection[BlockFunction]) -> None:
    """Answer a call to one of `listeners` whose inputs cannot be prepared with `InvalidCall`, logged in one line.

    Gradio 6.31 prepares a listener's inputs (`Blocks.preprocess_data`) before calling it: fewer
    values than inputs is a ValueError, a value a component cannot take a ComponentProcessingError,
    a dropdown value outside its choices a `gr.Error`. Its queue prints the traceback of each
    (`gradio/queueing.py`: every exception but a `gr.Error` with `print_exception=False`), and its
    answer lists the listener's components. Anyone can send such calls, so each would be a
    traceback in the Space's log. Gradio has no hook for it: this wraps the page's own
    `preprocess_data`, for the console's listeners only (anything else is passed through as is).
    """
    prepare = page.preprocess_data
    guarded = set(listeners)

    async def preprocess_data(block_fn: BlockFunction, inputs: list[Any], *args: Any, **kwargs: Any) -> Any:
        if block_fn not in guarded:
            return await prepare(block_fn, inputs, *args, **kwargs)
        try:
            return await prepare(block_fn, inputs, *args, **kwargs)
        except Exception as exc:
            sent, expected = len(inputs) if isinstance(inputs, list) else 0, len(block_fn.inputs)
            reason = f"{sent} of its {expected} inputs sent" if sent < expected else "an input it cannot take"
            logger.info(
                "Refused a call to %s: %s (%s).",
                block_fn.api_name,
                reason,
                type(exc).__name__,
                extra={"repeat_key": ("console call refused",)},
            )
            raise InvalidCall() from None

    page.preprocess_data = preprocess_data  # type: ignore[method-assign]
