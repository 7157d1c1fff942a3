"""The benchmark's trivial handler: returns at once, so what is measured is the receiver itself."""

from lib import WebhookPayload


async def handle(payload: WebhookPayload) -> dict[str, str]:
    return {"status": "ok", "repo": payload.repo.name}
