"""Tests of the SQLite journal's own concerns: its file (opening, refusing, migrating, the size cap), its
queries' use of the indexes, its reads on a thread, and the starts file. What every backend must do
is tested in `test_journal_conformance.py`; group commit in `test_group_commit.py`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from journal_helpers import T0, claim_ids, delivery, record, state

from lib.core.errors import ConfigurationError, JournalUnavailable
from lib.journal import EventState
from lib.journal.schema import SCHEMA_VERSION
from lib.journal.sqlite import SQLiteJournal

pytestmark = pytest.mark.anyio


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[SQLiteJournal]:
    journal = SQLiteJournal(tmp_path / "data" / "journal.sqlite3")
    yield journal
    await journal.close()


# --- opening: survive restarts, refuse what cannot be trusted ----------------------------------------------


async def test_events_survive_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    first = SQLiteJournal(path)
    event_id = (await record(first, delivery("id:keep"))).event.id
    await first.close()

    second = SQLiteJournal(path)
    try:
        assert (await second.get(event_id)).delivery_key == "id:keep"
        assert (await record(second, delivery("id:keep"))).outcome == "duplicate"
    finally:
        await second.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_garbage_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    path.write_bytes(b"this is not a database at all\x00" * 200)

    with pytest.raises(ConfigurationError) as caught:
        SQLiteJournal(path)
    message = str(caught.value)
    assert str(path) in message
    assert "move it aside" in message
    assert path.read_bytes().startswith(b"this is not a database")  # never replaced


async def test_a_damaged_journal_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = SQLiteJournal(path)
    for _ in range(50):
        await record(journal, delivery(body=b"x" * 2000))
    await journal.close()
    data = bytearray(path.read_bytes())
    assert len(data) > 8 * 4096
    data[2 * 4096 : 6 * 4096] = b"\xa5" * (4 * 4096)  # trash pages of the events table
    path.write_bytes(bytes(data))

    with pytest.raises(ConfigurationError) as caught:
        SQLiteJournal(path)
    assert str(path) in str(caught.value)


async def test_a_journal_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    await SQLiteJournal(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")

    with pytest.raises(ConfigurationError) as caught:
        SQLiteJournal(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"newer version of this app (schema {SCHEMA_VERSION + 1})" in message


def test_another_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (name TEXT)")

    with pytest.raises(ConfigurationError, match="not an event journal"):
        SQLiteJournal(path)


def test_an_unusable_folder_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(ConfigurationError, match="cannot be used"):
        SQLiteJournal(blocker / "journal.sqlite3")


# --- size cap --------------------------------------------------------------------------------------------


async def test_a_full_journal_refuses_with_503_and_writes_nothing_half(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "journal.sqlite3", max_bytes=96 * 1024)
    try:
        failing = (await record(journal, delivery("id:failing", order=False), max_attempts=1)).event.id
        await claim_ids(journal)
        await journal.fail(failing, error="x", handler_ms=1, retry_at=None)

        recorded = 0
        with pytest.raises(JournalUnavailable) as caught:
            for _ in range(1000):
                await record(journal, delivery(order=False, body=b"y" * 3000))
                await journal.durable()  # as the request path does: each delivery its own commit
                recorded += 1
        assert caught.value.status_code == 503
        assert recorded > 0
        count_before = len(await journal.list_recent(limit=10_000))

        # A redelivery of the dead event would requeue it and insert a row: with no room for the
        # row, the requeue must not happen either.
        with pytest.raises(JournalUnavailable):
            await record(journal, delivery("id:failing", order=False, body=b"z" * 20_000), max_attempts=1)
        assert await state(journal, failing) == EventState.DEAD
        assert len(await journal.list_recent(limit=10_000)) == count_before

        # Reads and small writes still work; pruning makes room again.
        assert await journal.get(failing) is not None
        removed = await journal.prune(older_than=T0 + 1, keep_max=10_000)
        assert removed == 0  # nothing is finished: queued events are never pruned to make room
    finally:
        await journal.close()
    with sqlite3.connect(tmp_path / "journal.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_no_cap_by_default(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "journal.sqlite3")
    try:
        for _ in range(30):
            await record(journal, delivery(order=False, body=b"y" * 10_000))
        assert len(await journal.list_recent()) == 30
    finally:
        await journal.close()


async def test_reads_from_another_thread_see_committed_writes(
    journal: SQLiteJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console's reads run on a thread of the journal's own, so a slow one never holds up deliveries."""
    from lib.journal import sqlite as sqlite_backend

    threads: list[threading.Thread] = []
    opened = sqlite_backend.connect
    monkeypatch.setattr(
        sqlite_backend, "connect", lambda path: threads.append(threading.current_thread()) or opened(path)
    )
    event_id = (await record(journal, delivery())).event.id
    seen: list[object] = [await journal.get(event_id)]
    assert threads and threads[0] is not threading.current_thread()
    assert seen[0] is not None and seen[0].id == event_id


