"""Which due events a scan claims: the oldest first, within each endpoint's room (the worker's bulkhead).

The worker gives each endpoint a share of its slots (`lib/worker/bulkhead.py`); a scan must then
claim, oldest first, only events of endpoints that still have room, without an endpoint at its
share hiding the others' events behind its backlog.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from .statements import CLAIMABLE_ELSEWHERE, MARK_RUNNING


def _full(room: Mapping[str, int]) -> str:
    """The endpoints without room, as the JSON list `CLAIMABLE_ELSEWHERE` leaves out."""
    return json.dumps([path for path, left in room.items() if left <= 0])


def anything_due(now: float, room: Mapping[str, int]) -> tuple[str, dict[str, Any]]:
    """A read (statement, parameters) that finds a row if `claim_within` would claim anything."""
    return CLAIMABLE_ELSEWHERE, {"now": now, "limit": 1, "full": _full(room)}


def claim_within(
    connection: sqlite3.Connection,
    keep: Callable[[str, Any], None],
    *,
    now: float,
    limit: int,
    room: Mapping[str, int],
) -> list[int]:
    """Mark up to `limit` claimable events running (through `keep`, the journal's kept writes), oldest first; their ids.

    At most `room[endpoint]` of an endpoint named in `room`; endpoints not named are limited by
    `limit` only. Endpoints without room are left out by the query itself, so a backlog of
    thousands behind a stuck endpoint is never read. An endpoint that fills up within one batch
    is left out of the next query, so the loop runs at most once per endpoint, plus once.
    """
    left = dict(room)
    taken: list[int] = []
    while len(taken) < limit:
        parameters = {"now": now, "limit": limit - len(taken), "full": _full(left)}
        skipped = False
        for event_id, endpoint in connection.execute(CLAIMABLE_ELSEWHERE, parameters).fetchall():
            places = left.get(endpoint)
            if places is not None:
                if places <= 0:
                    skipped = True
                    continue
                left[endpoint] = places - 1
            keep(
                MARK_RUNNING, (now, event_id)
            )  # running: the next query no longer sees it, nor its order key's next event
            taken.append(event_id)
        if not skipped:  # every row was taken: there is no more, or `limit` is reached
            break
    return taken
