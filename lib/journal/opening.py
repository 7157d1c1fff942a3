"""Opening the SQLite journal's file: the checks, the size cap, the id to go on from, and a full disk.

A file that cannot be trusted (damaged, newer, not a journal) is refused. One that cannot be opened
because its disk is full is not: `SQLiteJournal` then starts without it, answers 503 to deliveries
(the Hub retries them) and opens it as soon as there is room, for an app that refuses to start gets
every delivery refused, and the Hub suspends a webhook that keeps failing.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ConfigurationError, JournalUnavailable
from .damage import FilesBefore, LossCheck
from .schema import check_and_migrate, connect
from .size_cap import SizeCap
from .starts_file import StartsFile

logger = logging.getLogger(__name__)

STARTS_SUFFIX = "-starts"
"""Beside the journal: the starts file (see `starts_file.py`)."""
LOW_SPACE_BYTES = 1024 * 1024
"""Below this much free space, an I/O error of SQLite's (it cannot grow its `-shm` file) is a full disk."""
REOPEN_SECONDS = 1.0
"""While its disk is full, how often the journal tries to open its file again (each call between is a 503)."""
LAST_EVENT = (
    "SELECT MAX(COALESCE((SELECT MAX(id) FROM events), 0), "
    "COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)), "
    "(SELECT received_at FROM events ORDER BY id DESC LIMIT 1)"
)
"""The newest id the file ever gave (pruning never lowers it), and when its newest event arrived."""


@dataclass(frozen=True)
class Opened:
    """The journal's file, open and checked."""

    connection: sqlite3.Connection
    """The writer connection, with the size cap applied."""
    next_id: int
    """The first id to give: above every id the file holds and every id it acknowledged (see `damage.py`)."""
    starts: StartsFile
    cap: SizeCap | None


def open_journal(path: Path, *, max_bytes: int | None, losses: LossCheck) -> Opened:
    """Open and check the journal at `path`, create it if missing, and compare it with what it acknowledged.

    Raises:
        sqlite3.Error, OSError: it cannot be used (`out_of_space` tells a full disk from the rest).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    before = FilesBefore.of(path)
    connection = connect(path)
    try:
        check_and_migrate(connection)
        cap = SizeCap(path, max_bytes) if max_bytes is not None else None
        if cap is not None:
            cap.apply(connection)
        last_id, kept_until = connection.execute(LAST_EVENT).fetchone()
        starts = StartsFile(path.with_name(path.name + STARTS_SUFFIX))
    except BaseException:
        connection.close()
        raise
    next_id = losses.check(last_id=last_id, kept_until=kept_until, before=before)
    return Opened(connection, next_id, starts, cap)


def out_of_space(exc: BaseException, folder: Path) -> bool:
    """Whether `exc` (from opening or writing the journal) means its disk is full, rather than anything else."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return False
    if code == sqlite3.SQLITE_FULL:
        return True
    return code & 0xFF == sqlite3.SQLITE_IOERR and disk_is_full(folder)


def disk_is_full(folder: Path) -> bool:
    """Less than `LOW_SPACE_BYTES` free where the journal lives."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < LOW_SPACE_BYTES


FULL_DISK = (
    "The disk holding the event journal (%s) is full, so the journal %s (%s). Deliveries are answered 503, "
    "which the Hub retries, until there is room: free some space there, and the app carries on by itself, "
    "without a restart."
)
REFUSED = (
    "The event journal at %s cannot be used (%s). If the file is damaged, move it aside (its events are lost "
    "to the app, not deleted) or point DATA_DIR at another folder."
)


def full_disk_arguments(path: Path, exc: BaseException, *, opening: bool = False) -> tuple:
    return (path.parent, "cannot be opened" if opening else "cannot record this delivery", exc)


def full_disk_message(path: Path, exc: BaseException, *, opening: bool = False) -> str:
    """What a delivery refused because the journal's disk is full is told (the log says it with `FULL_DISK`)."""
    return FULL_DISK % full_disk_arguments(path, exc, opening=opening)


def write_error_message(path: Path, max_bytes: int | None, exc: sqlite3.Error) -> str:
    """Say why a write failed; a full journal is the one an operator can fix by configuration."""
    if out_of_space(exc, path.parent) and disk_is_full(path.parent):
        return full_disk_message(path, exc)
    if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_FULL:
        return f"The event journal cannot be written ({exc}); retry later."
    limit = (
        f"its cap of {max_bytes} bytes with its write-ahead log (WEBHOOK_JOURNAL_MAX_BYTES)"
        if max_bytes is not None
        else "the free space on its disk"
    )
    return (
        f"The event journal is full: recording this would exceed {limit}. Nothing was recorded; retry "
        "later. Raise the cap or lower WEBHOOK_RETENTION_DAYS / WEBHOOK_RETENTION_MAX_EVENTS."
    )


class Opener:
    """Opens the journal's file: at start, and, while its disk is full, again on a later call.

    Between two tries (`REOPEN_SECONDS`) every call is answered at once with `error`, so a flood of
    deliveries to a full disk costs no more than their 503s.
    """

    def __init__(self, path: Path, *, max_bytes: int | None, losses: LossCheck) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.losses = losses
        self.error = JournalUnavailable("The event journal is not open.")
        """Why the file is not open (what a call answers meanwhile)."""
        self._retry_at = 0.0
        self._full = False

    def open(self, *, at_start: bool = False) -> Opened | None:
        """The file, opened and checked; None when it cannot be yet (a full disk, said once in an ERROR).

        Raises:
            ConfigurationError: at start, a file that cannot be trusted (never replaced: the message
                says how to move it aside). Found later (when the disk had been full), it is an ERROR,
                and every call is answered `JournalUnavailable` with the same message.
        """
        if not at_start and time.monotonic() < self._retry_at:
            return None
        try:
            opened = open_journal(self.path, max_bytes=self.max_bytes, losses=self.losses)
        except (sqlite3.Error, OSError) as exc:
            self._retry_at = time.monotonic() + REOPEN_SECONDS
            if out_of_space(exc, self.path.parent):  # logged as a format: arguments are cut at 500 characters
                arguments = full_disk_arguments(self.path, exc, opening=True)
                if not self._full:
                    logger.error(FULL_DISK, *arguments)
                self._full = True
                self.error = JournalUnavailable(FULL_DISK % arguments)
                return None
            if at_start:
                raise ConfigurationError(REFUSED % (self.path, exc)) from None
            logger.error(REFUSED, self.path, exc)
            self.error = JournalUnavailable(REFUSED % (self.path, exc))
            return None
        if self._full:
            logger.warning("The event journal at %s is open: its disk has room again.", self.path)
        return opened
