"""Group commit in the SQLite journal: writes made on the event loop share one transaction.

The request path commits a group when it awaits `durable()`; outcomes and claims ride along with it
(or with the idle timer). These tests drive the journal directly inside a running loop, with a real
file: a group is made to fail the way it fails in production (a delivery too big for the journal's
cap rolls the whole transaction back), and what the worker was told is done must still reach the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lib.core.errors import JournalUnavailable
from lib.journal import Delivery, EventState, write_behind
from lib.journal.sqlite import SQLiteJournal

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
CAP = 128 * 1024
WINDOW = 600.0
_keys = itertools.count()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def delivery(*, body: bytes = b"{}") -> Delivery:
    n = next(_keys)
    return Delivery(
        endpoint="/webhooks/h",
        delivery_key=f"id:{n}",
        webhook_id=f"wh-{n}",
        received_at=time.time(),
        headers={},
        query="",
        body=body,
        scope="repo.content",
        action="update",
        repo_name=f"org/r{n}",
        repo_type="model",
        order_key=None,
    )


async def record(journal: SQLiteJournal, d: Delivery, *, max_attempts: int = 3) -> int:
    return (await journal.record(d, skipped_reason=None, max_attempts=max_attempts, duplicate_window=WINDOW)).event.id


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite3"


@pytest.fixture
async def journal(journal_path: Path) -> AsyncIterator[SQLiteJournal]:
    journal = SQLiteJournal(journal_path, max_bytes=CAP)
    yield journal
    await journal.close()


def on_file(path: Path, sql: str, parameters: tuple = ()) -> list[tuple]:
    """Read the journal file through a connection of its own: only what has been committed."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return db.execute(sql, parameters).fetchall()


def states_on_file(path: Path, *ids: int) -> list[str | None]:
    found = dict(on_file(path, "SELECT id, state FROM events"))
    return [found.get(event_id) for event_id in ids]


async def test_outcomes_and_claims_of_a_lost_group_are_kept_and_reach_the_file(
    journal: SQLiteJournal, journal_path: Path
) -> None:
    """The worker was told `finish` and `claim_due` succeeded and has moved on: if their group is lost (here
    a bigger delivery than the cap allows, in the same turn), they are written with the next transaction.
    The deliveries of the lost group are not: their requests answer 503 and the Hub sends them again."""
    done = await record(journal, delivery())
    waiting = await record(journal, delivery())
    assert [event.id for event in await journal.claim_due(now=time.time(), limit=1)] == [done]
    await journal.durable()
    assert states_on_file(journal_path, done, waiting) == ["running", "queued"]

    finished = await journal.finish(done, result="done", handler_ms=1.0)  # opens the next group
    [claimed] = await journal.claim_due(now=time.time(), limit=1)
    lost = await record(journal, delivery())
    assert (finished.state, claimed.id, claimed.attempts) == (EventState.SUCCEEDED, waiting, 1)
    assert states_on_file(journal_path, done, waiting, lost) == ["running", "queued", None]  # all in the open group

    async def too_big_for_the_journal() -> None:  # another request of the same turn
        await record(journal, delivery(body=b"x" * (2 * CAP)))

    other_request = asyncio.create_task(too_big_for_the_journal())
    with pytest.raises(JournalUnavailable) as caught:
        await journal.durable()  # what the request that recorded `lost` awaits before answering
    assert caught.value.status_code == 503 and "journal is full" in caught.value.message
    with pytest.raises(JournalUnavailable):
        await other_request

    seen = await journal.get(done), await journal.get(waiting), await journal.get(lost)
    assert seen[0] is not None and (seen[0].state, seen[0].result) == (EventState.SUCCEEDED, "done")
    assert seen[1] is not None and (seen[1].state, seen[1].attempts) == (EventState.RUNNING, 1)
    assert seen[2] is None  # the delivery of the lost group is gone, as its 503 said
    await journal.durable()
    assert states_on_file(journal_path, done, waiting, lost) == ["succeeded", "running", None]

    await journal.finish(waiting, result="later", handler_ms=1.0)  # the claimed event's own outcome still lands
    await journal.durable()
    await journal.close()
    reopened = SQLiteJournal(journal_path, max_bytes=CAP)
    try:
        assert await reopened.recover_interrupted() == 0  # nothing was left running
        for event_id, result in ((done, "done"), (waiting, "later")):
            event = await reopened.get(event_id)
            assert (event.state, event.result, event.attempts) == (EventState.SUCCEEDED, result, 1)
            assert [(a.number, a.outcome) for a in await reopened.attempts(event_id)] == [(1, "succeeded")]
        assert await reopened.get(lost) is None
    finally:
        await reopened.close()


