"""The console's Hub registration tab: this Space's webhooks on the Hub, created, fixed or re-enabled.

With an `HF_TOKEN` it lists the token owner's webhooks that point here and what is wrong with
them, registers one per endpoint, and turns a suspended one back on; without a token it only
shows the manual steps (the same as the landing page's, from `lib.ui.setup_steps`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.blocks import Block

from ...hub import registration as hub_registration
from ..access import is_granted
from ..console_actions import Console, HubView
from ..console_format import hub_webhooks_frame
from ..setup_steps import setup_markdown
from ..view import ServerView
from .listeners import PRIVATE, Step, call, unchanged


@dataclass(frozen=True)
class HubTab:
    """The findings, the webhooks table, the buttons, and the row that re-enables a disabled webhook."""

    message: gr.Markdown
    table: gr.Dataframe
    refresh_button: gr.Button
    sync_button: gr.Button
    enable_row: gr.Row
    disabled: gr.Dropdown
    enable_button: gr.Button

    @property
    def outputs(self) -> list[Block]:
        """In the order of `hub_outputs`' values."""
        return [self.message, self.table, self.disabled, self.enable_row]


def build_hub_tab(server: ServerView) -> HubTab:
    """The tab; the manual steps start open when there is no token to do it from here."""
    has_token = bool(hub_registration.hub_token())
    message = gr.Markdown("", elem_id="hub-message")
    with gr.Column(visible=has_token):
        table = gr.Dataframe(
            hub_webhooks_frame([]),
            interactive=False,
            wrap=True,
            label="Webhooks on the Hub",
            elem_id="hub-table",
        )
        with gr.Row():
            refresh_button = gr.Button("Refresh", min_width=100, scale=0)
            sync_button = gr.Button(
                "Create / update webhooks", variant="primary", min_width=200, scale=0, elem_id="hub-sync"
            )
        with gr.Row(visible=False, elem_classes=["console-bar"]) as enable_row:
            disabled = gr.Dropdown([], show_label=False, container=False, min_width=160)
            enable_button = gr.Button("Enable", min_width=100, scale=0)
    with gr.Accordion("Set it up by hand", open=not has_token):
        gr.Markdown(setup_markdown(server))
    return HubTab(message, table, refresh_button, sync_button, enable_row, disabled, enable_button)


def hub_outputs(view: HubView) -> tuple:
    """A `HubView` as updates of the tab's outputs; the first disabled webhook preselected."""
    return (
        view.message,
        view.table,
        gr.Dropdown(choices=view.disabled_ids, value=view.disabled_ids[0] if view.disabled_ids else None),
        gr.Row(visible=bool(view.disabled_ids)),
    )


def fill_step(console: Console, grant: gr.State, tab: HubTab) -> Step:
    """After an unlock attempt: fill the tab, or stay silent when the attempt failed."""

    async def hub_list_if_open(current: Any) -> tuple:
        if not is_granted(current):
            return unchanged(len(tab.outputs))
        return hub_outputs(await call(console.hub_view, current))

    return Step(hub_list_if_open, [grant], tab.outputs)


def wire_hub(console: Console, grant: gr.State, tab: HubTab) -> None:
    """List again, create or update every endpoint's webhook, enable a disabled one."""

    async def hub_list(current: Any) -> tuple:
        return hub_outputs(await call(console.hub_view, current))

    async def hub_apply(current: Any) -> tuple:
        return hub_outputs(await call(console.hub_sync, current))

    async def hub_turn_on(current: Any, webhook_id: str) -> tuple:
        return hub_outputs(await call(console.hub_enable, current, webhook_id))

    tab.refresh_button.click(hub_list, [grant], tab.outputs, api_name="console_hub_list", **PRIVATE)
    tab.sync_button.click(hub_apply, [grant], tab.outputs, api_name="console_hub_sync", **PRIVATE)
    tab.enable_button.click(hub_turn_on, [grant, tab.disabled], tab.outputs, api_name="console_hub_enable", **PRIVATE)
