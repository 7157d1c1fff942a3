"""The journal's size cap (`WEBHOOK_JOURNAL_MAX_BYTES`), counting its write-ahead log as well as its file.

SQLite caps the database file (`max_page_count`), not the WAL beside it, which grows by every page
each commit writes until a checkpoint copies them back and a later write starts the WAL over; its
default checkpoint comes after 1,000 pages (4 MiB), and a reader in the middle of a read postpones
the restart. So the cap is split: an eighth for the WAL (at most `MAX_WAL_SHARE`), the rest for the
file. The WAL is checkpointed every half of its share (`wal_autocheckpoint`) and cut back to its
share whenever it starts over (`journal_size_limit`); should it still pass its share (a reader held
it), the next commit checkpoints it and truncates it to nothing, without waiting for a reader.
What can still pass the cap, for a moment: the pages of the one commit being written when the WAL
share is smaller than that commit. Not counted: `-shm` (32 KiB per 4,000 WAL pages) and the starts
file (emptied past 64 KiB).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from .schema import PAGE_SIZE

WAL_SHARE = 8
"""The WAL's share of the cap: one eighth."""
MAX_WAL_SHARE = 8 * 1024 * 1024
"""Past this, a bigger WAL buys nothing: SQLite's own default checkpoints at 4 MiB."""
WAL_FRAME_BYTES = PAGE_SIZE + 24
BUSY_TIMEOUT_MS = 5000
"""The writer connection's usual wait for a lock (`schema.connect`'s `timeout`), restored after a checkpoint."""


class SizeCap:
    """The cap on one journal: the file's share and the WAL's, applied to the writer connection.

    Args:
        path: the journal file (its WAL is `<path>-wal`).
        max_bytes: what the file and its WAL may take together.
    """

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.wal_path = path.with_name(path.name + "-wal")
        self.max_bytes = max_bytes
        self.wal_bytes = min(MAX_WAL_SHARE, max_bytes // WAL_SHARE)
        self.file_pages = max(1, (max_bytes - self.wal_bytes) // PAGE_SIZE)
        self._connection: sqlite3.Connection | None = None

    def apply(self, connection: sqlite3.Connection) -> None:
        """Set the limits on the writer connection (per connection: nothing is written)."""
        connection.execute(f"PRAGMA max_page_count={self.file_pages}")
        connection.execute(f"PRAGMA journal_size_limit={self.wal_bytes}")
        connection.execute(f"PRAGMA wal_autocheckpoint={max(1, self.wal_bytes // WAL_FRAME_BYTES // 2)}")
        self._connection = connection

    def after_commit(self) -> None:
        """Outside any transaction, right after a commit: cut a WAL past its share back to nothing.

        The checkpoint never waits: with a read in progress it copies what it can and leaves the
        rest to the next commit. Its errors are left for the next write to meet.
        """
        try:
            if self._connection is None or os.stat(self.wal_path).st_size <= self.wal_bytes:
                return
        except OSError:
            return
        connection = self._connection
        with contextlib.suppress(sqlite3.Error):
            connection.execute("PRAGMA busy_timeout=0")
            try:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
