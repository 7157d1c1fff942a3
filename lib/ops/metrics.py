"""`GET /metrics`: the receiver in Prometheus' text format, made by `prometheus_client`.

Two kinds of series, on purpose:
- What happened (deliveries by outcome, handler runs by result, acknowledgement and handler
  durations) is counted by this process as it happens, as Prometheus counters and histograms are
  meant to be: they start from 0 when the process starts, and Prometheus' `rate()` and
  `increase()` handle the reset. The journal prunes finished events, so it could not give a count
  that only ever grows.
- What is true now (events by state, the queue and its oldest event, dead events, the Hub's
  triggers in the last 24 h, the journal's size, the worker's running and stuck handlers) is read at
  scrape time by `StateCollector` from the journal's `snapshot()` and the worker: the same answer
  after a restart, and from every replica sharing a journal.

A journal read is one grouped pass over every event the journal holds, made off the event loop like
the console's reads; it still takes CPU (about 30 ms for 10,000 events on this machine), so scrapes
closer together than `METRICS_MAX_AGE` reuse the last one (`bench/metrics_scrape.py` measures it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..core.errors import JournalUnavailable
from ..core.ops_settings import HUB_DAILY_TRIGGER_LIMIT
from ..journal import EventRecord, EventState, JobStats, Journal, JournalSnapshot

logger = logging.getLogger(__name__)

PREFIX = "hub_webhooks"
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: most acknowledgements take a few milliseconds; one that waits for its handler, up to the budget."""
HANDLER_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
"""Seconds: from a handler that answers at once to one that takes up to the default timeout."""
DAY_SECONDS = 86400.0


class LoadLike(Protocol):
    """What the worker says of one endpoint (`lib.worker.EndpointLoad`)."""

    running: int
    stuck: int
    share: int


@dataclass(frozen=True)
class ScrapeSources:
    """Where the state series come from, read at each scrape."""

    journal: Callable[[], Journal]
    endpoints: Callable[[], Iterable[str]]
    load: Callable[[], Mapping[str, LoadLike]]
    alerts: Callable[[], Iterable[Metric]]
    """The alert series (`Alerts.metrics`): problems open, messages waiting for their target."""


