"""The journal file's schema, its migrations from earlier versions, and the checks made on opening it.

A journal is never replaced silently: a file that is damaged, written by a newer version of the
app, or not a journal at all is refused (the caller says how to move it aside).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = 3
PAGE_SIZE = 4096
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint TEXT NOT NULL,
    delivery_key TEXT NOT NULL,
    webhook_id TEXT,
    received_at REAL NOT NULL,
    headers TEXT NOT NULL,
    query TEXT NOT NULL,
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
    finished_at REAL,
    started_at REAL,
    replays INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_by_key ON events (endpoint, delivery_key, id);
CREATE INDEX IF NOT EXISTS events_unfinished ON events (order_key, id)
    WHERE state IN ('queued', 'running', 'failed', 'job_running');
CREATE TABLE IF NOT EXISTS bodies (
    event_id INTEGER PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    body BLOB NOT NULL
);
CREATE VIEW IF NOT EXISTS event_rows AS
    SELECT events.*, bodies.body FROM events JOIN bodies ON bodies.event_id = events.id;
CREATE TABLE IF NOT EXISTS attempts (
    event_id INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    outcome TEXT NOT NULL,
    detail TEXT,
    PRIMARY KEY (event_id, number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (
    event_id INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    job_id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    flavor TEXT NOT NULL,
    stage TEXT NOT NULL,
    message TEXT,
    url TEXT NOT NULL,
    launched_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    timeout_seconds REAL,
    logs_tail TEXT,
    reported INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, label)
);
CREATE INDEX IF NOT EXISTS jobs_by_launch ON jobs (endpoint, launched_at);
"""
"""The body, written once, has a table of its own: an event's row is rewritten as its state changes,
and without the body it is a fifth of the size (half the bytes written per event). `event_rows`
reads an event whole.
Two indexes only: every index is written on every insert, and each costs about as much as the row.
`events_unfinished` holds just the events still to run, so it stays small however long the journal;
`attempts` holds the attempts that did not end the event well (failed, interrupted) and earlier
runs of a replayed one; the running or successful attempt lives on the event's row (`LAST_ATTEMPT`).
`jobs` holds the Hub Jobs handlers launched, one row per event and exactly-once label (a replayed
event launches a new one); `jobs_by_launch` counts an endpoint's launches of the day for its cap."""

MIGRATIONS = {
    1: """
    ALTER TABLE events ADD COLUMN started_at REAL;
    UPDATE events SET started_at = (
        SELECT a.started_at FROM attempts AS a WHERE a.event_id = events.id AND a.outcome = 'running'
    ) WHERE state = 'running';
    DELETE FROM attempts WHERE outcome = 'running';
    UPDATE events SET started_at = (
        SELECT a.started_at FROM attempts AS a WHERE a.event_id = events.id AND a.number = events.attempts
    ) WHERE state = 'succeeded';
    DELETE FROM attempts WHERE outcome = 'succeeded' AND number = (
        SELECT e.attempts FROM events AS e WHERE e.id = attempts.event_id AND e.state = 'succeeded'
    );
    CREATE TABLE bodies (
        event_id INTEGER PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
        body BLOB NOT NULL
    );
    INSERT INTO bodies (event_id, body) SELECT id, body FROM events;
    ALTER TABLE events DROP COLUMN body;
    DROP INDEX IF EXISTS events_pending;
    DROP INDEX IF EXISTS events_by_order;
    DROP INDEX IF EXISTS events_running;
    """,
    2: """
    ALTER TABLE events ADD COLUMN replays INTEGER NOT NULL DEFAULT 0;
    DROP INDEX IF EXISTS events_unfinished;
    """,
}
"""`MIGRATIONS[n]` turns a journal of schema n into schema n + 1, inside the opening transaction; `SCHEMA`
then creates what is new (v3: the `jobs` table, and `events_unfinished` again, now with `job_running`)."""


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the journal in WAL mode with `synchronous=NORMAL`: each commit survives a crash of
    the process (the Space restarting, SIGKILL), which is what an acknowledgement promises."""
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5.0)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


def check_and_migrate(connection: sqlite3.Connection) -> None:
    """Refuse a file that cannot be trusted, and bring an older (or a new, empty) journal to `SCHEMA_VERSION`.

    A journal already at `SCHEMA_VERSION` is only read, so that it opens on a full disk too.

    Raises:
        sqlite3.DatabaseError: the file is damaged, newer than this app, or another database.
        sqlite3.Error: the migration could not be written (then nothing of it was).
    """
    problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise sqlite3.DatabaseError("integrity check failed: " + "; ".join(problems[:3]))
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(f"written by a newer version of this app (schema {version})")
    if version == SCHEMA_VERSION:
        return
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if version == 0 and tables - {"sqlite_sequence"}:
        raise sqlite3.DatabaseError(f"not an event journal (it has tables {sorted(tables)})")
    connection.execute("BEGIN IMMEDIATE")
    try:
        for step in range(version, SCHEMA_VERSION) if version else ():
            for statement in MIGRATIONS[step].split(";"):
                if statement.strip():
                    connection.execute(statement)
        for statement in SCHEMA.split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:  # a failed COMMIT (a full disk) has rolled back already
            connection.execute("ROLLBACK")
        raise
