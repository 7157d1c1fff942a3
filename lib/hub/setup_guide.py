"""What to tell the Hub, derived from the registered endpoints: URLs, watched items, domains and
the `hf webhooks create` command. Plain text in, plain text out, so the landing page, the logs
and the tests all say the same thing.
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..core.registry import Endpoint

HUB_WEBHOOK_SETTINGS = "https://huggingface.co/settings/webhooks"
PLACEHOLDER_OWNER = "YOUR_USERNAME"
WAYS_OUT = (
    "1. **The share tunnel:** restart with `GRADIO_SHARE=true bin/run` (or `launch(share=True)`). Gradio gives "
    "a temporary public URL, `https://<random>.gradio.live`, that forwards here while the app runs; the URLs "
    "and steps then use it.",
    "2. **Deploy** as a Space (README, *Deploy on the Hub*): its URL is `https://<owner>-<space>.hf.space`.",
)
"""How a local app gets a URL the Hub can reach, in the log and on the page."""


def hub_can_reach(url: str) -> bool:
    """False for a URL only this machine or its network can open (loopback, private, link-local).

    The Hub sends events from the internet: giving it `http://127.0.0.1:7860/...` can never work.
    """
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith((".localhost", ".local")) or ("." not in host and ":" not in host):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True  # a name: assume it is public
    return not (address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified)


@dataclass(frozen=True)
class EndpointSetup:
    """How to point one Hub webhook at one endpoint."""

    path: str
    url: str
    watch: tuple[str, ...]
    """`type:name` items for `hf webhooks create --watch` (user:x, org:x, model:x/y ...)."""
    domains: tuple[str, ...]

    def command(self, *, secret_configured: bool) -> str:
        """The `hf webhooks create` line; the secret is read from the shell, never written out."""
        parts = ["hf", "webhooks", "create", "--url", self.url]
        for item in self.watch:
            parts += ["--watch", item]
        for domain in self.domains:
            parts += ["--domain", domain]
        line = shlex.join(parts)
        if secret_configured:
            line += ' --secret "$WEBHOOK_SECRET"'
        return line


def watched_items(endpoint: Endpoint, *, owner: str | None) -> tuple[str, ...]:
    """What the webhook should watch, from the endpoint's `repo=` patterns, else the Space's owner."""
    items: list[str] = []
    repo_types = endpoint.events.repo_types or ("model",)
    for pattern in endpoint.events.repos or ():
        namespace, _, name = pattern.partition("/")
        # `my-org/*` and `my-org/bert-*` alike: watching the owner is what delivers their events.
        if any(char in name for char in "*?[") and not any(char in namespace for char in "*?["):
            items.append(f"user:{namespace}")
        elif not any(char in pattern for char in "*?["):
            items += [f"{repo_type}:{pattern}" for repo_type in repo_types]
    if not items:
        items.append(f"user:{owner or PLACEHOLDER_OWNER}")
    return tuple(dict.fromkeys(items))


def endpoint_setups(endpoints: list[Endpoint], *, base_url: str, owner: str | None) -> list[EndpointSetup]:
    return [
        EndpointSetup(
            path=endpoint.path,
            url=base_url.rstrip("/") + endpoint.path,
            watch=watched_items(endpoint, owner=owner),
            domains=endpoint.events.domains,
        )
        for endpoint in endpoints
    ]
