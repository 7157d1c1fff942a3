"""What a failed attempt leaves: a retry after a backoff while attempts are left, else a dead event.

Apart from `worker.py` so the worker reads as its lanes and claims; the delay itself is the
journal's rule (`retry_delay`), shared by every backend.
"""

from __future__ import annotations

import logging
import time

from ..core.settings import Settings
from ..journal import EventRecord, Journal, retry_delay

logger = logging.getLogger(__name__)


async def record_failure(
    journal: Journal, event: EventRecord, error: str, elapsed_ms: float, *, settings: Settings
) -> EventRecord:
    """Record a failed attempt of `event`: failed with the time of its retry, or dead after its last attempt.

    Raises:
        JournalUnavailable: the failure could not be written (the event stays running until a restart).
    """
    retry_at = None
    if event.attempts < event.max_attempts:
        delay = retry_delay(
            event.attempts, base_seconds=settings.retry_base_seconds, max_seconds=settings.retry_max_seconds
        )
        retry_at = time.time() + delay
        logger.warning(
            "Attempt %d/%d failed; retrying in %.0f s:\n%s",
            event.attempts,
            event.max_attempts,
            delay,
            error,
        )
    else:
        logger.error(
            "Attempt %d/%d failed; the event is dead (replay it from the console):\n%s",
            event.attempts,
            event.max_attempts,
            error,
        )
    return await journal.fail(event, error=error, handler_ms=elapsed_ms, retry_at=retry_at)
