"""The starts file: a note, before each handler runs, that its attempt began.

The journal commits claims in groups, so a handler may start while its claim (the attempt
counted) is not on disk yet. If that handler kills the process, the claim dies with it, and the
next start would run it again, and die again, for ever. One line appended here first survives the
process (like a WAL commit with `synchronous=NORMAL`: a write without a sync), and the journal's
recovery counts the attempt from it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

COMPACT_BYTES = 64 * 1024
"""Past this size the file is emptied at the next commit that leaves no claim behind."""
_MAX_DIGITS = 18
"""Longer numbers do not fit SQLite's INTEGER: such a line can only be damage, and is ignored."""


class StartsFile:
    """`<event id> <attempt>` lines, appended with one system call each.

    Raises:
        OSError: the file cannot be opened for appending.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._bytes = os.fstat(self._fd).st_size
        self._recovered = False

    def note(self, event_id: int, attempt: int) -> None:
        line = f"{event_id} {attempt}\n".encode()
        try:
            os.write(self._fd, line)
        except OSError as exc:  # the claim's own commit remains the record of this attempt
            logger.warning("Could not note that attempt %d of event %d started: %s", attempt, event_id, exc)
            return
        self._bytes += len(line)

    def started(self) -> dict[int, int]:
        """The latest attempt noted for each event; a torn last line or garbage is ignored."""
        try:
            text = self.path.read_text(encoding="ascii", errors="replace")
        except OSError as exc:
            logger.warning("Could not read %s: %s", self.path, exc)
            return {}
        started: dict[int, int] = {}
        for line in text.splitlines():
            fields = line.split()
            if len(fields) == 2 and all(f.isascii() and f.isdigit() and len(f) <= _MAX_DIGITS for f in fields):
                event_id, attempt = int(fields[0]), int(fields[1])
                started[event_id] = max(attempt, started.get(event_id, 0))
        return started

    def recovered(self) -> None:
        """Recovery has counted what the file said: empty it once that is committed (`all_claims_on_disk`)."""
        self._recovered = True

    def all_claims_on_disk(self) -> None:
        """Every claim noted so far is committed: the notes may go, once there are enough to bother."""
        if not (self._recovered or self._bytes > COMPACT_BYTES):
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError as exc:
            logger.warning("Could not empty %s: %s", self.path, exc)
            return
        self._bytes = 0
        self._recovered = False

    def close(self) -> None:
        with contextlib.suppress(OSError):  # closed already
            os.close(self._fd)
