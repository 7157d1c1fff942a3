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
from journal_helpers import T0, WINDOW, claim_ids, delivery, record, state

from lib.core.errors import EventNotFound
from lib.journal import EventState, Journal, SQLiteJournal, redelivery_outcome, retry_delay

pytestmark = pytest.mark.anyio

BACKENDS: dict[str, Callable[[Path], Journal | Awaitable[Journal]]] = {
    "sqlite": lambda folder: SQLiteJournal(folder / "data" / "journal.sqlite3"),
    "sqlite, a transaction per call": lambda folder: SQLiteJournal(
        folder / "data" / "journal.sqlite3", group_commit=False
    ),
}
"""Every implementation of `Journal`, by name: how to open an empty one in a fresh folder (a function
returning the journal, or a coroutine resolving to it). A new backend is one more entry here; one
a network away opens its own empty schema (and skips itself when its server is not configured)."""


@pytest.fixture(params=list(BACKENDS))
async def journal(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Journal]:
    opened = BACKENDS[request.param](tmp_path)
    journal = await opened if inspect.isawaitable(opened) else opened
    yield journal
    await journal.close()


# --- redelivery decisions (pure) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "original, finished_at, expected",
    [
        (EventState.QUEUED, None, "duplicate"),
        (EventState.RUNNING, None, "duplicate"),
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
