"""How the SQLite journal's rows read back: an `event_rows` row as an `EventRecord`, and percentiles for `stats`."""

from __future__ import annotations

import json
import sqlite3

from .records import EventRecord, EventState


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
