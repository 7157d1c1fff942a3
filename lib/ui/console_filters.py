"""The console's filters as values: what the deliveries table lists and what a bulk replay runs again.

Both read the same choices through `normalized` and `event_filter`, so the events an operator sees
listed are the ones a bulk replay counts.
"""

from __future__ import annotations

from ..journal import EventFilter
from .time_range import received_range

ALL = "All"
"""The filter value meaning "any" (an empty filter means the same)."""
Filters = tuple[str | None, str | None, str | None, str | None, str | None]
"""The deliveries table's filters as values: endpoint, state, repository, scope, time range."""


def filter_value(value: object) -> str | None:
    """A filter's value for the journal: None for `All` or empty."""
    text = "" if value is None else str(value).strip()
    return None if not text or text == ALL else text


def normalized(endpoint: object, state: object, repo: object, scope: object, received: object) -> Filters:
    """The filters as values ("All" and blanks are None), so two calls with the same choices compare equal."""
    return (
        filter_value(endpoint),
        filter_value(state),
        filter_value(repo),
        filter_value(scope),
        filter_value(received),
    )


def event_filter(filters: Filters, *, now: float) -> EventFilter:
    """The journal's filter for the console's.

    Raises:
        BadTimeRange: the time range cannot be read (`lib/ui/time_range.py`).
    """
    endpoint, state, repo, scope, received = filters
    received_from, received_until = received_range(received, now=now)
    return EventFilter(
        endpoint=endpoint,
        state=state,
        repo=repo,
        scope=scope,
        received_from=received_from,
        received_until=received_until,
    )
