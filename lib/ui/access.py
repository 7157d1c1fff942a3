"""Who may open the operator console: the holder of a webhook secret, or the Space's owner.

The landing page is public (a Space is public by default), so the console's data (payloads,
headers, tracebacks) is shown only to a session holding a `Grant`. A grant is earned by typing
one of the configured webhook secrets (works everywhere, also locally) or, in a Space with
Hugging Face sign-in (`hf_oauth: true`), by signing in as the Space's owner or a member of the
owning organisation. Grants live server-side in the visitor's Gradio session, and every console
function checks one itself: the page hiding a button is not access control.

Wrong secrets are compared in constant time (`lib.core.secrets`) and rate-limited per client address,
per session and in total, so guessing a secret through the page is as hopeless as through the
webhook endpoints.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..core.errors import HubWebhooksError, InvalidSecret, MissingSecret
from ..core.secrets import verify_secret
from ..core.settings import Settings

logger = logging.getLogger(__name__)

GRANT_LIFETIME_SECONDS = 12 * 3600.0
"""How long an unlocked session stays unlocked (a console left open overnight locks itself)."""
MAX_FAILURES_PER_CLIENT = 5
MAX_FAILURES_TOTAL = 50
"""All clients together: rotating addresses or sessions does not buy more guesses than this."""
FAILURE_WINDOW_SECONDS = 60.0
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
    """Too many wrong secrets from this client (or from everyone) in the last minute."""

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
    """Counts failures in a sliding window per key and in total, thread-safe and bounded in memory."""

    def __init__(
        self,
        *,
        per_key: int = MAX_FAILURES_PER_CLIENT,
        total: int = MAX_FAILURES_TOTAL,
        window_seconds: float = FAILURE_WINDOW_SECONDS,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_key = per_key
        self.total = total
        self.window = window_seconds
        self.max_keys = max_keys
        self.clock = clock
        self._lock = threading.Lock()
        self._by_key: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()

    def _expire(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window:
            times.popleft()

    def retry_after(self, keys: Iterable[str]) -> float:
        """Seconds until one more attempt is allowed for all of `keys`; 0 when allowed now."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            self._expire(self._all, now)
            if len(self._all) >= self.total:
                wait = self._all[0] + self.window - now
            for key in keys:
                times = self._by_key.get(key)
                if times is None:
                    continue
                self._expire(times, now)
                if len(times) >= self.per_key:
                    wait = max(wait, times[0] + self.window - now)
        return max(0.0, wait)

    def record_failure(self, keys: Iterable[str]) -> None:
        now = self.clock()
        with self._lock:
            self._all.append(now)
            if len(self._by_key) >= self.max_keys:
                for key in [k for k, times in self._by_key.items() if not times or times[-1] <= now - self.window]:
                    del self._by_key[key]
            for key in keys:
                if key in self._by_key or len(self._by_key) < self.max_keys:
                    self._by_key.setdefault(key, deque()).append(now)


def client_keys(headers: Mapping[str, str] | None, host: str | None, session_hash: str | None) -> list[str]:
    """What to count failures against: the client's address and its Gradio session.

    Behind the Spaces proxy every request comes from the proxy, so the first `X-Forwarded-For` hop
    names the client. That header can be forged where there is no proxy; the total limit still holds.
    """
    forwarded = (headers or {}).get("x-forwarded-for", "")
    address = forwarded.split(",")[0].strip() or host or "unknown"
    keys = [f"ip:{address}"]
    if session_hash:
        keys.append(f"session:{session_hash}")
    return keys


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
            TooManyAttempts: this client (or everyone together) failed too often in the last minute.
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
            logger.warning("Wrong secret typed into the console (%s).", ", ".join(k for k in keys if k[:3] == "ip:"))
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
