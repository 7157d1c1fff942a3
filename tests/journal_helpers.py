"""Deliveries and short calls for the journal's tests (the conformance suite and the SQLite backend's own)."""

from __future__ import annotations

import itertools

from lib.journal import Delivery, EventState, JobRecord, Journal, Recorded

WINDOW = 600.0
"""The duplicate window the tests record with."""
T0 = 1_800_000_000.0
"""The time the tests' deliveries arrive at, unless they say otherwise."""
_keys = itertools.count()


def delivery(
    key: str | None = None,
    *,
    endpoint: str = "/webhooks/a",
    repo: str = "org/model",
    order: bool = True,
    received_at: float = T0,
    scope: str = "repo.content",
    body: bytes = b'{"the": "body"}',
) -> Delivery:
    """A delivery with a fresh key (unless given), ordered per endpoint and repository unless `order=False`."""
    return Delivery(
        endpoint=endpoint,
        delivery_key=key or f"id:{next(_keys)}",
        webhook_id=None,
        received_at=received_at,
        headers={"content-type": "application/json"},
        query="",
        body=body,
        scope=scope,
        action="update",
        repo_name=repo,
        repo_type="model",
        order_key=f"{endpoint} model/{repo}" if order else None,
    )


async def record(journal: Journal, d: Delivery, *, skipped: str | None = None, max_attempts: int = 3) -> Recorded:
    return await journal.record(d, skipped_reason=skipped, max_attempts=max_attempts, duplicate_window=WINDOW)


async def claim_ids(journal: Journal, *, now: float = T0, limit: int = 10) -> list[int]:
    return [event.id for event in await journal.claim_due(now=now, limit=limit)]


async def state(journal: Journal, event_id: int) -> EventState:
    event = await journal.get(event_id)
    assert event is not None
    return event.state


def a_job(event_id: int, *, label: str = "key-1", stage: str = "SCHEDULING", **changes: object) -> JobRecord:
    """A job launched for `event_id` at T0 + 1 by /webhooks/a, with `changes`."""
    job = JobRecord(
        event_id=event_id,
        job_id=f"job-{label}",
        namespace="alice",
        flavor="cpu-basic",
        stage=stage,
        message=None,
        url=f"https://huggingface.co/jobs/alice/job-{label}",
        launched_at=T0 + 1,
        started_at=None,
        finished_at=None,
        logs_tail=None,
        label=label,
        endpoint="/webhooks/a",
        timeout_seconds=3600.0,
    )
    return job.evolve(**changes)
