"""Checking the shared secret the Hub sends with every delivery.

The Hub's secret is not a signature: it arrives verbatim in the `X-Webhook-Secret` header, or in a
`?secret=` query parameter when the user put it in the URL (both are documented by the Hub). It
is checked before the body is read, so an anonymous caller learns nothing about our models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl

from ..core.secrets import verify_secret

SECRET_HEADER = "x-webhook-secret"
SECRET_QUERY_PARAMETER = "secret"

__all__ = ["SECRET_HEADER", "SECRET_QUERY_PARAMETER", "authenticate", "query_secret", "verify_secret"]


def query_secret(query_string: str) -> str | None:
    """The `secret` parameter of a query string (the last one, as Starlette reads it), or None."""
    if SECRET_QUERY_PARAMETER not in query_string:
        return None
    values = [v for k, v in parse_qsl(query_string, keep_blank_values=True) if k == SECRET_QUERY_PARAMETER]
    return values[-1] if values else None


def authenticate(secrets: Sequence[str], *, headers: Mapping[str, str], query_string: str) -> None:
    """The request path's first step: the secret from the header or the query, before the body is read.

    Raises:
        MissingSecret: a secret is configured but the request carried none (401).
        InvalidSecret: the request carried a secret that matches none of ours (403).
    """
    verify_secret(secrets, header=headers.get(SECRET_HEADER), query=query_secret(query_string))