@pytest.mark.parametrize("query", ["CLAIMABLE", "NEXT_DUE"])
async def test_the_worker_queries_use_the_partial_indexes_instead_of_scanning_every_event(
    journal: SQLiteJournal, query: str
) -> None:
    """A full scan would read every body ever recorded on every wake-up, slower as the journal grows.

    Scanning `events_unfinished` is the point: it holds only the events still to run.
    """
    from lib.journal import statements

    sql = getattr(statements, query)
    with contextlib.closing(sqlite3.connect(journal.path)) as db:
        plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, {"now": 0, "limit": 1})]
    reads = [step for step in plan if step.startswith(("SCAN", "SEARCH"))]
    assert reads and all("USING INDEX events_unfinished" in step for step in reads), plan


async def test_a_scan_within_each_endpoints_room_uses_the_partial_index_too(journal: SQLiteJournal) -> None:
    """The bulkhead's scan leaves out full endpoints in the query (`CLAIMABLE_ELSEWHERE`): still on the index."""
    from lib.journal.statements import CLAIMABLE_ELSEWHERE

    with contextlib.closing(sqlite3.connect(journal.path)) as db:
        parameters = {"now": 0, "limit": 1, "full": '["/webhooks/stuck"]'}
        plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + CLAIMABLE_ELSEWHERE, parameters)]
    reads = [step for step in plan if step.startswith(("SCAN", "SEARCH")) and "json_each" not in step]
    assert reads and all("USING INDEX events_unfinished" in step for step in reads), plan


# --- schema migration: v1 journals from earlier versions of the app ------------------------------------------

