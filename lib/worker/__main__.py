"""`python -m lib.worker`: run the handlers against a shared journal, without serving HTTP.

Heavy handlers can live on a machine with more CPU or a GPU while the Space only receives
(`WEBHOOK_RUN_HANDLERS=false` there). Both point `DATABASE_URL` at the same PostgreSQL database and
have the same `handlers/` folder; this process claims the events the receivers record, runs them with
the same retries, per-repository order and leases as a receiver's own worker, and stops on SIGINT or
SIGTERM (its running events are taken back at its next start, or by another replica once their
lease lapses).

Usage:
    DATABASE_URL=postgresql://... python -m lib.worker [handlers folder, default ./handlers]
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from dotenv import load_dotenv

from ..core.errors import ConfigurationError
from ..core.logs import configure_logging
from ..core.registry import discover_handlers
from ..core.settings import Settings
from ..hub.client import own_commits
from ..journal import journal_location, open_journal
from .worker import Worker

logger = logging.getLogger("lib.worker")


async def run(settings: Settings, handlers: Path) -> None:
    """Run a worker until SIGINT or SIGTERM.

    Raises:
        ConfigurationError: no `DATABASE_URL` (a worker of its own beside nobody's journal would
            run nothing), or a handler module is broken.
    """
    if settings.database_url is None:
        raise ConfigurationError(
            "python -m lib.worker runs handlers for receivers elsewhere: set DATABASE_URL to the PostgreSQL "
            "database they record into (the same value as theirs)."
        )
    endpoints = {endpoint.path: endpoint for endpoint in discover_handlers(handlers)}
    journal = open_journal(settings)
    worker = Worker(journal, endpoints, settings, ledger=own_commits(settings.data_dir))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    logger.info(
        "Worker %s running %s against the journal at %s.",
        getattr(journal, "replica", "?"),
        ", ".join(endpoints) or "no endpoint",
        journal_location(settings),
    )
    await worker.start()
    try:
        await stop.wait()
    finally:
        logger.info("Stopping: running events resume at the next start, or on another replica.")
        await worker.stop()
        await journal.close()


def main(argv: list[str]) -> None:
    load_dotenv(override=False)  # the real environment wins over .env, as for app.py
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_level)
        asyncio.run(run(settings, Path(argv[0]) if argv else Path("handlers")))
    except ConfigurationError as error:
        raise SystemExit(f"Cannot start: {error}") from None


if __name__ == "__main__":
    main(sys.argv[1:])
