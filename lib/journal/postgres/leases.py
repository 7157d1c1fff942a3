"""What a PostgreSQL replica does in the background: renew its leases, take over dead replicas' events,
listen for the others' news, and say whether the database can be reached.

A running event carries its replica's name and a lease (`lease_until`, by the database's clock). The
heartbeat renews this replica's leases every third of `lease_seconds`; a replica that dies (SIGKILL,
a lost machine) stops renewing, and the first live replica to look after its leases lapsed puts its
events back in the queue, their attempt counted (`TAKE_OVER`). Workers hear of events queued by other
replicas through `LISTEN`/`NOTIFY` at once, not at their next poll.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING

import psycopg

from ...core.errors import JournalUnavailable
from . import statements as sql

if TYPE_CHECKING:
    from .journal import PostgresJournal

logger = logging.getLogger(__name__)

LISTEN_BACKOFF_MAX_SECONDS = 30.0
UNCLAIMED_SECONDS = 2.0
"""A queued event nobody claimed for this long is looked at by every replica's next heartbeat: its
replica died before claiming it, or has no room. (The replica that records an event claims it within
milliseconds when it can, so the others are not told of each delivery.)"""


LEAD_LOCK = 0x6875_6277_6C65_6164
"""The session advisory lock whose holder speaks for all replicas (sends the alerts): "hubwlead"."""


class Health:
    """Whether the database answered the last call: an outage is logged once, and its end too."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.down_since: float | None = None
        self.reason: str | None = None

    def failed(self, reason: str) -> None:
        if self.down_since is None:
            self.down_since = time.time()
            logger.error("%s Deliveries are answered 503 (the Hub retries) until it is back.", reason)
        self.reason = reason

    def ok(self) -> None:
        if self.down_since is not None:
            logger.warning(
                "The event journal's database (%s) answers again, after %.0f s.",
                self.description,
                time.time() - self.down_since,
            )
            self.down_since, self.reason = None, None

    def problem(self) -> str | None:
        """A sentence for the landing page and the console while the database cannot be used, else None."""
        if self.down_since is None:
            return None
        since = time.strftime("%H:%M:%S UTC", time.gmtime(self.down_since))
        return (
            f"The event journal's database ({self.description}) cannot be reached since {since}: deliveries are "
            f"answered 503 and the Hub sends them again; reconnecting. Last error: {self.reason}"
        )


class Background:
    """The heartbeat and the listener of one journal; started by its first successful call."""

    def __init__(self, journal: PostgresJournal) -> None:
        self.journal = journal
        self._tasks: list[asyncio.Task[None]] = []
        self.leading = False
        """Whether this replica holds the lead (`PostgresJournal.leads`)."""

    def _interval(self) -> float:
        return max(0.2, self.journal.lease_seconds / 3)

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._heartbeat(), name="journal-heartbeat"),
                asyncio.create_task(self._listen(), name="journal-listen"),
            ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._interval())
            try:
                await self.beat()
            except JournalUnavailable:
                pass  # `Health` has said so; the pool reconnects with backoff, and the next beat tries again
            except Exception:  # a bug here must not stop the leases for good
                logger.exception("The journal's heartbeat failed; trying again.")

    async def beat(self) -> None:
        """Write the outcomes kept while the database was away, renew this replica's leases, take over
        expired ones, look at the size cap, and wake the worker if events wait unclaimed."""
        journal = self.journal
        await journal.write_unwritten()
        async with journal.transaction("renew leases", atomic=False) as connection:
            if journal.running_here:
                lease = {"lease": journal.lease_seconds, "replica": journal.replica, "ids": list(journal.running_here)}
                await connection.execute(sql.RENEW_LEASES, lease)
            if journal.max_bytes is not None:
                size = (await (await connection.execute(sql.JOURNAL_BYTES)).fetchone())["coalesce"]  # type: ignore[index]
                journal.full = size > journal.max_bytes
        if await journal.take_over_expired() or await journal.waits_unclaimed(UNCLAIMED_SECONDS):
            journal.changed()

    def _heard(self, payload: str) -> None:
        """A replica's news: `ended <id> <replica>` when it ended an attempt of an event that replica received
        (the one named hands the outcome to the request waiting for it); anything else, that it queued
        something it will not run itself (a receive-only replica, a replay, a resume, a takeover)."""
        kind, _, rest = payload.partition(" ")
        if kind == "ended":
            event_id, _, receiver = rest.partition(" ")
            if receiver == self.journal.replica and event_id.isdigit():
                self.journal.ended_elsewhere(int(event_id))
        else:
            self.journal.changed()

    async def _listen(self) -> None:
        """Wake the worker when another replica queued something; reconnect with backoff when cut off.

        Its connection also holds the lead (`LEAD_LOCK`, a session lock, so it goes when the connection
        does), tried again every heartbeat interval while another replica holds it."""
        journal = self.journal
        delay = 1.0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    journal.target.conninfo, autocommit=True
                ) as connection:
                    await connection.execute(f"LISTEN {sql.CHANNEL}")
                    delay = 1.0
                    journal.changed()  # whatever was queued while we were not listening
                    while True:
                        if not self.leading:
                            lead = await connection.execute("SELECT pg_try_advisory_lock(%s) AS got", (LEAD_LOCK,))
                            self.leading = bool((await lead.fetchone())[0])  # type: ignore[index]
                        async for notice in connection.notifies(timeout=self._interval()):
                            self._heard(notice.payload)
            except (psycopg.Error, OSError) as exc:
                self.leading = False  # the lock went with the connection
                logger.debug(
                    "The journal's listener lost its connection (%s); reconnecting.", journal.target.scrub(str(exc))
                )
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(LISTEN_BACKOFF_MAX_SECONDS, delay * 2)
