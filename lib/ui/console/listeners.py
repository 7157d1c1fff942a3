"""What every part of the console wires its listeners with: the options, and a reusable step.

Every console listener is private (no "Use via API" entry; access is still checked by the function
itself) and the timers' are quiet (no progress flicker every few seconds). Refreshing the
deliveries and showing an event run after several triggers owned by other tabs (an unlock, a
replay, a test event), so a tab hands the others a `Step` rather than its components.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.blocks import Block
from gradio.events import Dependency

PRIVATE: dict[str, Any] = {"api_visibility": "private"}
"""Every console listener: hidden from the API docs and the client libraries."""
QUIET: dict[str, Any] = {**PRIVATE, "show_progress": "hidden"}
"""Listeners that run on their own (timers, filters, follow-ups): no progress overlay."""


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
