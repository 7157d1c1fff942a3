"""The operator console's tab: its sections laid out in place, each wired to the console's actions.

A tab of the landing page, locked until the visitor proves to be the operator (`lib.ui.access`).
Once unlocked it shows the deliveries as they arrive (what came in, what each handler did,
each attempt's result or traceback), replays one event, every dead event of an endpoint
or every event its filters match after a fix, pauses and resumes an endpoint, sends sample
events through the real endpoint, summarises health against the Hub's limits, and registers
the Space's webhooks on the Hub.

Only Gradio lives in this package, one module per section: `lock` (the lock panel and the
unlock/lock flow), `deliveries` (with `bulk_replay`, its filters' replay), `health`, `pauses`
(pause, resume, rate limits), `sending` (test events) and `hub_webhooks` (Hub registration).
What each button does, and the grant check that makes it safe to expose as an HTTP API, is in
`lib.ui.console_actions` (`lib.ui.console_operations` for pauses and bulk replays); how records
read on screen is in `lib.ui.console_format`.
`build_console` only puts the sections in page order and hands each the others' steps it runs.
"""

from __future__ import annotations

import gradio as gr

from ..access import AccessControl
from ..console_actions import Console
from ..console_jobs import ConsoleJobs
from ..console_operations import ConsoleOperations
from ..view import ServerView
from . import bulk_replay, deliveries, health, hub_webhooks, lock, pauses, sending
from .listeners import refuse_malformed_calls
from .style import CSS

__all__ = ["build_console"]


def build_console(
    server: ServerView, page: gr.Blocks, *, access: AccessControl | None = None, tab: gr.Tab | None = None
) -> Console:
    """Lay out the console inside the current Blocks context and wire it to a `Console`.

    Everything below the lock panel starts hidden and empty; only listeners holding a grant fill it.
    A call to one of its listeners with inputs the page never sends is refused before it runs.
    `tab`, the page's tab holding the console, is labelled with a lock while the console is locked.
    """
    console = Console(server, access)
    console_jobs = ConsoleJobs(console)
    others = set(page.fns)

    gr.HTML(f"<style>{CSS}</style>", padding=False)
    session = lock.start_session()
    lock_panel = lock.build_lock_panel(console)
    with gr.Column(visible=False, elem_id="console") as console_panel:
        bar = lock.build_lock_bar()
        overview = deliveries.build_overview(server)
        with gr.Tabs():
            with gr.Tab("Deliveries", id="deliveries"):
                deliveries_tab = deliveries.build_deliveries_tab(server)
            with gr.Tab("Health", id="health"):
                health_tab = health.build_health_tab()
            with gr.Tab("Pause & limits", id="pauses"):
                pauses_tab = pauses.build_pauses_tab(server)
            with gr.Tab("Test events", id="test"):
                sending_tab = sending.build_sending_tab(server, owner=console.access.owner)
            with gr.Tab("Hub registration", id="hub"):
                hub_tab = hub_webhooks.build_hub_tab(server)

    gate = lock.Gate(session, lock_panel, console_panel, bar)
    grant = session.grant
    steps = deliveries.wire_deliveries(console, console_jobs, gate, overview, deliveries_tab)
    fill_health = health.fill_step(console, console_jobs, grant, health_tab)
    operations = ConsoleOperations(server)
    fill_pauses = pauses.fill_step(operations, grant, pauses_tab)
    lock.wire_lock(
        console,
        page,
        gate,
        after_open=[
            (steps.refresh, "console_refresh_after_unlock"),
            (fill_health, "console_health_after_unlock"),
            (fill_pauses, "console_pauses_after_unlock"),
            (hub_webhooks.fill_step(console, grant, hub_tab), "console_hub_after_unlock"),
        ],
    )
    health.wire_health(session, fill_health)
    sending.wire_sending(
        console, grant, sending_tab, event_number=deliveries_tab.event_number, refresh=steps.refresh, show=steps.show
    )
    hub_webhooks.wire_hub(console, grant, hub_tab)
    pauses.wire_pauses(operations, session, pauses_tab, fill_pauses)
    bulk_replay.wire_bulk_replay(operations, grant, deliveries_tab.bulk, deliveries_tab.filters, steps.refresh)
    if tab is not None:
        lock.wire_tab_label(grant, tab)
    refuse_malformed_calls(page, [fn for key, fn in page.fns.items() if key not in others])
    return console