async def test_a_read_commits_the_open_group_first_and_sees_its_claims_and_outcomes(
    journal: SQLiteJournal, journal_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console's reads run on a thread with a connection of their own, so a slow one does not hold up
    deliveries: without committing the open group first, they would show an event queued that is
    running, or running that has finished."""
    monkeypatch.setattr(write_behind, "IDLE_COMMIT_SECONDS", 60.0)  # only the reader's request commits
    event_id = await record(journal, delivery())
    await journal.durable()

    async def read() -> tuple[float, EventState, list[str]]:
        started = time.monotonic()
        event = await journal.get(event_id)
        assert event is not None
        outcomes = [attempt.outcome for attempt in await journal.attempts(event_id)]
        return time.monotonic() - started, event.state, outcomes

    [claimed] = await journal.claim_due(now=time.time(), limit=1)
    assert claimed.state == EventState.RUNNING
    assert states_on_file(journal_path, event_id) == ["queued"]  # still in the open group
    waited, state, outcomes = await read()
    assert (state, outcomes) == (EventState.RUNNING, ["running"])
    assert waited < 1.0  # committed on request, not after the idle delay
    assert states_on_file(journal_path, event_id) == ["running"]

    await journal.finish(event_id, result="ok", handler_ms=1.0)
    assert states_on_file(journal_path, event_id) == ["running"]
    waited, state, outcomes = await read()
    assert (state, outcomes) == (EventState.SUCCEEDED, ["succeeded"])
    assert waited < 1.0
    assert states_on_file(journal_path, event_id) == ["succeeded"]


START_THEN_DIE = """
import asyncio, os, sys, time
from pathlib import Path

from lib.journal.sqlite import SQLiteJournal


async def start() -> None:
    journal = SQLiteJournal(Path(sys.argv[1]))
    await journal.recover_interrupted()  # Worker.start, on the loop
    for event in await journal.claim_due(now=time.time(), limit=10):  # then the worker's first scan
        journal.attempt_started(event.id, event.attempts)
        os._exit(1)  # the handler takes the process down


asyncio.run(start())
"""


async def test_a_handler_that_kills_every_start_is_left_dead_after_its_attempts(journal_path: Path) -> None:
    """The app's start in miniature, in a real process: recover, claim, start the handler, which kills the
    process at once (before the group's idle commit). Run with `max_attempts=2`, the third start must find
    the event dead, or the Space crashes on every start for ever."""
    journal = SQLiteJournal(journal_path)
    event_id = await record(journal, delivery(), max_attempts=2)
    [first] = await journal.claim_due(now=time.time(), limit=1)  # the first start: committed, then killed
    journal.attempt_started(first.id, first.attempts)
    await journal.close()

    second_start = subprocess.run(
        [sys.executable, "-c", START_THEN_DIE, str(journal_path)], cwd=ROOT, capture_output=True, timeout=60
    )
    assert second_start.returncode == 1, second_start.stderr.decode()
    assert journal_path.with_name(journal_path.name + "-starts").read_text().split("\n")[-2] == f"{event_id} 2"

    third_start = SQLiteJournal(journal_path)
    try:
        assert await third_start.recover_interrupted() == 0  # nothing to run again
        event = await third_start.get(event_id)
        assert (event.state, event.attempts) == (EventState.DEAD, 2)
        assert "stopped during the last allowed attempt" in event.error
        outcomes = [(attempt.number, attempt.outcome) for attempt in await third_start.attempts(event_id)]
        assert outcomes == [(1, "interrupted"), (2, "interrupted")]
    finally:
        await third_start.close()


async def test_the_write_ahead_log_stays_bounded_under_a_steady_stream_of_groups(tmp_path: Path) -> None:
    """SQLite copies the WAL back into the database inside a commit, so the WAL restarts instead of
    growing with every event: a WAL checkpointed only on the side would grow without end while the
    loop never stops writing, outside the journal's size cap."""
    path = tmp_path / "journal.sqlite3"
    journal = SQLiteJournal(path)
    body = b'{"padding": "' + b"x" * 1200 + b'"}'
    try:
        largest = 0
        for group in range(250):
            for _ in range(16):
                await record(journal, delivery(body=body))
            await journal.durable()
            if group % 25 == 0:
                largest = max(largest, (tmp_path / "journal.sqlite3-wal").stat().st_size)
        written = 250 * 16 * len(body)
        assert written > 4 * 2**20  # more than the WAL may hold: without checkpoints it would pass the bound
        assert largest < 6 * 2**20, f"the WAL grew to {largest} bytes"
    finally:
        await journal.close()


async def test_the_id_of_a_lost_delivery_is_never_given_to_a_later_one(journal: SQLiteJournal) -> None:
    """The worker may still hold an event of a group that failed to commit (claimed, about to run):
    a later delivery under the same id would look committed, and the stale event would run as it."""
    kept = await record(journal, delivery())
    await journal.durable()
    lost = await record(journal, delivery())
    with pytest.raises(JournalUnavailable):
        await record(journal, delivery(body=b"x" * (2 * CAP)))  # rolls the whole group back, as a full disk does
    with pytest.raises(JournalUnavailable):
        await journal.durable(lost)

    later = await record(journal, delivery())
    await journal.durable(later)
    assert later > lost > kept
    assert journal.is_committed(kept) and journal.is_committed(later)
    assert not journal.is_committed(lost)
    assert await journal.get(lost) is None


async def test_a_pause_lost_with_its_group_is_not_a_pause(journal: SQLiteJournal, journal_path: Path) -> None:
    """The console says "paused" only once the pause is on disk. If its group is lost (a delivery too big for
    the cap in the same turn), `pause` raises and nothing is held: not in memory, not on the file."""
    waiting = await record(journal, delivery())
    await journal.durable()

    async def too_big_for_the_journal() -> None:
        await record(journal, delivery(body=b"x" * (2 * CAP)))

    other_request = asyncio.create_task(too_big_for_the_journal())
    with pytest.raises(JournalUnavailable):
        await journal.pause("/webhooks/h", now=time.time())
    with pytest.raises(JournalUnavailable):
        await other_request
    assert await journal.paused() == {}
    assert (await journal.get(waiting)).state == EventState.QUEUED
    later = await journal.record(delivery(), skipped_reason=None, max_attempts=1, duplicate_window=WINDOW)
    assert later.event.state == EventState.QUEUED
    await journal.durable()
    assert states_on_file(journal_path, waiting, later.event.id) == ["queued", "queued"]

    assert await journal.pause("/webhooks/h", now=time.time()) == 2  # the next one holds, on the file too
    assert states_on_file(journal_path, waiting, later.event.id) == ["paused", "paused"]
