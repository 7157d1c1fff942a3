"""What `recover_interrupted` writes: the events a crash left running, back in the queue (or dead).

A class rather than a block of `sqlite.py`, because the SQLite journal may have to run it later than
it was asked: on a full disk, it runs first in the journal's next transaction instead (see
`WriteBehind.first`), so that no claim is ever written before it. Every statement can run again
with the same effect, should the transaction that ran it fail to commit.
"""

from __future__ import annotations

import sqlite3

from .records import STOPPED_ON_LAST_ATTEMPT
from .statements import CLOSE_RUNNING_ATTEMPTS, UNFINISHED


class Recovery:
    """The recovery's statements, for the attempts the starts file noted (`{event id: attempt}`) at `now`."""

    def __init__(self, started: dict[int, int], *, now: float, deferred: bool = False) -> None:
        self.lost_claims = [(attempt, event_id) for event_id, attempt in started.items()]
        self.now = now
        self.deferred = deferred
        """It could not be made when asked for (a full disk): it runs first in a later transaction."""
        self.requeued = 0
        """How many events the last run put back in the queue."""

    def __call__(self, connection: sqlite3.Connection) -> None:
        interrupted = {"now": self.now, "outcome": "interrupted", "detail": "the app stopped while this attempt ran"}
        connection.execute(CLOSE_RUNNING_ATTEMPTS, interrupted)
        # A handler that started while its claim was still uncommitted: the claim died with the
        # process, the start note did not. That attempt counts too, as if its claim had landed.
        connection.executemany(
            "UPDATE events SET state = 'running', attempts = ?, started_at = NULL "
            f"WHERE id = ? AND {UNFINISHED} AND attempts < ?1",
            self.lost_claims,
        )
        if self.lost_claims:
            connection.execute(CLOSE_RUNNING_ATTEMPTS, interrupted)
        # An event whose last allowed attempt was cut short may be what crashed the process:
        # running it again on every start would crash every start, so it is left dead instead, and a
        # redelivery of it from the Hub leaves it dead too (`redelivery_outcome`).
        connection.execute(
            "UPDATE events SET state = 'dead', finished_at = ?, error = ? "
            f"WHERE {UNFINISHED} AND state = 'running' AND attempts >= max_attempts",
            (self.now, STOPPED_ON_LAST_ATTEMPT),
        )
        self.requeued = connection.execute(
            f"UPDATE events SET state = 'queued' WHERE {UNFINISHED} AND state = 'running'"
        ).rowcount
