"""How the SQLite journal notices that it lost acknowledged events, and keeps saying so until dismissed.

SQLite cannot tell on its own: a journal file truncated to 0 bytes opens as a new, empty journal,
and one whose write-ahead log was deleted or garbled after a crash opens as a journal that ends
earlier, `quick_check` finding nothing wrong. Two small files beside the journal make such a loss
visible:

- `<journal>-acked`: the newest event id committed, and when, rewritten in place after each commit
  that held deliveries. One `pwrite` without a sync, like the WAL's own commits with
  `synchronous=NORMAL`: both survive a crash of the process, neither is promised to survive a power
  cut. A journal that opens holding less than this lost what it had acknowledged.
- `<journal>-damage`: each loss found (JSON), kept until the operator dismisses it, so that a restart
  does not forget it, and a dismissed one (or one found again before anything new was written) is
  not reported twice.

Ids go on above the newest one acknowledged, so a lost event's id is never given to another.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from .records import JournalDamage

logger = logging.getLogger(__name__)

ACKED_SUFFIX = "-acked"
DAMAGE_SUFFIX = "-damage"
HUB_WEBHOOK_SETTINGS = "https://huggingface.co/settings/webhooks"
"""Where the Hub lists each webhook's deliveries, with a Replay button (`lib.hub` is not ours to import)."""
_LINE_BYTES = 48
"""The `-acked` line, padded: every write replaces the whole of it, so a crash never leaves half of two."""


@dataclass(frozen=True)
class Acked:
    """The newest event id the journal committed, and when."""

    event_id: int
    at: float


@dataclass(frozen=True)
class FilesBefore:
    """What the journal's files looked like before SQLite opened them: what a loss is put down to."""

    journal_bytes: int | None
    """The journal file's size; None when it did not exist."""
    wal: bool
    shm: bool

    @classmethod
    def of(cls, path: Path) -> FilesBefore:
        try:
            size: int | None = path.stat().st_size
        except FileNotFoundError:
            size = None
        wal, shm = (path.with_name(path.name + suffix).exists() for suffix in ("-wal", "-shm"))
        return cls(size, wal, shm)

    def cause(self, path: Path) -> str:
        """The likeliest cause of a loss, in a sentence."""
        if self.journal_bytes is None:
            return f"the journal file {path.name} was missing (deleted, or moved aside)"
        if self.journal_bytes == 0:
            return f"the journal file {path.name} was empty (truncated to 0 bytes)"
        if self.shm and not self.wal:
            return (
                f"its write-ahead log ({path.name}-wal) was missing after the app had stopped without closing "
                "the journal (a crash), so the events committed since the last checkpoint were lost with it"
            )
        return (
            "the journal ends before the events it had acknowledged: its write-ahead log "
            f"({path.name}-wal) was probably damaged after a crash, or the file was replaced by an older copy"
        )


