"""Checking the shared secret the Hub sends with every delivery.

The Hub's secret is not a signature: it arrives verbatim in the `X-Webhook-Secret` header, or in a
`?secret=` query parameter when the user put it in the URL (both are documented by the Hub). It
is checked before the body is read, so an anonymous caller learns nothing about our models.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from urllib.parse import parse_qsl

from ..core.errors import InvalidSecret, MissingSecret

SECRET_HEADER = "x-webhook-secret"
SECRET_QUERY_PARAMETER = "secret"


def query_secret(query_string: str) -> str | None:
    """The `secret` parameter of a query string (the last one, as Starlette reads it), or None."""
    if SECRET_QUERY_PARAMETER not in query_string:
        return None
    values = [v for k, v in parse_qsl(query_string, keep_blank_values=True) if k == SECRET_QUERY_PARAMETER]
    return values[-1] if values else None


def _matches_any(candidate: str, secrets: Sequence[str]) -> bool:
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
    if not any(_matches_any(candidate, secrets) for candidate in candidates):
        raise InvalidSecret(
            "The webhook secret does not match. Give the Hub's webhook the same secret as this Space's WEBHOOK_SECRET."
        )
