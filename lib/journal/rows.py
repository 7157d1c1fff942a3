"""How the SQLite journal's rows read back: an `event_rows` row as an `EventRecord`, and percentiles for `stats`."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from .records import EventRecord, EventState, JournalStats


def record_from_row(row: sqlite3.Row) -> EventRecord:
    return EventRecord(
        id=row["id"],
        endpoint=row["endpoint"],
        delivery_key=row["delivery_key"],
        webhook_id=row["webhook_id"],
        received_at=row["received_at"],
        headers=json.loads(row["headers"]),
        query=row["query"],
        body=bytes(row["body"]),
        scope=row["scope"],
        action=row["action"],
        repo_name=row["repo_name"],
        repo_type=row["repo_type"],
        order_key=row["order_key"],
        is_test=bool(row["is_test"]),
        state=EventState(row["state"]),
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        next_attempt_at=row["next_attempt_at"],
        original_id=row["original_id"],
        note=row["note"],
        result=json.loads(row["result"]) if row["result"] is not None else None,
        error=row["error"],
        ack_ms=row["ack_ms"],
        handler_ms=row["handler_ms"],
        finished_at=row["finished_at"],
        replays=row["replays"],
    )


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def stats_from_rows(
    since: float, counts: Iterable[Sequence[Any]], times: Iterable[Sequence[float | None]]
) -> JournalStats:
    """`JournalStats` from any backend's rows: (endpoint, state, count) per group, and (ack_ms, handler_ms)
    per event that has either."""
    by_state: dict[str, int] = {}
    by_endpoint: dict[str, dict[str, int]] = {}
    for endpoint, state, count in counts:
        by_state[state] = by_state.get(state, 0) + count
        by_endpoint.setdefault(endpoint, {})[state] = count
    pairs = list(times)
    ack = sorted(pair[0] for pair in pairs if pair[0] is not None)
    handler = sorted(pair[1] for pair in pairs if pair[1] is not None)
    return JournalStats(
        since=since,
        by_state=by_state,
        by_endpoint=by_endpoint,
        ack_ms_p50=percentile(ack, 0.5),
        ack_ms_p95=percentile(ack, 0.95),
        handler_ms_p50=percentile(handler, 0.5),
        handler_ms_p95=percentile(handler, 0.95),
        deliveries=sum(by_state.values()),
    )
