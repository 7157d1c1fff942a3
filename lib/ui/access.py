"""Who may open the operator console: the holder of a webhook secret, or the Space's owner.

The landing page is public (a Space is public by default), so the console's data (payloads,
headers, tracebacks) is shown only to a session holding a `Grant`. A grant is earned by typing
one of the configured webhook secrets (works everywhere, also locally) or, in a Space with
Hugging Face sign-in (`hf_oauth: true`), by signing in as the Space's owner or a member of the
owning organisation. Grants live server-side in the visitor's Gradio session, and every console
function checks one itself: the page hiding a button is not access control.

Wrong secrets are compared in constant time (`lib.core.secrets`) and rate-limited per client: by
the address the Space's proxy saw (`client_key`), never by anything the client chooses (its
`X-Forwarded-For` entries, its Gradio session). There is no limit for all clients together, so a
stranger's guesses slow down the stranger alone: the operator, from another address, unlocks at
the first try.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..core.errors import HubWebhooksError, InvalidSecret, MissingSecret
from ..core.forwarded import MAX_HOST_CHARS, parse_address
from ..core.secrets import verify_secret
from ..core.settings import Settings

logger = logging.getLogger(__name__)

GRANT_LIFETIME_SECONDS = 12 * 3600.0
"""How long an unlocked session stays unlocked (a console left open overnight locks itself)."""
MAX_FAILURES_PER_CLIENT = 5
FAILURE_WINDOW_SECONDS = 60.0
IPV6_CLIENT_PREFIX = 64
"""An IPv6 client counts by its /64: one subscriber is given a whole /64 and may use any address in it."""
MAX_CLIENTS = 10_000
"""Clients whose failures are remembered; past it, the one whose last failure is oldest is forgotten."""
NO_SECRET_MESSAGE = (
    "No webhook secret is configured, so the console cannot be unlocked with one. Set `WEBHOOK_SECRET` "
    "in the Space's settings (Settings → Variables and secrets → New secret; locally in `.env`), restart, "
    "and give the Hub's webhook the same secret."
)


class AccessDenied(HubWebhooksError):
    """The console stays locked; the message says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TooManyAttempts(AccessDenied):
    """Too many wrong secrets from this client in the last minute."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, round(retry_after + 0.5))
        super().__init__(f"Too many wrong attempts: wait {self.retry_after} s before trying again.")


@dataclass(frozen=True, kw_only=True)
class Grant:
    """Proof, kept in the server-side session, that this visitor unlocked the console."""

    who: str
    """Shown in the console: "webhook secret" or the signed-in user's name."""
    method: Literal["secret", "oauth"]
    expires_at: float

    def valid(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.expires_at


def is_granted(grant: object) -> bool:
    """True for an unexpired `Grant`; anything else (None, a value forged through the API) is locked."""
    return isinstance(grant, Grant) and grant.valid()


class AttemptLimiter:
    """Counts each client's failures in a sliding window; thread-safe and bounded in memory.

    There is no count for all clients together: past it, one guesser would lock everyone out, the
    operator included. Guessing is slowed per client, and a secret's length does the rest (the
    webhook endpoints answer any number of wrong secrets anyway, 403 each).
    """

    def __init__(
        self,
        *,
        per_key: int = MAX_FAILURES_PER_CLIENT,
        window_seconds: float = FAILURE_WINDOW_SECONDS,
        max_keys: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_key = per_key
        self.window = window_seconds
        self.max_keys = max_keys
        self.clock = clock
        self._lock = threading.Lock()
        self._by_key: OrderedDict[str, deque[float]] = OrderedDict()
        """The last `per_key` failures of each key, the key failed longest ago first."""

    def retry_after(self, keys: Iterable[str]) -> float:
        """Seconds until one more attempt is allowed for all of `keys`; 0 when allowed now."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                times = self._by_key.get(key)
                if times is not None and len(times) >= self.per_key:
                    wait = max(wait, times[0] + self.window - now)
        return max(0.0, wait)

    def record_failure(self, keys: Iterable[str]) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                times = self._by_key.pop(key, None) or deque(maxlen=self.per_key)
                times.append(now)
                self._by_key[key] = times  # last: the key failed most recently
            while len(self._by_key) > self.max_keys:
                self._by_key.popitem(last=False)


def client_key(address: str | None) -> str:
    """What a client's wrong attempts count against: its address, as the Space's proxy saw it.

    `address` is the request's client (`request.client.host`): the receiver sets it from
    `X-Forwarded-For` only as far as trusted proxies wrote that header (`lib.core.forwarded`), so
    it is the entry the Hub's proxy added in a Space, and the socket's peer where no proxy is
    trusted. The Gradio session is no key: the client picks it, and a fresh one per guess would
    start a fresh count.

    Example:
        >>> client_key("2001:db8:1:2:aaaa::1"), client_key("203.0.113.7")
        ('ip:2001:db8:1:2::/64', 'ip:203.0.113.7')
    """
    parsed = parse_address(address)
    if parsed is None:
        return f"ip:{(address or 'unknown')[:MAX_HOST_CHARS]}"
    if parsed.version == 6:
        return f"ip:{ipaddress.ip_network((parsed, IPV6_CLIENT_PREFIX), strict=False)}"
    return f"ip:{parsed}"


def _org_handles(items: Iterable[Any], *, key: str) -> set[str]:
    """The organisations' handles. Only `key` is read: an org's display name is chosen by its
    creator and could read like the owner's handle, so it must never count."""
    return {str(item[key]) for item in items or () if isinstance(item, Mapping) and item.get(key)}


class AccessControl:
    """Decides whether a visitor may unlock the console, and checks grants afterwards.

    Args:
        settings: the webhook secrets and `space_id` (whose namespace is the owner).
        oauth_enabled: Hugging Face sign-in is available (a Space with `hf_oauth: true`); defaults to
            whether `OAUTH_CLIENT_ID` is set in a Space.
        whoami: `huggingface_hub.whoami`, replaceable in tests; used to read a token's organisations.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        oauth_enabled: bool | None = None,
        whoami: Callable[[str], Mapping[str, Any]] | None = None,
        limiter: AttemptLimiter | None = None,
    ) -> None:
        self.settings = settings
        if oauth_enabled is None:
            oauth_enabled = bool(settings.space_id and os.environ.get("OAUTH_CLIENT_ID")) and oauth_installed()
        self.oauth_enabled = oauth_enabled
        self._whoami = whoami
        self.limiter = limiter or AttemptLimiter()

    @property
    def owner(self) -> str | None:
        """The Space's namespace (a user or an organisation), None outside a Space."""
        return self.settings.space_id.split("/")[0] if self.settings.space_id else None

    def unlock_with_secret(self, candidate: str | None, *, keys: Sequence[str]) -> Grant:
        """A grant if `candidate` is one of the webhook secrets.

        Raises:
            AccessDenied: no secret is configured, none was typed, or it is wrong.
            TooManyAttempts: this client failed too often in the last minute.
        """
        if not self.settings.secret_configured:
            raise AccessDenied(NO_SECRET_MESSAGE)
        wait = self.limiter.retry_after(keys)
        if wait > 0:
            raise TooManyAttempts(wait)
        candidate = (candidate or "").strip()
        if not candidate:
            raise AccessDenied("Type one of this Space's webhook secrets (the value of `WEBHOOK_SECRET`).")
        try:
            verify_secret(self.settings.webhook_secrets, header=candidate, query=None)
        except (InvalidSecret, MissingSecret):
            self.limiter.record_failure(keys)
            logger.warning("Wrong secret typed into the console (%s).", ", ".join(keys))
            wait = self.limiter.retry_after(keys)
            if wait > 0:
                raise TooManyAttempts(wait) from None
            raise AccessDenied("That is not one of this Space's webhook secrets.") from None
        logger.info("Console unlocked with the webhook secret.")
        return Grant(who="webhook secret", method="secret", expires_at=time.time() + GRANT_LIFETIME_SECONDS)

    def unlock_with_oauth(
        self, *, username: str | None, profile_orgs: Iterable[Any] = (), token: str | None = None
    ) -> Grant:
        """A grant if the signed-in user is the Space's owner or a member of the owning organisation.

        `username` comes from Gradio's signed session cookie. Membership is read from the profile and,
        failing that, from the Hub with the user's token (`whoami`): a token someone else supplies
        through the API can only prove membership of the token's own owner, who must be that user.

        Raises:
            AccessDenied: sign-in is not available here, nobody is signed in, or not the owner.
        """
        owner = self.owner
        if not self.oauth_enabled or owner is None:
            raise AccessDenied("Hugging Face sign-in is only available in a Space with `hf_oauth: true`.")
        if not username:
            raise AccessDenied("Sign in with Hugging Face to open the console.")
        granted = Grant(who=f"@{username}", method="oauth", expires_at=time.time() + GRANT_LIFETIME_SECONDS)
        # OAuth userinfo names an org's handle `preferred_username`; whoami names it `name`.
        if username == owner or owner in _org_handles(profile_orgs, key="preferred_username"):
            return granted
        if token:
            try:
                info = (self._whoami or _default_whoami)(token)
            except Exception as exc:
                logger.warning("Could not read %s's organisations from the Hub: %s", username, exc)
                info = {}
            if info.get("name") == username and owner in _org_handles(info.get("orgs", ()), key="name"):
                return granted
        logger.info("Console sign-in by %s refused: not %s nor a member of it.", username, owner)
        raise AccessDenied(f"Signed in as {username}, but this Space belongs to {owner}: the console stays locked.")


OAUTH_PACKAGES = ("itsdangerous", "authlib")
"""What Gradio's sign-in needs beyond gradio itself (the `gradio[oauth]` extra)."""


def oauth_installed() -> bool:
    """Whether Gradio's sign-in can work; without its packages a LoginButton would stop the app at start."""
    missing = [name for name in OAUTH_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        logger.warning(
            "Hugging Face sign-in is enabled for this Space but %s is not installed, so the console opens with "
            "the webhook secret only. Install gradio[oauth] (e.g. `gradio[oauth]==<version>` in requirements.txt).",
            " and ".join(missing),
        )
    return not missing


def _default_whoami(token: str) -> Mapping[str, Any]:
    from huggingface_hub import whoami

    return whoami(token=token)
