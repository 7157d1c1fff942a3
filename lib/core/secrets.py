"""Comparing a secret someone sent with the configured webhook secrets, in constant time.

One place for it: the receiver checks each delivery with it, the console's unlock checks the
operator with it, and the Hub registration view tells whether a Hub webhook sends one of ours.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from .errors import InvalidSecret, MissingSecret


def matches_any(candidate: str, secrets: Sequence[str]) -> bool:
    """Compare against every configured secret in constant time, without stopping at a match."""
    given = candidate.encode("utf-8", "surrogateescape")
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(given, secret.encode("utf-8"))
    return matched


def verify_secret(secrets: Sequence[str], *, header: str | None, query: str | None) -> None:
    """Accept the request if the header or the query parameter holds one of `secrets`.

    Args:
        secrets: the configured secrets; empty means the endpoints are open.
        header: the `X-Webhook-Secret` header, if sent.
        query: the `secret` query parameter, if sent.

    Raises:
        MissingSecret: a secret is configured but the request carried none (401).
        InvalidSecret: the request carried a secret that matches none of ours (403).
    """
    if not secrets:
        return
    candidates = [value for value in (header, query) if value is not None]
    if not candidates:
        raise MissingSecret(
            "This endpoint requires the webhook secret: send it in the X-Webhook-Secret header "
            "(the Hub does this when the webhook has a secret) or as ?secret=... in the URL."
        )
    if not any(matches_any(candidate, secrets) for candidate in candidates):
        raise InvalidSecret(
            "The webhook secret does not match. Give the Hub's webhook the same secret as this Space's WEBHOOK_SECRET."
        )
