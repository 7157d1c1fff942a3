"""`OpsSettings`: who may scrape `/metrics`, where alerts go, and when a problem is worth an alert.

Read with the rest of the configuration by `Settings.from_env()` (`settings.ops`); see the
"Operating it" section of README.md and `.env.example`. Every threshold has a default that suits
a free Space: an operator sets a variable only to be told sooner, or less often.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HUB_DAILY_TRIGGER_LIMIT = 1000
"""The Hub lets each webhook trigger this many times per 24 h (more on paid plans)."""


@dataclass(frozen=True, kw_only=True)
class OpsSettings:
    """Metrics and alert options (`METRICS_TOKEN`, `WEBHOOK_ALERT_*`)."""

    metrics_tokens: tuple[str, ...] = field(default=(), repr=False)
    """Bearer tokens for `GET /metrics` besides the webhook secrets (`METRICS_TOKEN`, comma-separated to rotate)."""
    metrics_max_age_seconds: float = 5.0
    """A scrape within this long of the last journal read reuses it (`METRICS_MAX_AGE`): scraping often
    costs at most one journal read per this many seconds (`bench/metrics_scrape.py`)."""
    alert_url: str | None = field(default=None, repr=False)
    """An incoming webhook (Slack, Discord, or anything that takes JSON) for alerts (`WEBHOOK_ALERT_URL`).
    Kept out of logs: a Slack or Discord webhook URL is itself the credential."""
    alert_discussions: bool = True
    """Open a discussion on the Space's own repo per problem (`WEBHOOK_ALERT_DISCUSSIONS`; needs
    `SPACE_ID` and `HF_TOKEN`)."""
    check_seconds: float = 30.0
    """How often the alert conditions are checked (`WEBHOOK_ALERT_CHECK_SECONDS`); a dead event is
    checked for at once."""
    failure_rate: float = 0.5
    """An endpoint whose share of failed or dead events over the window passes this is alerted
    (`WEBHOOK_ALERT_FAILURE_RATE`, 0 to 1)."""
    failure_window_seconds: float = 900.0
    """The window the failure rate is measured over (`WEBHOOK_ALERT_FAILURE_WINDOW`)."""
    failure_min_events: int = 5
    """Fewer finished events than this in the window say nothing about a rate (`WEBHOOK_ALERT_FAILURE_MIN_EVENTS`)."""
    queue_age_seconds: float = 600.0
    """The oldest queued event waiting longer than this is alerted (`WEBHOOK_ALERT_QUEUE_AGE`)."""
    hub_budget_share: float = 0.8
    """An endpoint past this share of the Hub's 1,000 triggers per 24 h is alerted (`WEBHOOK_ALERT_HUB_BUDGET`)."""
    max_per_hour: int = 20
    """At most this many alert messages (raised and recovered) per hour; the rest are counted and
    said in the next one sent (`WEBHOOK_ALERT_MAX_PER_HOUR`)."""
    retry_max_seconds: float = 1800.0
    """A failing target is retried with backoff, at least this often (`WEBHOOK_ALERT_RETRY_MAX`)."""
