"""Retention: finished events are pruned hourly, so the journal stays within its days and count.

Its own module so the receiver's file keeps to the request path and the server's life cycle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from ..core.errors import WebhookError

if TYPE_CHECKING:
    from .server import WebhookReceiver

logger = logging.getLogger(__name__)

RETENTION_INTERVAL_SECONDS = 3600.0


def start_retention(server: WebhookReceiver) -> asyncio.Task[None]:
    """Prune finished events hourly; unfinished and dead events are never pruned."""

    async def prune_forever() -> None:
        while True:
            settings = server.settings
            try:
                removed = await server.journal.prune(
                    older_than=time.time() - settings.retention_days * 86400,
                    keep_max=settings.retention_max_events,
                )
                if removed:
                    logger.info("Pruned %d finished event(s) from the journal.", removed)
            except WebhookError as exc:
                logger.warning("Could not prune the journal: %s", exc.message)
            await asyncio.sleep(RETENTION_INTERVAL_SECONDS)

    return asyncio.create_task(prune_forever(), name="journal-retention")
