"""The console's Test events tab: a sample Hub event sent through the real endpoint.

With the secret and marked as a test, so the whole path runs (authentication, journal, handler);
afterwards the deliveries refresh and the event just sent opens in the Deliveries tab, which is
why this tab is wired with the deliveries' steps and event-number box.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ...core.sample_events import SAMPLE_KINDS
from ..console_actions import REPO_TYPES, Console
from ..console_format import endpoint_name
from ..view import ServerView
from .listeners import PRIVATE, QUIET, Step, call, resolved, unchanged


@dataclass(frozen=True)
class SendingTab:
    """Which endpoint, which kind of event, on which repo; the button and what the endpoint answered."""

    endpoint: gr.Dropdown
    kind: gr.Dropdown
    repo: gr.Textbox
    repo_type: gr.Dropdown
    send_button: gr.Button
    result: gr.Markdown


def build_sending_tab(server: ServerView, *, owner: str | None) -> SendingTab:
    """The tab's form; the repo defaults to one under the Space's `owner`."""
    gr.Markdown(
        "Sends a sample Hub event through the real endpoint (with the secret, marked as a test), "
        "so the whole path runs: authentication, journal, handler."
    )
    endpoint_paths = list(server.endpoints)
    with gr.Row():
        endpoint = gr.Dropdown(
            [(endpoint_name(p), p) for p in endpoint_paths],
            value=endpoint_paths[0] if endpoint_paths else None,
            label="Endpoint",
            elem_id="test-endpoint",
        )
        kind = gr.Dropdown(
            [(f"{kind}: {description}", kind) for kind, description in SAMPLE_KINDS.items()],
            value=next(iter(SAMPLE_KINDS), None),
            label="Event",
            elem_id="test-kind",
        )
    with gr.Row():
        repo = gr.Textbox(
            value=f"{owner or 'my-user'}/my-model",
            label="Repo",
            max_lines=1,
            elem_id="test-repo",
        )
        repo_type = gr.Dropdown(list(REPO_TYPES), value="model", label="Repo type")
    send_button = gr.Button("Send test event", variant="primary", elem_id="test-send")
    result = gr.Markdown("", elem_id="test-result")
    return SendingTab(endpoint, kind, repo, repo_type, send_button, result)


def wire_sending(
    console: Console, grant: gr.State, tab: SendingTab, *, event_number: gr.Number, refresh: Step, show: Step
) -> None:
    """Send, then refresh the deliveries, then show the event sent (its number lands in `event_number`)."""

    async def send(current: Any, endpoint: str, kind: str, repo: str, repo_type: str) -> tuple:
        message, event_id = await call(console.send_test, current, endpoint, kind, repo, repo_type)
        return message, event_id if event_id is not None else gr.Number()

    async def show_sent(current: Any, number: Any) -> tuple:
        """After a test event: its details, or nothing when the endpoint refused it (no event id)."""
        if number is None:
            return unchanged(len(show.outputs))
        return await resolved(show.fn(current, number))

    sent = tab.send_button.click(
        send,
        [grant, tab.endpoint, tab.kind, tab.repo, tab.repo_type],
        [tab.result, event_number],
        api_name="console_send_test",
        concurrency_limit=None,
        **PRIVATE,
    )
    refreshed = refresh.on(sent.then, "console_refresh_after_test", **QUIET)
    Step(show_sent, show.inputs, show.outputs).on(refreshed.then, "console_show_test", **QUIET)
