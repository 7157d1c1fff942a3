"""The steps that register this Space's webhooks on the Hub by hand, shown twice on the page.

The landing page's *Set up on the Hub* tab and the console's *Hub registration* tab (for a Space
without a token) both show them, so they live here rather than in either: the landing page
builds the console, and the console importing them back from the landing page made a circle.
"""

from __future__ import annotations

from ..core.registry import domains_for
from ..hub.setup_guide import HUB_WEBHOOK_SETTINGS, WAYS_OUT, endpoint_setups, hub_can_reach
from .view import ServerView

HUB_WEBHOOK_DOCS = "https://huggingface.co/docs/hub/webhooks"


def local_markdown(url: str) -> str:
    """What a local app says instead of the steps: the Hub cannot reach it, and the two ways out."""
    return (
        f"**This app's URL, `{url}`, only works on this machine: the Hub cannot reach it, so do not give it "
        "to the Hub.** Two ways to receive the Hub's events:\n\n"
        + "\n".join(WAYS_OUT)
        + "\n\nMeanwhile, `python -m lib.send commit` sends a realistic event to the local URL."
    )


def setup_markdown(server: ServerView) -> str:
    """Step by step, in the Hub's own words, then the same as a command line per endpoint.

    Not for a URL the Hub cannot reach (`127.0.0.1`): the steps would have it pasted into the Hub,
    where it can never work, so the two ways to a public URL are shown instead.
    """
    if not hub_can_reach(server.public_url()):
        return local_markdown(server.public_url())
    settings = server.settings
    owner = settings.space_id.split("/")[0] if settings.space_id else None
    setups = endpoint_setups(list(server.endpoints.values()), base_url=server.public_url(), owner=owner)
    domains = domains_for(server.endpoints.values()) or ["repo", "discussion"]
    domain_names = {"repo": "Repo update", "discussion": "Community (PR & discussions)"}
    secret_step = (
        "4. **Secret:** the same value as this Space's `WEBHOOK_SECRET`."
        if settings.secret_configured
        else "4. **Secret:** choose one, put it in the webhook *and* in this Space's `WEBHOOK_SECRET`."
    )
    steps = [
        f"1. Open your [webhook settings]({HUB_WEBHOOK_SETTINGS}) and click **Add a new webhook**.",
        "2. **Target repositories:** the repos, users or organizations whose events you want "
        + (f"(e.g. `{owner}`)." if owner else "(e.g. your username)."),
        "3. **Webhook URL:** the endpoint's URL, from the *Endpoints* tab or the commands below.",
        secret_step,
        "5. **Triggers:** " + ", ".join(f"**{domain_names.get(d, d)}**" for d in domains) + ".",
        "6. Save, then trigger an event (push a commit, open a discussion) or use **Test webhook**; "
        "the Hub's *Activity* tab shows each delivery and lets you replay it.",
    ]
    commands = "\n".join(setup.command(secret_configured=settings.secret_configured) for setup in setups)
    cli = (
        "\n\nOr from a terminal with the Hugging Face CLI (`pip install -U huggingface_hub`, then `hf auth login`); "
        "use `org:NAME` instead of `user:NAME` to watch an organization:\n\n"
        f"```bash\n{commands}\n```"
        if setups
        else ""
    )
    return "\n".join(steps) + cli + f"\n\nMore in the [Hub's webhook guide]({HUB_WEBHOOK_DOCS})."
