"""Which problems are going on now: the alert conditions, as a pure function of what the journal says.

Each problem has a key that stays the same while it goes on (`dead:/webhooks/x`), so the alerts
can tell a new problem from one already reported, and give each problem one discussion. A
problem's `level` is what may grow while it goes on (how many events are dead): a rise is worth an
update, the same level is not.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.ops_settings import HUB_DAILY_TRIGGER_LIMIT, OpsSettings
from ..journal import EventState, JournalSnapshot, JournalStats

FAILED_STATES = (EventState.FAILED, EventState.DEAD)
FINISHED_STATES = (EventState.SUCCEEDED, EventState.FAILED, EventState.DEAD)


@dataclass(frozen=True)
class Problem:
    """Something an operator must hear about, for as long as it goes on."""

    key: str
    kind: str
    """`dead`, `failure_rate`, `queue_age`, `hub_budget` or `journal`."""
    title: str
    """One line, the same while the problem goes on (it is the discussion's title)."""
    detail: str
    """What it is now and what to do, in a few sentences."""
    level: int = 0


def find_problems(
    *,
    snapshot: JournalSnapshot | None,
    window: JournalStats | None,
    journal_error: str | None,
    endpoints: list[str],
    settings: OpsSettings,
) -> dict[str, Problem]:
    """Every problem going on, by key.

    Args:
        snapshot: the journal now (`Journal.snapshot`, with `since` 24 h ago); None if it could not be read.
        window: the events received over the failure-rate window (`Journal.stats`); None if unread.
        journal_error: why the journal could not be read, if it could not.
        endpoints: the registered endpoints.
        settings: the thresholds.
    """
    problems: list[Problem] = []
    if journal_error is not None:
        problems.append(
            Problem(
                "journal",
                "journal",
                "The event journal is unavailable",
                f"{journal_error} Deliveries are answered 503 meanwhile, so the Hub retries them later.",
            )
        )
    if snapshot is not None:
        for endpoint in sorted({*endpoints, *snapshot.endpoints}):
            problems += _snapshot_problems(endpoint, snapshot, settings)
    if window is not None:
        for endpoint, states in sorted(window.by_endpoint.items()):
            problem = _failure_rate(endpoint, states, window, settings)
            if problem is not None:
                problems.append(problem)
    return {problem.key: problem for problem in problems}


def _snapshot_problems(endpoint: str, snapshot: JournalSnapshot, settings: OpsSettings) -> list[Problem]:
    found = []
    dead = snapshot.count(endpoint, EventState.DEAD)
    if dead:
        found.append(
            Problem(
                f"dead:{endpoint}",
                "dead",
                f"Dead events on {endpoint}",
                f"{dead} event(s) on {endpoint} ran out of attempts and are dead. Fix the handler, then replay "
                "them from the console (Deliveries, state dead, Re-run all dead events).",
                level=dead,
            )
        )
    oldest = snapshot.oldest(endpoint, EventState.QUEUED)
    if oldest is not None and snapshot.taken_at - oldest > settings.queue_age_seconds:
        waited = snapshot.taken_at - oldest
        found.append(
            Problem(
                f"queue_age:{endpoint}",
                "queue_age",
                f"Events wait too long on {endpoint}",
                f"The oldest queued event on {endpoint} was received {waited / 60:.0f} min ago "
                f"(threshold {settings.queue_age_seconds / 60:g} min); "
                f"{snapshot.count(endpoint, EventState.QUEUED)} event(s) are queued. Its handlers may hang or be too "
                "slow for the traffic: see the console's Health tab.",
            )
        )
    used = snapshot.received_since(endpoint)
    if used > settings.hub_budget_share * HUB_DAILY_TRIGGER_LIMIT:
        found.append(
            Problem(
                f"hub_budget:{endpoint}",
                "hub_budget",
                f"{endpoint} is near the Hub's daily trigger limit",
                f"{endpoint} received {used:,} deliveries in the last 24 h, past {settings.hub_budget_share:.0%} of "
                f"the {HUB_DAILY_TRIGGER_LIMIT:,} triggers the Hub allows a webhook per day; past the limit the Hub "
                "stops sending. Narrow what the webhook watches, or the repos, in its Hub settings.",
            )
        )
    return found


def _failure_rate(endpoint: str, states: dict[str, int], window: JournalStats, settings: OpsSettings) -> Problem | None:
    finished = sum(states.get(state, 0) for state in FINISHED_STATES)
    failed = sum(states.get(state, 0) for state in FAILED_STATES)
    if finished < settings.failure_min_events or failed / finished <= settings.failure_rate:
        return None
    minutes = settings.failure_window_seconds / 60
    return Problem(
        f"failure_rate:{endpoint}",
        "failure_rate",
        f"Handler failures on {endpoint}",
        f"{failed} of the {finished} events {endpoint} finished from the last {minutes:g} min failed "
        f"({failed / finished:.0%}, threshold {settings.failure_rate:.0%}). The console's Deliveries tab shows "
        "each failure's traceback.",
    )