class ProcessMetrics:
    """The counters and histograms this process keeps as deliveries arrive and handlers end."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            f"{PREFIX}_deliveries",
            "Deliveries answered by this process, by endpoint, what the journal made of them "
            "(new, requeued, duplicate, skipped; refused when nothing was recorded) and the HTTP status answered.",
            ["endpoint", "outcome", "status"],
            registry=registry,
        )
        self.handler_runs = Counter(
            f"{PREFIX}_handler_runs",
            "Handler attempts ended in this process, by endpoint and result "
            "(succeeded; failed, to be retried; dead; skipped by the loop guard).",
            ["endpoint", "result"],
            registry=registry,
        )
        self.ack_seconds = Histogram(
            f"{PREFIX}_ack_duration_seconds",
            "Time from a delivery's arrival to its answer, for the deliveries the journal recorded.",
            ["endpoint"],
            buckets=ACK_BUCKETS,
            registry=registry,
        )
        self.handler_seconds = Histogram(
            f"{PREFIX}_handler_duration_seconds",
            "How long each handler attempt ran.",
            ["endpoint"],
            buckets=HANDLER_BUCKETS,
            registry=registry,
        )

    def delivered(self, endpoint: str, outcome: str, status: int, ack_ms: float) -> None:
        self.deliveries.labels(endpoint, outcome, str(status)).inc()
        self.ack_seconds.labels(endpoint).observe(ack_ms / 1000)

    def refused(self, endpoint: str, status: int) -> None:
        self.deliveries.labels(endpoint, "refused", str(status)).inc()

    def attempt_ended(self, event: EventRecord) -> None:
        self.handler_runs.labels(event.endpoint, str(event.state)).inc()
        if event.handler_ms is not None and event.state != EventState.SKIPPED:
            self.handler_seconds.labels(event.endpoint).observe(event.handler_ms / 1000)


class StateCollector(Collector):
    """The series that say how things are now, from the snapshot `refresh` read just before the scrape.

    `prometheus_client` calls `collect` synchronously, while the journal is read with `await`: the
    scrape's route awaits `refresh` first, then renders, both on the one event loop.
    """

    def __init__(self, sources: ScrapeSources, *, max_age: float) -> None:
        self.sources = sources
        self.max_age = max_age
        self._snapshot: JournalSnapshot | None = None
        self._jobs: JobStats | None = None

    async def refresh(self) -> None:
        """Read the journal, unless the last read is younger than `max_age` (a scraper asking every
        second costs one grouped read of the whole journal per `max_age`, not per scrape)."""
        now = time.time()
        if self._snapshot is not None and now - self._snapshot.taken_at < self.max_age:
            return
        try:
            journal = self.sources.journal()
            self._snapshot = await journal.snapshot(since=now - DAY_SECONDS)
            self._jobs = await journal.job_stats(since=now - DAY_SECONDS)
        except JournalUnavailable as exc:
            logger.warning("Metrics without the journal's series: %s", exc.message)
            self._snapshot = self._jobs = None

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot
        up = GaugeMetricFamily(f"{PREFIX}_journal_up", "1 when the journal could be read for this scrape, else 0.")
        up.add_metric([], 1 if snapshot is not None else 0)
        yield up
        load = self.sources.load()
        endpoints = sorted({*self.sources.endpoints(), *load, *(snapshot.endpoints if snapshot else ())})
        yield from _worker_series(endpoints, load)
        if snapshot is not None:
            yield from _journal_series(endpoints, snapshot)
        if self._jobs is not None:
            yield from _job_series(self._jobs)
        yield from self.sources.alerts()


def _gauge(name: str, documentation: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=labels)


def _worker_series(endpoints: list[str], load: Mapping[str, LoadLike]) -> Iterator[Metric]:
    running = _gauge("handlers_running", "Handler attempts in progress in this process.", ["endpoint"])
    stuck = _gauge(
        "handler_threads_stuck", "Handler threads still running past their timeout, in this process.", ["endpoint"]
    )
    for endpoint in endpoints:
        held = load.get(endpoint)
        running.add_metric([endpoint], held.running if held else 0)
        stuck.add_metric([endpoint], held.stuck if held else 0)
    yield running
    yield stuck


def _journal_series(endpoints: list[str], snapshot: JournalSnapshot) -> Iterator[Metric]:
    events = _gauge("events", "Events the journal holds now, by endpoint and state.", ["endpoint", "state"])
    for row in snapshot.counts:
        events.add_metric([row.endpoint, row.state], row.count)
    yield events
    depth = _gauge("queue_depth", "Events waiting to run (queued) now.", ["endpoint"])
    oldest = _gauge(
        "oldest_queued_age_seconds",
        "How long ago the oldest queued event was received (0 with none queued).",
        ["endpoint"],
    )
    dead = _gauge("dead_events", "Dead events now: out of attempts, waiting for a replay.", ["endpoint"])
    triggers = _gauge(
        "hub_triggers_24h",
        "Deliveries received in the last 24 h, which the Hub counts against each webhook's daily limit.",
        ["endpoint"],
    )
    for endpoint in endpoints:
        depth.add_metric([endpoint], snapshot.count(endpoint, EventState.QUEUED))
        since = snapshot.oldest(endpoint, EventState.QUEUED)
        oldest.add_metric([endpoint], max(0.0, snapshot.taken_at - since) if since is not None else 0.0)
        dead.add_metric([endpoint], snapshot.count(endpoint, EventState.DEAD))
        triggers.add_metric([endpoint], snapshot.received_since(endpoint))
    yield from (depth, oldest, dead, triggers)
    limit = _gauge("hub_trigger_limit", "The Hub's limit of triggers per webhook per 24 h (free plan).")
    limit.add_metric([], HUB_DAILY_TRIGGER_LIMIT)
    yield limit
    if snapshot.size_bytes is not None:
        size = _gauge("journal_size_bytes", "What the journal takes on disk (its file and write-ahead log).")
        size.add_metric([], snapshot.size_bytes)
        yield size


def _job_series(jobs: JobStats) -> Iterator[Metric]:
    """Hub Jobs from the journal (`Journal.job_stats`): what handlers launched, and what it cost."""
    by_stage = _gauge("jobs_launched_24h", "Hub Jobs launched in the last 24 h, by their stage now.", ["stage"])
    for stage, count in sorted(jobs.by_stage.items()):
        by_stage.add_metric([stage], count)
    yield by_stage
    running = _gauge("jobs_running", "Hub Jobs launched by handlers and not ended yet (followed now).")
    running.add_metric([], jobs.running)
    yield running
    hours = _gauge("job_hours_24h", "Job-hours of the Hub Jobs that ended in the last 24 h (what is billed).")
    hours.add_metric([], sum(day_hours for _, day_hours in jobs.hours_by_day))
    yield hours
    duration = _gauge(
        "job_duration_seconds", "Duration of the Hub Jobs that ended in the last 24 h, by quantile.", ["quantile"]
    )
    for quantile, value in (("0.5", jobs.duration_p50), ("0.95", jobs.duration_p95)):
        if value is not None:
            duration.add_metric([quantile], value)
    yield duration
