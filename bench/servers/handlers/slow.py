"""The benchmark's slow handler: sleeps `BENCH_SLOW_SECONDS` (default 40 s), longer than the Hub waits."""

import asyncio
import os

from lib import WebhookPayload

SLOW_SECONDS = float(os.environ.get("BENCH_SLOW_SECONDS", "40"))


async def handle(payload: WebhookPayload) -> dict[str, str]:
    await asyncio.sleep(SLOW_SECONDS)
    return {"status": "done", "repo": payload.repo.name}