V1_SCHEMA = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint TEXT NOT NULL,
    delivery_key TEXT NOT NULL,
    webhook_id TEXT,
    received_at REAL NOT NULL,
    headers TEXT NOT NULL,
    query TEXT NOT NULL,
    body BLOB NOT NULL,
    scope TEXT NOT NULL,
    action TEXT NOT NULL,
    repo_name TEXT NOT NULL,
    repo_type TEXT NOT NULL,
    order_key TEXT,
    is_test INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    next_attempt_at REAL,
    original_id INTEGER,
    note TEXT,
    result TEXT,
    error TEXT,
    ack_ms REAL,
    handler_ms REAL,
    finished_at REAL
);
CREATE INDEX events_by_key ON events (endpoint, delivery_key, id);
CREATE INDEX events_pending ON events (state, next_attempt_at) WHERE state IN ('queued', 'running', 'failed');
CREATE INDEX events_by_order ON events (order_key, id) WHERE state IN ('queued', 'running', 'failed');
CREATE INDEX events_running ON events (order_key) WHERE state = 'running';
CREATE TABLE attempts (
    event_id INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    outcome TEXT NOT NULL,
    detail TEXT,
    PRIMARY KEY (event_id, number)
) WITHOUT ROWID;
"""
"""The schema of version 1 (`git show 13ecea5:lib/sqlite_journal.py`), written out here: the app no longer has it."""


def write_v1_journal(path: Path, *, running_since: float) -> dict[str, int]:
    """A journal as version 1 of the app left it when stopped mid-attempt: one event succeeded, one running
    (its open attempt a 'running' row of `attempts`), one queued behind it. Returns their ids by state."""
    ids: dict[str, int] = {}
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(V1_SCHEMA)
        db.execute("PRAGMA user_version=1")
        for n, (state, attempts) in enumerate((("succeeded", 1), ("running", 1), ("queued", 0))):
            ids[state] = db.execute(
                "INSERT INTO events (endpoint, delivery_key, received_at, headers, query, body, scope, action, "
                "repo_name, repo_type, order_key, state, attempts, max_attempts, result, finished_at) "
                "VALUES ('/webhooks/a', ?, ?, '{}', '', ?, 'repo.content', 'update', ?, 'model', ?, ?, ?, 3, "
                "?, ?)",
                (
                    f"id:v1-{n}",
                    T0 + n,
                    f'{{"v1": {n}}}'.encode(),
                    f"org/v1-{n}",
                    f"/webhooks/a model/org/v1-{n}",
                    state,
                    attempts,
                    '"ok"' if state == "succeeded" else None,
                    T0 + 5 if state == "succeeded" else None,
                ),
            ).lastrowid
        db.execute("INSERT INTO attempts VALUES (?, 1, ?, ?, 'succeeded', '\"ok\"')", (ids["succeeded"], T0, T0 + 5))
        db.execute(
            "INSERT INTO attempts (event_id, number, started_at, outcome) VALUES (?, 1, ?, 'running')",
            (ids["running"], running_since),
        )
    return ids


async def test_a_v1_journal_is_migrated_keeping_its_events_and_the_attempt_it_was_running(tmp_path: Path) -> None:
    """Journals written before the running attempt moved onto the event must keep working after an update:
    the attempt cut short by the update is still counted (and marked interrupted), nothing is lost."""
    path = tmp_path / "journal.sqlite3"
    running_since = T0 + 42.5
    ids = write_v1_journal(path, running_since=running_since)

    journal = SQLiteJournal(path)
    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
            ours = {name for name in indexes if not name.startswith("sqlite_")}
            assert ours == {"events_by_key", "events_unfinished", "jobs_by_launch"}
            started = dict(db.execute("SELECT id, started_at FROM events").fetchall())
            assert (started[ids["running"]], started[ids["queued"]]) == (running_since, None)
            assert db.execute("SELECT COUNT(*) FROM attempts WHERE outcome = 'running'").fetchone()[0] == 0

        [running] = await journal.attempts(ids["running"])
        assert (running.number, running.outcome, running.started_at, running.finished_at) == (
            1,
            "running",
            running_since,
            None,
        )
        [succeeded] = await journal.attempts(ids["succeeded"])
        assert (succeeded.outcome, succeeded.started_at, succeeded.finished_at) == ("succeeded", T0, T0 + 5)
        assert (await journal.get(ids["succeeded"])).result == "ok"
        # The bodies moved to their own table, each with its event.
        assert [(await journal.get(ids[name])).body for name in ("succeeded", "running", "queued")] == [
            b'{"v1": 0}',
            b'{"v1": 1}',
            b'{"v1": 2}',
        ]

        assert await journal.recover_interrupted() == 1
        [interrupted] = await journal.attempts(ids["running"])
        assert (interrupted.number, interrupted.outcome, interrupted.started_at) == (1, "interrupted", running_since)
        assert interrupted.finished_at is not None
        assert [await state(journal, ids[name]) for name in ("succeeded", "running", "queued")] == [
            EventState.SUCCEEDED,
            EventState.QUEUED,
            EventState.QUEUED,
        ]
        # The new claim query (it names the new index) runs on the migrated file.
        claimed = await journal.claim_due(now=T0 + 100, limit=10)
        assert [(event.id, event.attempts) for event in claimed] == [(ids["running"], 2), (ids["queued"], 1)]
    finally:
        await journal.close()


V2_SCHEMA = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, endpoint TEXT NOT NULL, delivery_key TEXT NOT NULL, webhook_id TEXT,
    received_at REAL NOT NULL, headers TEXT NOT NULL, query TEXT NOT NULL, scope TEXT NOT NULL, action TEXT NOT NULL,
    repo_name TEXT NOT NULL, repo_type TEXT NOT NULL, order_key TEXT, is_test INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL, next_attempt_at REAL,
    original_id INTEGER, note TEXT, result TEXT, error TEXT, ack_ms REAL, handler_ms REAL, finished_at REAL,
    started_at REAL
);
CREATE INDEX events_by_key ON events (endpoint, delivery_key, id);
CREATE INDEX events_unfinished ON events (order_key, id) WHERE state IN ('queued', 'running', 'failed');
CREATE TABLE bodies (event_id INTEGER PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE, body BLOB NOT NULL);
CREATE VIEW event_rows AS SELECT events.*, bodies.body FROM events JOIN bodies ON bodies.event_id = events.id;
CREATE TABLE attempts (
    event_id INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE, number INTEGER NOT NULL,
    started_at REAL NOT NULL, finished_at REAL, outcome TEXT NOT NULL, detail TEXT, PRIMARY KEY (event_id, number)
) WITHOUT ROWID;
"""
"""The schema of version 2 (`git show 60d0457:lib/journal/schema.py`), before Hub Jobs, written out here."""


