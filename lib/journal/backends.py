"""Which journal the settings ask for: PostgreSQL when `DATABASE_URL` is set, else the SQLite file.

The one place that chooses, so the receiver, `python -m lib.worker` and the landing page agree.
"""

from __future__ import annotations

from ..core.errors import ConfigurationError
from ..core.settings import Settings
from .protocol import Journal
from .sqlite import SQLiteJournal


def open_journal(settings: Settings) -> Journal:
    """The journal for `settings`; a PostgreSQL one touches no network until its first call.

    Raises:
        ConfigurationError: `DATABASE_URL` is not a PostgreSQL URL, or the SQLite file cannot be used.
    """
    if settings.database_url is None:
        return SQLiteJournal(settings.journal_path, max_bytes=settings.journal_max_bytes)
    from .postgres import PostgresJournal, is_postgres_url  # psycopg is imported only by those who use it

    if not is_postgres_url(settings.database_url):
        raise ConfigurationError(
            "DATABASE_URL must be a PostgreSQL URL (postgresql://user:password@host:5432/database); "
            "unset it to keep the journal in SQLite."
        )
    return PostgresJournal(
        settings.database_url,
        replica=settings.replica_id,
        lease_seconds=settings.lease_seconds,
        max_bytes=settings.journal_max_bytes,
        runs_handlers=settings.run_handlers,
    )


def journal_location(settings: Settings) -> str:
    """Where the journal lives, as an operator may see it: the file, or the database's host and name only."""
    if settings.database_url is None:
        return str(settings.journal_path)
    from .postgres import DatabaseTarget

    return f"PostgreSQL {DatabaseTarget(settings.database_url).description}"