class AckedFile:
    """`<journal>-acked`: the newest committed event id, kept beside the journal."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._written = 0
        self._failing = False

    def read(self) -> Acked | None:
        """What the file says; None without a file, or with one that holds no id (then said in a warning)."""
        try:
            fields_ = self.path.read_bytes().split()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("Could not read %s (%s): cannot tell whether the journal lost events.", self.path, exc)
            return None
        try:
            acked = Acked(int(fields_[0]), float(fields_[1])) if len(fields_) == 2 else None
        except ValueError:
            acked = None
        if acked is None or acked.event_id < 0:
            logger.warning("%s holds no event id: cannot tell whether the journal lost events this time.", self.path)
            return None
        self._written = acked.event_id
        return acked

    def note(self, event_id: int) -> None:
        """Events up to `event_id` are committed. Never raises: a failure is logged once, and retried next time."""
        if event_id <= self._written:
            return
        line = f"{event_id} {time.time():.3f}".ljust(_LINE_BYTES - 1).encode() + b"\n"
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
                os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, line, 0)
        except OSError as exc:
            if not self._failing:
                logger.warning(
                    "Could not note in %s that events up to #%d are committed (%s): were the journal lost now, "
                    "the loss of the newest events would go unreported. Retrying with each commit.",
                    self.path,
                    event_id,
                    exc,
                )
            self._failing = True
            return
        if self._failing:
            logger.info("%s is written again (events up to #%d).", self.path, event_id)
        self._failing = False
        self._written = event_id

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class DamageReports:
    """`<journal>-damage`: every loss found, dismissed or not, so none is reported twice or forgotten."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries = self._load()
        self._unsaved = False

    def _load(self) -> list[dict]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            logger.error(
                "Could not read the reports of lost events in %s (%s): earlier losses are not shown. "
                "Move the file aside to stop this message.",
                self.path,
                exc,
            )
            return []
        return [entry for entry in data if isinstance(entry, dict)] if isinstance(data, list) else []

    def current(self) -> list[JournalDamage]:
        """The losses not dismissed yet, oldest first."""
        names = {item.name for item in fields(JournalDamage)}
        found = []
        for entry in self._entries:
            if entry.get("dismissed_at") is None:
                try:
                    found.append(JournalDamage(**{key: entry[key] for key in names if key in entry}))
                except TypeError:  # a hand-edited entry: skipped rather than stopping the app
                    continue
        return found

    def reported_up_to(self, acked: int) -> int:
        """The newest id of the losses already found (dismissed or not) that lie below `acked`."""
        ids = [entry.get("last_id") for entry in self._entries]
        return max((i for i in ids if isinstance(i, int) and i <= acked), default=0)

    def add(self, damage: JournalDamage) -> None:
        self._entries.append({**asdict(damage), "dismissed_at": None})
        self.save()

    def dismiss(self) -> int:
        """Mark every loss dismissed; how many were not yet. Raises OSError if that cannot be kept."""
        now = time.time()
        dismissed = 0
        for entry in self._entries:
            if entry.get("dismissed_at") is None:
                entry["dismissed_at"] = now
                dismissed += 1
        if dismissed and not self.save():
            raise OSError(f"could not write {self.path}")
        return dismissed

    def save(self) -> bool:
        """Write the file whole (a temporary file renamed over it); False, logged, and retried later on failure."""
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            temporary.write_text(json.dumps(self._entries, indent=1) + "\n")
            os.replace(temporary, self.path)
        except OSError as exc:
            logger.warning(
                "Could not write %s (%s): the report of lost events is shown, but would not survive a restart "
                "yet. Retrying with each commit.",
                self.path,
                exc,
            )
            self._unsaved = True
            return False
        self._unsaved = False
        return True

    def save_if_unsaved(self) -> None:
        if self._unsaved:
            self.save()


class LossCheck:
    """The two files beside one journal, and the comparison made each time it opens."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.acked = AckedFile(path.with_name(path.name + ACKED_SUFFIX))
        self.reports = DamageReports(path.with_name(path.name + DAMAGE_SUFFIX))

    def check(self, *, last_id: int, kept_until: float | None, before: FilesBefore) -> int:
        """Compare the opened journal (ending at `last_id`) with what it had acknowledged; the next id to give.

        A loss not known yet is kept as a report and logged as an ERROR; the losses not dismissed yet
        are logged again as an ERROR on every start, so that no start hides them.
        """
        acked = self.acked.read()
        if acked is None:
            self.acked.note(last_id)  # the first start with these files, or they were removed: from now on
            self._log_current()
            return last_id + 1
        first = max(last_id, self.reports.reported_up_to(acked.event_id)) + 1
        if first <= acked.event_id:
            self.reports.add(
                JournalDamage(
                    first_id=first,
                    last_id=acked.event_id,
                    cause=before.cause(self.path),
                    found_at=time.time(),
                    acknowledged_until=acked.at,
                    kept_until=kept_until,
                )
            )
        self._log_current()
        return max(last_id, acked.event_id) + 1

    def _log_current(self) -> None:
        for damage in self.reports.current():
            logger.error(LOSS_FORMAT, *loss_arguments(damage, self.path))

    def close(self) -> None:
        self.acked.close()


LOSS_FORMAT = (
    "The event journal at %s lost up to %d acknowledged event(s), #%d to #%d: %s. Their handlers will not run, "
    "and the Hub will not send them again by itself: in %s, open each webhook's activity and replay the "
    "deliveries it made %s. Then dismiss this report in the console. New events are numbered from #%d."
)
"""The ERROR line for a loss: what was lost, why, and what to do (a format, so no argument is cut short)."""


def loss_arguments(damage: JournalDamage, path: Path) -> tuple:
    between = (
        f"between {_utc(damage.kept_until)} and {_utc(damage.acknowledged_until)}"
        if damage.kept_until is not None
        else f"up to {_utc(damage.acknowledged_until)}"
    )
    return (
        path,
        damage.count,
        damage.first_id,
        damage.last_id,
        damage.cause,
        HUB_WEBHOOK_SETTINGS,
        between,
        damage.last_id + 1,
    )


def _utc(timestamp: float | None) -> str:
    if timestamp is None:
        return "an unknown time"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
