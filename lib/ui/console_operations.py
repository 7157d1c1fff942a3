"""What the console's operator does to an endpoint's runs: pause and resume it, and replay in bulk.

Like every console action (`console_actions.py`), each method takes the session's grant first and
raises `ConsoleLocked` without a valid one: a Gradio listener is an HTTP API anyone can call.

A bulk replay is two calls. `bulk_preview` counts what the deliveries table's current filters match
and would run again, and returns a `BulkPlan` with exactly those events; `bulk_replay` replays that
plan, only if the filters are still the ones counted. The operator confirms the number they were
shown, never a larger one: events that arrive after the count are not in the plan. A plan holds at
most `BULK_REPLAY_MAX` events: past that, the operator narrows the filters (a shorter time range, one
endpoint), since a replay of thousands at once is more likely a mistake than a plan.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass

from ..core.errors import WebhookError
from ..journal import EventRecord
from .console_actions import ConsoleRefusal, require
from .console_filters import Filters, event_filter, filter_value, normalized
from .console_format import ago, endpoint_name, inline_code, utc
from .time_range import BadTimeRange
from .view import ServerView

logger = logging.getLogger(__name__)

BULK_REPLAY_MAX = 500
"""The most events one bulk replay runs again; the console says so and asks for narrower filters."""


@dataclass(frozen=True)
class BulkPlan:
    """A counted bulk replay, waiting for the operator's confirmation: the filters counted and what they matched."""

    filters: Filters
    event_ids: tuple[int, ...]


@dataclass(frozen=True)
class BulkPreview:
    """What the operator is shown before confirming, and the plan to confirm (None: nothing to confirm)."""

    message: str
    plan: BulkPlan | None


