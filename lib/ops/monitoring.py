"""`Monitoring`: the metrics and the alerts behind the few calls the receiver and the worker make.

The receiver builds one, serves its `metrics_route` at `GET /metrics`, and calls `delivered` or
`refused` once per delivery; the worker calls `attempt_ended` once per attempt. Each of those
only counts in memory (or wakes the alert task) and returns, so a delivery never waits on a scrape
or an alert.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from huggingface_hub import get_token
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ..core.secrets import matches_any
from ..core.settings import Settings
from ..journal import EventRecord, EventState, Journal
from .alert_store import AlertStore
from .alert_targets import DiscussionTarget, WebhookTarget
from .alerts import Alerts, AlertsView, AlertTarget
from .metrics import LoadLike, ProcessMetrics, ScrapeSources, StateCollector

logger = logging.getLogger(__name__)


def unauthorized() -> Response:
    """401 with nothing in it but the scheme to use (RFC 6750)."""
    return PlainTextResponse("Unauthorized\n", status_code=401, headers={"WWW-Authenticate": "Bearer"})


def alert_targets(settings: Settings) -> list[AlertTarget]:
    """The targets the settings ask for: the alert webhook, and the Space's discussions when it can write them."""
    targets: list[AlertTarget] = []
    if settings.ops.alert_url:
        targets.append(WebhookTarget(settings.ops.alert_url))
    token = get_token()
    if settings.ops.alert_discussions and settings.space_id and token:
        targets.append(DiscussionTarget(settings.space_id, token))
    return targets


class Monitoring:
    """`/metrics` and the alerts of one receiver.

    Args:
        settings: who may scrape (the webhook secrets, `METRICS_TOKEN`), the alert thresholds and targets.
        app: where to serve `GET /metrics` (before the page is mounted at "/", which would take it).
        targets: where alerts go; defaults to what the settings ask for (`alert_targets`).
    """

    def __init__(self, settings: Settings, app: FastAPI, *, targets: list[AlertTarget] | None = None) -> None:
        self.settings = settings
        app.add_api_route("/metrics", self.metrics_route, methods=["GET"], include_in_schema=False)
        self.tokens = (*settings.webhook_secrets, *settings.ops.metrics_tokens)
        self.registry = CollectorRegistry(auto_describe=False)
        self.counts = ProcessMetrics(self.registry)
        self.alerts = Alerts(
            settings, AlertStore(settings.data_dir), alert_targets(settings) if targets is None else targets
        )
        self._state: StateCollector | None = None

    async def start(
        self,
        journal: Callable[[], Journal],
        endpoints: Callable[[], Iterable[str]],
        load: Callable[[], Mapping[str, LoadLike]],
    ) -> None:
        sources = ScrapeSources(journal, endpoints, load, self.alerts.metrics)
        self._state = StateCollector(sources, max_age=self.settings.ops.metrics_max_age_seconds)
        self.registry.register(self._state)
        if not self.tokens:
            logger.info("GET /metrics is off: set METRICS_TOKEN (or WEBHOOK_SECRET) to let Prometheus scrape it.")
        names = [target.name for target in self.alerts.targets]
        logger.info("Alerts go to: %s.", ", ".join(names) if names else "nowhere (set WEBHOOK_ALERT_URL)")
        await self.alerts.start(journal, endpoints)

    async def stop(self) -> None:
        await self.alerts.stop()
        if self._state is not None:
            self.registry.unregister(self._state)
            self._state = None

    # --- hooks: count and return -----------------------------------------------------------------

    def delivered(self, endpoint: str, outcome: str, status: int, ack_ms: float) -> None:
        """A delivery the journal recorded was answered."""
        self.counts.delivered(endpoint, outcome, status, ack_ms)
        self.alerts.journal_recorded()

    def refused(self, endpoint: str, status: int, message: str) -> None:
        """A delivery was refused before it was recorded (a 4xx), or could not be recorded (503)."""
        self.counts.refused(endpoint, status)
        if status == 503:
            self.alerts.journal_refused(message)

    def attempt_ended(self, event: EventRecord) -> None:
        """A handler attempt ended (the worker's hook); an event that went dead is checked for at once."""
        self.counts.attempt_ended(event)
        if event.state == EventState.DEAD:
            self.alerts.poke()

    # --- serving ---------------------------------------------------------------------------------

    async def metrics_route(self, request: Request) -> Response:
        """`GET /metrics` for a bearer token; anyone else gets the same bare 401, whatever they sent.

        The same answer without a token, with a wrong one and when no token is configured, so a
        stranger learns nothing, not even whether metrics are on.
        """
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not self.tokens or not matches_any(token.strip(), self.tokens):
            return unauthorized()
        if self._state is not None:
            await self._state.refresh()
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    def alerts_view(self) -> AlertsView:
        return self.alerts.view()
