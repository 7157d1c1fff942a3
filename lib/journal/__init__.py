"""The event journal: every delivery is recorded here before it is acknowledged, and handlers run from it.

The vocabulary (`records.py`) and the calls made on a journal (`protocol.py`) are what the rest of
`lib/` imports; `SQLiteJournal` (`sqlite.py`) is the embedded backend behind them, built on its
schema (`schema.py`), its SQL (`statements.py`), its commit group (`write_behind.py`), its reads on a
thread (`reader.py`) and its starts file (`starts_file.py`).
"""

from .protocol import Journal
from .records import (
    PRUNABLE_STATES,
    UNFINISHED_STATES,
    Attempt,
    Delivery,
    EventRecord,
    EventState,
    JournalDamage,
    JournalStats,
    Recorded,
    redelivery_outcome,
    retry_delay,
)
from .sqlite import SQLiteJournal

__all__ = [
    "PRUNABLE_STATES",
    "UNFINISHED_STATES",
    "Attempt",
    "Delivery",
    "EventRecord",
    "EventState",
    "Journal",
    "JournalDamage",
    "JournalStats",
    "Recorded",
    "SQLiteJournal",
    "redelivery_outcome",
    "retry_delay",
]
