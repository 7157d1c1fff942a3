"""Which events an operator means: the console's filters as one value, and what a bulk replay runs again.

The console lists events by endpoint, state, repository, scope and time range, and a bulk replay
runs again every event those filters match, so both ask the journal with the same `EventFilter`:
what the operator sees counted is what runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .records import EventState

REPLAYABLE_STATES = (EventState.SUCCEEDED, EventState.FAILED, EventState.DEAD, EventState.SKIPPED)
"""What a bulk replay runs again: events that ended, or wait for a retry. Queued, paused and running
events will run anyway, and a duplicate is left out: its original is matched (or not) on its own, so
one delivery never runs twice for one bulk replay."""


@dataclass(frozen=True, kw_only=True)
class EventFilter:
    """Events matching every field given (None matches anything).

    `scope` matches that scope and the scopes under it by dotted segment (`repo` matches
    `repo.content`, not `repo_content`); the time range is on when the delivery was received,
    `received_from` included and `received_until` excluded (Unix seconds).
    """

    endpoint: str | None = None
    state: str | None = None
    repo: str | None = None
    scope: str | None = None
    received_from: float | None = None
    received_until: float | None = None


def filter_clause(where: EventFilter, *, placeholder: str = "?") -> tuple[str, list[Any]]:
    """`where` as an SQL condition on `events` (or `event_rows`) and its parameters; "" matches everything.

    `placeholder` is the driver's mark for a parameter: `?` for sqlite3, `%s` for psycopg.
    """
    clauses: list[str] = []
    parameters: list[Any] = []
    for column, value in (("endpoint", where.endpoint), ("state", where.state), ("repo_name", where.repo)):
        if value:
            clauses.append(f"{column} = {placeholder}")
            parameters.append(value)
    if where.scope:
        clauses.append(f"(scope = {placeholder} OR scope LIKE {placeholder} ESCAPE '\\')")
        escaped = where.scope.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        parameters += [where.scope, escaped + ".%"]
    if where.received_from is not None:
        clauses.append(f"received_at >= {placeholder}")
        parameters.append(where.received_from)
    if where.received_until is not None:
        clauses.append(f"received_at < {placeholder}")
        parameters.append(where.received_until)
    return " AND ".join(clauses), parameters
