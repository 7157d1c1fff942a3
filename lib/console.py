"""The operator console's tab: its layout, and listeners wiring each component to a console action.

A tab of the landing page, locked until the visitor proves to be the operator (`lib.access`).
Once unlocked it shows the deliveries as they arrive (what came in, what each handler did,
each attempt's result or traceback), replays one event or every dead event of an endpoint
after a fix, sends sample events through the real endpoint, summarises health against the
Hub's limits, and registers the Space's webhooks on the Hub.

Only Gradio lives here. What each button does, and the grant check that makes it safe to expose
as an HTTP API, is in `lib.console_actions`; how records read on screen is in `lib.console_format`.
The listeners below only gate the page's panels on the grant and turn the actions' results into
component updates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr
import pandas as pd

from . import hub_registration
from .access import NO_SECRET_MESSAGE, AccessControl, AccessDenied, Grant, client_keys, is_granted
from .console_actions import ALL, REPO_TYPES, Console, HubView, require
from .console_format import (
    STATE_COLORS,
    STATE_LABELS,
    STATES_COLUMNS,
    deliveries_frame,
    endpoint_name,
    hub_webhooks_frame,
)
from .journal import EventState

if TYPE_CHECKING:
    from .server import WebhooksServer

REFRESH_SECONDS = 5.0
HEALTH_REFRESH_SECONDS = 30.0
SCOPES = ["repo", "repo.content", "repo.config", "discussion", "discussion.comment"]
"""Scopes offered in the deliveries filter (a custom value is allowed too)."""

CSS = """
#console-summary { border-radius: 6px; }
.verdict-ok { border-left: 4px solid #16a34a; padding: 0.5em 1em; background: rgba(22,163,74,0.08); }
.verdict-warn { border-left: 4px solid #d97706; padding: 0.5em 1em; background: rgba(217,119,6,0.10); }
.verdict-bad { border-left: 4px solid #dc2626; padding: 0.5em 1em; background: rgba(220,38,38,0.08); }
.verdict-idle { border-left: 4px solid #64748b; padding: 0.5em 1em; background: rgba(100,116,139,0.08); }
#console-lock { max-width: 560px; }
.console-bar { align-items: center; }
.usage p { margin: 0 0 0.5em 0; }
.usage-row { display: grid; grid-template-columns: minmax(6em, max-content) 1fr max-content; gap: 0.75em;
  align-items: center; margin: 0.3em 0; }
.usage-bar { height: 0.8em; border-radius: 0.4em; background: rgba(100,116,139,0.18); overflow: hidden; }
.usage-bar > div { height: 100%; border-radius: 0.4em; }
.usage-ok { background: #16a34a; } .usage-warn { background: #d97706; } .usage-bad { background: #dc2626; }
#health-table table { width: 100%; }
"""


def _keys(request: gr.Request | None) -> list[str]:
    """Who is knocking, for the unlock rate limits: client address and session."""
    if request is None:
        return ["ip:unknown"]
    host = request.client.host if request.client else None
    return client_keys(dict(request.headers), host, request.session_hash)


def build_console(server: WebhooksServer, page: gr.Blocks, *, access: AccessControl | None = None) -> Console:
    """Lay out the console inside the current Blocks context and wire it to a `Console`.

    Everything below the lock panel starts hidden and empty; only listeners holding a grant fill it.
    """
    from .landing import setup_markdown

    console = Console(server, access)
    settings = server.settings
    endpoint_paths = list(server.endpoints)
    endpoint_choices = [("All endpoints", ALL)] + [(endpoint_name(path), path) for path in endpoint_paths]
    private: dict[str, Any] = {"api_visibility": "private"}

    gr.HTML(f"<style>{CSS}</style>", padding=False)
    grant = gr.State(None, time_to_live=24 * 3600)
    ticker = gr.Timer(REFRESH_SECONDS, active=False)
    health_ticker = gr.Timer(HEALTH_REFRESH_SECONDS, active=False)

    with gr.Column(elem_id="console-lock") as lock_panel:
        gr.Markdown(
            "### 🔒 Operator console\n"
            "Every delivery this Space received, what each handler did with it, failures with their "
            "tracebacks, replays and test events. Only for whoever runs this Space."
        )
        if settings.secret_configured:
            secret_box = gr.Textbox(
                label="Webhook secret",
                type="password",
                placeholder="the value of WEBHOOK_SECRET",
                elem_id="console-secret",
                max_lines=1,
            )
            unlock_button = gr.Button("Unlock", variant="primary", elem_id="console-unlock")
        else:
            secret_box = gr.Textbox(visible=False)
            unlock_button = None
            gr.Markdown(NO_SECRET_MESSAGE, elem_classes=["status-warn"], elem_id="console-no-secret")
        if console.access.oauth_enabled:
            gr.Markdown(f"or sign in as **{console.access.owner}** (or a member of it):")
            gr.LoginButton(elem_id="console-login")
        lock_message = gr.Markdown("", elem_id="console-lock-message")

    with gr.Column(visible=False, elem_id="console") as console_panel:
        with gr.Row(elem_classes=["console-bar"]):
            who = gr.Markdown("", elem_id="console-who")
            lock_button = gr.Button("Lock", size="sm", variant="secondary", scale=0, min_width=80)
        summary = gr.Markdown("", elem_id="console-summary")
        with gr.Row(visible=False, elem_classes=["console-bar"]) as dead_row:
            dead_button = gr.Button(
                "Re-run dead events", variant="stop", size="md", scale=0, min_width=200, elem_id="rerun-dead"
            )
            dead_endpoint = gr.Dropdown(
                endpoint_choices,
                value=ALL,
                label="of endpoint",
                show_label=False,
                container=False,
                scale=0,
                min_width=220,
            )
        action_message = gr.Markdown("", elem_id="console-action")

        with gr.Tabs():
            with gr.Tab("Deliveries", id="deliveries"):
                with gr.Row():
                    f_endpoint = gr.Dropdown(endpoint_choices, value=ALL, label="Endpoint", min_width=120)
                    f_state = gr.Dropdown(
                        [(ALL, ALL)] + [(STATE_LABELS[s], str(s)) for s in EventState],
                        value=ALL,
                        label="State",
                        min_width=120,
                    )
                    f_scope = gr.Dropdown(
                        [ALL, *SCOPES], value=ALL, label="Scope", allow_custom_value=True, min_width=120
                    )
                    f_repo = gr.Textbox(label="Repo", placeholder="owner/name", min_width=120, max_lines=1)
                table = gr.Dataframe(
                    deliveries_frame([]),
                    interactive=False,
                    max_height=420,
                    elem_id="deliveries",
                    label="Newest first; click a row for its payload and attempts",
                )
                with gr.Row(elem_classes=["console-bar"]):
                    event_number = gr.Number(
                        None,
                        label="Event #",
                        show_label=False,
                        container=False,
                        placeholder="event #",
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
                detail_title = gr.Markdown("", elem_id="event-title")
                with gr.Tabs():
                    with gr.Tab("Attempts"):
                        detail_attempts = gr.Markdown("", elem_id="event-attempts")
                    with gr.Tab("Payload"):
                        detail_payload = gr.Code(
                            "", language="json", interactive=False, lines=12, max_lines=40, elem_id="event-payload"
                        )
                    with gr.Tab("Headers"):
                        detail_headers = gr.JSON({}, elem_id="event-headers")

            with gr.Tab("Health", id="health"):
                with gr.Row():
                    with gr.Column(min_width=280):
                        health_table = gr.Markdown("", elem_id="health-table")
                    states_plot = gr.BarPlot(
                        pd.DataFrame([], columns=STATES_COLUMNS),
                        x="period",
                        y="events",
                        color="state",
                        color_map=STATE_COLORS,
                        sort=["Last hour", "Last 24 h"],
                        title="Events by state",
                        x_title="",
                        height=240,
                        min_width=280,
                        elem_id="states-plot",
                    )
                usage_html = gr.HTML("", elem_id="hub-usage")

            with gr.Tab("Test events", id="test"):
                gr.Markdown(
                    "Sends a sample Hub event through the real endpoint (with the secret, marked as a test), "
                    "so the whole path runs: authentication, journal, handler."
                )
                from .sample_events import SAMPLE_KINDS

                with gr.Row():
                    t_endpoint = gr.Dropdown(
                        [(endpoint_name(p), p) for p in endpoint_paths],
                        value=endpoint_paths[0] if endpoint_paths else None,
                        label="Endpoint",
                        elem_id="test-endpoint",
                    )
                    t_kind = gr.Dropdown(
                        [(f"{kind}: {description}", kind) for kind, description in SAMPLE_KINDS.items()],
                        value=next(iter(SAMPLE_KINDS), None),
                        label="Event",
                        elem_id="test-kind",
                    )
                with gr.Row():
                    t_repo = gr.Textbox(
                        value=f"{console.access.owner or 'my-user'}/my-model",
                        label="Repo",
                        max_lines=1,
                        elem_id="test-repo",
                    )
                    t_repo_type = gr.Dropdown(list(REPO_TYPES), value="model", label="Repo type")
                send_button = gr.Button("Send test event", variant="primary", elem_id="test-send")
                test_result = gr.Markdown("", elem_id="test-result")

            with gr.Tab("Hub registration", id="hub"):
                has_token = bool(hub_registration.hub_token())
                hub_message = gr.Markdown("", elem_id="hub-message")
                with gr.Column(visible=has_token):
                    hub_table = gr.Dataframe(
                        hub_webhooks_frame([]),
                        interactive=False,
                        wrap=True,
                        label="Webhooks on the Hub",
                        elem_id="hub-table",
                    )
                    with gr.Row():
                        hub_refresh = gr.Button("Refresh", min_width=100, scale=0)
                        hub_sync = gr.Button(
                            "Create / update webhooks", variant="primary", min_width=200, scale=0, elem_id="hub-sync"
                        )
                    with gr.Row(visible=False, elem_classes=["console-bar"]) as hub_enable_row:
                        hub_disabled = gr.Dropdown([], show_label=False, container=False, min_width=160)
                        hub_enable = gr.Button("Enable", min_width=100, scale=0)
                with gr.Accordion("Set it up by hand", open=not has_token):
                    gr.Markdown(setup_markdown(server))

    # --- wiring -----------------------------------------------------------------------------

    panels = [grant, lock_panel, console_panel, lock_message, secret_box, ticker, health_ticker, who]

    def opened(new_grant: Grant) -> tuple:
        label = (
            f"🔓 **Console unlocked** with the {new_grant.who}"
            if new_grant.method == "secret"
            else (f"🔓 **Console unlocked**: signed in as {new_grant.who}")
        )
        return (
            new_grant,
            gr.Column(visible=False),
            gr.Column(visible=True),
            "",
            gr.Textbox(value=""),
            gr.Timer(active=True),
            gr.Timer(active=True),
            label,
        )

    def closed(message: str = "") -> tuple:
        return (
            None,
            gr.Column(visible=True),
            gr.Column(visible=False),
            message,
            gr.Textbox(value=""),
            gr.Timer(active=False),
            gr.Timer(active=False),
            "",
        )

    def unlock(secret: str, current: Any, request: gr.Request) -> tuple:
        if is_granted(current):
            return opened(current)
        try:
            return opened(console.unlock(secret, keys=_keys(request)))
        except AccessDenied as exc:
            return closed(f"**{exc.message}**")

    def lock(current: Any) -> tuple:
        return closed("Locked.")

    async def refresh(current: Any, endpoint: str, state: str, repo: str, scope: str) -> tuple:
        if not is_granted(current):
            if isinstance(current, Grant):  # it expired while the page was open: lock the page too
                return (*closed("The console locked itself (the session expired): unlock it again."), *_blank_refresh())
            return (*_unchanged(len(panels)), *_blank_refresh())  # leave the lock panel's message alone
        verdict = await console.verdict(current)
        return (
            *_unchanged(len(panels)),
            gr.Markdown(verdict.markdown, elem_classes=[f"verdict-{verdict.level}"]),
            gr.Row(visible=verdict.dead > 0),
            await console.deliveries(current, endpoint, state, repo, scope),
        )

    def _blank_refresh() -> tuple:
        return gr.Markdown("", elem_classes=[]), gr.Row(visible=False), deliveries_frame([])

    async def refresh_health(current: Any) -> tuple:
        if not is_granted(current):
            return "", None, ""
        health = await console.health(current)
        return health.table, health.states, health.usage_html

    async def show(current: Any, number: Any) -> tuple:
        detail = await console.event_detail(current, number)
        return detail.title, detail.attempts, detail.payload, detail.headers

    async def show_sent(current: Any, number: Any) -> tuple:
        """After a test event: its details, or nothing when the endpoint refused it (no event id)."""
        if number is None:
            return _unchanged(len(detail_outputs))
        return await show(current, number)

    def pick(current: Any, evt: gr.SelectData) -> Any:
        require(current)
        row = evt.row_value or []
        return row[0] if row else None

    async def replay(current: Any, number: Any) -> str:
        return await console.replay(current, number)

    async def replay_dead(current: Any, endpoint: str) -> str:
        return await console.replay_dead(current, endpoint)

    async def send(current: Any, endpoint: str, kind: str, repo: str, repo_type: str) -> tuple:
        message, event_id = await console.send_test(current, endpoint, kind, repo, repo_type)
        return message, event_id if event_id is not None else gr.Number()

    def hub_outputs(view: HubView) -> tuple:
        return (
            view.message,
            view.table,
            gr.Dropdown(choices=view.disabled_ids, value=view.disabled_ids[0] if view.disabled_ids else None),
            gr.Row(visible=bool(view.disabled_ids)),
        )

    def hub_list(current: Any) -> tuple:
        return hub_outputs(console.hub_view(current))

    def hub_list_if_open(current: Any) -> tuple:
        """After an unlock attempt: fill the Hub tab, or stay silent when the attempt failed."""
        if not is_granted(current):
            return _unchanged(len(hub_outputs_list))
        return hub_list(current)

    def hub_apply(current: Any) -> tuple:
        return hub_outputs(console.hub_sync(current))

    def hub_turn_on(current: Any, webhook_id: str) -> tuple:
        return hub_outputs(console.hub_enable(current, webhook_id))

    filters = [f_endpoint, f_state, f_repo, f_scope]
    refresh_outputs = [*panels, summary, dead_row, table]
    detail_outputs = [detail_title, detail_attempts, detail_payload, detail_headers]
    health_outputs = [health_table, states_plot, usage_html]
    hub_outputs_list = [hub_message, hub_table, hub_disabled, hub_enable_row]
    quiet: dict[str, Any] = {**private, "show_progress": "hidden"}

    def after_open(event: Any) -> None:
        event.then(refresh, [grant, *filters], refresh_outputs, api_name="console_refresh_after_unlock", **quiet).then(
            refresh_health, [grant], health_outputs, api_name="console_health_after_unlock", **quiet
        ).then(hub_list_if_open, [grant], hub_outputs_list, api_name="console_hub_after_unlock", **quiet)

    if unlock_button is not None:
        for trigger in (unlock_button.click, secret_box.submit):
            after_open(trigger(unlock, [secret_box, grant], panels, api_name="console_unlock", **private))
    if console.access.oauth_enabled:

        def oauth_unlock(current: Any, profile: gr.OAuthProfile | None, token: gr.OAuthToken | None) -> tuple:
            if is_granted(current):
                return opened(current)
            if profile is None:
                return closed("")
            try:
                new_grant = console.access.unlock_with_oauth(
                    username=profile.username,
                    profile_orgs=profile.get("orgs") or (),
                    token=token.token if token else None,
                )
            except AccessDenied as exc:
                return closed(f"**{exc.message}**")
            return opened(new_grant)

        after_open(page.load(oauth_unlock, [grant], panels, api_name="console_oauth", **private))

    lock_button.click(lock, [grant], panels, api_name="console_lock", **private)
    ticker.tick(refresh, [grant, *filters], refresh_outputs, api_name="console_refresh", **quiet)
    health_ticker.tick(refresh_health, [grant], health_outputs, api_name="console_health", **quiet)
    for component in (f_endpoint, f_state, f_scope):
        component.change(refresh, [grant, *filters], refresh_outputs, api_name="console_filter", **quiet)
    f_repo.submit(refresh, [grant, *filters], refresh_outputs, api_name="console_filter_repo", **quiet)

    table.select(pick, [grant], [event_number], api_name="console_pick", **private).then(
        show, [grant, event_number], detail_outputs, api_name="console_show_picked", **private
    )
    for trigger in (show_button.click, event_number.submit):
        trigger(show, [grant, event_number], detail_outputs, api_name="console_show", **private)
    replay_button.click(
        replay, [grant, event_number], [action_message], api_name="console_replay", concurrency_limit=None, **private
    ).then(refresh, [grant, *filters], refresh_outputs, api_name="console_refresh_after_replay", **quiet)
    dead_button.click(
        replay_dead,
        [grant, dead_endpoint],
        [action_message],
        api_name="console_replay_dead",
        concurrency_limit=None,
        **private,
    ).then(refresh, [grant, *filters], refresh_outputs, api_name="console_refresh_after_replay_dead", **quiet)
    send_button.click(
        send,
        [grant, t_endpoint, t_kind, t_repo, t_repo_type],
        [test_result, event_number],
        api_name="console_send_test",
        concurrency_limit=None,
        **private,
    ).then(refresh, [grant, *filters], refresh_outputs, api_name="console_refresh_after_test", **quiet).then(
        show_sent, [grant, event_number], detail_outputs, api_name="console_show_test", **quiet
    )
    hub_refresh.click(hub_list, [grant], hub_outputs_list, api_name="console_hub_list", **private)
    hub_sync.click(hub_apply, [grant], hub_outputs_list, api_name="console_hub_sync", **private)
    hub_enable.click(hub_turn_on, [grant, hub_disabled], hub_outputs_list, api_name="console_hub_enable", **private)
    return console


def _unchanged(count: int) -> tuple:
    return tuple(gr.skip() for _ in range(count))
