"""Unit tests of the SQLite journal's guards, in process: the redelivery lookup's cost, the acknowledged
events it notices it lost, its size cap counting the WAL, and a full disk at start.

The same guarantees end to end, with the real app as a process, are in `test_journal_damage.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest
from journal_helpers import T0, WINDOW, delivery, record
from tmpfs import fill, small_disk

from lib.core.errors import JournalUnavailable
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


# --- 2. acknowledged events lost: reported, never silent --------------------------------------------------


def beside(journal_path: Path, suffix: str) -> Path:
    return journal_path.with_name(journal_path.name + suffix)


async def recorded_ids(path: Path, count: int) -> list[int]:
    """Open the journal at `path`, record and commit `count` deliveries, close it; their ids."""
    journal = SQLiteJournal(path)
    try:
        ids = [(await record(journal, delivery())).event.id for _ in range(count)]
        await journal.durable()
        return ids
    finally:
        await journal.close()


async def test_a_journal_truncated_to_0_bytes_reports_what_it_lost_and_gives_no_id_twice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journal.sqlite3"
    ids = await recorded_ids(path, 5)
    assert beside(path, "-acked").read_text().split()[0] == str(ids[-1])
    path.write_bytes(b"")

    journal = SQLiteJournal(path)
    try:
        [loss] = await journal.damage()
        assert (loss.first_id, loss.last_id, loss.count, loss.kept_until) == (ids[0], ids[-1], 5, None)
        assert "truncated to 0 bytes" in loss.cause and loss.acknowledged_until is not None
        [line] = [r for r in caplog.records if r.levelname == "ERROR"]
        assert f"lost up to 5 acknowledged event(s), #{ids[0]} to #{ids[-1]}" in line.getMessage()
        assert "replay the deliveries" in line.getMessage() and "dismiss" in line.getMessage()
        assert (await record(journal, delivery())).event.id == ids[-1] + 1  # never one of the lost ids
    finally:
        await journal.close()


async def test_a_loss_is_reported_on_every_start_until_dismissed_and_never_twice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journal.sqlite3"
    lost = await recorded_ids(path, 3)
    path.write_bytes(b"")
    for _ in range(2):  # a restart before anything new was recorded finds the same loss: one report
        journal = SQLiteJournal(path)
        assert [(d.first_id, d.last_id) for d in await journal.damage()] == [(lost[0], lost[-1])]
        await journal.close()
    assert sum("lost up to 3" in r.getMessage() for r in caplog.records if r.levelname == "ERROR") == 2

    journal = SQLiteJournal(path)
    try:
        assert await journal.dismiss_damage() == 1
        assert await journal.damage() == []
        assert await journal.dismiss_damage() == 0
    finally:
        await journal.close()
    caplog.clear()
    journal = SQLiteJournal(path)  # dismissed, and still nothing recorded since: not reported again
    assert await journal.damage() == []
    await journal.close()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]

    newer = await recorded_ids(path, 2)  # numbered after the lost ones
    assert newer == [lost[-1] + 1, lost[-1] + 2]
    path.write_bytes(b"")
    journal = SQLiteJournal(path)
    try:  # only what was lost since the dismissed report
        assert [(d.first_id, d.last_id) for d in await journal.damage()] == [(newer[0], newer[-1])]
    finally:
        await journal.close()


async def test_a_write_ahead_log_lost_after_a_crash_is_reported_with_what_was_kept(tmp_path: Path) -> None:
    """A crash leaves the newest commits in `-wal` only; the copy taken here while the journal is open is
    that crash's files. Without the WAL the journal opens fine (quick_check finds nothing) but shorter."""
    path = tmp_path / "live" / "journal.sqlite3"
    journal = SQLiteJournal(path)
    kept = [(await record(journal, delivery())).event.id for _ in range(3)]
    await journal.durable()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    lost = [(await record(journal, delivery())).event.id for _ in range(4)]
    await journal.durable()
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for suffix in ("", "-shm", "-acked"):
        beside(crashed / path.name, suffix).write_bytes(beside(path, suffix).read_bytes())
    await journal.close()

    reopened = SQLiteJournal(crashed / path.name)
    try:
        [loss] = await reopened.damage()
        assert (loss.first_id, loss.last_id) == (lost[0], lost[-1]) and loss.kept_until == T0
        assert "write-ahead log" in loss.cause and "missing" in loss.cause
        assert await reopened.get(kept[-1]) is not None and await reopened.get(lost[0]) is None
        assert (await record(reopened, delivery())).event.id == lost[-1] + 1
    finally:
        await reopened.close()


