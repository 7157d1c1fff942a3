"""The user's Hub webhooks that point at this Space: list them, and create or fix one per endpoint.

With a token (`HF_TOKEN`, a fine-grained or write token of the Space's owner), the console lists
the webhooks whose URL is this Space's, says for each whether it is enabled and whether its
secret is the Space's (never showing either secret), and creates the missing ones or updates the
existing ones with the right URL, secret and domains, so a first setup or a rotated secret is one
click. Without a token, the landing page's manual steps and `hf webhooks create` commands apply.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..core.errors import HubWebhooksError
from ..core.registry import Endpoint, domains_for
from ..core.secrets import matches_any
from .setup_guide import WAYS_OUT, endpoint_setups, hub_can_reach

logger = logging.getLogger(__name__)

ALL_DOMAINS = ("repo", "discussion")
SecretState = Literal["matches", "differs", "none"]


class HubRegistrationError(HubWebhooksError):
    """The Hub refused or could not be reached; the message says what to check."""


@dataclass(frozen=True, kw_only=True)
class HubWebhook:
    """A Hub webhook as the console shows it: no secret value, only whether it is ours."""

    id: str
    url: str
    watched: tuple[str, ...]
    """`type:name` items, as `hf webhooks create --watch` takes them."""
    domains: tuple[str, ...]
    disabled: bool
    secret: SecretState


@dataclass(frozen=True, kw_only=True)
class SyncResult:
    """What `sync_webhooks` did for one endpoint."""

    path: str
    action: Literal["created", "updated"]
    webhook: HubWebhook


def hub_token() -> str | None:
    """The token the Space was given (`HF_TOKEN`), or the one stored by `hf auth login` locally."""
    from huggingface_hub import get_token

    return get_token()


def _api(token: str) -> Any:
    from huggingface_hub import HfApi

    return HfApi(token=token)


def secret_state(hub_secret: str | None, secrets: Sequence[str]) -> SecretState:
    """Whether the Hub sends one of our secrets, compared in constant time."""
    if not hub_secret:
        return "none"
    return "matches" if matches_any(hub_secret, secrets) else "differs"


def _describe(info: Any, secrets: Sequence[str]) -> HubWebhook:
    return HubWebhook(
        id=info.id,
        url=info.url or "",
        watched=tuple(f"{item.type}:{item.name}" for item in info.watched),
        domains=tuple(info.domains or ()),
        disabled=bool(info.disabled),
        secret=secret_state(info.secret, secrets),
    )


def _hub_error(action: str, exc: Exception) -> HubRegistrationError:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    hint = {
        401: "the token is invalid or expired: set a valid HF_TOKEN in the Space's secrets",
        403: "the token may not manage webhooks: use a write token, or a fine-grained one with 'webhooks' rights",
    }.get(status or 0, "check HF_TOKEN and that the Hub is reachable")
    return HubRegistrationError(f"Could not {action} ({type(exc).__name__}: {exc}); {hint}.")


def list_space_webhooks(token: str, *, base_url: str, secrets: Sequence[str]) -> list[HubWebhook]:
    """The token owner's webhooks whose URL starts with this Space's `base_url`.

    Raises:
        HubRegistrationError: the Hub refused the token or could not be reached.
    """
    prefix = base_url.rstrip("/") + "/"
    try:
        infos = _api(token).list_webhooks()
    except Exception as exc:
        raise _hub_error("list your Hub webhooks", exc) from exc
    return [_describe(info, secrets) for info in infos if (info.url or "").startswith(prefix)]


def _watched(items: Iterable[str], orgs: set[str]) -> list[dict[str, str]]:
    """`type:name` strings as the API wants them; a `user:` item naming an organisation becomes `org:`."""
    watched = []
    for item in items:
        kind, _, name = item.partition(":")
        if kind == "user" and name in orgs:
            kind = "org"
        watched.append({"type": kind, "name": name})
    return watched


def sync_webhooks(
    token: str,
    endpoints: Sequence[Endpoint],
    *,
    base_url: str,
    owner: str | None,
    secret: str,
    secrets: Sequence[str],
) -> list[SyncResult]:
    """Create, or update, one Hub webhook per endpoint pointing at `base_url` + its path.

    A webhook whose URL is already the endpoint's is updated in place: its secret becomes `secret`,
    its domains gain those the handler needs, and its watched items are kept (passed back
    explicitly, since the API would otherwise reset them) so a user's narrower choice survives.
    A new one watches the Space's owner (or the token's user outside a Space) or the repos the
    handler names.

    Raises:
        HubRegistrationError: the Hub refused a call or could not be reached, or it could never reach
            `base_url` (`127.0.0.1`: a webhook pointing there would only fail).
    """
    from huggingface_hub import constants

    # A Hub on this machine (a test's stand-in, through HF_ENDPOINT) can reach a local URL; the real one cannot.
    if not hub_can_reach(base_url) and hub_can_reach(constants.ENDPOINT):
        raise HubRegistrationError(
            f"This app's URL, {base_url}, only works on this machine: the Hub cannot reach it, so no webhook "
            "was created. Give the app a public URL first: " + " ".join(WAYS_OUT).replace("**", "")
        )
    api = _api(token)
    try:
        me = api.whoami()
        existing = api.list_webhooks()
    except Exception as exc:
        raise _hub_error("read your account and webhooks", exc) from exc
    orgs = {org.get("name") for org in me.get("orgs", ()) if isinstance(org, dict)}
    by_url = {info.url: info for info in existing if info.url}
    results = []
    setups = endpoint_setups(list(endpoints), base_url=base_url, owner=owner or me.get("name"))
    for endpoint, setup in zip(endpoints, setups, strict=True):
        needed = domains_for([endpoint]) or list(ALL_DOMAINS)
        current = by_url.get(setup.url)
        try:
            if current is None:
                info = api.create_webhook(
                    url=setup.url, watched=_watched(setup.watch, orgs), domains=needed, secret=secret
                )
                action: Literal["created", "updated"] = "created"
            else:
                keep = [{"type": item.type, "name": item.name} for item in current.watched]
                domains = list(dict.fromkeys([*(current.domains or ()), *needed]))
                info = api.update_webhook(
                    current.id,
                    url=setup.url,
                    watched=keep or _watched(setup.watch, orgs),
                    domains=domains,
                    secret=secret,
                )
                action = "updated"
        except Exception as exc:
            raise _hub_error(f"register {setup.url} on the Hub", exc) from exc
        logger.info("Hub webhook for %s %s (id %s).", setup.path, action, info.id)
        results.append(SyncResult(path=setup.path, action=action, webhook=_describe(info, secrets)))
    return results


def enable_webhook(token: str, webhook_id: str, *, secrets: Sequence[str]) -> HubWebhook:
    """Re-enable a webhook the Hub (or its owner) disabled.

    Raises:
        HubRegistrationError: the Hub refused the call or could not be reached.
    """
    try:
        info = _api(token).enable_webhook(webhook_id)
    except Exception as exc:
        raise _hub_error(f"enable webhook {webhook_id}", exc) from exc
    return _describe(info, secrets)
