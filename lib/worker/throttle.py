"""Each endpoint's `RATE_LIMIT` (`lib/core/rate_limit.py`): at most so many handler starts per window.

A rate limit shapes when handlers start, never the acknowledgements: a throttled endpoint's events
are recorded and answered as usual, and wait in the journal until its window has room. It is kept
where the worker already asks whether an endpoint may start one more attempt, its bulkhead
(`bulkhead.py`): `Throttle` is a `Bulkhead` whose `has_room` and `room` also count each endpoint's
starts in the last window, so every way an event starts (a dispatched delivery, a lane's hand-over,
a scan) obeys it, and the worker sleeps until the first throttled endpoint has room again.

Starts are counted on the same clock as the journal's claim times (`time.time`), the moment the worker
claims an event (a scan, a hand-over: `started`), or, for a delivery started as it arrives, when it
takes its place, before its claim is made: a refused claim still counts, erring on the slow side, and
the claim time then replaces the oldest start noted (`claimed`), so that the starts counted are never
earlier than the claims the journal records: "at most N starts in any window" holds for the journal's own
attempt times, which is what the tests count. Per process: replicas sharing one journal each keep
their own count.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping

from ..core.rate_limit import RateLimit
from ..core.registry import Endpoint
from .bulkhead import Bulkhead


class Throttle(Bulkhead):
    """The bulkhead, plus each endpoint's rate limit over a sliding window. Used on the event loop only."""

    def __init__(
        self, share: int, endpoints: Mapping[str, Endpoint], *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(share)
        self._endpoints = endpoints
        self._clock = clock
        self._starts: dict[str, deque[float]] = {}
        """Each rate-limited endpoint's starts within its window, oldest first."""
        self._throttled: set[str] = set()
        """Endpoints found at their rate limit: the worker wakes when the first has room again."""

    @property
    def throttled(self) -> bool:
        """Whether an endpoint was found at its rate limit (its events may wait for room)."""
        return bool(self._throttled)

    def _limit(self, endpoint: str) -> RateLimit | None:
        known = self._endpoints.get(endpoint)
        return known.rate_limit if known is not None else None

    def _rate_room(self, endpoint: str, now: float) -> int | None:
        """How many more starts `endpoint`'s rate limit allows now; None without a limit."""
        limit = self._limit(endpoint)
        if limit is None:
            return None
        starts = self._starts.get(endpoint)
        if not starts:
            return limit.runs
        while starts and starts[0] <= now - limit.seconds:
            starts.popleft()
        left = limit.runs - len(starts)
        if left <= 0:
            self._throttled.add(endpoint)
        else:
            self._throttled.discard(endpoint)
        return left

    def has_room(self, endpoint: str) -> bool:
        if not super().has_room(endpoint):
            return False
        left = self._rate_room(endpoint, self._clock())
        return left is None or left > 0

    def room(self, endpoints: Iterable[str]) -> dict[str, int]:
        rooms = super().room(endpoints)
        now = self._clock()
        for path, places in rooms.items():
            left = self._rate_room(path, now)
            if left is not None:
                rooms[path] = min(places, max(0, left))
        return rooms

    def started(self, endpoint: str, at: float) -> None:
        """An event of `endpoint` was claimed at `at`, or is about to be (its place taken before the claim)."""
        if self._limit(endpoint) is not None:
            bisect.insort(self._starts.setdefault(endpoint, deque()), at)

    def claimed(self, endpoint: str, at: float) -> None:
        """A start noted before its claim was claimed at `at`: count it from then (see the module)."""
        starts = self._starts.get(endpoint)
        if starts:
            starts.popleft()
            bisect.insort(starts, at)

    def next_room_at(self) -> float | None:
        """When the first endpoint found at its rate limit may start again; None if none is throttled."""
        times = []
        for endpoint in list(self._throttled):
            limit, starts = self._limit(endpoint), self._starts.get(endpoint)
            if limit is None or not starts:
                self._throttled.discard(endpoint)
                continue
            times.append(starts[max(0, len(starts) - limit.runs)] + limit.seconds)
        return min(times, default=None)
