"""The Space's landing page: which URL to give the Hub, for each endpoint, and how.

Public by design: it shows whether a secret is set (never its value) and never shows an event.
Events live behind the console tab (`lib.ui.console`), which opens only for the operator.
"""

from __future__ import annotations

import html

import gradio as gr
from huggingface_hub import get_token

from ..core.settings import HOW_TO_CHOOSE_A_SECRET, PLACEHOLDER_SECRET, Settings
from ..hub.setup_guide import hub_can_reach
from ..journal import JournalDamage, journal_location
from .console import build_console
from .console.lock import LOCKED_TAB_LABEL
from .setup_steps import local_markdown, setup_markdown
from .view import ServerView

CSS = """
.status-ok { border-left: 4px solid #16a34a; padding: 0.5em 1em; background: rgba(22,163,74,0.08); }
.status-warn { border-left: 4px solid #d97706; padding: 0.5em 1em; background: rgba(217,119,6,0.10); }
.status-bad { border-left: 4px solid #dc2626; padding: 0.5em 1em; background: rgba(220,38,38,0.08); }
"""


def secret_status(settings: Settings) -> tuple[str, str]:
    """(markdown, css class) saying whether the endpoints are protected."""
    if settings.uses_placeholder_secret:
        return (
            f"**⚠️ The webhook secret is `{PLACEHOLDER_SECRET}`, the placeholder from `.env.example`: anyone who "
            "has seen this template knows it, so it protects nothing.** Set `WEBHOOK_SECRET` to a secret of your "
            f"own in `.env` ({HOW_TO_CHOOSE_A_SECRET}). A Space refuses to start with it.",
            "status-bad",
        )
    if settings.secret_configured:
        count = len(settings.webhook_secrets)
        extra = f" ({count} secrets accepted, for rotation)" if count > 1 else ""
        return (
            f"**Webhook secret: configured{extra}.** Requests without it get 401, with a wrong one 403.",
            "status-ok",
        )
    return (
        "**⚠️ No webhook secret is configured: anyone who finds these URLs can post events.** "
        "Set `WEBHOOK_SECRET` in the Space's settings (Settings → Variables and secrets → New secret) "
        "and give the Hub's webhook the same secret.",
        "status-warn",
    )


def token_status(has_token: bool) -> tuple[str, str]:
    """Whether handlers can call the Hub (`hub_client()` needs `HF_TOKEN`); never the token."""
    if has_token:
        return "**Hub token:** set; handlers can call the Hub.", "status-ok"
    return (
        "**No Hub token (`HF_TOKEN`)**: handlers that call the Hub (through `hub_client()`) fail their events "
        "until you add it as a Space secret; replay those events from the console afterwards.",
        "status-warn",
    )


def journal_status(settings: Settings) -> tuple[str, str]:
    if settings.database_url is not None:  # the host and database only: the URL holds a password
        return (
            f"**Event journal:** `{journal_location(settings)}`, shared by every replica pointed at it: "
            "events survive restarts and rebuilds.",
            "status-ok",
        )
    if settings.journal_is_persistent:
        return f"**Event journal:** `{settings.journal_path}`: events survive restarts.", "status-ok"
    return (
        f"**Event journal on ephemeral disk** (`{settings.journal_path}`): events survive a crash of the app "
        "but not a rebuild of the Space. Enable persistent storage in the Space's settings to keep them.",
        "status-warn",
    )


def damage_status(losses: list[JournalDamage]) -> str:
    """Whether the journal lost acknowledged events (how many, never which): "" when it did not."""
    if not losses:
        return ""
    count = sum(loss.count for loss in losses)
    return (
        f"**⚠️ The event journal lost up to {count} acknowledged event(s)**, whose handlers did not run "
        "(the Hub will not send them again by itself). The operator's console says which, and how to replay "
        "them from the Hub; dismiss the report there once done."
    )


def docstring_markdown(text: str) -> str:
    """Show a docstring as written: its line breaks kept, and `<you>/<repo>` placeholders outside
    `code` not swallowed as HTML tags (inside backticks Markdown already shows them as they are)."""
    parts = text.split("`")
    parts[::2] = [html.escape(part, quote=False) for part in parts[::2]]
    return "`".join(parts).replace("\n", "  \n")


def endpoints_markdown(server: ServerView) -> str:
    """Each endpoint with its full URL, what it does and the events it wants."""
    if not server.endpoints:
        return "No endpoint yet: add a module to `handlers/` (see `handlers/README.md`)."
    urls = server.webhook_urls()
    local = not hub_can_reach(server.public_url())
    label = "**Local URL** (for `python -m lib.send`; not for the Hub):" if local else "**URL:**"
    blocks = []
    for path, endpoint in server.endpoints.items():
        description = docstring_markdown(endpoint.description or "(no docstring)")
        blocks.append(
            f"### `{endpoint.name}`\n\n"
            f"{label} `{urls[path]}`\n\n"
            f"**Wants:** {endpoint.events.describe()}\n\n"
            f"{description}"
        )
    return "\n\n---\n\n".join(blocks)


def build_landing_page(server: ServerView) -> gr.Blocks:
    """The public page (status, endpoints, configuration steps) and the operator's locked console."""
    settings = server.settings
    with gr.Blocks(title="Hub webhooks", analytics_enabled=False) as page:
        gr.HTML(f"<style>{CSS}</style>", padding=False)
        gr.Markdown(
            "# 🪝 Hugging Face Hub webhooks\n"
            "This Space receives webhook events from the Hugging Face Hub (new commits, discussions, "
            "comments, settings changes) and runs a Python handler for each."
        )
        secret_text, secret_class = secret_status(settings)
        gr.Markdown(secret_text, elem_classes=[secret_class], elem_id="secret-status")
        journal_text, journal_class = journal_status(settings)
        gr.Markdown(journal_text, elem_classes=[journal_class], elem_id="journal-status")
        token_text, token_class = token_status(get_token() is not None)
        gr.Markdown(token_text, elem_classes=[token_class], elem_id="token-status")
        damage = gr.Markdown("", visible=False, elem_classes=["status-bad"], elem_id="journal-damage")
        if server.share_url:
            gr.Markdown(
                f"**Temporary public URL:** `{server.share_url}` forwards to this machine while the app runs. "
                "Anyone with it can reach the endpoints: the webhook secret is what protects them.",
                elem_classes=["status-warn"],
                elem_id="share-warning",
            )
        if not hub_can_reach(server.public_url()):
            gr.Markdown(local_markdown(server.public_url()), elem_classes=["status-warn"], elem_id="local-url")
        with gr.Tab("Endpoints"):
            gr.Markdown(endpoints_markdown(server), elem_id="endpoints")
        with gr.Tab("Set up on the Hub"):
            gr.Markdown(setup_markdown(server), elem_id="setup")
        with gr.Tab(LOCKED_TAB_LABEL, id="console-tab") as console_tab:
            build_console(server, page, tab=console_tab)

        async def show_damage() -> gr.Markdown:
            problem = await server.journal.health()  # its database unreachable: said first, until it answers again
            text = "\n\n".join(
                part for part in (problem and f"**⚠️ {problem}**", damage_status(await server.journal.damage())) if part
            )
            return gr.Markdown(text, visible=bool(text))

        # On each visit, not once when the page is built: a report appears after a reopening and goes when dismissed.
        page.load(show_damage, None, [damage], api_name="journal_damage", api_visibility="private")
    return page
