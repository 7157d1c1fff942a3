"""Each endpoint's share of the worker (a bulkhead): handlers of one endpoint that hang delay only its events.

The worker runs at most `WEBHOOK_CONCURRENCY` attempts at once, all endpoints together; of those,
one endpoint may hold at most its share (`WEBHOOK_ENDPOINT_CONCURRENCY`, by default one slot less
than all of them). When an endpoint's handlers hang, its events take its share of the slots and
wait for them; the other endpoints' events keep the rest.

A plain `def` handler past its timeout cannot be stopped: its attempt ends (failed, retried later)
and its slot is free again, but its thread runs on. Such a thread is "stuck", and still counts
against its endpoint's share until it really ends, so an endpoint whose handlers hang holds at most
its share in threads, however many of its events time out: the next ones wait instead of starting
yet another thread. The counts are shown in the console's Health tab and logged.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EndpointLoad:
    """What one endpoint holds of the worker right now."""

    running: int
    """Attempts in progress."""
    stuck: int
    """Threads of handlers whose attempt ended (timed out) and which still run."""
    share: int
    """The most it may hold of both together."""

    @property
    def full(self) -> bool:
        return self.running + self.stuck >= self.share


class Bulkhead:
    """The running attempts and stuck threads of each endpoint, against its `share`. Used on the event loop only."""

    def __init__(self, share: int) -> None:
        self.share = share
        self._running: Counter[str] = Counter()
        self._stuck: Counter[str] = Counter()

    def has_room(self, endpoint: str) -> bool:
        """Whether one more attempt of `endpoint` may start now."""
        return self._running[endpoint] + self._stuck[endpoint] < self.share

    def room(self, endpoints: Iterable[str]) -> dict[str, int]:
        """How many more attempts each of `endpoints` may start now."""
        return {path: max(0, self.share - self._running[path] - self._stuck[path]) for path in endpoints}

    def enter(self, endpoint: str) -> None:
        """An attempt of `endpoint` takes a place (before its claim: a refused claim `leave`s again)."""
        self._running[endpoint] += 1

    def leave(self, endpoint: str, *, stuck: int = 0) -> bool:
        """An attempt of `endpoint` ended, leaving `stuck` threads running; whether it made room where none was."""
        made_room = not stuck and not self.has_room(endpoint)
        self._running[endpoint] -= 1
        if self._running[endpoint] <= 0:
            del self._running[endpoint]
        if stuck:
            self._stuck[endpoint] += stuck
        return made_room

    def thread_ended(self, endpoint: str) -> None:
        """A stuck thread of `endpoint` ended at last: its place is free."""
        self._stuck[endpoint] -= 1
        if self._stuck[endpoint] <= 0:
            del self._stuck[endpoint]
        logger.info(
            "A handler thread of %s left running past its timeout has ended; %d still running.",
            endpoint,
            self._stuck[endpoint],
        )

    def report_stuck(self, endpoint: str, *, timeout: float) -> None:
        """Log that `endpoint` has threads stuck past `timeout`: a WARNING, which says so when they fill its share."""
        load = self.load(endpoint)
        if load.full:
            logger.warning(
                "%s is at its share of %d handler(s): %d thread(s) still running past WEBHOOK_HANDLER_TIMEOUT "
                "(%g s), which Python cannot stop, and %d attempt(s) running. Its events wait until one of "
                "them ends; other endpoints are not held up.",
                endpoint,
                load.share,
                load.stuck,
                timeout,
                load.running,
            )
        else:
            logger.warning(
                "A handler of %s is still running past WEBHOOK_HANDLER_TIMEOUT (%g s) on its thread, which "
                "Python cannot stop: %d such thread(s), counted in its share of %d until they end.",
                endpoint,
                timeout,
                load.stuck,
                load.share,
            )

    def load(self, endpoint: str) -> EndpointLoad:
        return EndpointLoad(running=self._running[endpoint], stuck=self._stuck[endpoint], share=self.share)

    def busy(self) -> list[str]:
        """The endpoints holding anything now."""
        return list(dict.fromkeys([*self._running, *self._stuck]))
