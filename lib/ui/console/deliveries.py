"""The console's deliveries: the verdict above the tabs, the Deliveries tab, one event's detail, replays.

The verdict ("working, failing or silent") and the *Re-run dead events* row sit above the tabs,
the table with its filters and the chosen event's attempts, payload and headers in the first tab;
one refresh fills the verdict and the table together. Other tabs reuse two of these listeners
(`refresh` after an unlock or a test event, `show` for the test event just sent), so
`wire_deliveries` returns them as steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.blocks import Block

from ...journal import EventState
from ..access import Grant, is_granted
from ..console_actions import ALL, Console, require
from ..console_format import STATE_LABELS, deliveries_frame, endpoint_name
from ..console_jobs import ConsoleJobs
from ..time_range import RECEIVED_CHOICES
from ..view import ServerView
from . import jobs
from .bulk_replay import BulkRow, build_bulk_row
from .listeners import PRIVATE, QUIET, Step, call, unchanged
from .lock import Gate, closed

SCOPES = ["repo", "repo.content", "repo.config", "discussion", "discussion.comment"]
"""Scopes offered in the deliveries filter (a custom value is allowed too)."""


def endpoint_choices(server: ServerView) -> list[tuple[str, str]]:
    """Every endpoint by name, after "All endpoints": the filter's and the re-run's choices."""
    return [("All endpoints", ALL)] + [(endpoint_name(path), path) for path in server.endpoints]


@dataclass(frozen=True)
class Overview:
    """Above the tabs: the verdict, the dismiss and re-run rows (shown only with lost or dead events), the last
    action's result, and the confirmations a replay that launches new Hub Jobs waits for."""

    summary: gr.Markdown
    damage_row: gr.Row
    damage_button: gr.Button
    dead_row: gr.Row
    dead_button: gr.Button
    dead_endpoint: gr.Dropdown
    action_message: gr.Markdown
    confirmations: jobs.Confirmations


def build_overview(server: ServerView) -> Overview:
    """Above the tabs, so the verdict and the re-run stay in sight whichever tab is open."""
    summary = gr.Markdown("", elem_id="console-summary")
    with gr.Row(visible=False, elem_classes=["console-bar"]) as damage_row:
        damage_button = gr.Button(
            "Dismiss the report of lost events", size="md", scale=0, min_width=260, elem_id="dismiss-damage"
        )
    with gr.Row(visible=False, elem_classes=["console-bar"]) as dead_row:
        dead_button = gr.Button(
            "Re-run dead events", variant="stop", size="md", scale=0, min_width=200, elem_id="rerun-dead"
        )
        dead_endpoint = gr.Dropdown(
            endpoint_choices(server),
            value=ALL,
            label="of endpoint",
            show_label=False,
            container=False,
            scale=0,
            min_width=220,
        )
    action_message = gr.Markdown("", elem_id="console-action")
    confirmations = jobs.build_confirmations()
    return Overview(
        summary, damage_row, damage_button, dead_row, dead_button, dead_endpoint, action_message, confirmations
    )


@dataclass(frozen=True)
class DeliveriesTab:
    """The filters, the table, the event-number bar and the chosen event's detail (its Hub Job, if any)."""

    endpoint: gr.Dropdown
    state: gr.Dropdown
    scope: gr.Dropdown
    repo: gr.Textbox
    received: gr.Dropdown
    bulk: BulkRow
    table: gr.Dataframe
    event_number: gr.Number
    show_button: gr.Button
    replay_button: gr.Button
    title: gr.Markdown
    job: jobs.JobPanel
    attempts: gr.Markdown
    payload: gr.Code
    headers: gr.JSON

    @property
    def filters(self) -> list[Block]:
        """In the order of `Console.deliveries`' arguments."""
        return [self.endpoint, self.state, self.repo, self.scope, self.received]

    @property
    def detail(self) -> list[Block]:
        return [self.title, self.attempts, self.payload, self.headers, self.job.markdown, self.job.cancel_row]


def build_deliveries_tab(server: ServerView) -> DeliveriesTab:
    """The tab's content; the table starts empty (its columns only) until a refresh with a grant."""
    with gr.Row():
        endpoint = gr.Dropdown(endpoint_choices(server), value=ALL, label="Endpoint", min_width=120)
        state = gr.Dropdown(
            [(ALL, ALL)] + [(STATE_LABELS[s], str(s)) for s in EventState],
            value=ALL,
            label="State",
            min_width=120,
            elem_id="filter-state",
        )
        scope = gr.Dropdown([ALL, *SCOPES], value=ALL, label="Scope", allow_custom_value=True, min_width=120)
        repo = gr.Textbox(label="Repo", placeholder="owner/name", min_width=120, max_lines=1)
        received = gr.Dropdown(
            [("Any time", ALL), *RECEIVED_CHOICES],
            value=ALL,
            label="Received (UTC)",
            allow_custom_value=True,
            info="or type `2026-11-30 14:00 to 2026-11-30 15:30`",
            min_width=160,
            elem_id="filter-received",
        )
    bulk = build_bulk_row()
    table = gr.Dataframe(
        deliveries_frame([]),
        interactive=False,
        max_height=420,
        elem_id="deliveries",
        label="Newest first; click a row for its payload and attempts",
    )
    with gr.Row(elem_classes=["event-bar"]):
        event_number = gr.Number(
            None,
            label="Event #",
            placeholder="e.g. 12",
            precision=0,
            scale=1,
            min_width=90,
            elem_id="event-number",
        )
        show_button = gr.Button("Show", size="md", scale=0, min_width=80)
        replay_button = gr.Button(
            "Replay this event",
            variant="primary",
            size="md",
            scale=0,
            min_width=170,
            elem_id="replay-event",
        )
    title = gr.Markdown("", elem_id="event-title")
    job = jobs.build_job_panel()
    with gr.Tabs():
        with gr.Tab("Attempts"):
            attempts = gr.Markdown("", elem_id="event-attempts")
        with gr.Tab("Payload"):
            payload = gr.Code("", language="json", interactive=False, lines=12, max_lines=40, elem_id="event-payload")
        with gr.Tab("Headers"):
            headers = gr.JSON({}, elem_id="event-headers")
    return DeliveriesTab(
        endpoint,
        state,
        scope,
        repo,
        received,
        bulk,
        table,
        event_number,
        show_button,
        replay_button,
        title,
        job,
        attempts,
        payload,
        headers,
    )


