"""The event journal: every delivery is recorded here before it is acknowledged, and handlers run from it.

The vocabulary (`records.py`) and the calls made on a journal (`protocol.py`) are what the rest of
`lib/` imports; `SQLiteJournal` (`sqlite.py`) is the embedded backend behind them, built on its
schema (`schema.py`), its SQL (`statements.py`), its commit group (`write_behind.py`), its reads on a
thread (`reader.py`), its scans within each endpoint's room (`claims.py`), its starts file
(`starts_file.py`), its console calls (`operations.py`: listing by `EventFilter` from
`selection.py`, replays, pauses), its opening, on a full disk too (`opening.py`), the files that notice lost
acknowledged events (`damage.py`), its size cap counting the WAL (`size_cap.py`), its recovery after
a crash (`recovery.py`), its rows read back (`rows.py`), the Hub Jobs handlers launch
(`job_records.py`, kept by `jobs.py`), and what it holds now for metrics and alerts (`snapshot.py`).
`postgres/` is the backend for several replicas sharing one database (its Jobs calls in
`postgres/jobs.py`); `backends.py` chooses between them from the settings (`open_journal`).
"""

from .backends import journal_location, open_journal
from .job_records import FINAL_JOB_STAGES, FollowedJob, JobRecord, JobStats
from .protocol import Journal
from .records import (
    PRUNABLE_STATES,
    RAW_ACTION,
    RAW_SCOPE,
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
from .selection import REPLAYABLE_STATES, EventFilter
from .snapshot import JournalSnapshot, StateCount
from .sqlite import SQLiteJournal

__all__ = [
    "FINAL_JOB_STAGES",
    "PRUNABLE_STATES",
    "RAW_ACTION",
    "RAW_SCOPE",
    "REPLAYABLE_STATES",
    "UNFINISHED_STATES",
    "Attempt",
    "Delivery",
    "EventFilter",
    "EventRecord",
    "EventState",
    "FollowedJob",
    "JobRecord",
    "JobStats",
    "Journal",
    "JournalDamage",
    "JournalSnapshot",
    "JournalStats",
    "Recorded",
    "SQLiteJournal",
    "StateCount",
    "journal_location",
    "open_journal",
    "redelivery_outcome",
    "retry_delay",
]
