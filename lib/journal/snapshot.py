"""`JournalSnapshot`: what the journal holds right now, by endpoint and state, for metrics and alerts.

Prometheus scrapes it and the alert checks read it every few seconds, so it is one grouped
query over the events (no bodies, no attempts) plus the size of the journal's files: cheap
enough to ask often, and the same answer from every backend.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SNAPSHOT = (
    "SELECT endpoint, state, COUNT(*), MIN(received_at), SUM(received_at >= ?) FROM events GROUP BY endpoint, state"
)
"""One row per endpoint and state: how many events, the oldest one's arrival, how many arrived since `?`."""


@dataclass(frozen=True, kw_only=True)
class StateCount:
    """The events of one endpoint in one state."""

    endpoint: str
    state: str
    count: int
    oldest_received_at: float
    """When the oldest of them arrived (for `queued`: how long the queue has been waiting)."""
    received_since: int
    """How many of them arrived since the snapshot's `since` (the Hub's daily trigger count)."""


@dataclass(frozen=True, kw_only=True)
class JournalSnapshot:
    """Every event the journal holds, counted by endpoint and state, and its size on disk."""

    taken_at: float
    since: float
    counts: list[StateCount] = field(default_factory=list)
    size_bytes: int | None = None
    """What the journal takes on its disk (file and write-ahead log), None when unknown (a server database)."""

    def count(self, endpoint: str, state: str) -> int:
        return sum(row.count for row in self.counts if row.endpoint == endpoint and row.state == state)

    def oldest(self, endpoint: str, state: str) -> float | None:
        """When the oldest event of `endpoint` in `state` arrived, None if there is none."""
        times = [row.oldest_received_at for row in self.counts if row.endpoint == endpoint and row.state == state]
        return min(times) if times else None

    def received_since(self, endpoint: str) -> int:
        """Deliveries `endpoint` received since `since`, whatever became of them."""
        return sum(row.received_since for row in self.counts if row.endpoint == endpoint)

    @property
    def endpoints(self) -> list[str]:
        return sorted({row.endpoint for row in self.counts})


def snapshot_of(rows: Iterable[Sequence[Any]], *, since: float, size_bytes: int | None) -> JournalSnapshot:
    """The snapshot from the rows `SNAPSHOT` returns (any backend's, in that column order)."""
    counts = [
        StateCount(endpoint=r[0], state=r[1], count=r[2], oldest_received_at=r[3], received_since=r[4] or 0)
        for r in rows
    ]
    return JournalSnapshot(taken_at=time.time(), since=since, counts=counts, size_bytes=size_bytes)


def files_bytes(path: Path) -> int:
    """The size of a SQLite journal with its write-ahead log (missing files count as 0)."""
    total = 0
    for name in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(OSError):
            total += os.stat(name).st_size
    return total