class ConsoleOperations:
    """Pause, resume and bulk replay for one server; every method checks the grant it is given first."""

    def __init__(self, server: ServerView) -> None:
        self.server = server

    # --- pause and resume ------------------------------------------------------------------

    def _endpoint(self, endpoint: object) -> str:
        path = filter_value(endpoint)
        if path is None or path not in self.server.endpoints:
            raise ConsoleRefusal("Pick an endpoint first.")
        return path

    async def pause(self, grant: object, endpoint: str | None) -> str:
        """Hold an endpoint's runs: deliveries are still recorded and acknowledged, and wait as `paused`."""
        require(grant)
        path = self._endpoint(endpoint)
        try:
            held = await self.server.journal.pause(path, now=time.time())
        except WebhookError as exc:
            raise ConsoleRefusal(exc.message) from None
        logger.warning("Console: %s paused (%d waiting event(s) held).", path, held)
        return (
            f"**⏸️ Paused {inline_code(endpoint_name(path))}**: {held} waiting event(s) held. Its deliveries are "
            "still recorded and acknowledged (`202 paused`); an attempt already running ends as it would. "
            "**Resume** runs them in arrival order" + self._within_limit(path) + "."
        )

    async def resume(self, grant: object, endpoint: str | None) -> str:
        """Let a paused endpoint's events run again, in order, within its rate limit."""
        require(grant)
        path = self._endpoint(endpoint)
        try:
            released = await self.server.journal.resume(path)
        except WebhookError as exc:
            raise ConsoleRefusal(exc.message) from None
        self.server.wake_worker()
        logger.warning("Console: %s resumed (%d held event(s) queued).", path, released)
        return (
            f"**▶️ Resumed {inline_code(endpoint_name(path))}**: {released} held event(s) queued, to run in arrival "
            "order" + self._within_limit(path) + "."
        )

    def _within_limit(self, path: str) -> str:
        limit = self.server.endpoints[path].rate_limit
        return f", within its rate limit ({inline_code(str(limit))})" if limit is not None else ""

    async def status(self, grant: object) -> str:
        """Each endpoint: running or paused (since when), how many events wait, its rate limit."""
        require(grant)
        now = time.time()
        paused = await self.server.journal.paused()
        waiting = (await self.server.journal.stats(since=0)).by_endpoint
        rows = ["| Endpoint | Now | Waiting to run | Rate limit |", "|---|---|---|---|"]
        for path in dict.fromkeys([*self.server.endpoints, *paused]):
            states = waiting.get(path, {})
            if path in paused:
                now_text = f"⏸️ paused since {utc(paused[path])} ({ago(paused[path], now=now)})"
            else:
                now_text = "▶️ running"
            counts = ", ".join(f"{states[s]} {s}" for s in ("paused", "queued", "failed") if states.get(s)) or "0"
            endpoint = self.server.endpoints.get(path)
            limit = str(endpoint.rate_limit) if endpoint is not None and endpoint.rate_limit else "none"
            gone = "" if endpoint is not None else " (no handler any more)"
            rows.append(f"| {inline_code(endpoint_name(path))}{gone} | {now_text} | {counts} | {limit} |")
        return "\n".join(rows)

    # --- bulk replay -------------------------------------------------------------------------

    async def bulk_preview(
        self, grant: object, endpoint: str | None, state: str | None, repo: str | None, scope: str | None,
        received: str | None,
    ) -> BulkPreview:  # fmt: skip
        """Count what the current filters match and a replay would run again; the plan to confirm."""
        require(grant)
        filters = normalized(endpoint, state, repo, scope, received)
        try:
            where = event_filter(filters, now=time.time())
        except BadTimeRange as exc:
            raise ConsoleRefusal(str(exc)) from None
        ids = await self.server.journal.matching(where, limit=BULK_REPLAY_MAX + 1)
        if not ids:
            return BulkPreview(
                "**No event to replay** matches these filters. (A bulk replay runs again events that succeeded, "
                "failed, died or were skipped; queued, paused and running ones will run anyway, and a "
                "duplicate's original is matched on its own.)",
                None,
            )
        if len(ids) > BULK_REPLAY_MAX:
            return BulkPreview(
                f"**More than {BULK_REPLAY_MAX} events match**; a bulk replay runs at most {BULK_REPLAY_MAX}. "
                "Narrow the filters (a shorter time range, one endpoint or state) and count again.",
                None,
            )
        events = await self._events(ids)
        by_endpoint = Counter(event.endpoint for event in events)
        paused = await self.server.journal.paused()
        where = ", ".join(f"{count} on {inline_code(endpoint_name(path))}" for path, count in by_endpoint.items())
        notes = [
            f"{inline_code(endpoint_name(path))} is paused: its events wait for the resume."
            for path in by_endpoint
            if path in paused
        ]
        notes += [
            f"{inline_code(endpoint_name(path))} runs at most {inline_code(str(limit))}."
            for path in by_endpoint
            if (limit := getattr(self.server.endpoints.get(path), "rate_limit", None)) is not None
        ]
        first, last = events[0].received_at, events[-1].received_at
        received = f"received {utc(first)}" + (f" to {utc(last)}" if last != first else "")
        numbers = f"#{ids[0]}" + (f" to #{ids[-1]}" if len(ids) > 1 else "")
        message = " ".join(
            [
                f"**{len(ids)} event(s) will run again** ({where}; {numbers}, {received}).",
                *notes,
                "**Confirm** to replay exactly these; events arriving meanwhile are not included.",
            ]
        )
        return BulkPreview(message, BulkPlan(filters, tuple(ids)))

    async def _events(self, ids: list[int]) -> list[EventRecord]:
        found = [await self.server.journal.get(event_id) for event_id in ids]
        return [event for event in found if event is not None]

    async def bulk_replay(
        self, grant: object, plan: object, endpoint: str | None, state: str | None, repo: str | None,
        scope: str | None, received: str | None,
    ) -> str:  # fmt: skip
        """Replay a counted plan, if the filters are still the ones it was counted with."""
        require(grant)
        if not isinstance(plan, BulkPlan):
            raise ConsoleRefusal("Count the matching events first (**Replay matching…**), then confirm.")
        if normalized(endpoint, state, repo, scope, received) != plan.filters:
            raise ConsoleRefusal("The filters changed since the count: count again, then confirm.")
        try:
            replayed = await self.server.journal.replay_many(
                plan.event_ids, max_attempts=self.server.settings.max_attempts
            )
        except WebhookError as exc:
            raise ConsoleRefusal(exc.message) from None
        self.server.wake_worker()
        logger.info("Console: bulk replay of %d event(s) (of %d counted).", len(replayed), len(plan.event_ids))
        left = len(plan.event_ids) - len(replayed)
        changed = (
            f" {left} had changed since the count (running, queued or gone) and were left as they are." if left else ""
        )
        return (
            f"**Replaying {len(replayed)} event(s)**"
            + (f": #{replayed[0]} to #{replayed[-1]}." if replayed else ".")
            + changed
        )
