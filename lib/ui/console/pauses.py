"""The console's *Pause & limits* tab: each endpoint running or paused, what waits, its rate limit;
Pause and Resume.

Filled after an unlock, on the health timer (30 s) and after each Pause or Resume; what the buttons
do, grant first, is `lib.ui.console_operations`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..access import is_granted
from ..console_format import endpoint_name
from ..console_operations import ConsoleOperations
from ..view import ServerView
from .listeners import PRIVATE, QUIET, Step, call
from .lock import Session


@dataclass(frozen=True)
class PausesTab:
    """The endpoints' table, the endpoint to act on, Pause, Resume, and the last action's result."""

    status: gr.Markdown
    endpoint: gr.Dropdown
    pause_button: gr.Button
    resume_button: gr.Button
    message: gr.Markdown


def build_pauses_tab(server: ServerView) -> PausesTab:
    """The tab's content, empty until the first fill."""
    status = gr.Markdown("", elem_id="pauses-status")
    with gr.Row(elem_classes=["console-bar"]):
        paths = list(server.endpoints)
        endpoint = gr.Dropdown(
            [(endpoint_name(path), path) for path in paths],
            value=paths[0] if paths else None,
            label="Endpoint",
            show_label=False,
            container=False,
            scale=0,
            min_width=220,
            elem_id="pause-endpoint",
        )
        pause_button = gr.Button(
            "Pause", variant="stop", size="md", scale=0, min_width=110, elem_id="pause-endpoint-button"
        )
        resume_button = gr.Button(
            "Resume", variant="primary", size="md", scale=0, min_width=110, elem_id="resume-endpoint-button"
        )
    message = gr.Markdown(
        "While an endpoint is paused its deliveries are still recorded and acknowledged (`202 paused`) and wait; "
        "**Resume** runs them in arrival order, within its `RATE_LIMIT`. A pause is kept in the journal: it "
        "survives a restart.",
        elem_id="pause-message",
    )
    return PausesTab(status, endpoint, pause_button, resume_button, message)


def fill_step(operations: ConsoleOperations, grant: gr.State, tab: PausesTab) -> Step:
    """The endpoints' table for a grant; blank (and no error) without one."""

    async def refresh_pauses(current: Any) -> str:
        if not is_granted(current):
            return ""
        return await call(operations.status, current)

    return Step(refresh_pauses, [grant], [tab.status])


def wire_pauses(operations: ConsoleOperations, session: Session, tab: PausesTab, fill: Step) -> None:
    """Pause and Resume, each followed by a fill; a fill on the health timer too."""
    grant = session.grant
    fill.on(session.health_ticker.tick, "console_pauses", **QUIET)
    for button, action, name in (
        (tab.pause_button, operations.pause, "console_pause"),
        (tab.resume_button, operations.resume, "console_resume"),
    ):
        done = button.click(
            action, [grant, tab.endpoint], [tab.message], api_name=name, concurrency_limit=None, **PRIVATE
        )
        fill.on(done.then, f"{name}_then_status", **QUIET)
