"""Every error the receiver raises, under one base, each carrying the HTTP status it maps to.

The request path raises these and one exception handler turns them into JSON answers, so the
mapping from "what went wrong" to "what the Hub sees" lives in one place. Messages say what was
expected, what arrived and how to fix it, and never contain a secret.
"""

from __future__ import annotations


class WebhookError(Exception):
    """Base of every error the webhook receiver raises on purpose."""

    status_code: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code}, message={self.message!r})"


class MissingSecret(WebhookError):
    """The request carried no secret while one is configured (401, as the reference answers)."""

    status_code = 401


class InvalidSecret(WebhookError):
    """The request carried a secret that matches none of the configured ones (403)."""

    status_code = 403


class PayloadTooLarge(WebhookError):
    """The body is larger than the configured limit; it was not read whole (413)."""

    status_code = 413


class MalformedPayload(WebhookError):
    """The body is not JSON, or not a Hub webhook payload (400 / 422)."""

    status_code = 422


class JournalUnavailable(WebhookError):
    """The journal could not record the event: the only 5xx we send, so the Hub retries later (503)."""

    status_code = 503


class ConfigurationError(Exception):
    """The Space is configured in a way that cannot work; raised at start, never per request."""


class HandlerModuleError(ConfigurationError):
    """A module in `handlers/` cannot become an endpoint; the message names the file and the fix."""
