"""The alert conditions (`lib/ops/alert_rules.py`) at and around each threshold, from journal data as a
backend returns it (`JournalSnapshot`, `JournalStats`)."""

from __future__ import annotations

import pytest

from lib.core.ops_settings import OpsSettings
from lib.journal import JournalSnapshot, JournalStats, StateCount
from lib.ops.alert_rules import find_problems

NOW = 1_800_000_000.0
A = "/webhooks/a"


def snapshot(*rows: tuple[str, str, int, float, int]) -> JournalSnapshot:
    counts = [
        StateCount(endpoint=e, state=s, count=c, oldest_received_at=o, received_since=r) for e, s, c, o, r in rows
    ]
    return JournalSnapshot(taken_at=NOW, since=NOW - 86400, counts=counts)


def problems(snap: JournalSnapshot | None = None, window: JournalStats | None = None, error: str | None = None, **ops):
    return find_problems(snapshot=snap, window=window, journal_error=error, endpoints=[A], settings=OpsSettings(**ops))


def test_nothing_wrong_is_no_problem() -> None:
    assert problems(snapshot((A, "succeeded", 50, NOW - 3600, 50)), JournalStats(since=NOW - 900)) == {}


def test_dead_events_are_a_problem_whose_level_is_their_number() -> None:
    found = problems(snapshot((A, "dead", 3, NOW - 10, 3)))
    assert list(found) == [f"dead:{A}"]
    assert found[f"dead:{A}"].level == 3 and "3 event(s)" in found[f"dead:{A}"].detail


@pytest.mark.parametrize(("age", "alerted"), [(599.0, False), (601.0, True)])
def test_the_oldest_queued_event_past_the_threshold(age: float, alerted: bool) -> None:
    found = problems(snapshot((A, "queued", 2, NOW - age, 2)), queue_age_seconds=600)
    assert (f"queue_age:{A}" in found) is alerted


@pytest.mark.parametrize(("received", "alerted"), [(800, False), (801, True)])
def test_the_hub_budget_past_its_share(received: int, alerted: bool) -> None:
    found = problems(snapshot((A, "succeeded", received, NOW - 100, received)), hub_budget_share=0.8)
    assert (f"hub_budget:{A}" in found) is alerted


@pytest.mark.parametrize(
    ("states", "alerted"),
    [
        ({"succeeded": 5, "dead": 5}, False),  # 50%: not past 50%
        ({"succeeded": 4, "failed": 3, "dead": 3}, True),  # 60%
        ({"dead": 4}, False),  # 100%, but fewer than 5 finished events say nothing
        ({"dead": 5, "queued": 100}, True),  # queued events are not finished: not in the rate
    ],
)
def test_the_failure_rate_over_the_window(states: dict[str, int], alerted: bool) -> None:
    window = JournalStats(since=NOW - 900, by_endpoint={A: states})
    found = problems(window=window, failure_rate=0.5, failure_min_events=5)
    assert (f"failure_rate:{A}" in found) is alerted


def test_a_journal_that_cannot_be_read_is_a_problem_of_its_own() -> None:
    found = problems(error="The event journal cannot be read (disk I/O error).")
    assert list(found) == ["journal"]
    assert "503" in found["journal"].detail
