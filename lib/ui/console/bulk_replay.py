"""The Deliveries tab's bulk replay: count what the current filters match, then confirm that number.

**Replay matching…** counts (`ConsoleOperations.bulk_preview`) and shows how many events would run
again and where; only then does the confirmation row appear, whose button replays exactly the events
counted (`bulk_replay`), and only while the filters are still the ones counted. The plan waits in
the session (`gr.State`, kept on the server), never in the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.blocks import Block

from ..console_actions import require
from ..console_operations import ConsoleOperations
from .listeners import PRIVATE, QUIET, Step, call


@dataclass(frozen=True)
class BulkRow:
    """The count button, what it found, and the confirmation row with the counted plan."""

    count_button: gr.Button
    message: gr.Markdown
    confirm_row: gr.Row
    confirm_button: gr.Button
    cancel_button: gr.Button
    plan: gr.State


def build_bulk_row() -> BulkRow:
    """Under the filters: the count button and, hidden until a count, the confirmation."""
    with gr.Row(elem_classes=["console-bar"]):
        count_button = gr.Button("Replay matching…", size="md", scale=0, min_width=170, elem_id="bulk-replay-count")
        message = gr.Markdown("", elem_id="bulk-replay-message")
    with gr.Row(visible=False, elem_classes=["console-bar"]) as confirm_row:
        confirm_button = gr.Button(
            "Confirm", variant="stop", size="md", scale=0, min_width=200, elem_id="bulk-replay-confirm"
        )
        cancel_button = gr.Button("Cancel", size="md", scale=0, min_width=100, elem_id="bulk-replay-cancel")
    return BulkRow(count_button, message, confirm_row, confirm_button, cancel_button, gr.State(None))


def wire_bulk_replay(
    operations: ConsoleOperations, grant: gr.State, row: BulkRow, filters: list[Block], refresh: Step
) -> None:
    """Count on the button, replay on the confirmation (then refresh the table); a changed filter or Cancel
    drops the count."""

    async def count(current: Any, *values: Any) -> tuple:
        preview = await call(operations.bulk_preview, current, *values)
        label = f"Replay these {len(preview.plan.event_ids)} event(s)" if preview.plan else "Confirm"
        return preview.message, gr.Row(visible=preview.plan is not None), gr.Button(label), preview.plan

    async def confirm(current: Any, plan: Any, *values: Any) -> tuple:
        message = await call(operations.bulk_replay, current, plan, *values)
        return message, gr.Row(visible=False), None

    def drop(current: Any) -> tuple:
        require(current)
        return gr.Row(visible=False), None

    row.count_button.click(
        count,
        [grant, *filters],
        [row.message, row.confirm_row, row.confirm_button, row.plan],
        api_name="console_bulk_count",
        concurrency_limit=None,
        **PRIVATE,
    )
    replayed = row.confirm_button.click(
        confirm,
        [grant, row.plan, *filters],
        [row.message, row.confirm_row, row.plan],
        api_name="console_bulk_replay",
        concurrency_limit=None,
        **PRIVATE,
    )
    refresh.on(replayed.then, "console_refresh_after_bulk_replay", **QUIET)
    row.cancel_button.click(drop, [grant], [row.confirm_row, row.plan], api_name="console_bulk_cancel", **QUIET)
    for component in filters:  # the confirmation also checks them; this hides a count that no longer applies
        trigger = component.submit if isinstance(component, gr.Textbox) else component.change
        trigger(drop, [grant], [row.confirm_row, row.plan], api_name="console_bulk_drop", **QUIET)
