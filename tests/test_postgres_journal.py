"""What belongs to the PostgreSQL journal alone: several replicas on one database, leases, the schema, the URL.

The protocol's contract is `test_journal_conformance.py`, which runs unchanged over this backend too;
here, two or more `PostgresJournal`s on one database play replicas (each has its own pool, so their
calls race as two processes' would), on the session's throwaway server (`tests/pg_server.py`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import psycopg
import pytest
from journal_helpers import T0, WINDOW, claim_ids, delivery, record
from pg_server import PostgresServer

from lib.core.errors import ConfigurationError, JournalUnavailable
from lib.core.settings import Settings
from lib.journal import EventState, SQLiteJournal, journal_location, open_journal
from lib.journal.postgres import DatabaseTarget, PostgresJournal, statements
from lib.journal.postgres.leases import UNCLAIMED_SECONDS
from lib.journal.postgres.schema import SCHEMA_VERSION
from lib.ui.console_format import event_title

pytestmark = pytest.mark.anyio
ORDER_KEY = "/webhooks/a model/org/model"
"""The order key of `delivery()`."""


@pytest.fixture
async def replicas(pg_server: PostgresServer) -> AsyncIterator[tuple[PostgresJournal, PostgresJournal, str]]:
    url = pg_server.create_database()
    a, b = PostgresJournal(url, replica="a", lease_seconds=1), PostgresJournal(url, replica="b", lease_seconds=1)
    yield a, b, url
    await a.close()
    await b.close()


async def test_two_copies_of_a_delivery_at_two_replicas_at_once_are_recorded_once(replicas) -> None:
    a, b, _ = replicas
    await a.get(0), await b.get(0)  # both connected: the race is between the records, not the schema
    for round_ in range(20):
        copy = delivery(f"id:race-{round_}")
        first, second = await asyncio.gather(record(a, copy), record(b, copy))
        assert sorted([first.outcome, second.outcome]) == ["duplicate", "new"]
        duplicate, new = sorted([first, second], key=lambda recorded: recorded.outcome)
        assert duplicate.event.original_id == new.event.id
    assert len(await claim_ids(a, limit=100)) == 1  # one repository: one at a time, the oldest first


async def test_an_order_key_runs_on_one_replica_at_a_time(replicas) -> None:
    a, b, _ = replicas
    first = (await record(a, delivery())).event.id
    second = (await record(b, delivery())).event.id

    assert await a.claim(first, now=T0) is True
    assert await b.claim(first, now=T0) is False
    assert await b.claim(second, now=T0) is False  # its repository runs on replica a
    assert await b.claim_next(ORDER_KEY, now=T0) is None
    assert await claim_ids(b) == []
    await a.finish(first, result=None, handler_ms=1)
    assert await b.claim_next(ORDER_KEY, now=T0) == second
    assert (await a.get(second)).replica == "b"


async def test_concurrent_scans_of_many_replicas_never_run_two_events_of_a_key_at_once(pg_server) -> None:
    url = pg_server.create_database()
    journals = [PostgresJournal(url, replica=f"r{index}") for index in range(4)]
    try:
        ids = [(await record(journals[0], delivery(repo=f"org/{index % 3}"))).event.id for index in range(30)]
        done: list[int] = []
        while len(done) < len(ids):
            claimed = await asyncio.gather(*(journal.claim_due(now=T0, limit=5) for journal in journals))
            keys = [event.order_key for batch in claimed for event in batch]
            assert len(keys) == len(set(keys)), keys  # never two of one repository at once
            for journal, batch in zip(journals, claimed, strict=True):
                for event in batch:
                    await journal.finish(event, result=None, handler_ms=1)
                    done.append(event.id)
        for repo in range(3):  # each repository in arrival order
            order = [event_id for event_id in done if event_id in ids[repo::3]]
            assert order == sorted(order)
    finally:
        for journal in journals:
            await journal.close()


async def test_a_dead_replicas_running_event_is_taken_over_once_its_lease_lapses(replicas) -> None:
    a, b, _ = replicas
    event_id = (await record(a, delivery(), max_attempts=2)).event.id
    assert await claim_ids(a) == [event_id]
    await a._background.stop()  # the replica dies: nothing renews its lease any more

    assert await b.take_over_expired() == 0  # a lease of 1 s has not lapsed yet
    assert (await b.get(event_id)).state == EventState.RUNNING
    for _ in range(50):  # b's heartbeat looks every third of the lease
        if (await b.get(event_id)).state == EventState.QUEUED:
            break
        await asyncio.sleep(0.1)
    assert (await b.get(event_id)).state == EventState.QUEUED
    [claimed] = await b.claim_due(now=T0, limit=1)
    assert (claimed.id, claimed.attempts, claimed.replica) == (event_id, 2, "b")
    [interrupted, running] = await b.attempts(event_id)
    assert (interrupted.outcome, running.outcome) == ("interrupted", "running")
    assert "replica a stopped renewing its lease" in interrupted.detail

    late = await a.finish(event_id, result="late", handler_ms=1)  # the dead replica's outcome arrives after all
    assert (late.state, late.replica) == (EventState.RUNNING, "b")  # ignored: the event is b's now


async def test_an_event_taken_over_on_its_last_attempt_is_dead_and_a_redelivery_leaves_it_so(replicas) -> None:
    """A handler that kills its replica uses up its attempts across replicas too, then stays dead."""
    a, b, _ = replicas
    event_id = (await record(a, delivery("id:poison"), max_attempts=1)).event.id
    await claim_ids(a)
    await a._background.stop()
    await asyncio.sleep(1.2)
    await b.take_over_expired()

    dead = await b.get(event_id)
    assert dead.state == EventState.DEAD and "stopped during the last allowed attempt" in dead.error
    again = await record(b, delivery("id:poison", received_at=T0 + 5), max_attempts=1)
    assert again.outcome == "duplicate"
    assert await claim_ids(b) == []


async def test_a_replica_knows_when_another_runs_a_repository(replicas) -> None:
    a, b, _ = replicas
    first = (await record(a, delivery())).event.id
    second = (await record(b, delivery())).event.id
    assert await a.claim(first, now=T0) is True
    assert await b.claim(second, now=T0) is False  # the repository runs at a
    assert (await b.runs_elsewhere(ORDER_KEY), await a.runs_elsewhere(ORDER_KEY)) == (True, False)
    assert await b.runs_elsewhere("/webhooks/a model/org/other") is False
    await a.finish(first, result=None, handler_ms=1)
    assert await b.runs_elsewhere(ORDER_KEY) is False


async def test_the_replica_that_received_an_event_hears_when_another_ran_it(replicas) -> None:
    a, b, url = replicas
    ended: list[int] = []
    got = asyncio.Event()
    b.watch_ended(lambda event_id: (ended.append(event_id), got.set()))
    told_a: list[int] = []
    a.watch_ended(told_a.append)  # it ran them: nobody to tell
    await b.get(0), await a.get(0)
    await asyncio.sleep(0.3)  # b's listener is connected
    at_b = [(await record(b, delivery(order=False))).event.id for _ in range(3)]
    at_a = (await record(a, delivery(order=False))).event.id
    assert sorted(await claim_ids(a)) == sorted([*at_b, at_a])
    await a.finish(at_b[0], result={"ok": 1}, handler_ms=1)
    await a.fail(at_b[1], error="boom", handler_ms=1, retry_at=T0 + 60)
    await a.skip(at_b[2], reason="not for us")
    await a.finish(at_a, result=None, handler_ms=1)
    async with asyncio.timeout(5):
        while len(ended) < 3:
            got.clear()
            await got.wait()
    assert sorted(ended) == sorted(at_b)
    assert told_a == []
    # A receive-only replica answered at once: nobody waits there, so nobody is told.
    receiver = PostgresJournal(url, replica="receiver", runs_handlers=False)
    told_receiver: list[int] = []
    receiver.watch_ended(told_receiver.append)
    try:
        await receiver.get(0)
        await asyncio.sleep(0.3)
        quiet = (await record(receiver, delivery(order=False))).event.id
        assert await claim_ids(a) == [quiet]
        await a.finish(quiet, result=None, handler_ms=1)
        ended.clear()
        loud = (await record(b, delivery(order=False))).event.id  # the notices come in order: this one after
        assert await claim_ids(a) == [loud]
        await a.finish(loud, result=None, handler_ms=1)
        async with asyncio.timeout(5):
            while not ended:
                got.clear()
                await got.wait()
        await asyncio.sleep(0.3)  # the receiver's listener has read as far
        assert told_receiver == []
    finally:
        await receiver.close()
    assert (await b.get(at_b[0])).result == {"ok": 1}


async def test_a_pause_made_at_one_replica_holds_the_endpoint_at_every_replica(replicas) -> None:
    a, b, _ = replicas
    waiting = (await record(b, delivery(endpoint="/webhooks/a"))).event.id
    assert await a.pause("/webhooks/a", now=T0) == 1
    assert await b.paused() == {"/webhooks/a": T0}
    new = await record(b, delivery(endpoint="/webhooks/a"))
    assert new.event.state == EventState.PAUSED  # recorded at b, held by a's pause
    assert await claim_ids(b, now=T0 + 10) == [] and await b.claim(waiting, now=T0 + 10) is False
    # A delivery that slipped in as `queued` while the pause committed is not claimed either.
    async with b.transaction("test") as connection:
        await connection.execute("UPDATE events SET state = 'queued' WHERE id = %s", (new.event.id,))
    assert await claim_ids(b, now=T0 + 10) == []
    assert await b.claim_next(ORDER_KEY, now=T0 + 10) is None
    assert await b.resume("/webhooks/a") == 1  # the one still `paused`; the other was queued already
    assert await a.paused() == {}
    assert await claim_ids(a, now=T0 + 10) == [waiting]


async def eventually(check, seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not await check():
            await asyncio.sleep(0.05)


async def test_one_replica_leads_and_another_takes_the_lead_when_it_goes(replicas, tmp_path) -> None:
    a, b, url = replicas  # 1 s leases: the lead is tried every third of a second
    c = PostgresJournal(url, replica="c", lease_seconds=1)
    journals = [a, b, c]
    try:
        for journal in journals:
            await journal.get(0)

        async def one_leads() -> bool:
            return [await journal.leads() for journal in journals].count(True) == 1

        await eventually(one_leads)
        await asyncio.sleep(1)  # and it stays one
        assert await one_leads()
        [leader] = [journal for journal in journals if await journal.leads()]
        await leader.close()
        journals.remove(leader)
        await eventually(one_leads)  # one of the two left takes it over
    finally:
        await c.close()
    single = SQLiteJournal(tmp_path / "journal.sqlite3")
    try:
        assert await single.leads() is True  # the one process of its file
    finally:
        await single.close()


async def test_a_claim_whose_answer_was_lost_is_not_kept_alive_and_runs_again(replicas) -> None:
    a, _, _ = replicas  # 1 s leases, renewed every third of a second by a's heartbeat
    event_id = (await record(a, delivery())).event.id
    async with a.transaction("a claim the database committed but whose answer never came back") as connection:
        await connection.execute(statements.CLAIM_ONE, a._claiming(time.time(), id=event_id))
    assert (await a.get(event_id)).state == EventState.RUNNING  # a runs nothing of it, and must not renew it

    async def queued_again() -> bool:
        return (await a.get(event_id)).state == EventState.QUEUED

    await eventually(queued_again)  # its lease lapsed, and a took it over itself
    assert [attempt.outcome for attempt in await a.attempts(event_id)] == ["interrupted"]
    assert await a.claim(event_id, now=time.time()) is True


async def test_a_live_replica_keeps_its_events_past_the_lease(replicas) -> None:
    a, b, _ = replicas
    event_id = (await record(a, delivery())).event.id
    await claim_ids(a)
    await asyncio.sleep(1.5)  # the heartbeat renews every third of the lease
    assert await b.take_over_expired() == 0
    assert (await b.get(event_id)).state == EventState.RUNNING


async def test_a_replica_hears_at_once_of_an_event_a_receive_only_replica_queued(
    pg_server: PostgresServer, replicas
) -> None:
    _, b, url = replicas
    receiver = PostgresJournal(url, replica="receiver", runs_handlers=False)
    heard = asyncio.Event()
    b.watch(heard.set)
    await b.get(0)  # connected: its listener starts
    await asyncio.sleep(0.3)
    heard.clear()
    try:
        await record(receiver, delivery(received_at=time.time()))
        await asyncio.wait_for(heard.wait(), timeout=0.5)  # far sooner than any heartbeat
    finally:
        await receiver.close()


async def test_an_event_its_replica_left_unclaimed_wakes_the_others_at_their_heartbeat(replicas) -> None:
    a, b, _ = replicas  # both run handlers: a claims what it records, and tells nobody
    heard = asyncio.Event()
    b.watch(heard.set)
    await b.get(0)
    await asyncio.sleep(0.5)
    heard.clear()
    recorded = await record(a, delivery(received_at=time.time()))  # a dies before claiming it
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(heard.wait(), timeout=UNCLAIMED_SECONDS - 0.8)
    await asyncio.wait_for(heard.wait(), timeout=3)  # b's heartbeat (every third of its 1 s lease) looks
    assert await b.claim(recorded.event.id, now=time.time()) is True


async def test_replicas_starting_at_once_create_the_schema_once(pg_server: PostgresServer) -> None:
    url = pg_server.create_database()
    journals = [PostgresJournal(url, replica=f"r{index}") for index in range(6)]
    try:
        await asyncio.gather(*(journal.get(1) for journal in journals))
        with psycopg.connect(url) as connection:
            version = connection.execute("SELECT value FROM journal_meta WHERE key = 'schema_version'").fetchone()
        assert version == (str(SCHEMA_VERSION),)
    finally:
        for journal in journals:
            await journal.close()


async def test_a_database_with_a_newer_schema_is_refused_and_left_alone(pg_server: PostgresServer) -> None:
    url = pg_server.create_database()
    journal = PostgresJournal(url, replica="old")
    await journal.get(1)
    await journal.close()
    with psycopg.connect(url) as connection:
        connection.execute("UPDATE journal_meta SET value = '99' WHERE key = 'schema_version'")
    older = PostgresJournal(url, replica="older")
    try:
        with pytest.raises(JournalUnavailable, match="holds schema 99, newer than this app's"):
            await record(older, delivery())
        assert "newer than this app" in await older.health()
    finally:
        await older.close()


async def test_a_database_that_is_not_a_journal_is_refused(pg_server: PostgresServer) -> None:
    url = pg_server.create_database()
    with psycopg.connect(url) as connection:
        connection.execute("CREATE TABLE events (x int)")
    journal = PostgresJournal(url)
    try:
        with pytest.raises(JournalUnavailable, match="not a journal's"):
            await journal.get(1)
    finally:
        await journal.close()


async def test_past_the_size_cap_deliveries_are_refused_and_retention_makes_room(pg_server: PostgresServer) -> None:
    journal = PostgresJournal(pg_server.create_database(), replica="capped", max_bytes=400_000)
    try:
        await journal.get(1)
        while not journal.full:
            for _ in range(50):
                await record(journal, delivery(order=False, received_at=T0 - 10 * WINDOW), skipped="unwanted")
            await journal._background.beat()
        with pytest.raises(JournalUnavailable, match="WEBHOOK_JOURNAL_MAX_BYTES"):
            await record(journal, delivery())
        assert await journal.prune(older_than=T0, keep_max=10) > 0
        with psycopg.connect(pg_server.url(journal.target.description.rsplit("/", 1)[1]), autocommit=True) as c:
            c.execute("VACUUM FULL events")
        await journal._background.beat()
        assert (await record(journal, delivery())).outcome == "new"
    finally:
        await journal.close()


def test_the_url_is_only_ever_shown_as_host_and_database() -> None:
    url = "postgresql://app:pw-Zq81-secret@db.example.org:6543/webhooks?sslmode=require"
    target = DatabaseTarget(url)
    assert target.description == "db.example.org:6543/webhooks"
    assert "pw-Zq81-secret" not in repr(target) + repr(PostgresJournal(url)) + repr(Settings(database_url=url))
    error = target.unavailable(OSError("auth failed for pw-Zq81-secret"), "record the delivery")
    assert "pw-Zq81-secret" not in error.message and "db.example.org:6543/webhooks" in error.message
    assert journal_location(Settings(database_url=url)) == "PostgreSQL db.example.org:6543/webhooks"
    with pytest.raises(ConfigurationError) as refused:
        DatabaseTarget("postgresql://app:pw-Zq81-secret@host:notaport/db?bad option")
    assert "pw-Zq81-secret" not in str(refused.value)


def test_database_url_chooses_the_backend(tmp_path) -> None:
    assert isinstance(open_journal(Settings(data_dir=tmp_path)), SQLiteJournal)
    chosen = open_journal(Settings(database_url="postgresql://u:p@h/db", replica_id="r1", lease_seconds=7))
    assert isinstance(chosen, PostgresJournal) and (chosen.replica, chosen.lease_seconds) == ("r1", 7)
    with pytest.raises(ConfigurationError, match="DATABASE_URL must be a PostgreSQL URL"):
        open_journal(Settings(database_url="mysql://u:p@h/db"))


def test_settings_read_the_replica_variables() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": " postgresql://u:p@h/db ",
            "WEBHOOK_REPLICA_ID": "space-1",
            "WEBHOOK_LEASE_SECONDS": "12",
            "WEBHOOK_RUN_HANDLERS": "false",
        }
    )
    assert (settings.database_url, settings.replica_id, settings.lease_seconds, settings.run_handlers) == (
        "postgresql://u:p@h/db",
        "space-1",
        12,
        False,
    )
    assert "u:p@h" not in repr(settings)
    with pytest.raises(ConfigurationError, match="WEBHOOK_LEASE_SECONDS"):
        Settings.from_env({"WEBHOOK_LEASE_SECONDS": "0.5"})


async def test_the_console_names_the_replica_that_ran_an_event(replicas) -> None:
    a, _, _ = replicas
    event_id = (await record(a, delivery())).event.id
    await claim_ids(a)
    await a.finish(event_id, result=None, handler_ms=1)
    assert "run by replica `` a ``" in event_title(await a.get(event_id))
