"""What every part of the console wires its listeners with: the options, and a reusable step.

Every console listener is private (no "Use via API" entry; access is still checked by the function
itself) and the timers' are quiet (no progress flicker every few seconds). Refreshing the
deliveries and showing an event run after several triggers owned by other tabs (an unlock, a
replay, a test event), so a tab hands the others a `Step` rather than its components.

A listener that turns a `Console` action's result into component updates runs the action through
`call`, which takes a plain function and a coroutine function alike, so the wiring does not depend
on which an action is (the journal's reads, and so the actions reading it, may be either).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread
import gradio as gr
from gradio.blocks import Block
from gradio.events import Dependency

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
