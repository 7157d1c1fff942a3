"""The `Journal` protocol's contract, in code: every backend must pass this module unchanged.

Each test takes the `journal` fixture, parametrized over `BACKENDS`, and uses only the protocol's
calls (`lib/journal/protocol.py`): what is recorded, what runs when and in which order, what is
kept. What belongs to one backend (SQLite's file, schema, group commit, starts file) is tested in
that backend's own modules (`test_sqlite_journal.py`, `test_group_commit.py`).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from journal_helpers import T0, WINDOW, a_job, claim_ids, delivery, record, state

from lib.core.errors import EventNotFound
from lib.journal import (
    Delivery,
    EventFilter,
    EventRecord,
    EventState,
    Journal,
    SQLiteJournal,
    redelivery_outcome,
    retry_delay,
)
from lib.journal.postgres import PostgresJournal

pytestmark = pytest.mark.anyio

BACKENDS: dict[str, Callable[[Path, pytest.FixtureRequest], Journal | Awaitable[Journal]]] = {
    "sqlite": lambda folder, _: SQLiteJournal(folder / "data" / "journal.sqlite3"),
    "sqlite, a transaction per call": lambda folder, _: SQLiteJournal(
        folder / "data" / "journal.sqlite3", group_commit=False
    ),
    "postgresql": lambda _, request: PostgresJournal(
        request.getfixturevalue("pg_server").create_database(), replica="conformance"
    ),
}
"""Every implementation of `Journal`, by name: how to open an empty one in a fresh folder (a function
returning the journal, or a coroutine resolving to it), given the test's request for the fixtures it
needs. A new backend is one more entry here; PostgreSQL opens a fresh database on the session's
throwaway server (`tests/pg_server.py`)."""


@pytest.fixture(params=list(BACKENDS))
async def journal(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Journal]:
    opened = BACKENDS[request.param](tmp_path, request)
    journal = await opened if inspect.isawaitable(opened) else opened
    yield journal
    await journal.close()


# --- redelivery decisions (pure) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "original, finished_at, expected",
    [
        (EventState.QUEUED, None, "duplicate"),
        (EventState.RUNNING, None, "duplicate"),
        (EventState.PAUSED, None, "duplicate"),
        (EventState.FAILED, None, "requeue"),
        (EventState.DEAD, T0 - 10_000, "requeue"),
        (EventState.SUCCEEDED, T0 - 1, "duplicate"),
        (EventState.SUCCEEDED, T0 - WINDOW, "duplicate"),
        (EventState.SUCCEEDED, T0 - WINDOW - 1, "new"),
        (EventState.SKIPPED, T0 - 1, "duplicate"),
        (EventState.SKIPPED, T0 - 2 * WINDOW, "new"),
    ],
)
def test_redelivery_outcome(original: EventState, finished_at: float | None, expected: str) -> None:
    assert redelivery_outcome(original, finished_at, now=T0, window_seconds=WINDOW) == expected


def test_a_redelivery_of_an_event_the_app_died_on_at_its_last_attempt_is_a_duplicate() -> None:
    """Only that kind of dead: one whose handler raised on its last attempt still runs again."""
    for ended_the_process, expected in ((True, "duplicate"), (False, "requeue")):
        decided = redelivery_outcome(
            EventState.DEAD, T0 - 10, now=T0, window_seconds=WINDOW, ended_the_process=ended_the_process
        )
        assert decided == expected
    assert redelivery_outcome(EventState.FAILED, None, now=T0, window_seconds=WINDOW, ended_the_process=True) == (
        "requeue"
    )


def test_retry_delay_grows_and_is_capped() -> None:
    for attempt, ceiling in [(1, 10), (2, 20), (3, 40), (10, 100)]:
        for _ in range(20):
            assert ceiling / 2 <= retry_delay(attempt, base_seconds=10, max_seconds=100) <= ceiling


# --- record -------------------------------------------------------------------------------------------


async def test_a_new_delivery_is_queued(journal: Journal) -> None:
    recorded = await record(journal, delivery("id:1"))

    event = recorded.event
    assert recorded.outcome == "new"
    assert recorded.original is None
    assert (event.state, event.attempts, event.max_attempts, event.finished_at) == (EventState.QUEUED, 0, 3, None)
    assert event.body == b'{"the": "body"}'
    assert event.headers == {"content-type": "application/json"}
    assert await journal.get(event.id) == event


async def test_an_unwanted_delivery_is_recorded_as_skipped(journal: Journal) -> None:
    recorded = await record(journal, delivery(), skipped="scope 'repo' is not one of ['discussion']")

    assert recorded.outcome == "skipped"
    assert recorded.event.state == EventState.SKIPPED
    assert recorded.event.note == "scope 'repo' is not one of ['discussion']"
    assert recorded.event.finished_at == T0
    assert await claim_ids(journal) == []


async def test_a_redelivery_of_queued_work_is_a_duplicate(journal: Journal) -> None:
    first = (await record(journal, delivery("id:x"))).event
    again = await record(journal, delivery("id:x", received_at=T0 + 1))

    assert again.outcome == "duplicate"
    assert again.event.state == EventState.DUPLICATE
    assert again.event.original_id == first.id
    assert again.original is not None and again.original.id == first.id
    assert "not run again" in again.event.note
    assert await claim_ids(journal) == [first.id]  # runs once


async def test_a_redelivery_while_running_is_a_duplicate(journal: Journal) -> None:
    first = (await record(journal, delivery("id:x"))).event
    await claim_ids(journal)
    again = await record(journal, delivery("id:x", received_at=T0 + 1))
    assert again.outcome == "duplicate"
    assert (again.original.id, again.original.state) == (first.id, EventState.RUNNING)


async def test_a_redelivery_of_a_recent_success_is_a_duplicate(journal: Journal) -> None:
    first = (await record(journal, delivery("id:x"))).event
    await claim_ids(journal)
    done = await journal.finish(first.id, result={"ok": True}, handler_ms=1.0)

    again = await record(journal, delivery("id:x", received_at=done.finished_at + 1))
    assert again.outcome == "duplicate"
    assert again.event.original_id == first.id
    assert await state(journal, first.id) == EventState.SUCCEEDED


async def test_a_redelivery_long_after_a_success_runs_again_as_a_new_event(journal: Journal) -> None:
    first = (await record(journal, delivery("id:x"))).event
    await claim_ids(journal)
    done = await journal.finish(first.id, result=None, handler_ms=1.0)

    again = await record(journal, delivery("id:x", received_at=done.finished_at + WINDOW + 1))
    assert again.outcome == "new"
    assert again.event.id != first.id
    assert again.event.state == EventState.QUEUED


async def test_a_redelivery_of_a_failure_requeues_the_original(journal: Journal) -> None:
    first = (await record(journal, delivery("id:x"), max_attempts=2)).event
    await claim_ids(journal)
    await journal.fail(first.id, error="boom", handler_ms=1.0, retry_at=T0 + 3600)

    again = await record(journal, delivery("id:x", received_at=T0 + 5), max_attempts=2)

    assert again.outcome == "requeued"
    assert again.event.state == EventState.DUPLICATE
    assert "run again" in again.event.note
    original = await journal.get(first.id)
    assert (original.state, original.next_attempt_at, original.max_attempts) == (EventState.QUEUED, None, 3)
    assert await claim_ids(journal, now=T0 + 5) == [first.id]  # due now, not in an hour


async def test_a_redelivery_of_a_dead_event_requeues_it(journal: Journal) -> None:
    first = (await record(journal, delivery("id:x"), max_attempts=1)).event
    await claim_ids(journal)
    await journal.fail(first.id, error="boom", handler_ms=1.0, retry_at=None)

    again = await record(journal, delivery("id:x", received_at=T0 + 5), max_attempts=1)
    assert again.outcome == "requeued"
    assert await state(journal, first.id) == EventState.QUEUED
    assert await claim_ids(journal, now=T0 + 5) == [first.id]


async def test_delivery_keys_are_per_endpoint(journal: Journal) -> None:
    await record(journal, delivery("id:x", endpoint="/webhooks/a"))
    assert (await record(journal, delivery("id:x", endpoint="/webhooks/b"))).outcome == "new"


# --- claiming: due events, per-order-key FIFO, limits --------------------------------------------------


async def test_claiming_marks_running_and_opens_an_attempt(journal: Journal) -> None:
    event = (await record(journal, delivery())).event
    [claimed] = await journal.claim_due(now=T0, limit=5)

    assert (claimed.id, claimed.state, claimed.attempts) == (event.id, EventState.RUNNING, 1)
    [attempt] = await journal.attempts(event.id)
    assert (attempt.number, attempt.outcome, attempt.started_at, attempt.finished_at) == (1, "running", T0, None)
    assert await claim_ids(journal) == []  # not claimed twice


async def test_events_of_one_repo_run_one_at_a_time_in_arrival_order(journal: Journal) -> None:
    a1 = (await record(journal, delivery(repo="org/a"))).event.id
    a2 = (await record(journal, delivery(repo="org/a"))).event.id
    b1 = (await record(journal, delivery(repo="org/b"))).event.id
    a3 = (await record(journal, delivery(repo="org/a"))).event.id

    assert await claim_ids(journal) == [a1, b1]
    assert await claim_ids(journal) == []  # a2 waits for a1
    await journal.finish(a1, result=None, handler_ms=1)
    assert await claim_ids(journal) == [a2]
    await journal.finish(a2, result=None, handler_ms=1)
    assert await claim_ids(journal) == [a3]


async def test_a_failing_event_holds_back_later_events_of_its_repo_until_it_is_dead(journal: Journal) -> None:
    first = (await record(journal, delivery(repo="org/a"))).event.id
    second = (await record(journal, delivery(repo="org/a"))).event.id
    await claim_ids(journal)
    await journal.fail(first, error="boom", handler_ms=1, retry_at=T0 + 10)

    assert await claim_ids(journal, now=T0 + 1) == []  # second does not overtake the retry
    assert await claim_ids(journal, now=T0 + 10) == [first]
    await journal.fail(first, error="boom", handler_ms=1, retry_at=None)  # dead
    assert await claim_ids(journal, now=T0 + 11) == [second]


async def test_events_without_an_order_key_run_side_by_side(journal: Journal) -> None:
    ids = [(await record(journal, delivery(order=False))).event.id for _ in range(3)]
    assert await claim_ids(journal) == ids


async def test_the_same_repo_on_two_endpoints_is_not_serialised(journal: Journal) -> None:
    a = (await record(journal, delivery(endpoint="/webhooks/a"))).event.id
    b = (await record(journal, delivery(endpoint="/webhooks/b"))).event.id
    assert await claim_ids(journal) == [a, b]


async def test_claiming_respects_the_limit_and_arrival_order(journal: Journal) -> None:
    ids = [(await record(journal, delivery(order=False))).event.id for _ in range(5)]
    assert await claim_ids(journal, limit=2) == ids[:2]
    assert await claim_ids(journal, limit=0) == []
    assert await claim_ids(journal, limit=10) == ids[2:]


async def test_claiming_within_each_endpoints_room_never_hides_the_others(journal: Journal) -> None:
    """The worker's bulkhead: `per_endpoint` caps how many of an endpoint's events a scan claims, and the
    oldest due events of the endpoints with room are claimed, however many of a full one are older."""
    stuck = [(await record(journal, delivery(endpoint="/webhooks/stuck", order=False))).event.id for _ in range(4)]
    other = [(await record(journal, delivery(endpoint="/webhooks/other", order=False))).event.id for _ in range(2)]
    ordered = [(await record(journal, delivery(endpoint="/webhooks/other", repo="org/o"))).event.id for _ in range(2)]
    gone = (await record(journal, delivery(endpoint="/webhooks/gone", order=False))).event.id

    async def claimed(limit: int, **room: int) -> list[int]:
        per_endpoint = {f"/webhooks/{name}": places for name, places in room.items()}
        return [event.id for event in await journal.claim_due(now=T0, limit=limit, per_endpoint=per_endpoint)]

    assert await claimed(2, stuck=0, other=5) == other
    assert await claimed(10, stuck=1, other=0) == [stuck[0], gone]  # not named: limited by `limit` only
    assert await claimed(10, stuck=0, other=1) == [ordered[0]]  # one of an order key at a time, as ever
    assert await claimed(10, stuck=2, other=0) == stuck[1:3]
    assert await claimed(10) == [stuck[3]]  # no room given: `limit` only
    await journal.finish(ordered[0], result=None, handler_ms=1)
    assert await claimed(10, stuck=3, other=1) == [ordered[1]]


async def test_a_retry_is_due_at_its_time(journal: Journal) -> None:
    event = (await record(journal, delivery())).event.id
    await claim_ids(journal)
    failed = await journal.fail(event, error="Traceback: boom", handler_ms=2.5, retry_at=T0 + 30)

    assert (failed.state, failed.error, failed.next_attempt_at, failed.finished_at) == (
        EventState.FAILED,
        "Traceback: boom",
        T0 + 30,
        None,
    )
    assert await journal.next_due_at() == T0 + 30
    assert await claim_ids(journal, now=T0 + 29) == []
    assert await claim_ids(journal, now=T0 + 30) == [event]
    assert [a.outcome for a in await journal.attempts(event)] == ["failed", "running"]
    assert (await journal.attempts(event))[0].detail == "Traceback: boom"


async def test_retries_until_dead(journal: Journal) -> None:
    event_id = (await record(journal, delivery(), max_attempts=3)).event.id
    now = T0
    for attempt in range(1, 4):
        [event] = await journal.claim_due(now=now, limit=1)
        assert event.attempts == attempt
        retry_at = now + 1 if event.attempts < event.max_attempts else None
        await journal.fail(event_id, error=f"boom {attempt}", handler_ms=1, retry_at=retry_at)
        now += 1

    dead = await journal.get(event_id)
    assert dead.state == EventState.DEAD
    assert dead.finished_at is not None
    assert dead.error == "boom 3"
    assert [a.number for a in await journal.attempts(event_id)] == [1, 2, 3]
    assert await claim_ids(journal, now=now + 10_000) == []
    assert await journal.next_due_at() is None


async def test_finish_stores_the_result(journal: Journal) -> None:
    event_id = (await record(journal, delivery())).event.id
    await claim_ids(journal)
    done = await journal.finish(event_id, result={"summary": "ok", "n": [1, 2]}, handler_ms=12.5)

    assert (done.state, done.result, done.handler_ms, done.error) == (
        EventState.SUCCEEDED,
        {"summary": "ok", "n": [1, 2]},
        12.5,
        None,
    )
    [attempt] = await journal.attempts(event_id)
    assert (attempt.outcome, attempt.detail) == ("succeeded", '{"summary": "ok", "n": [1, 2]}')


async def test_a_result_that_is_not_json_is_stored_as_its_repr(journal: Journal) -> None:
    event_id = (await record(journal, delivery())).event.id
    await claim_ids(journal)
    assert (await journal.finish(event_id, result={"when": object}, handler_ms=1)).result == {"when": repr(object)}


async def test_set_ack_ms(journal: Journal) -> None:
    event_id = (await record(journal, delivery())).event.id
    journal.set_ack_ms(event_id, 3.25)
    assert (await journal.get(event_id)).ack_ms == 3.25


async def test_events_left_running_by_a_crash_are_requeued(journal: Journal) -> None:
    running = (await record(journal, delivery(order=False))).event.id
    waiting = (await record(journal, delivery(order=False))).event.id
    await claim_ids(journal, limit=1)

    assert await journal.recover_interrupted() == 1
    assert await state(journal, running) == EventState.QUEUED
    assert await state(journal, waiting) == EventState.QUEUED
    [attempt] = await journal.attempts(running)
    assert attempt.outcome == "interrupted"
    assert await claim_ids(journal) == [running, waiting]
    assert (await journal.get(running)).attempts == 2


# --- replay ------------------------------------------------------------------------------------------


async def test_replay_runs_a_finished_event_again(journal: Journal) -> None:
    event_id = (await record(journal, delivery(), max_attempts=3)).event.id
    await claim_ids(journal)
    await journal.finish(event_id, result=1, handler_ms=1)

    replayed = await journal.replay(event_id, max_attempts=3)
    assert (replayed.state, replayed.max_attempts, replayed.finished_at) == (EventState.QUEUED, 4, None)
    assert await claim_ids(journal) == [event_id]


async def test_replaying_a_duplicate_replays_its_original(journal: Journal) -> None:
    first = (await record(journal, delivery("id:x"))).event.id
    duplicate = (await record(journal, delivery("id:x"))).event.id
    await claim_ids(journal)
    await journal.finish(first, result=1, handler_ms=1)

    assert (await journal.replay(duplicate, max_attempts=2)).id == first
    assert await state(journal, first) == EventState.QUEUED
    assert await state(journal, duplicate) == EventState.DUPLICATE


async def test_replaying_a_running_event_leaves_it_running(journal: Journal) -> None:
    event_id = (await record(journal, delivery())).event.id
    await claim_ids(journal)
    assert (await journal.replay(event_id, max_attempts=2)).state == EventState.RUNNING


async def test_replaying_an_unknown_event(journal: Journal) -> None:
    with pytest.raises(EventNotFound, match="No event 999"):
        await journal.replay(999, max_attempts=1)


async def test_replay_dead_requeues_only_that_endpoints_dead_events(journal: Journal) -> None:
    async def dead(endpoint: str) -> int:
        event_id = (await record(journal, delivery(endpoint=endpoint, order=False), max_attempts=1)).event.id
        await claim_ids(journal)
        await journal.fail(event_id, error="x", handler_ms=1, retry_at=None)
        return event_id

    a1, a2, b1 = await dead("/webhooks/a"), await dead("/webhooks/a"), await dead("/webhooks/b")
    succeeded = (await record(journal, delivery(endpoint="/webhooks/a", order=False))).event.id
    await claim_ids(journal)
    await journal.finish(succeeded, result=None, handler_ms=1)

    assert await journal.replay_dead("/webhooks/a", max_attempts=2) == [a1, a2]
    assert [await state(journal, i) for i in (a1, a2, b1, succeeded)] == [
        EventState.QUEUED,
        EventState.QUEUED,
        EventState.DEAD,
        EventState.SUCCEEDED,
    ]
    assert (await journal.get(a1)).max_attempts == 3
    assert await journal.replay_dead("/webhooks/a", max_attempts=2) == []


# --- the console's reads -------------------------------------------------------------------------------


async def test_list_recent_filters(journal: Journal) -> None:
    a = (await record(journal, delivery(endpoint="/webhooks/a", repo="org/x", scope="repo.content"))).event.id
    b = (await record(journal, delivery(endpoint="/webhooks/b", repo="org/y", scope="repo.config"))).event.id
    c = (
        await record(journal, delivery(endpoint="/webhooks/a", repo="org/y", scope="discussion"), skipped="no")
    ).event.id
    d = (await record(journal, delivery(endpoint="/webhooks/a", repo="org/z", scope="repo_content"))).event.id

    async def ids(**filters: object) -> list[int]:
        return [event.id for event in await journal.list_recent(**filters)]

    assert await ids() == [d, c, b, a]
    assert await ids(limit=2) == [d, c]
    assert await ids(endpoint="/webhooks/a") == [d, c, a]
    assert await ids(state="skipped") == [c]
    assert await ids(repo="org/y") == [c, b]
    assert await ids(scope="repo") == [b, a]  # prefix by segment; 'repo_content' is not under 'repo'
    assert await ids(scope="repo.content") == [a]
    assert await ids(scope="repo_content") == [d]
    assert await ids(endpoint="/webhooks/a", repo="org/y") == [c]


async def test_stats(journal: Journal) -> None:
    old = (await record(journal, delivery(endpoint="/webhooks/a", received_at=T0 - 100, order=False))).event.id
    new = (await record(journal, delivery(endpoint="/webhooks/a", order=False))).event.id
    await record(journal, delivery(endpoint="/webhooks/b", order=False), skipped="no")
    await claim_ids(journal)
    await journal.finish(old, result=None, handler_ms=10)
    await journal.finish(new, result=None, handler_ms=30)
    journal.set_ack_ms(new, 2.0)

    stats = await journal.stats(since=T0 - 1)
    assert stats.deliveries == 2
    assert stats.by_state == {"succeeded": 1, "skipped": 1}
    assert stats.by_endpoint == {"/webhooks/a": {"succeeded": 1}, "/webhooks/b": {"skipped": 1}}
    assert (stats.ack_ms_p50, stats.handler_ms_p50) == (2.0, 30)
    assert (await journal.stats(since=T0 - 1000)).handler_ms_p95 == 30


async def test_snapshot_counts_everything_held_by_endpoint_and_state(journal: Journal) -> None:
    empty = await journal.snapshot(since=T0 - 1)
    assert empty.counts == [] and empty.endpoints == []
    oldest = (await record(journal, delivery(endpoint="/webhooks/a", received_at=T0 - 500))).event.id
    await record(journal, delivery(endpoint="/webhooks/a", received_at=T0 - 300))  # waits behind `oldest`
    await record(journal, delivery(endpoint="/webhooks/a", received_at=T0 - 50, order=False))
    dead = (await record(journal, delivery(endpoint="/webhooks/b", received_at=T0 - 10), max_attempts=1)).event.id
    await record(journal, delivery(endpoint="/webhooks/b"), skipped="not wanted")
    assert set(await claim_ids(journal)) == {oldest, dead, oldest + 2}
    await journal.fail(dead, error="boom", handler_ms=1, retry_at=None)
    await journal.finish(oldest + 2, result=None, handler_ms=1)

    snapshot = await journal.snapshot(since=T0 - 100)
    assert snapshot.endpoints == ["/webhooks/a", "/webhooks/b"]
    assert {(r.endpoint, r.state): r.count for r in snapshot.counts} == {
        ("/webhooks/a", "running"): 1,
        ("/webhooks/a", "queued"): 1,
        ("/webhooks/a", "succeeded"): 1,
        ("/webhooks/b", "dead"): 1,
        ("/webhooks/b", "skipped"): 1,
    }
    assert snapshot.oldest("/webhooks/a", EventState.QUEUED) == T0 - 300
    assert snapshot.oldest("/webhooks/a", EventState.DEAD) is None
    assert snapshot.count("/webhooks/b", EventState.DEAD) == 1
    assert snapshot.received_since("/webhooks/a") == 1  # only the one received within the last 100 s
    assert snapshot.received_since("/webhooks/b") == 2
    assert snapshot.size_bytes is None or snapshot.size_bytes > 0


# --- retention --------------------------------------------------------------------------------------------


async def test_prune_by_age_never_touches_unfinished_or_dead_events(journal: Journal) -> None:
    old = T0 - 100 * 86400

    async def make(final: str) -> int:
        event_id = (await record(journal, delivery(order=False, received_at=old), max_attempts=1)).event.id
        if final == "queued":
            return event_id
        await claim_ids(journal, limit=1)
        if final == "succeeded":
            await journal.finish(event_id, result=None, handler_ms=1)
        elif final == "failed":
            await journal.fail(event_id, error="x", handler_ms=1, retry_at=T0 + 10**6)
        elif final == "dead":
            await journal.fail(event_id, error="x", handler_ms=1, retry_at=None)
        return event_id

    running = await make("running")
    failed = await make("failed")
    dead = await make("dead")
    succeeded = await make("succeeded")
    queued = await make("queued")
    skipped = (await record(journal, delivery(order=False, received_at=old), skipped="unwanted")).event.id
    repeat = delivery((await journal.get(succeeded)).delivery_key, order=False, received_at=old)
    duplicate = (await record(journal, repeat)).event.id
    assert await state(journal, duplicate) == EventState.DUPLICATE
    recent = (await record(journal, delivery(order=False), skipped="unwanted")).event.id

    removed = await journal.prune(older_than=T0 - 30 * 86400, keep_max=1000)

    assert removed == 3  # succeeded, skipped, duplicate
    for gone in (succeeded, skipped, duplicate):
        assert await journal.get(gone) is None
        assert await journal.attempts(gone) == []  # attempts go with their event
    assert [await state(journal, i) for i in (queued, running, failed, dead)] == [
        EventState.QUEUED,
        EventState.RUNNING,
        EventState.FAILED,
        EventState.DEAD,
    ]
    assert await journal.get(recent) is not None


async def test_prune_by_count_keeps_the_newest_and_every_unfinished_event(journal: Journal) -> None:
    finished = [(await record(journal, delivery(order=False), skipped="x")).event.id for _ in range(5)]
    queued = (await record(journal, delivery(order=False))).event.id
    newest = (await record(journal, delivery(order=False), skipped="x")).event.id

    assert await journal.prune(older_than=0, keep_max=3) == 4
    remaining = {event.id for event in await journal.list_recent()}
    assert remaining == {finished[-1], queued, newest}


# --- interrupted on the last attempt -----------------------------------------------------------------------


async def test_an_event_cut_short_on_its_last_attempt_is_left_dead_not_rerun_forever(journal: Journal) -> None:
    """A handler that kills the process would otherwise crash every restart."""
    poison = (
        await journal.record(delivery(order=False), skipped_reason=None, max_attempts=1, duplicate_window=0)
    ).event.id
    await claim_ids(journal, limit=1)

    assert await journal.recover_interrupted() == 0
    dead = await journal.get(poison)
    assert dead.state == EventState.DEAD
    assert "stopped during the last allowed attempt" in dead.error
    assert await claim_ids(journal) == []
    await journal.replay(poison, max_attempts=1)
    assert await claim_ids(journal) == [poison]


async def test_a_redelivery_of_an_event_left_dead_at_recovery_leaves_it_dead_until_a_replay(journal: Journal) -> None:
    """The Hub retries a delivery whose request died with the process: each retry would run the handler that
    killed it again. It is answered as a duplicate that says why; a replay from the console runs it again."""
    first = (await record(journal, delivery("id:x", order=False), max_attempts=1)).event
    await claim_ids(journal)
    await journal.recover_interrupted()  # the app stopped during the only attempt
    assert await state(journal, first.id) == EventState.DEAD

    again = await record(journal, delivery("id:x", order=False, received_at=T0 + 5), max_attempts=1)
    assert again.outcome == "duplicate"
    assert (again.original.id, again.original.state) == (first.id, EventState.DEAD)
    assert "ended the process on its last attempt" in again.event.note
    assert "stays dead" in again.event.note and "replay it from the console" in again.event.note
    assert await state(journal, first.id) == EventState.DEAD
    assert await claim_ids(journal, now=T0 + 5) == []

    await journal.replay(first.id, max_attempts=1)
    assert await claim_ids(journal, now=T0 + 6) == [first.id]
    await journal.fail(first.id, error="boom", handler_ms=1, retry_at=None)  # dead by raising, this time
    assert (await record(journal, delivery("id:x", order=False, received_at=T0 + 7))).outcome == "requeued"


# --- claim_next: handing an order key over to its next event ------------------------------------------------

ORDER_KEY_A = "/webhooks/a model/org/a"
"""The order key of `delivery(repo="org/a")`."""


async def test_claim_next_hands_an_order_key_over_only_when_its_next_event_may_run(journal: Journal) -> None:
    first = (await record(journal, delivery(repo="org/a"))).event.id
    second = (await record(journal, delivery(repo="org/a"))).event.id
    other = (await record(journal, delivery(repo="org/b"))).event.id

    assert await journal.claim_next(ORDER_KEY_A, now=T0) == first
    assert await journal.claim_next(ORDER_KEY_A, now=T0) is None  # first is running
    assert await claim_ids(journal) == [other]  # the scan does not claim first again, nor second
    await journal.fail(first, error="boom", handler_ms=1, retry_at=T0 + 10)
    assert await journal.claim_next(ORDER_KEY_A, now=T0 + 1) is None  # first waits for its retry, second behind it
    assert await journal.claim_next(ORDER_KEY_A, now=T0 + 10) == first
    await journal.finish(first, result=None, handler_ms=1)
    assert await journal.claim_next(ORDER_KEY_A, now=T0 + 11) == second
    event = await journal.get(second)
    assert (event.state, event.attempts) == (EventState.RUNNING, 1)
    await journal.finish(second, result=None, handler_ms=1)
    assert await journal.claim_next(ORDER_KEY_A, now=T0 + 12) is None  # nothing left
    assert await journal.claim_next("/webhooks/a model/org/unknown", now=T0) is None


async def test_an_order_key_never_has_two_events_running_however_they_are_claimed(journal: Journal) -> None:
    ids = [(await record(journal, delivery(repo="org/a"))).event.id for _ in range(3)]

    assert await claim_ids(journal) == [ids[0]]
    assert await journal.claim_next(ORDER_KEY_A, now=T0) is None
    assert await claim_ids(journal) == []
    await journal.finish(ids[0], result=None, handler_ms=1)
    assert await journal.claim_next(ORDER_KEY_A, now=T0) == ids[1]
    assert await claim_ids(journal) == []  # ids[1] runs: ids[2] waits its turn
    skipped = await journal.skip(ids[1], reason="not wanted after all")
    assert (skipped.state, skipped.attempts, skipped.note) == (EventState.SKIPPED, 0, "not wanted after all")
    assert await claim_ids(journal) == [ids[2]]


async def test_a_delivery_is_claimed_by_id_only_when_its_order_key_is_free(journal: Journal) -> None:
    started = await record(journal, delivery(repo="org/a"))
    behind = await record(journal, delivery(repo="org/a"))
    unordered = await record(journal, delivery(order=False))

    assert await journal.claim(behind.event.id, now=T0) is False  # an earlier event of org/a waits
    assert await journal.claim(started.event.id, now=T0) is True
    assert await journal.claim(started.event.id, now=T0) is False  # never claimed twice
    assert await journal.claim(unordered.event.id, now=T0) is True
    assert (await journal.get(started.event.id)).attempts == 1
    assert await state(journal, unordered.event.id) == EventState.RUNNING
    assert await claim_ids(journal) == []  # both running already; the queued one waits behind the first
    assert await journal.claim(behind.event.id, now=T0) is False  # org/a runs
    await journal.finish(started.event.id, result=None, handler_ms=1)
    assert await journal.claim(behind.event.id, now=T0) is True


# --- outcomes, ids, reads ---------------------------------------------------------------------------------


async def test_an_outcome_recorded_twice_has_the_effect_of_once(journal: Journal) -> None:
    event_id = (await record(journal, delivery())).event.id
    await claim_ids(journal)
    await journal.finish(event_id, result="first", handler_ms=1)

    again = await journal.finish(event_id, result="second", handler_ms=2)
    await journal.fail(event_id, error="late", handler_ms=3, retry_at=None)
    await journal.skip(event_id, reason="late")

    event = await journal.get(event_id)
    assert (event.state, event.result, event.handler_ms, event.error, event.attempts) == (
        EventState.SUCCEEDED,
        "first",
        1,
        None,
        1,
    )
    assert again.result == "first"
    assert [attempt.outcome for attempt in await journal.attempts(event_id)] == ["succeeded"]


async def test_every_delivery_gets_a_new_larger_id(journal: Journal) -> None:
    ids = [(await record(journal, delivery(key))).event.id for key in ("id:p", "id:q", "id:p")]
    assert ids == sorted(ids) and len(set(ids)) == 3  # the duplicate is a row of its own


async def test_an_unknown_event_reads_as_none_with_no_attempts(journal: Journal) -> None:
    assert await journal.get(999) is None
    assert await journal.attempts(999) == []
    assert await journal.list_recent() == []
    assert (await journal.stats(since=0)).deliveries == 0
    assert await journal.next_due_at() is None


async def test_a_journal_that_lost_nothing_reports_no_damage_and_dismissing_changes_nothing(journal: Journal) -> None:
    """How a loss is noticed belongs to each backend (SQLite's: `test_journal_guards.py`); a healthy journal
    reports none, before and after recording, and a dismissal with nothing to dismiss is harmless."""
    assert await journal.damage() == []
    event_id = (await record(journal, delivery())).event.id
    await journal.durable(event_id)
    assert await journal.damage() == []
    assert await journal.dismiss_damage() == 0
    assert await journal.get(event_id) is not None


# --- durability ------------------------------------------------------------------------------------------


async def test_durable_returns_once_the_delivery_is_committed(journal: Journal) -> None:
    event_id = (await record(journal, delivery())).event.id
    await journal.durable(event_id)
    assert journal.is_committed(event_id)
    await journal.durable()  # nothing left to wait for
    await journal.durable(event_id)  # already committed: at once


async def test_after_commit_runs_once_the_writes_made_before_it_are_committed(journal: Journal) -> None:
    event_id = (await record(journal, delivery())).event.id
    await claim_ids(journal)
    await journal.finish(event_id, result="ok", handler_ms=1)
    called = asyncio.Event()
    seen: list[bool] = []

    def committed() -> None:
        seen.append(journal.is_committed(event_id))
        called.set()

    journal.after_commit(committed)
    await asyncio.wait_for(called.wait(), timeout=5)
    assert seen == [True]
    assert await state(journal, event_id) == EventState.SUCCEEDED


# --- recovery --------------------------------------------------------------------------------------------


async def test_recovery_counts_every_interrupted_attempt_and_leaves_the_last_one_dead(journal: Journal) -> None:
    event_id = (await record(journal, delivery(), max_attempts=2)).event.id
    await claim_ids(journal)
    assert await journal.recover_interrupted() == 1  # a restart while attempt 1 ran
    [claimed] = await journal.claim_due(now=T0, limit=1)
    assert claimed.attempts == 2

    assert await journal.recover_interrupted() == 0  # a restart while the last attempt ran: dead, not queued
    event = await journal.get(event_id)
    assert (event.state, event.attempts) == (EventState.DEAD, 2)
    outcomes = [(attempt.number, attempt.outcome) for attempt in await journal.attempts(event_id)]
    assert outcomes == [(1, "interrupted"), (2, "interrupted")]
    assert await journal.recover_interrupted() == 0  # once more changes nothing
    assert (await journal.get(event_id)).attempts == 2


async def test_what_runs_in_this_process_never_runs_elsewhere(journal: Journal) -> None:
    event_id = (await record(journal, delivery())).event.id
    assert await journal.runs_elsewhere("/webhooks/a model/org/model") is False  # queued: runs nowhere yet
    assert await claim_ids(journal) == [event_id]
    assert await journal.runs_elsewhere("/webhooks/a model/org/model") is False  # running here
    assert await journal.runs_elsewhere(None) is False


# --- pausing an endpoint ---------------------------------------------------------------------------------


async def test_a_paused_endpoint_holds_its_waiting_events_and_every_new_delivery_until_resumed(
    journal: Journal,
) -> None:
    a1 = (await record(journal, delivery(endpoint="/webhooks/a"))).event.id
    a2 = (await record(journal, delivery(endpoint="/webhooks/a"))).event.id
    b1 = (await record(journal, delivery(endpoint="/webhooks/b"))).event.id

    assert await journal.pause("/webhooks/a", now=T0) == 2
    assert await journal.paused() == {"/webhooks/a": T0}
    assert [await state(journal, i) for i in (a1, a2, b1)] == [EventState.PAUSED, EventState.PAUSED, EventState.QUEUED]
    new = await record(journal, delivery("id:later", endpoint="/webhooks/a", received_at=T0 + 5))
    assert (new.outcome, new.event.state, new.event.finished_at) == ("new", EventState.PAUSED, None)
    assert await journal.get(new.event.id) == new.event
    again = await record(journal, delivery("id:later", endpoint="/webhooks/a", received_at=T0 + 6))
    assert again.outcome == "duplicate"  # it will run on resume: once

    assert await claim_ids(journal, now=T0 + 10) == [b1]  # nothing of the paused endpoint
    assert await journal.claim(new.event.id, now=T0 + 10) is False
    assert await journal.claim_next(f"/webhooks/a model/{'org/model'}", now=T0 + 10) is None
    assert await journal.pause("/webhooks/a", now=T0 + 20) == 0  # paused already: since its first pause
    assert await journal.paused() == {"/webhooks/a": T0}

    assert await journal.resume("/webhooks/a") == 3
    assert await journal.paused() == {}
    assert await journal.resume("/webhooks/a") == 0
    # In order: one repository's events one at a time, oldest first.
    for expected in (a1, a2, new.event.id):
        assert await claim_ids(journal, now=T0 + 30) == [expected]
        await journal.finish(expected, result=None, handler_ms=1)
    assert await claim_ids(journal, now=T0 + 30) == []


async def test_a_pause_holds_a_retry_and_lets_a_running_attempt_end_as_it_would(journal: Journal) -> None:
    running = (await record(journal, delivery(endpoint="/webhooks/a"))).event.id
    waiting = (await record(journal, delivery(endpoint="/webhooks/a"))).event.id
    assert await claim_ids(journal) == [running]

    assert await journal.pause("/webhooks/a", now=T0) == 1  # the running one is not touched
    assert await state(journal, running) == EventState.RUNNING
    await journal.fail(running, error="boom", handler_ms=1, retry_at=T0 + 1)
    assert await state(journal, running) == EventState.FAILED
    assert await claim_ids(journal, now=T0 + 100) == []  # its retry waits for the resume
    assert await journal.claim(running, now=T0 + 100) is False
    assert await journal.claim_next("/webhooks/a model/org/model", now=T0 + 100) is None

    assert await journal.pause("/webhooks/a", now=T0 + 1) == 1  # pausing again holds what waits: the failed one
    assert await state(journal, running) == EventState.PAUSED
    assert await journal.resume("/webhooks/a") == 2
    assert await claim_ids(journal, now=T0 + 100) == [running]  # the older one first
    await journal.finish(running, result=None, handler_ms=1)
    assert await claim_ids(journal, now=T0 + 100) == [waiting]


async def test_on_a_paused_endpoint_a_replay_or_a_redelivery_of_a_failure_is_held(journal: Journal) -> None:
    async def dead(key: str) -> int:
        event_id = (await record(journal, delivery(key, endpoint="/webhooks/a", order=False), max_attempts=1)).event.id
        assert await claim_ids(journal) == [event_id]
        await journal.fail(event_id, error="x", handler_ms=1, retry_at=None)
        return event_id

    one, two, three, four = await dead("id:1"), await dead("id:2"), await dead("id:3"), await dead("id:4")
    await journal.pause("/webhooks/a", now=T0)
    assert [await state(journal, i) for i in (one, two)] == [EventState.DEAD] * 2  # a dead event does not wait

    assert (await journal.replay(one, max_attempts=1)).state == EventState.PAUSED
    redelivered = await record(journal, delivery("id:2", endpoint="/webhooks/a", order=False, received_at=T0 + 1))
    assert redelivered.outcome == "requeued" and redelivered.runs.state == EventState.PAUSED
    assert await journal.replay_many([three], max_attempts=1) == [three]
    assert await state(journal, three) == EventState.PAUSED
    assert await journal.replay_dead("/webhooks/a", max_attempts=1) == [four]
    assert await state(journal, four) == EventState.PAUSED
    assert await claim_ids(journal, now=T0 + 10) == []

    assert await journal.resume("/webhooks/a") == 4
    assert sorted(await claim_ids(journal, now=T0 + 10)) == [one, two, three, four]


# --- bulk replay -----------------------------------------------------------------------------------------


async def test_matching_finds_what_a_bulk_replay_runs_again_by_every_filter(journal: Journal) -> None:
    async def ended(d: Delivery, *, outcome: str = "succeeded") -> int:
        event_id = (await record(journal, d, max_attempts=1)).event.id
        assert event_id in await claim_ids(journal, now=T0 + 1000)
        if outcome == "succeeded":
            await journal.finish(event_id, result=None, handler_ms=1)
        else:
            await journal.fail(event_id, error="x", handler_ms=1, retry_at=None)
        return event_id

    early = await ended(delivery(repo="org/x", received_at=T0 - 3600))
    dead = await ended(delivery(repo="org/x", scope="repo.config"), outcome="dead")
    other = await ended(delivery(endpoint="/webhooks/b", repo="org/y", scope="discussion"))
    skipped = (await record(journal, delivery(repo="org/z"), skipped="not wanted")).event.id
    duplicate = (await record(journal, delivery(f"id:{early}-again"))).event.id  # left out: a duplicate's
    queued = (await record(journal, delivery(repo="org/q", received_at=T0 + 5))).event.id  # will run anyway
    assert duplicate and queued

    async def matching(limit: int = 100, **fields: object) -> list[int]:
        return await journal.matching(EventFilter(**fields), limit=limit)  # type: ignore[arg-type]

    assert await matching() == [early, dead, other, skipped]
    assert await matching(limit=2) == [early, dead]  # oldest first
    assert await matching(endpoint="/webhooks/a") == [early, dead, skipped]
    assert await matching(state="dead") == [dead]
    assert await matching(state="queued") == []
    assert await matching(repo="org/x") == [early, dead]
    assert await matching(scope="repo") == [early, dead, skipped]
    assert await matching(received_from=T0 - 10) == [dead, other, skipped]
    assert await matching(received_until=T0) == [early]  # the end is excluded
    assert await matching(received_from=T0 - 3600, received_until=T0 - 3599) == [early]
    recent = [e.id for e in await journal.list_recent(received_from=T0 - 10, received_until=T0 + 1)]
    assert set(recent) == {dead, other, skipped, duplicate}


async def test_replay_many_queues_only_what_is_still_replayable_all_in_one_write(journal: Journal) -> None:
    done = []
    for _ in range(3):
        event_id = (await record(journal, delivery(order=False))).event.id
        await claim_ids(journal)
        await journal.finish(event_id, result=1, handler_ms=1)
        done.append(event_id)
    running = (await record(journal, delivery(order=False))).event.id
    assert await claim_ids(journal) == [running]

    replayed = await journal.replay_many([done[2], done[0], running, 999_999, done[0]], max_attempts=2)
    assert replayed == [done[0], done[2]]
    assert [await state(journal, i) for i in (*done, running)] == [
        EventState.QUEUED,
        EventState.SUCCEEDED,
        EventState.QUEUED,
        EventState.RUNNING,
    ]
    assert (await journal.get(done[0])).max_attempts == 3
    assert [a.outcome for a in await journal.attempts(done[0])] == ["succeeded"]  # its history kept
    assert await journal.replay_many([done[0]], max_attempts=2) == []  # queued now: left as it is


async def test_an_attempt_interrupted_while_its_endpoint_is_paused_is_held_after_the_restart(journal: Journal) -> None:
    running = (await record(journal, delivery(endpoint="/webhooks/a"))).event.id
    assert await claim_ids(journal) == [running]
    await journal.pause("/webhooks/a", now=T0)
    assert await journal.recover_interrupted() == 1  # the app died mid-attempt
    assert await state(journal, running) == EventState.PAUSED
    assert await claim_ids(journal, now=T0 + 10) == []
    assert await journal.resume("/webhooks/a") == 1
    assert await claim_ids(journal, now=T0 + 10) == [running]


# --- Hub Jobs: an event whose handler launched a job ---------------------------------------------------


async def job_running(journal: Journal, d: Delivery | None = None, *, label: str = "key-1") -> EventRecord:
    """An event claimed and run, whose handler launched a job and returned."""
    event = (await record(journal, d or delivery())).event
    [claimed] = await journal.claim_due(now=T0, limit=1)
    assert claimed.id == event.id
    await journal.record_job(a_job(event.id, label=label))  # as soon as the Hub accepted it
    started = await journal.start_job(claimed, job=a_job(event.id, label=label), result={"job": "x"}, handler_ms=3.0)
    assert started.state == EventState.JOB_RUNNING
    return started


async def test_an_event_whose_handler_launched_a_job_runs_until_the_job_ends(journal: Journal) -> None:
    event = await job_running(journal)
    stored = await journal.get(event.id)
    assert (stored.state, stored.result, stored.finished_at) == (EventState.JOB_RUNNING, {"job": "x"}, None)
    assert await journal.job_for(event.id) == a_job(event.id)
    assert await journal.job_for_label("key-1") == a_job(event.id)
    assert await journal.job_for_label("another") is None
    [attempt] = await journal.attempts(event.id)
    assert (attempt.outcome, attempt.finished_at) == ("job_running", None)
    # Never claimed again, and a redelivery of it is a duplicate: one event, one job.
    assert await claim_ids(journal, now=T0 + 10_000) == []
    again = await record(journal, delivery(event.delivery_key, received_at=T0 + 5))
    assert again.outcome == "duplicate" and "job_running" in again.event.note
    assert [followed.job.job_id for followed in await journal.jobs_to_follow()] == ["job-key-1"]

    ended = await journal.end_job(
        a_job(event.id, stage="COMPLETED", started_at=T0 + 2, finished_at=T0 + 62), error=None
    )
    assert (ended.state, ended.result, ended.finished_at) == (EventState.SUCCEEDED, {"job": "x"}, T0 + 62)
    assert await journal.jobs_to_follow() == []
    job = await journal.job_for(event.id)
    assert (job.stage, job.duration_seconds, job.succeeded) == ("COMPLETED", 60.0, True)
    assert [attempt.outcome for attempt in await journal.attempts(event.id)] == ["succeeded"]


async def test_a_repos_later_events_wait_while_its_job_runs(journal: Journal) -> None:
    """The "wait" policy: the repository's lane stays taken until its job ends; other repos run."""
    event = await job_running(journal)
    later = (await record(journal, delivery())).event
    elsewhere = (await record(journal, delivery(repo="org/other"))).event
    assert await claim_ids(journal) == [elsewhere.id]
    assert not await journal.claim(later.id, now=T0)
    assert await journal.claim_next(later.order_key, now=T0) is None
    [followed] = await journal.jobs_to_follow()
    assert (followed.job.event_id, followed.order_key, followed.waiting_event_id) == (
        event.id,
        event.order_key,
        later.id,
    )

    await journal.end_job(a_job(event.id, stage="CANCELED", finished_at=T0 + 9), error="superseded by event #9")
    assert await claim_ids(journal) == [later.id]


async def test_a_job_that_does_not_complete_leaves_its_event_dead_with_the_error(journal: Journal) -> None:
    event = await job_running(journal)
    error = "The job ended ERROR: exit code 1\n--- last lines of its logs ---\nTraceback ...\nValueError: bad"
    ended = await journal.end_job(
        a_job(event.id, stage="ERROR", message="exit code 1", finished_at=T0 + 30), error=error
    )

    assert (ended.state, ended.error, ended.finished_at) == (EventState.DEAD, error, T0 + 30)
    [attempt] = await journal.attempts(event.id)
    assert (attempt.outcome, attempt.detail, attempt.finished_at) == ("failed", error, T0 + 30)
    assert await claim_ids(journal, now=T0 + 10_000) == []  # dead: not retried (it would find the same job)
    # Ending it again changes nothing, and the job's final stage is kept against a late sighting.
    again = await journal.end_job(a_job(event.id, stage="ERROR", finished_at=T0 + 31), error="later")
    assert (again.error, again.finished_at) == (error, T0 + 30)
    await journal.record_job(a_job(event.id, stage="RUNNING"))
    assert (await journal.job_for(event.id)).stage == "ERROR"


async def test_a_replay_is_a_new_generation_and_its_job_a_new_one(journal: Journal) -> None:
    event = await job_running(journal)
    assert event.replays == 0
    running = await journal.replay(event.id, max_attempts=3)  # a job_running event is left as it is
    assert (running.state, running.replays) == (EventState.JOB_RUNNING, 0)
    await journal.end_job(a_job(event.id, stage="ERROR", finished_at=T0 + 30), error="failed")

    replayed = await journal.replay(event.id, max_attempts=3)
    assert (replayed.state, replayed.replays) == (EventState.QUEUED, 1)
    # A redelivery's requeue is not a replay: same generation, so the same job is found again.
    [claimed] = await journal.claim_due(now=T0 + 100, limit=1)
    await journal.fail(claimed, error="boom", handler_ms=1.0, retry_at=None)
    await record(journal, delivery(event.delivery_key, received_at=T0 + 200))
    assert (await journal.get(event.id)).replays == 1
    assert await journal.replay_dead("/webhooks/a", max_attempts=3) == []
    [claimed] = await journal.claim_due(now=T0 + 300, limit=1)
    await journal.start_job(
        claimed, job=a_job(event.id, label="key-2", launched_at=T0 + 301), result=None, handler_ms=1
    )
    assert (await journal.job_for(event.id)).label == "key-2"  # the newest job is the event's
    assert [followed.job.label for followed in await journal.jobs_to_follow()] == ["key-2"]


async def test_a_job_running_event_survives_a_restart_and_is_never_pruned(journal: Journal) -> None:
    event = await job_running(journal)
    assert await journal.recover_interrupted() == 0
    assert await state(journal, event.id) == EventState.JOB_RUNNING
    assert await journal.prune(older_than=T0 + 10**9, keep_max=1) == 0
    assert [followed.job.event_id for followed in await journal.jobs_to_follow()] == [event.id]


async def test_each_ended_job_is_reported_once(journal: Journal) -> None:
    first = await job_running(journal)
    second = await job_running(journal, delivery(repo="org/other"), label="key-2")
    assert await journal.jobs_to_report() == []
    await journal.end_job(a_job(second.id, label="key-2", stage="ERROR", finished_at=T0 + 5), error="e")
    await journal.end_job(a_job(first.id, stage="COMPLETED", finished_at=T0 + 9), error=None)
    assert [job.label for job in await journal.jobs_to_report()] == ["key-2", "key-1"]
    await journal.job_reported(second.id, "key-2")
    assert [(job.label, job.reported) for job in await journal.jobs_to_report()] == [("key-1", False)]
    assert (await journal.job_for(second.id)).reported


async def test_jobs_are_counted_per_endpoint_and_day(journal: Journal) -> None:
    day = 86_400.0
    for n, (endpoint, launched_at) in enumerate(
        [("/webhooks/a", T0 - 2 * day), ("/webhooks/a", T0 - 10), ("/webhooks/a", T0), ("/webhooks/b", T0)]
    ):
        event = (await record(journal, delivery(endpoint=endpoint))).event
        await journal.record_job(a_job(event.id, label=f"k{n}", endpoint=endpoint, launched_at=launched_at))
    assert await journal.jobs_launched_since("/webhooks/a", since=T0 - day) == 2
    assert await journal.jobs_launched_since("/webhooks/b", since=T0 - day) == 1
    assert await journal.jobs_launched_since("/webhooks/c", since=T0 - day) == 0

    ended = (await record(journal, delivery())).event
    await journal.record_job(
        a_job(ended.id, label="done", stage="COMPLETED", started_at=T0, finished_at=T0 + 1800, launched_at=T0)
    )
    stats = await journal.job_stats(since=T0 - day)
    assert stats.by_stage == {"SCHEDULING": 3, "COMPLETED": 1}
    assert (stats.launched, stats.running) == (4, 4)
    assert stats.hours_by_day == [("2027-01-15", 0.5)]
    assert stats.duration_p50 == 1800.0