@dataclass(frozen=True)
class DeliveriesSteps:
    """The listeners other tabs run too."""

    refresh: Step
    """Verdict (with its rows) and table, and the lock should the grant have expired; input: grant and filters."""
    show: Step
    """One event's detail and its job; input: the grant and the event number."""


def refresh_step(console: Console, gate: Gate, overview: Overview, tab: DeliveriesTab) -> Step:
    """The verdict and the table for a grant; a grant that expired while the page was open locks the page."""
    locks = len(gate.outputs)

    def blank() -> tuple:
        return gr.Row(visible=False), gr.Markdown("", elem_classes=[]), gr.Row(visible=False), deliveries_frame([])

    async def refresh(current: Any, endpoint: str, state: str, repo: str, scope: str, received: str) -> tuple:
        if not is_granted(current):
            if isinstance(current, Grant):  # it expired while the page was open: lock the page too
                return (*closed("The console locked itself (the session expired): unlock it again."), *blank())
            return (*unchanged(locks), *blank())  # leave the lock panel's message alone
        verdict = await call(console.verdict, current)
        return (
            *unchanged(locks),
            gr.Row(visible=verdict.damaged),
            gr.Markdown(verdict.markdown, elem_classes=[f"verdict-{verdict.level}"]),
            gr.Row(visible=verdict.dead > 0),
            await call(console.deliveries, current, endpoint, state, repo, scope, received),
        )

    return Step(
        refresh,
        [gate.session.grant, *tab.filters],
        [*gate.outputs, overview.damage_row, overview.summary, overview.dead_row, tab.table],
    )


def show_step(console: Console, console_jobs: ConsoleJobs, grant: gr.State, tab: DeliveriesTab) -> Step:
    """The chosen event's attempts, payload, headers and job; errors (no such event) show as a toast."""

    async def show(current: Any, number: Any) -> tuple:
        detail = await call(console.event_detail, current, number)
        job = await jobs.panel_updates(console_jobs, current, number)
        return detail.title, detail.attempts, detail.payload, detail.headers, *job

    return Step(show, [grant, tab.event_number], tab.detail)


def wire_deliveries(
    console: Console, console_jobs: ConsoleJobs, gate: Gate, overview: Overview, tab: DeliveriesTab
) -> DeliveriesSteps:
    """Refresh on the timer and on every filter; pick a row, show an event, replay it or every dead one
    (asking first when that launches new Hub Jobs), cancel its job."""
    grant = gate.session.grant
    refresh = refresh_step(console, gate, overview, tab)
    show = show_step(console, console_jobs, grant, tab)

    def pick(current: Any, evt: gr.EventData) -> Any:
        """The event number of the row clicked. `gr.EventData`, not `gr.SelectData`: the latter reads
        the event's data before this runs, and an API call may send none (`_data` is what was sent)."""
        require(current)
        data = evt._data if isinstance(evt._data, dict) else {}
        row = data.get("row_value")
        number = row[0] if isinstance(row, list) and row else None
        if isinstance(number, str) and number.isdigit():
            return int(number)
        return number if isinstance(number, int | float) and not isinstance(number, bool) else None

    refresh.on(gate.session.ticker.tick, "console_refresh", **QUIET)
    for component in (tab.endpoint, tab.state, tab.scope, tab.received):
        refresh.on(component.change, "console_filter", **QUIET)
    refresh.on(tab.repo.submit, "console_filter_repo", **QUIET)

    picked = tab.table.select(pick, [grant], [tab.event_number], api_name="console_pick", **PRIVATE)
    show.on(picked.then, "console_show_picked", **PRIVATE)
    for trigger in (tab.show_button.click, tab.event_number.submit):
        show.on(trigger, "console_show", **PRIVATE)
    jobs.wire_replays(
        console_jobs,
        grant,
        overview.confirmations,
        message=overview.action_message,
        replay_button=tab.replay_button,
        event_number=tab.event_number,
        dead_button=overview.dead_button,
        dead_endpoint=overview.dead_endpoint,
        refresh=refresh,
    )
    jobs.wire_job_panel(
        console_jobs,
        grant,
        tab.job,
        message=overview.action_message,
        event_number=tab.event_number,
        refresh=refresh,
        show=show,
    )
    dismissed = overview.damage_button.click(
        console.dismiss_damage,
        [grant],
        [overview.action_message],
        api_name="console_dismiss_damage",
        concurrency_limit=None,
        **PRIVATE,
    )
    refresh.on(dismissed.then, "console_refresh_after_dismiss", **QUIET)
    return DeliveriesSteps(refresh, show)
