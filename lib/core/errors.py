"""Every error this project raises on purpose, under one base.

`HubWebhooksError` is the root: `except HubWebhooksError` catches anything we raise and nothing
we did not. Below it, three families that are handled in different places:
- `WebhookError`: a delivery refused; each carries the HTTP status it maps to, and one exception
  handler turns them into JSON answers, so "what went wrong" -> "what the Hub sees" lives in one place;
- `ConfigurationError`: the Space cannot start as configured; raised at start, never per request;
- the rest: something one event or one operator action ran into (`MissingToken`, `EventNotFound`...).

Messages say what was expected, what arrived and how to fix it, and never contain a secret.
"""

from __future__ import annotations


class HubWebhooksError(Exception):
    """Base of every error this project raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class WebhookError(HubWebhooksError):
    """A delivery is refused; `status_code` is the HTTP answer it gets."""

    status_code: int = 400

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


class ConfigurationError(HubWebhooksError):
    """The Space is configured in a way that cannot work; raised at start, never per request."""


class PortUnavailable(ConfigurationError, OSError):
    """`launch()` cannot listen on the port: it is taken, or not ours to use (an `OSError`, as Gradio raises)."""


class HandlerModuleError(ConfigurationError):
    """A module in `handlers/` cannot become an endpoint; the message names the file and the fix."""


class MissingToken(HubWebhooksError):
    """A handler needs the Hub but no token is configured; the event fails with this message.

    Raised per event, not at start: a Space without `HF_TOKEN` still receives, and the events that
    failed can be replayed once the token is set.
    """


class EventNotFound(HubWebhooksError, LookupError):
    """An operator asked for an event the journal does not hold (never recorded, or pruned)."""


class EndpointGone(HubWebhooksError):
    """An event was recorded for an endpoint that is no longer registered (its handler file was removed)."""


class HandlerRefused(HubWebhooksError):
    """The handler returned an HTTP response with a non-2xx status: that attempt counts as failed."""


class AlertTargetError(HubWebhooksError):
    """An alert target (the alert webhook, the Space's discussions) did not take an alert; it is kept and retried."""