async def test_unreadable_notes_beside_the_journal_never_stop_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journal.sqlite3"
    await recorded_ids(path, 2)
    beside(path, "-acked").write_text("not a number\x00")
    beside(path, "-damage").write_text("{broken json")
    journal = SQLiteJournal(path)
    try:
        assert await journal.damage() == []
        assert (await record(journal, delivery())).event.id == 3
        await journal.durable()
        assert beside(path, "-acked").read_text().split()[0] == "3"  # written again, whole
    finally:
        await journal.close()
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "holds no event id" in messages and "Could not read the reports of lost events" in messages


# --- 3. a full disk, and the size cap counting the WAL -----------------------------------------------------


def on_disk(path: Path) -> int:
    """The journal file and its WAL, as the cap counts them."""
    return sum(p.stat().st_size for p in (path, beside(path, "-wal")) if p.exists())


@pytest.mark.parametrize("group_commit", [True, False])
async def test_past_the_cap_the_file_and_its_wal_together_stay_within_it(tmp_path: Path, group_commit: bool) -> None:
    """Before, the cap bounded the file only, and the WAL beside it grew to 4 MiB before its first checkpoint."""
    cap = 256 * 1024
    path = tmp_path / "journal.sqlite3"
    journal = SQLiteJournal(path, max_bytes=cap, group_commit=group_commit)
    recorded = refused = 0
    largest = 0
    try:
        for n in range(300):
            try:
                for _ in range(4):  # several deliveries to a commit, as in a busy turn of the loop
                    await record(journal, delivery(order=False, body=b"y" * 1500))
                await journal.durable()
                recorded += 4
            except JournalUnavailable as exc:
                assert "journal is full" in exc.message and "WEBHOOK_JOURNAL_MAX_BYTES" in exc.message
                refused += 1
            if n % 10 == 0:
                await journal.list_recent(limit=5)  # the console reading meanwhile
            largest = max(largest, on_disk(path))
        assert recorded > 50 and refused > 100
        assert largest <= cap
    finally:
        await journal.close()


async def test_a_journal_opens_on_a_full_disk_answers_503_and_carries_on_once_there_is_room(tmp_path: Path) -> None:
    """Before, the start failed ("cannot rollback - no transaction is active ... move it aside"), blaming a
    healthy journal, and the recovery of what a crash left running could not be written either. Now the
    journal opens (or opens later), every write is a 503 saying the disk is full, and once there is room
    the recovery is written before anything else: no claim is made ahead of it."""
    with small_disk(tmp_path / "disk", "2m") as disk:
        path = disk / "journal.sqlite3"
        journal = SQLiteJournal(path)
        running = (await record(journal, delivery(order=False))).event.id
        queued = (await record(journal, delivery(order=False))).event.id
        assert [e.id for e in await journal.claim_due(now=T0, limit=1)] == [running]
        await journal.close()  # stopped: `running` stays running until the next start recovers it
        filler = fill(disk)

        journal = SQLiteJournal(path)  # no ConfigurationError
        try:
            with pytest.raises(JournalUnavailable) as caught:
                await journal.recover_interrupted()
            assert "is full" in caught.value.message and "without a restart" in caught.value.message
            with pytest.raises(JournalUnavailable):
                await record(journal, delivery())
            with pytest.raises(JournalUnavailable):
                await journal.claim_due(now=T0, limit=10)

            filler.unlink()

            async def claimed_once_there_is_room() -> list:
                for _ in range(100):  # the journal tries its file again at most once a second
                    try:
                        return await journal.claim_due(now=T0, limit=10)
                    except JournalUnavailable:
                        await asyncio.sleep(0.1)
                raise AssertionError("the journal did not open once the disk had room")

            claimed = await claimed_once_there_is_room()
            assert sorted((e.id, e.attempts) for e in claimed) == [(running, 2), (queued, 1)]
            assert [a.outcome for a in await journal.attempts(running)][:1] == ["interrupted"]
            assert (await record(journal, delivery())).event.id == queued + 1
        finally:
            await journal.close()


async def test_a_journal_left_open_by_a_crash_opens_on_a_full_disk(tmp_path: Path) -> None:
    """The issue's case: a crash leaves `-shm` and `-wal` behind, so SQLite can open the file on a full disk;
    the start used to write the schema version anyway, fail, and report a damaged journal."""
    with small_disk(tmp_path / "disk", "2m") as disk:
        path = disk / "journal.sqlite3"
        crashed = SQLiteJournal(path)  # never closed, as after SIGKILL
        event_id = (await record(crashed, delivery())).event.id
        await crashed.durable()
        fill(disk)
        journal = SQLiteJournal(path)
        try:
            assert (await journal.get(event_id)) is not None
            assert await journal.damage() == []
        finally:
            await journal.close()
            await crashed.close()