async def test_a_v2_journal_is_migrated_to_follow_jobs_keeping_its_events(tmp_path: Path) -> None:
    """A journal from before Hub Jobs keeps its events, gets the `jobs` table and the lane index that knows
    `job_running`, and its queued events still run in order."""
    path = tmp_path / "journal.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(V2_SCHEMA)
        db.execute("PRAGMA user_version=2")
        for n, state in enumerate(("succeeded", "queued", "queued")):
            event_id = db.execute(
                "INSERT INTO events (endpoint, delivery_key, received_at, headers, query, scope, action, repo_name, "
                "repo_type, order_key, state, attempts, max_attempts, result, finished_at) VALUES ('/webhooks/a', "
                "?, ?, '{}', '', 'repo.content', 'update', 'org/m', 'model', '/webhooks/a model/org/m', ?, ?, 3, ?, ?)",
                (
                    f"id:v2-{n}",
                    T0 + n,
                    state,
                    int(state == "succeeded"),
                    '"ok"' if n == 0 else None,
                    T0 if n == 0 else None,
                ),
            ).lastrowid
            db.execute("INSERT INTO bodies VALUES (?, ?)", (event_id, f'{{"v2": {n}}}'.encode()))

    journal = SQLiteJournal(path)
    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
            index = db.execute("SELECT sql FROM sqlite_master WHERE name = 'events_unfinished'").fetchone()[0]
            assert "job_running" in index
            assert db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
        events = await journal.list_recent()
        assert [(event.state, event.replays, event.body) for event in reversed(events)] == [
            (EventState.SUCCEEDED, 0, b'{"v2": 0}'),
            (EventState.QUEUED, 0, b'{"v2": 1}'),
            (EventState.QUEUED, 0, b'{"v2": 2}'),
        ]
        assert (await journal.get(events[-1].id)).result == "ok"
        [first] = await journal.claim_due(now=T0 + 10, limit=10)  # one at a time in the repo's lane
        assert first.id == events[1].id
        assert await journal.job_for(first.id) is None
    finally:
        await journal.close()


