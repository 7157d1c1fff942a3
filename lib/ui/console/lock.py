"""The console's lock: the panel a visitor unlocks, the bar that locks it again, and what unlocking starts.

Everything else in the console is hidden until a listener here puts a `Grant` in the visitor's
session, and every console listener takes that grant as its first input. An unlock (with the
secret, or by signing in) swaps the lock panel for the console, starts the refresh timers and then
runs whatever the other tabs need to fill themselves (`after_open`); a lock, or a grant expiring
while the page is open, does the reverse. Whether an unlock is allowed is `lib.ui.access`'s call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.blocks import Block

from ..access import NO_SECRET_MESSAGE, AccessDenied, Grant, client_key, is_granted
from ..console_actions import Console
from .listeners import PRIVATE, QUIET, Step, call

REFRESH_SECONDS = 5.0
HEALTH_REFRESH_SECONDS = 30.0


@dataclass(frozen=True)
class Session:
    """The visitor's grant (kept server-side, per browser session) and the timers an unlock starts."""

    grant: gr.State
    ticker: gr.Timer
    """Refreshes the verdict and the deliveries."""
    health_ticker: gr.Timer


def start_session() -> Session:
    """The session's state and timers, created before any panel (all start empty and stopped)."""
    return Session(
        grant=gr.State(None, time_to_live=24 * 3600),
        ticker=gr.Timer(REFRESH_SECONDS, active=False),
        health_ticker=gr.Timer(HEALTH_REFRESH_SECONDS, active=False),
    )


@dataclass(frozen=True)
class LockPanel:
    """What a locked console shows: the secret box (hidden when no secret is set), sign-in, a message."""

    column: gr.Column
    secret_box: gr.Textbox
    unlock_button: gr.Button | None
    message: gr.Markdown


def build_lock_panel(console: Console) -> LockPanel:
    """The lock panel, visible until an unlock; offers sign-in only where it can work."""
    with gr.Column(elem_id="console-lock") as column:
        gr.Markdown(
            "### 🔒 Operator console\n"
            "Every delivery this Space received, what each handler did with it, failures with their "
            "tracebacks, replays and test events. Only for whoever runs this Space."
        )
        if console.server.settings.secret_configured:
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
        message = gr.Markdown("", elem_id="console-lock-message")
    return LockPanel(column, secret_box, unlock_button, message)


@dataclass(frozen=True)
class LockBar:
    """The unlocked console's top bar: who unlocked it, and the button that locks it again."""

    who: gr.Markdown
    lock_button: gr.Button


def build_lock_bar() -> LockBar:
    """Inside the console panel, so it shows only while unlocked."""
    with gr.Row(elem_classes=["console-bar"]):
        who = gr.Markdown("", elem_id="console-who")
        lock_button = gr.Button("Lock", size="sm", variant="secondary", scale=0, min_width=80)
    return LockBar(who, lock_button)


@dataclass(frozen=True)
class Gate:
    """Everything an unlock or a lock changes; `outputs` is in the order of `opened`'s and `closed`'s values."""

    session: Session
    lock: LockPanel
    console_panel: gr.Column
    bar: LockBar

    @property
    def outputs(self) -> list[Block]:
        return [
            self.session.grant,
            self.lock.column,
            self.console_panel,
            self.lock.message,
            self.lock.secret_box,
            self.session.ticker,
            self.session.health_ticker,
            self.bar.who,
        ]


def opened(new_grant: Grant) -> tuple:
    """The console shown and its timers started, for the holder of `new_grant` (the secret box emptied)."""
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
    """The lock panel shown with `message`, the grant dropped and the timers stopped."""
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


LOCKED_TAB_LABEL = "Console 🔒"
UNLOCKED_TAB_LABEL = "Console"


def wire_tab_label(grant: gr.State, tab: gr.Tab) -> None:
    """The console's tab shows the lock only while the console is locked: it follows the grant, so an
    unlock, a lock and a grant expiring while the page is open all relabel it, with one listener."""

    def label(current: Any) -> gr.Tab:
        return gr.Tab(label=UNLOCKED_TAB_LABEL if is_granted(current) else LOCKED_TAB_LABEL)

    grant.change(label, [grant], [tab], api_name="console_tab_label", **QUIET)


def _keys(request: gr.Request | None) -> list[str]:
    """Who is knocking, for the unlock rate limit: the client's address as the Space's proxy saw it.

    `request.client` is that address already (the receiver's `ProxyHeaders`); the headers and the
    session hash are the client's to choose, so neither is used.
    """
    client = request.client if request is not None else None
    return [client_key(client.host if client else None)]


def wire_lock(console: Console, page: gr.Blocks, gate: Gate, *, after_open: Sequence[tuple[Step, str]]) -> None:
    """Unlock with the secret (button or Enter), with sign-in (on page load), and lock again.

    Args:
        after_open: the steps that fill the other tabs, each with its api_name, run in turn after
            every unlock attempt (they stay silent when it failed).
    """
    grant = gate.session.grant

    async def unlock(secret: str, current: Any, request: gr.Request) -> tuple:
        if is_granted(current):
            return opened(current)
        try:
            return opened(await call(console.unlock, secret, keys=_keys(request)))
        except AccessDenied as exc:
            return closed(f"**{exc.message}**")

    def lock(current: Any) -> tuple:
        return closed("Locked.")

    def then_fill(event: Any) -> None:
        for step, api_name in after_open:
            event = step.on(event.then, api_name, **QUIET)

    if gate.lock.unlock_button is not None:
        for trigger in (gate.lock.unlock_button.click, gate.lock.secret_box.submit):
            then_fill(
                trigger(unlock, [gate.lock.secret_box, grant], gate.outputs, api_name="console_unlock", **PRIVATE)
            )
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

        then_fill(page.load(oauth_unlock, [grant], gate.outputs, api_name="console_oauth", **PRIVATE))

    gate.bar.lock_button.click(lock, [grant], gate.outputs, api_name="console_lock", **PRIVATE)
