"""Tests of the console's pause, resume and bulk replay actions (`lib.ui.console_operations`) over a real
journal, for a server that is not serving: the grant checked first, the bound on a bulk replay, a count
confirmed only as counted, and the time-range filter. End to end over the real app:
`test_pause_rate_limit_bulk_replay.py`; in a browser: `test_console_browser.py`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from journal_helpers import delivery, record

from lib import RateLimit, WebhooksServer
from lib.core.registry import Endpoint
from lib.core.settings import Settings
from lib.journal import EventState
from lib.journal.sqlite import SQLiteJournal
from lib.ui.access import Grant
from lib.ui.console_actions import Console, ConsoleLocked, ConsoleRefusal
from lib.ui.console_operations import BULK_REPLAY_MAX, BulkPlan, ConsoleOperations
from lib.ui.time_range import BadTimeRange, received_range

pytestmark = pytest.mark.anyio
A, B = "/webhooks/a", "/webhooks/b"
ANY = ("All", "All", "", "All", "All")


def grant() -> Grant:
    return Grant(who="webhook secret", method="secret", expires_at=time.time() + 60)


@pytest.fixture
async def operations(tmp_path: Path) -> AsyncIterator[ConsoleOperations]:
    server = WebhooksServer(
        settings=Settings(webhook_secrets=("s",), data_dir=tmp_path), journal=SQLiteJournal(tmp_path / "j")
    )
    server.add_endpoint(Endpoint.create(A, lambda payload: None))
    server.add_endpoint(Endpoint.create(B, lambda payload: None, rate_limit=RateLimit(30, per="minute")))
    yield ConsoleOperations(server)
    await server.journal.close()


async def dead(
    operations: ConsoleOperations, endpoint: str, *, repo: str = "org/x", received_at: float | None = None
) -> int:
    journal = operations.server.journal
    d = delivery(endpoint=endpoint, repo=repo, order=False, received_at=received_at or time.time())
    event_id = (await record(journal, d, max_attempts=1)).event.id
    assert event_id in [e.id for e in await journal.claim_due(now=time.time() + 1, limit=100)]
    await journal.fail(event_id, error="x", handler_ms=1, retry_at=None)
    return event_id


@pytest.mark.parametrize("who", [None, "unlocked", Grant(who="x", method="secret", expires_at=time.time() - 1)])
async def test_every_action_refuses_a_stranger_before_touching_anything(
    operations: ConsoleOperations, who: object
) -> None:
    event = await dead(operations, A)
    plan = BulkPlan(tuple(None for _ in ANY), (event,))  # type: ignore[arg-type]
    for call in (
        lambda: operations.pause(who, A),
        lambda: operations.resume(who, A),
        lambda: operations.status(who),
        lambda: operations.bulk_preview(who, *ANY),
        lambda: operations.bulk_replay(who, plan, *ANY),
    ):
        with pytest.raises(ConsoleLocked):
            await call()
    assert await operations.server.journal.paused() == {}
    assert (await operations.server.journal.get(event)).state == EventState.DEAD


async def test_pause_and_resume_say_what_they_did_and_the_status_shows_it(operations: ConsoleOperations) -> None:
    journal = operations.server.journal
    waiting = (await record(journal, delivery(endpoint=B))).event.id
    message = await operations.pause(grant(), B)
    assert "Paused `` b ``" in message and "1 waiting event(s) held" in message and "`` 30/minute ``" in message
    status = await operations.status(grant())
    assert "| `` b `` | ⏸️ paused since" in status and "1 paused" in status and "30/minute" in status
    assert "| `` a `` | ▶️ running | 0 | none |" in status
    assert "⏸️ Paused: `` b ``." in (await Console(operations.server).verdict(grant())).markdown  # not forgotten
    with pytest.raises(ConsoleRefusal, match="Pick an endpoint"):
        await operations.pause(grant(), "/webhooks/elsewhere")
    assert "1 held event(s) queued" in await operations.resume(grant(), B)
    assert (await journal.get(waiting)).state == EventState.QUEUED
    assert "| `` b `` | ▶️ running | 1 queued |" in await operations.status(grant())
    assert "Paused" not in (await Console(operations.server).verdict(grant())).markdown


async def test_a_bulk_replay_over_its_bound_is_refused_with_what_to_do(operations: ConsoleOperations) -> None:
    journal = operations.server.journal
    for _ in range(BULK_REPLAY_MAX + 1):
        await record(journal, delivery(endpoint=A, order=False), skipped="not wanted")
    preview = await operations.bulk_preview(grant(), A, "All", "", "All", "All")
    assert preview.plan is None and f"More than {BULK_REPLAY_MAX} events match" in preview.message
    preview = await operations.bulk_preview(grant(), A, "All", "", "All", "1h")  # all of them are recent
    assert preview.plan is None
    exactly = await operations.bulk_preview(grant(), A, "skipped", "", "All", "to 2000-01-01 00:00")
    assert exactly.plan is None and "No event to replay" in exactly.message


async def test_a_confirmation_replays_the_counted_events_only_while_the_filters_are_unchanged(
    operations: ConsoleOperations,
) -> None:
    first, second = await dead(operations, A), await dead(operations, A)
    other = await dead(operations, B)
    preview = await operations.bulk_preview(grant(), A, "dead", "", "All", "All")
    assert preview.plan is not None and preview.plan.event_ids == (first, second)
    assert "2 event(s) will run again" in preview.message and "2 on `` a ``" in preview.message
    third = await dead(operations, A)  # after the count: not in it

    with pytest.raises(ConsoleRefusal, match="filters changed"):
        await operations.bulk_replay(grant(), preview.plan, "All", "dead", "", "All", "All")
    with pytest.raises(ConsoleRefusal, match="Count the matching events first"):
        await operations.bulk_replay(
            grant(), {"filters": preview.plan.filters, "event_ids": [other]}, A, "dead", "", "All", "All"
        )
    message = await operations.bulk_replay(grant(), preview.plan, A, "dead", " ", "All", "All")  # blank = All
    assert message.startswith(f"**Replaying 2 event(s)**: #{first} to #{second}.")
    states = [(await operations.server.journal.get(i)).state for i in (first, second, third, other)]
    assert states == [EventState.QUEUED, EventState.QUEUED, EventState.DEAD, EventState.DEAD]
    again = await operations.bulk_replay(grant(), preview.plan, A, "dead", "", "All", "All")
    assert "Replaying 0 event(s)" in again and "2 had changed since the count" in again


async def test_a_bulk_replay_of_a_paused_endpoint_says_its_events_wait(operations: ConsoleOperations) -> None:
    event = await dead(operations, B)
    await operations.pause(grant(), B)
    preview = await operations.bulk_preview(grant(), B, "All", "", "All", "All")
    assert (
        "`` b `` is paused: its events wait for the resume" in preview.message and "`` 30/minute ``" in preview.message
    )
    await operations.bulk_replay(grant(), preview.plan, B, "All", "", "All", "All")
    assert (await operations.server.journal.get(event)).state == EventState.PAUSED


async def test_the_time_range_filter(operations: ConsoleOperations) -> None:
    now = time.time()
    old, new = await dead(operations, A, received_at=now - 7200), await dead(operations, A, received_at=now - 60)
    assert (await operations.bulk_preview(grant(), "All", "All", "", "All", "1h")).plan.event_ids == (new,)
    assert (await operations.bulk_preview(grant(), "All", "All", "", "All", "All")).plan.event_ids == (old, new)
    with pytest.raises(ConsoleRefusal, match="is not a time range"):
        await operations.bulk_preview(grant(), "All", "All", "", "All", "yesterday")
    assert received_range("2026-11-30 14:00 to 2026-11-30 15:30", now=now) == (1796047200.0, 1796052600.0)
    assert received_range("2026-11-30 14:00+01:00 to", now=now) == (1796043600.0, None)
    assert received_range("to 2026-11-30", now=now) == (None, 1796083200.0 - 86400)
    assert received_range("6h", now=now) == (now - 6 * 3600, None)
    for bad in ("to", "2026-11-30 15:00 to 2026-11-30 14:00", "2026-13-01 to", "last week"):
        with pytest.raises(BadTimeRange):
            received_range(bad, now=now)