async def test_a_journal_of_a_newer_schema_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    """A newer schema is not ours to migrate, not even 'down': refusing must not rewrite its version or its rows."""
    path = tmp_path / "journal.sqlite3"
    journal = SQLiteJournal(path)
    event_id = (await record(journal, delivery())).event.id
    await journal.close()
    newer = SCHEMA_VERSION + 1
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(f"PRAGMA user_version={newer}")

    with pytest.raises(ConfigurationError, match=rf"newer version of this app \(schema {newer}\)"):
        SQLiteJournal(path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == newer
        assert db.execute("SELECT id FROM events").fetchall() == [(event_id,)]


# --- lost claims: a handler started before its claim was committed ------------------------------------------


def starts_file(journal: SQLiteJournal) -> Path:
    return journal.path.with_name(journal.path.name + "-starts")


async def reopened(journal: SQLiteJournal) -> SQLiteJournal:
    """Close the journal and open its file again, as the next start of the app does."""
    await journal.close()
    return SQLiteJournal(journal.path, group_commit=journal.group_commit)


@pytest.mark.parametrize("max_attempts", [1, 3])
async def test_an_attempt_whose_claim_died_with_the_process_still_counts(tmp_path: Path, max_attempts: int) -> None:
    """Claims are committed in groups, so a handler can start (and kill the process) before its claim is on
    disk. Its note in the starts file is then the only trace: without it the event would run again with
    the same attempt number on every start, and a handler that crashes the process would crash every start."""
    journal = SQLiteJournal(tmp_path / "journal.sqlite3")
    event_id = (await record(journal, delivery(), max_attempts=max_attempts)).event.id
    journal.attempt_started(event_id, 1)  # the claim itself never reached the file
    assert starts_file(journal).read_text() == f"{event_id} 1\n"
    journal = await reopened(journal)
    try:
        assert (await journal.get(event_id)).state == EventState.QUEUED  # as the file says, before recovery
        assert await journal.recover_interrupted() == (0 if max_attempts == 1 else 1)

        event = await journal.get(event_id)
        [attempt] = await journal.attempts(event_id)
        assert (attempt.number, attempt.outcome) == (1, "interrupted")
        assert event.attempts == 1
        if max_attempts == 1:
            assert event.state == EventState.DEAD
            assert "stopped during the last allowed attempt" in event.error
            assert await claim_ids(journal) == []
        else:
            assert event.state == EventState.QUEUED
            [claimed] = await journal.claim_due(now=T0, limit=1)
            assert (claimed.id, claimed.attempts) == (event_id, 2)
    finally:
        await journal.close()


async def test_the_starts_file_ignores_torn_and_garbage_lines_and_attempts_already_recorded(tmp_path: Path) -> None:
    """The file is appended without a sync, so a crash can cut its last line short: a half line must not
    count an attempt (nor stop the app starting). Attempts whose claim did reach the journal, and events
    that finished since, are not counted again."""
    journal = SQLiteJournal(tmp_path / "journal.sqlite3")
    lost, retried, finished = [(await record(journal, delivery(order=False))).event.id for _ in range(3)]
    await claim_ids(journal)
    for event_id in (lost, retried, finished):
        journal.attempt_started(event_id, 1)
    await journal.fail(lost, error="boom", handler_ms=1, retry_at=T0)
    await journal.fail(retried, error="boom", handler_ms=1, retry_at=T0 + 3600)
    await journal.finish(finished, result="done", handler_ms=1)
    journal.attempt_started(lost, 2)  # its retry started; the claim of attempt 2 died with the process
    torn = (await record(journal, delivery(order=False))).event.id
    await journal.close()
    with starts_file(journal).open("ab") as file:
        garbage = f"not a line\n{torn} two\n{torn} 1 1\n-{torn} 1\n\n999 1\n\x00\n{torn} \u00b2\n{torn} 1\u0661\n"
        file.write(garbage.encode() + b"\xff\xfe 1\n")
        file.write(f"{torn} ".encode())  # the last line, cut short by the crash

    journal = SQLiteJournal(journal.path)
    try:
        assert await journal.recover_interrupted() == 1
        assert [(a.number, a.outcome) for a in await journal.attempts(lost)] == [(1, "failed"), (2, "interrupted")]
        assert ((await journal.get(lost)).state, (await journal.get(lost)).attempts) == (EventState.QUEUED, 2)
        assert ((await journal.get(torn)).state, (await journal.get(torn)).attempts, await journal.attempts(torn)) == (
            EventState.QUEUED,
            0,
            [],
        )
        assert [a.outcome for a in await journal.attempts(retried)] == ["failed"]
        assert ((await journal.get(retried)).state, (await journal.get(retried)).attempts) == (EventState.FAILED, 1)
        assert [a.outcome for a in await journal.attempts(finished)] == ["succeeded"]
        assert (await journal.get(finished)).state == EventState.SUCCEEDED
        assert await journal.get(999) is None
    finally:
        await journal.close()


async def test_recovering_twice_counts_a_lost_claim_once_and_the_next_commit_empties_the_starts_file(
    tmp_path: Path,
) -> None:
    """The starts file is emptied only once the recovery that read it is on disk (the next commit): a crash
    in between starts again from the same file, and must not count the same attempt a second time.
    Each call its own transaction, so that the recovery and the next commit are two commits."""
    journal = SQLiteJournal(tmp_path / "journal.sqlite3", group_commit=False)
    event_id = (await record(journal, delivery(), max_attempts=3)).event.id
    journal.attempt_started(event_id, 1)
    journal = await reopened(journal)
    assert await journal.recover_interrupted() == 1
    assert starts_file(journal).stat().st_size > 0  # not emptied yet: a crash now must still find it
    journal = await reopened(journal)  # the app stops again before writing anything else
    try:
        assert await journal.recover_interrupted() == 0  # nothing was running any more
        event = await journal.get(event_id)
        assert (event.state, event.attempts) == (EventState.QUEUED, 1)
        assert [(a.number, a.outcome) for a in await journal.attempts(event_id)] == [(1, "interrupted")]
        assert starts_file(journal).stat().st_size > 0

        await record(journal, delivery())  # the next commit
        assert starts_file(journal).stat().st_size == 0
        [claimed] = await journal.claim_due(now=T0, limit=1)
        assert (claimed.id, claimed.attempts) == (event_id, 2)
    finally:
        await journal.close()


async def test_numbers_too_big_for_sqlite_in_the_starts_file_are_garbage_too(tmp_path: Path) -> None:
    """Recovery runs before the app serves anything: a damaged starts file must not keep it from starting."""
    journal = SQLiteJournal(tmp_path / "journal.sqlite3")
    event_id = (await record(journal, delivery())).event.id
    await journal.close()
    starts_file(journal).write_text(f"{event_id} {10**30}\n{10**30} 1\n")

    journal = SQLiteJournal(journal.path)
    try:
        assert await journal.recover_interrupted() == 0
        assert ((await journal.get(event_id)).state, (await journal.get(event_id)).attempts) == (EventState.QUEUED, 0)
    finally:
        await journal.close()


# --- pauses: a table of their own, kept across restarts ----------------------------------------------------


async def test_a_pause_is_on_disk_when_pause_returns_and_holds_after_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    first = SQLiteJournal(path)
    waiting = (await record(first, delivery(endpoint="/webhooks/a"))).event.id
    assert await first.pause("/webhooks/a", now=T0) == 1
    # No close: the process died right after answering the operator. A second process opens the file.
    second = SQLiteJournal(path)
    try:
        assert await second.paused() == {"/webhooks/a": T0}
        assert await state(second, waiting) == EventState.PAUSED
        later = await record(second, delivery(endpoint="/webhooks/a"))
        assert later.event.state == EventState.PAUSED
        assert await claim_ids(second) == []
        assert await second.resume("/webhooks/a") == 2
        third = SQLiteJournal(path)
        assert await third.paused() == {}
        await third.close()
    finally:
        await second.close()
        await first.close()


async def test_a_pause_adds_a_table_without_changing_the_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = SQLiteJournal(path)
    await record(journal, delivery())
    assert await journal.paused() == {}  # never paused: no table needed to say so
    await journal.pause("/webhooks/a", now=T0)
    await journal.close()
    with contextlib.closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert connection.execute("SELECT endpoint, paused_at FROM endpoint_pauses").fetchall() == [("/webhooks/a", T0)]
