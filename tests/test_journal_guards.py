"""Unit tests of the SQLite journal's guards, in process: the redelivery lookup's cost, the acknowledged
events it notices it lost, its size cap counting the WAL, and a full disk at start.

The same guarantees end to end, with the real app as a process, are in `test_journal_damage.py`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
from journal_helpers import T0, WINDOW, delivery, record

from lib.journal.sqlite import SQLiteJournal
from lib.journal.statements import ORIGINAL

pytestmark = pytest.mark.anyio


def vm_steps(connection: sqlite3.Connection, sql: str, parameters: tuple) -> tuple[int, tuple | None]:
    """How many SQLite virtual-machine steps `sql` takes, and its first row: a cost independent of the machine."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    connection.set_progress_handler(count, 1)
    try:
        row = connection.execute(sql, parameters).fetchone()
    finally:
        connection.set_progress_handler(None, 1)
    return steps, tuple(row) if row is not None else None


# --- 6. a redelivery storm -------------------------------------------------------------------------------


async def test_finding_the_original_of_a_redelivery_costs_the_same_however_many_duplicates_it_had(
    tmp_path: Path,
) -> None:
    """Each redelivery used to scan back past every earlier duplicate of its key (27 ms per ack after 6,000)."""
    path = tmp_path / "journal.sqlite3"
    journal = SQLiteJournal(path, group_commit=False)
    try:
        original = (await record(journal, delivery("id:storm"))).event
        for n in range(50):
            await record(journal, delivery(f"id:other-{n}"))
        costs, duplicates = {}, 0
        for total in (1, 10, 300):
            while duplicates < total:
                again = await record(journal, delivery("id:storm", received_at=T0 + 1))
                assert again.outcome == "duplicate" and again.event.original_id == original.id
                duplicates += 1
            with contextlib.closing(sqlite3.connect(path)) as db:
                costs[total] = vm_steps(db, ORIGINAL, ("/webhooks/a", "id:storm"))
        assert costs[1] == costs[10] == costs[300]
        assert costs[1][1] == (original.id, "queued", None)
    finally:
        await journal.close()


async def test_the_original_is_still_found_when_its_newest_duplicate_outlived_it(tmp_path: Path) -> None:
    """Pruning removes the original (succeeded, older) before its duplicate: the lookup falls back to the
    scan it made before, so a redelivery then is decided as it always was: no original, a new event."""
    journal = SQLiteJournal(tmp_path / "journal.sqlite3")
    try:
        first = (await record(journal, delivery("id:pruned"))).event
        await journal.claim_due(now=T0, limit=1)
        done = await journal.finish(first.id, result=None, handler_ms=1.0)
        now = done.finished_at + 1
        duplicate = await record(journal, delivery("id:pruned", received_at=now))
        assert duplicate.outcome == "duplicate"
        for n in range(3):
            await record(journal, delivery(f"id:later-{n}", received_at=now))
        await journal.durable()
        with contextlib.closing(sqlite3.connect(journal.path)) as db, db:
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("DELETE FROM events WHERE id = ?", (first.id,))  # as retention would, keeping the duplicate

        again = await record(journal, delivery("id:pruned", received_at=now + WINDOW / 2))
        assert again.outcome == "new" and again.original is None
        after = await record(journal, delivery("id:pruned", received_at=now + WINDOW / 2 + 1))
        assert after.outcome == "duplicate" and after.event.original_id == again.event.id
    finally:
        await journal.close()
