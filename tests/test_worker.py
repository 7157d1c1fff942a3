"""Durable delivery in-process: the request path, the journal and the worker of one `WebhooksServer`.

Each test builds a server with the settings it needs and talks to its FastAPI app over
`httpx.ASGITransport`, with the app's lifespan (the worker) running in the test's event loop. Handlers
are closures that record what they saw; slow ones wait on gates the test opens, so "the answer came
before the handler ended" is proved by ordering, never by timing. `test_durability.py` proves the
same promises over real HTTP against `python app.py`, including a SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import logging
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import BackgroundTasks, Request
from fastapi.responses import JSONResponse

from lib import WebhookPayload, WebhooksServer
from lib.core.errors import ConfigurationError, JournalUnavailable
from lib.core.settings import Settings
from lib.hub.client import own_commits
from lib.journal import Delivery, EventRecord, EventState, retry_delay
from lib.journal.sqlite import SQLiteJournal

pytestmark = pytest.mark.anyio

SECRET = "worker-test-secret"
FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "repo-content-update-space-new-pr-ref.json").read_bytes())
FAST_SETTINGS: dict[str, Any] = {
    "ack_budget_seconds": 0.5,
    "retry_base_seconds": 0.2,
    "retry_max_seconds": 0.5,
    "max_attempts": 3,
    "concurrency": 2,
    "handler_timeout_seconds": 20.0,
}
WAIT_SECONDS = 20.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def payload(repo: str = "org/a", sha: str = "a" * 40, **extra: Any) -> dict[str, Any]:
    """The recorded `repo.content` fixture, about `repo` at commit `sha`, with extra keys."""
    body = json.loads(json.dumps(FIXTURE))
    body["repo"]["name"] = repo
    body["repo"]["id"] = hashlib.sha256(repo.encode()).hexdigest()[:24]  # the Hub's id goes with the name
    body["repo"]["headSha"] = sha
    body.update(extra)
    return body


def encode(body: dict[str, Any] | bytes) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


class Gates:
    """Named one-shot gates slow handlers wait on; all opened at teardown so no thread stays blocked."""

    def __init__(self) -> None:
        self._gates: defaultdict[str, threading.Event] = defaultdict(threading.Event)
        self._all_open = False

    def __getitem__(self, name: str) -> threading.Event:
        gate = self._gates[name]
        if self._all_open:
            gate.set()
        return gate

    def wait(self, name: str) -> None:
        """From a sync handler (a worker thread)."""
        if not self[name].wait(WAIT_SECONDS):
            raise TimeoutError(f"gate {name} never opened")

    async def wait_async(self, name: str) -> None:
        """From an async handler, without blocking the loop."""
        deadline = time.monotonic() + WAIT_SECONDS
        while not self[name].is_set():
            if time.monotonic() > deadline:
                raise TimeoutError(f"gate {name} never opened")
            await asyncio.sleep(0.01)

    def open_all(self) -> None:
        """Open every gate, including those not waited on yet."""
        self._all_open = True
        for gate in list(self._gates.values()):
            gate.set()


@pytest.fixture
def gates() -> Iterator[Gates]:
    gates = Gates()
    yield gates
    gates.open_all()


@dataclass
class Harness:
    server: WebhooksServer
    client: httpx.AsyncClient
    responses: list[httpx.Response] = field(default_factory=list)

    @property
    def journal(self) -> SQLiteJournal:
        return self.server.journal  # type: ignore[return-value]

    async def post(
        self,
        name: str,
        body: dict[str, Any] | bytes,
        *,
        webhook_id: str | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        secret: str | None = SECRET,
    ) -> httpx.Response:
        all_headers = {"content-type": "application/json", "user-agent": "HF-Webhooks/test"}
        if secret is not None:
            all_headers["x-webhook-secret"] = secret
        if webhook_id is not None:
            all_headers["webhook-id"] = webhook_id
        all_headers.update(headers or {})
        response = await self.client.post(f"/webhooks/{name}", content=encode(body), headers=all_headers, params=params)
        self.responses.append(response)
        return response

    async def until(self, predicate: Callable[[], Any], message: str) -> Any:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            value = predicate()
            if inspect.isawaitable(value):  # a predicate that reads the journal
                value = await value
            if value:
                return value
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out waiting for {message}")

    async def settled(self, event_id: int, *states: EventState) -> EventRecord:
        """Wait until the event reaches one of `states` (default: succeeded)."""
        wanted = states or (EventState.SUCCEEDED,)

        async def reached() -> EventRecord | None:
            event = await self.journal.get(event_id)
            return event if event is not None and event.state in wanted else None

        return await self.until(reached, f"event {event_id} to be {'/'.join(wanted)}")

    async def outcomes(self, event_id: int) -> list[str]:
        return [attempt.outcome for attempt in await self.journal.attempts(event_id)]


@contextlib.asynccontextmanager
async def serving(
    data_dir: Path,
    handlers: dict[str, Callable[..., Any]],
    *,
    journal: SQLiteJournal | None = None,
    wrap: Callable[[Any], Any] | None = None,
    **overrides: Any,
) -> AsyncIterator[Harness]:
    """A server with `handlers` (name -> function) and its worker running, reachable in-process."""
    settings = Settings(webhook_secrets=(SECRET,), data_dir=data_dir, **{**FAST_SETTINGS, **overrides})
    server = WebhooksServer(settings=settings, journal=journal)
    for name, handler in handlers.items():
        server.add_webhook(name)(handler)
    app = server.fastapi_app
    transport = httpx.ASGITransport(app=wrap(server.asgi_app) if wrap else server.asgi_app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://space.test") as client,
    ):
        harness = Harness(server, client)
        yield harness
    assert all(response.status_code < 500 for response in harness.responses), [
        (response.status_code, response.text) for response in harness.responses
    ]


def read_only(path: Path) -> sqlite3.Connection:
    """A separate read-only connection: it sees only what the server has committed."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    return connection


def count_events(path: Path) -> int:
    with contextlib.closing(read_only(path)) as db:
        return db.execute("SELECT COUNT(*) FROM events").fetchone()[0]


# --- recorded before acknowledged ------------------------------------------------------------


def committed_rows_at_2xx(journal_path: Path, seen: dict[int, tuple[int, sqlite3.Row | None]]) -> Callable[[Any], Any]:
    """ASGI wrapper: when a webhook answer starts with a 2xx, read its event row from another connection."""

    def wrap(app: Any) -> Any:
        async def checked(scope: dict, receive: Callable, send: Callable[[dict], Awaitable[None]]) -> None:
            async def send_and_check(message: dict) -> None:
                if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                    headers = {key.decode(): value.decode() for key, value in message["headers"]}
                    event_id = int(headers["x-webhook-event-id"])
                    with contextlib.closing(read_only(journal_path)) as db:
                        row = db.execute("SELECT * FROM event_rows WHERE id = ?", (event_id,)).fetchone()
                    seen[event_id] = (message["status"], row)
                await send(message)

            await app(scope, receive, send_and_check)

        return checked

    return wrap


async def test_each_delivery_is_committed_with_its_exact_bytes_before_the_2xx(tmp_path: Path, gates: Gates) -> None:
    async def fast(payload: WebhookPayload) -> dict[str, str | None]:
        return {"sha": payload.repo.headSha}

    def slow(payload: WebhookPayload) -> str:
        gates.wait("slow")
        return "done"

    seen: dict[int, tuple[int, sqlite3.Row | None]] = {}
    journal_path = tmp_path / "journal.sqlite3"
    # Odd but valid bytes: indentation, non-ASCII, escapes, a trailing newline. Stored verbatim.
    raw = (json.dumps(payload(sha="b" * 40, note="café \u2603 \\u00e9"), indent=3, ensure_ascii=False) + "\n").encode()
    extra_headers = {"x-request-id": "req-1", "x-forwarded-for": "10.0.0.1"}
    async with serving(tmp_path, {"fast": fast, "slow": slow}, wrap=committed_rows_at_2xx(journal_path, seen)) as h:
        before = time.time()
        fast_answer = await h.post("fast", raw, webhook_id="wh-fast", headers=extra_headers)
        after = time.time()
        # The secret in the URL instead of the header, as the Hub also allows.
        slow_answer = await h.post(
            "slow", payload(sha="c" * 40), webhook_id="wh-slow", params={"secret": SECRET, "source": "x"}, secret=None
        )
        assert not gates["slow"].is_set()
        slow_id = slow_answer.json()["event_id"]
        gates["slow"].set()
        await h.settled(slow_id)

    assert fast_answer.status_code == 200 and fast_answer.json() == {"sha": "b" * 40}
    status, row = seen[int(fast_answer.headers["x-webhook-event-id"])]
    assert status == 200 and row is not None
    assert bytes(row["body"]) == raw
    assert row["endpoint"] == "/webhooks/fast" and row["webhook_id"] == "wh-fast"
    assert before <= row["received_at"] <= after
    assert row["state"] == "succeeded"  # the 200 carried the handler's result, recorded first
    stored_headers = json.loads(row["headers"])
    assert stored_headers["webhook-id"] == "wh-fast"
    assert stored_headers["x-request-id"] == "req-1"
    assert stored_headers["user-agent"] == "HF-Webhooks/test"
    assert stored_headers["content-type"] == "application/json"
    assert "x-webhook-secret" not in stored_headers

    assert slow_answer.status_code == 202
    status, row = seen[slow_id]
    assert status == 202 and row is not None
    assert row["state"] in ("queued", "running")  # recorded, and the handler had not finished
    assert row["query"] == "source=x"
    assert bytes(row["body"]) == encode(payload(sha="c" * 40))

    # The secret is nowhere on disk: not in a header, not in a query string, not in the WAL.
    for file in tmp_path.glob("journal.sqlite3*"):
        assert SECRET.encode() not in file.read_bytes(), file.name


async def test_result_within_the_budget_else_202_and_the_handler_finishes_later(tmp_path: Path, gates: Gates) -> None:
    ended: list[str] = []

    async def fast(payload: WebhookPayload) -> dict[str, Any]:
        return {"repo": payload.repo.name, "n": 1}

    async def slow(payload: WebhookPayload) -> dict[str, str]:
        await gates.wait_async("slow")
        ended.append(payload.repo.name)
        return {"finished": payload.repo.name}

    async with serving(tmp_path, {"fast": fast, "slow": slow}) as h:
        answer = await h.post("fast", payload(repo="org/fast"))
        assert answer.status_code == 200
        assert answer.json() == {"repo": "org/fast", "n": 1}

        answer = await h.post("slow", payload(repo="org/slow"))
        assert answer.status_code == 202
        event_id = int(answer.headers["x-webhook-event-id"])
        assert answer.json() == {"status": "queued", "event_id": event_id}
        assert ended == []  # the 202 came while the handler was still running
        assert (await h.journal.get(event_id)).state == EventState.RUNNING
        gates["slow"].set()
        event = await h.settled(event_id)
        assert ended == ["org/slow"]
        assert event.result == {"finished": "org/slow"}
        assert await h.outcomes(event_id) == ["succeeded"]


# --- failures, retries, timeouts ----------------------------------------------------------------


async def test_failing_handler_is_retried_with_backoff_until_it_succeeds(tmp_path: Path) -> None:
    calls: list[int] = []

    def flaky(payload: WebhookPayload) -> str:
        calls.append(1)
        if len(calls) <= 2:
            raise RuntimeError(f"flaky failure {len(calls)}")
        return "third time lucky"

    async with serving(tmp_path, {"flaky": flaky}) as h:
        answer = await h.post("flaky", payload())
        assert answer.status_code == 202
        body = answer.json()
        assert body["status"] == "failed" and "will be retried" in body["detail"]
        event = await h.settled(body["event_id"])
        attempts = await h.journal.attempts(event.id)

    assert event.attempts == 3 and event.result == "third time lucky" and event.error is None
    assert [a.outcome for a in attempts] == ["failed", "failed", "succeeded"]
    assert "flaky failure 1" in attempts[0].detail and "flaky failure 2" in attempts[1].detail
    # Backoff: the wait before retry n is at least half of min(max, base * 2^(n-1)) (full jitter).
    assert attempts[1].started_at - attempts[0].finished_at >= 0.1 - 0.01
    assert attempts[2].started_at - attempts[1].finished_at >= 0.2 - 0.01


async def test_handler_that_always_fails_ends_dead_after_max_attempts(tmp_path: Path) -> None:
    async def broken(payload: WebhookPayload) -> None:
        raise ValueError("cannot handle this")

    async with serving(tmp_path, {"broken": broken}) as h:
        answer = await h.post("broken", payload())
        assert answer.status_code == 202
        event = await h.settled(answer.json()["event_id"], EventState.DEAD)
        assert await h.outcomes(event.id) == ["failed", "failed", "failed"]
        assert event.attempts == 3 and event.next_attempt_at is None
        assert "ValueError: cannot handle this" in event.error


def test_retry_delay_backs_off_exponentially_with_full_jitter() -> None:
    for attempt in range(1, 8):
        ceiling = min(30.0, 1.0 * 2 ** (attempt - 1))
        delays = [retry_delay(attempt, base_seconds=1.0, max_seconds=30.0) for _ in range(200)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 100  # jittered, so failing events do not retry in lockstep


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_handler_exceeding_its_timeout_counts_as_failed(tmp_path: Path, gates: Gates, kind: str) -> None:
    async def async_stuck(payload: WebhookPayload) -> str:
        await gates.wait_async("never")
        return "too late"

    def sync_stuck(payload: WebhookPayload) -> str:
        gates.wait("never")
        return "too late"

    handler = async_stuck if kind == "async" else sync_stuck
    async with serving(tmp_path, {"stuck": handler}, handler_timeout_seconds=0.3, max_attempts=2) as h:
        answer = await h.post("stuck", payload())
        assert answer.status_code == 202
        event = await h.settled(answer.json()["event_id"], EventState.DEAD)
        assert await h.outcomes(event.id) == ["failed", "failed"]
        assert "did not finish within 0.3 s" in event.error


async def test_sync_handler_stuck_past_its_timeout_does_not_starve_other_handlers(tmp_path: Path, gates: Gates) -> None:
    """A thread cannot be killed: the stuck one keeps running, but the next events must still run."""

    def stuck(payload: WebhookPayload) -> str:
        gates.wait("never")
        return "too late"

    def quick(payload: WebhookPayload) -> str:
        return "ran"

    handlers = {"stuck": stuck, "quick": quick}
    async with serving(tmp_path, handlers, concurrency=1, handler_timeout_seconds=0.3, max_attempts=1) as h:
        for n in range(2):  # two stuck threads: more than the concurrency
            answer = await h.post("stuck", payload(repo=f"org/stuck{n}"))
            await h.settled(answer.json()["event_id"], EventState.DEAD)
        answer = await h.post("quick", payload(repo="org/quick"))
        event = await h.settled(int(answer.headers["x-webhook-event-id"]), EventState.SUCCEEDED, EventState.DEAD)
        assert event.state == EventState.SUCCEEDED, event.error
        assert event.result == "ran"


# --- concurrency and order ------------------------------------------------------------------------


def max_overlap(log: list[tuple[str, str]]) -> int:
    running, peak = 0, 0
    for mark, _ in log:
        running += 1 if mark == "start" else -1
        peak = max(peak, running)
    return peak


async def test_at_most_concurrency_handlers_run_at_once(tmp_path: Path, gates: Gates) -> None:
    log: list[tuple[str, str]] = []
    lock = threading.Lock()

    def busy(payload: WebhookPayload) -> None:
        with lock:
            log.append(("start", payload.repo.name))
        gates.wait("go")
        with lock:
            log.append(("end", payload.repo.name))

    async with serving(tmp_path, {"busy": busy}, concurrency=2) as h:
        posts = [asyncio.create_task(h.post("busy", payload(repo=f"org/r{n}"))) for n in range(6)]
        await h.until(lambda: len(log) >= 2 and count_events(h.server.settings.journal_path) == 6, "2 handlers")
        states = [event.state for event in await h.journal.list_recent()]
        assert states.count(EventState.RUNNING) == 2 and states.count(EventState.QUEUED) == 4
        assert len(log) == 2
        gates["go"].set()
        answers = await asyncio.gather(*posts)
        for answer in answers:
            await h.settled(int(answer.headers["x-webhook-event-id"]))

    assert len(log) == 12 and max_overlap(log) == 2


async def test_blocking_sync_handler_does_not_block_the_event_loop(tmp_path: Path, gates: Gates) -> None:
    marks: list[str] = []

    def blocking(payload: WebhookPayload) -> None:
        marks.append("blocking started")
        gates.wait("blocking")  # a plain `time.sleep`-style wait, holding its thread
        marks.append("blocking ended")

    async def other(payload: WebhookPayload) -> str:
        marks.append("other ran")
        return "answered"

    async with serving(tmp_path, {"blocking": blocking, "other": other}) as h:
        first = asyncio.create_task(h.post("blocking", payload(repo="org/one")))
        await h.until(lambda: "blocking started" in marks, "the blocking handler to start")
        answer = await h.post("other", payload(repo="org/two"))
        marks.append("other answered")
        gates["blocking"].set()
        await h.settled(int((await first).headers["x-webhook-event-id"]))

    assert answer.status_code == 200 and answer.json() == "answered"
    assert marks == ["blocking started", "other ran", "other answered", "blocking ended"]


@pytest.mark.parametrize("order_per_repo", [True, False])
async def test_events_of_one_repo_run_one_at_a_time_in_arrival_order(
    tmp_path: Path, gates: Gates, order_per_repo: bool
) -> None:
    """With ordering off (the control), the same check sees same-repo events overlap: it can fail."""
    log: list[tuple[str, str, str]] = []

    def ordered(payload: WebhookPayload, request: Request) -> None:
        webhook_id = request.headers["webhook-id"]
        log.append(("start", payload.repo.name, webhook_id))
        gates.wait("go")
        time.sleep(0.005)
        log.append(("end", payload.repo.name, webhook_id))

    repos = ("org/a", "org/b")
    async with serving(tmp_path, {"ordered": ordered}, order_per_repo=order_per_repo) as h:
        # All of org/a first: while org/a's first event waits at the gate, the free slot goes to its
        # second event when ordering is off, and to org/b's first when it is on.
        posts = [
            asyncio.create_task(h.post("ordered", payload(repo=repo, sha=f"{n:040x}"), webhook_id=f"{repo}-{n}"))
            for repo in repos
            for n in range(6)
        ]
        await h.until(lambda: count_events(h.server.settings.journal_path) == 12, "12 recorded events")
        gates["go"].set()
        for answer in await asyncio.gather(*posts):
            await h.settled(int(answer.headers["x-webhook-event-id"]))
        arrival = {event.webhook_id: event.id for event in await h.journal.list_recent()}

    sequential = {}
    for repo in repos:
        marks = [(mark, webhook_id) for mark, name, webhook_id in log if name == repo]
        assert len(marks) == 12
        sequential[repo] = all(
            marks[i][0] == "start" and marks[i + 1] == ("end", marks[i][1]) for i in range(0, len(marks), 2)
        )
        if order_per_repo:
            started = [webhook_id for mark, webhook_id in marks if mark == "start"]
            assert started == sorted(started, key=arrival.__getitem__)
    assert all(sequential.values()) is order_per_repo, log
    # Different repos interleave: some event of one repo started while one of the other was running.
    assert max_overlap([(mark, name) for mark, name, _ in log]) == 2


async def test_a_failing_event_holds_back_later_events_of_its_repo(tmp_path: Path) -> None:
    log: list[str] = []

    def first_fails_once(payload: WebhookPayload) -> None:
        sha = payload.repo.headSha[:1]
        if sha == "1" and log.count("1 failed") == 0:
            log.append("1 failed")
            raise RuntimeError("not yet")
        log.append(f"{sha} ok")

    async with serving(tmp_path, {"h": first_fails_once}) as h:
        first = await h.post("h", payload(sha="1" * 40))
        second = await h.post("h", payload(sha="2" * 40))
        await h.settled(int(second.headers["x-webhook-event-id"]))
        assert await h.outcomes(first.json()["event_id"]) == ["failed", "succeeded"]
    assert log == ["1 failed", "1 ok", "2 ok"]


# --- redeliveries -------------------------------------------------------------------------------


async def test_redelivery_while_queued_or_running_is_a_duplicate_not_run_again(tmp_path: Path, gates: Gates) -> None:
    runs: list[str] = []

    def slow(payload: WebhookPayload) -> str:
        runs.append(payload.repo.name)
        gates.wait(payload.repo.name)
        return "done"

    async with serving(tmp_path, {"slow": slow}, concurrency=1) as h:
        running = await h.post("slow", payload(repo="org/one"), webhook_id="wh-1")
        queued = await h.post("slow", payload(repo="org/two"), webhook_id="wh-2")
        running_id, queued_id = running.json()["event_id"], queued.json()["event_id"]
        assert ((await h.journal.get(running_id)).state, (await h.journal.get(queued_id)).state) == (
            "running",
            "queued",
        )

        again_running = await h.post("slow", payload(repo="org/one"), webhook_id="wh-1")
        again_queued = await h.post("slow", payload(repo="org/two"), webhook_id="wh-2")
        gates.open_all()
        await h.settled(queued_id)

    for answer, original, state in ((again_running, running_id, "running"), (again_queued, queued_id, "queued")):
        assert answer.status_code == 200
        body = answer.json()
        assert body["status"] == "duplicate"
        assert body["original_event_id"] == original and body["original_state"] == state
    assert runs == ["org/one", "org/two"]


async def test_simultaneous_redeliveries_record_one_event(tmp_path: Path, gates: Gates) -> None:
    runs: list[int] = []

    async def handler(payload: WebhookPayload) -> str:
        runs.append(1)
        await gates.wait_async("go")
        return "once"

    async with serving(tmp_path, {"h": handler}) as h:
        posts = [asyncio.create_task(h.post("h", payload(), webhook_id="wh-same")) for _ in range(5)]
        await h.until(lambda: count_events(h.server.settings.journal_path) == 5, "5 recorded deliveries")
        gates["go"].set()
        answers = await asyncio.gather(*posts)
    duplicates = [a for a in answers if isinstance(a.json(), dict) and a.json()["status"] == "duplicate"]
    (original,) = [a for a in answers if a not in duplicates]
    original_id = int(original.headers["x-webhook-event-id"])
    assert original.json() in ("once", {"status": "queued", "event_id": original_id})
    assert [a.json()["original_event_id"] for a in duplicates] == [original_id] * 4
    assert runs == [1]


async def test_redelivery_soon_after_success_is_a_duplicate_by_id_or_by_body(tmp_path: Path) -> None:
    runs: list[str | None] = []

    async def count(payload: WebhookPayload) -> str | None:
        runs.append(payload.repo.headSha)
        return payload.repo.headSha

    async with serving(tmp_path, {"count": count}) as h:
        by_id = await h.post("count", payload(sha="1" * 40), webhook_id="wh-1")
        assert by_id.status_code == 200
        # Same Webhook-Id, even with a different body (the Hub's retry of the same delivery).
        again = await h.post("count", payload(sha="1" * 40, extra="x"), webhook_id="wh-1")
        # No Webhook-Id: the same payload twice is the same event; a different one is not.
        by_body = await h.post("count", payload(sha="2" * 40))
        same_body = await h.post("count", payload(sha="2" * 40))
        other_body = await h.post("count", payload(sha="3" * 40))

    for answer, original in ((again, by_id), (same_body, by_body)):
        assert answer.status_code == 200
        body = answer.json()
        assert body["status"] == "duplicate", body
        original_id = int(original.headers["x-webhook-event-id"])
        assert body["original_event_id"] == original_id
        assert body["original_state"] == "succeeded"
        # Plain words: which event it repeats and how it ended, why it counts as a repeat, how to send a new one.
        assert body["detail"] == f"a repeat of event {original_id}, which has already succeeded: not run again"
        assert "WEBHOOK_DUPLICATE_WINDOW" in body["why"]
        assert "python -m lib.send" in body["to_send_a_new_event"] and "Webhook-Id" in body["to_send_a_new_event"]
    assert again.json()["why"].startswith("It carries the same Webhook-Id (wh-1) as event ")
    assert same_body.json()["why"].startswith("It has no Webhook-Id header and the same event (scope, action")
    assert other_body.json() == "3" * 40
    assert runs == ["1" * 40, "2" * 40, "3" * 40]


async def test_redelivery_after_the_duplicate_window_runs_again(tmp_path: Path) -> None:
    runs: list[int] = []

    async def count(payload: WebhookPayload) -> int:
        runs.append(1)
        return len(runs)

    async with serving(tmp_path, {"count": count}, duplicate_window_seconds=0) as h:
        first = await h.post("count", payload(), webhook_id="wh-1")
        await asyncio.sleep(0.01)  # past a zero-second window
        second = await h.post("count", payload(), webhook_id="wh-1")
    assert (first.json(), second.json()) == (1, 2)
    assert first.headers["x-webhook-event-id"] != second.headers["x-webhook-event-id"]


@pytest.mark.parametrize("left", ["failed", "dead"])
async def test_redelivery_of_a_failed_or_dead_event_runs_it_again(tmp_path: Path, left: str) -> None:
    broken = threading.Event()
    broken.set()

    def handler(payload: WebhookPayload) -> str:
        if broken.is_set():
            raise RuntimeError("down")
        return "recovered"

    # "failed": the retry is an hour away, so the event is still waiting when the redelivery comes.
    overrides = {"retry_base_seconds": 3600.0, "retry_max_seconds": 3600.0} if left == "failed" else {"max_attempts": 1}
    async with serving(tmp_path, {"h": handler}, **overrides) as h:
        first = await h.post("h", payload(), webhook_id="wh-1")
        original_id = first.json()["event_id"]
        await h.settled(original_id, EventState(left))
        broken.clear()
        again = await h.post("h", payload(), webhook_id="wh-1")
        original = await h.settled(original_id)
        redelivery = await h.journal.get(int(again.headers["x-webhook-event-id"]))
        outcomes = await h.outcomes(original_id)

    assert again.status_code == 200 and again.json() == "recovered"  # the handler's answer, within the budget
    assert original.result == "recovered" and outcomes == ["failed", "succeeded"]
    assert redelivery.state == EventState.DUPLICATE and redelivery.original_id == original_id
    assert "run again" in redelivery.note


# --- the journal full: the only 5xx ---------------------------------------------------------------


CAP = 128 * 1024


async def test_full_journal_answers_503_and_records_nothing(tmp_path: Path) -> None:
    runs: list[str | None] = []

    def handler(payload: WebhookPayload) -> str:
        runs.append(payload.repo.headSha)
        if payload.repo.headSha == "d" * 40:
            raise RuntimeError("dies")
        return "ok"

    journal_path = tmp_path / "journal.sqlite3"
    big = payload(sha="b" * 40, padding="x" * (3 * CAP))
    async with serving(tmp_path, {"h": handler}, journal_max_bytes=CAP, max_attempts=1) as h:
        assert h.journal.max_bytes == CAP
        assert (await h.post("h", payload(sha="1" * 40))).status_code == 200
        dead = await h.post("h", payload(sha="d" * 40), webhook_id="wh-dead")
        dead_id = dead.json()["event_id"]
        await h.settled(dead_id, EventState.DEAD)
        before = count_events(journal_path)

        answer = await h.post("h", big, webhook_id="wh-big")
        # A redelivery of the dead event would requeue it; too big to record, the requeue is undone too.
        redelivery = await h.post("h", payload(sha="d" * 40, padding="x" * (3 * CAP)), webhook_id="wh-dead")
        h.responses.clear()  # the 503s are expected here

        assert answer.status_code == 503 and redelivery.status_code == 503
        message = answer.json()["error"]
        assert "journal is full" in message and "WEBHOOK_JOURNAL_MAX_BYTES" in message
        assert count_events(journal_path) == before
        with contextlib.closing(read_only(journal_path)) as db:
            assert db.execute("SELECT COUNT(*) FROM events WHERE webhook_id = 'wh-big'").fetchone()[0] == 0
        assert (await h.journal.get(dead_id)).state == EventState.DEAD

        # Smaller events keep working.
        after = await h.post("h", payload(sha="2" * 40))
        assert after.status_code == 200 and after.json() == "ok"
    assert runs == ["1" * 40, "d" * 40, "2" * 40]


async def test_a_delivery_answered_503_never_runs_its_handler_nor_answers_for_the_next_one(
    tmp_path: Path, gates: Gates
) -> None:
    """Deliveries arriving together share one commit; when one of them is too big for the journal the
    whole group is lost and each is answered 503 ("nothing was recorded; retry later"). The Hub then
    sends each again, so a handler that ran anyway would run twice. Worse, the lost event's id is free
    again and goes to the next delivery: the phantom run's outcome must not land on that event, nor
    answer its request."""
    runs: list[str] = []
    ended: list[str] = []

    async def handler(payload: WebhookPayload) -> str:
        runs.append(payload.repo.name)
        await gates.wait_async(payload.repo.name)
        ended.append(payload.repo.name)
        return f"handled {payload.repo.name}"

    async with serving(tmp_path, {"h": handler}, journal_max_bytes=CAP, ack_budget_seconds=2.0) as h:
        small, big = await asyncio.gather(
            h.post("h", payload(repo="org/small"), webhook_id="wh-small"),
            h.post("h", payload(repo="org/big", padding="x" * (3 * CAP)), webhook_id="wh-big"),
        )
        h.responses.clear()  # the 503s are the point here
        assert (small.status_code, big.status_code) == (503, 503), "both were in the group the big one lost"
        assert "journal is full" in small.json()["error"]

        following = asyncio.create_task(h.post("h", payload(repo="org/next"), webhook_id="wh-next"))
        await h.until(lambda: "org/next" in runs, "the next delivery's handler to start")
        gates["org/small"].set()
        if "org/small" in runs:  # the lost delivery's handler ran: let it end while the next one runs
            await h.until(lambda: "org/small" in ended, "the lost delivery's handler to end")
        gates["org/next"].set()
        answer = await following
        event = await h.settled(int(answer.headers["x-webhook-event-id"]))

        again = await h.post("h", payload(repo="org/small"), webhook_id="wh-small")  # the Hub's retry
        assert again.status_code == 200 and again.json() == "handled org/small"

    assert (answer.status_code, answer.json(), event.repo_name, event.result) == (
        200,
        "handled org/next",
        "org/next",
        "handled org/next",
    )
    assert sorted(runs) == ["org/next", "org/small"]  # each delivery handled once


async def test_a_body_over_the_limit_without_content_length_is_413_even_in_one_message(tmp_path: Path) -> None:
    """Content-Length is only a promise: a body that arrives whole, larger than the limit, is refused
    from its own size (the one-message path does not go through the streaming reader)."""

    def whole_without_content_length(app: Any) -> Any:
        """The body handed over in a single message, as uvicorn does for a small request."""

        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"content-length"]}
            body, more = b"", True
            while more:
                message = await receive()
                body, more = body + message.get("body", b""), message.get("more_body", False)
            delivered = False

            async def receive_whole() -> dict[str, Any]:
                nonlocal delivered
                if delivered:
                    return await receive()
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}

            await app(scope, receive_whole, send)

        return asgi

    async def handler(payload: WebhookPayload) -> str:
        return "ran"

    async with serving(tmp_path, {"h": handler}, wrap=whole_without_content_length, max_body_bytes=4096) as h:
        too_big = await h.post("h", payload(padding="x" * 5000))
        assert too_big.status_code == 413
        assert "larger than 4096 bytes" in too_big.json()["error"]
        fits = await h.post("h", payload())
        assert fits.status_code == 200 and fits.json() == "ran"
        assert await h.journal.list_recent() and len(await h.journal.list_recent()) == 1


class AckTimeUnrecordable(SQLiteJournal):
    """The journal fills up between recording an event and noting how fast it was acknowledged."""

    def set_ack_ms(self, event_id: int, ack_ms: float) -> None:
        raise JournalUnavailable("The event journal is full.")


async def test_no_other_failure_is_answered_with_a_5xx(tmp_path: Path, gates: Gates) -> None:
    async def raises(payload: WebhookPayload) -> None:
        raise RuntimeError("boom")

    async def too_slow(payload: WebhookPayload) -> None:
        await gates.wait_async("never")

    async def answers_500(payload: WebhookPayload) -> JSONResponse:
        return JSONResponse({"oops": True}, status_code=500)

    async def unserializable(payload: WebhookPayload) -> object:
        return object()

    async def background_fails(payload: WebhookPayload, background_tasks: BackgroundTasks) -> str:
        background_tasks.add_task(lambda: 1 / 0)
        return "queued a task"

    handlers = {
        "raises": raises,
        "too_slow": too_slow,
        "answers_500": answers_500,
        "unserializable": unserializable,
        "background_fails": background_fails,
    }
    journal = AckTimeUnrecordable(tmp_path / "journal.sqlite3")
    async with serving(tmp_path, handlers, journal=journal, handler_timeout_seconds=0.2, max_attempts=1) as h:
        for name in handlers:
            answer = await h.post(name, payload(repo=f"org/{name}"))
            assert answer.status_code in (200, 202), (name, answer.text)
            await h.settled(int(answer.headers["x-webhook-event-id"]), EventState.SUCCEEDED, EventState.DEAD)
        assert (await h.post("raises", payload(), secret=None)).status_code == 401
        assert (await h.post("raises", payload(), secret="wrong")).status_code == 403
        assert (await h.post("raises", b"{not json")).status_code == 400
        assert (await h.post("raises", {"hello": "world"})).status_code == 422
        too_big = payload(padding="x" * (h.server.settings.max_body_bytes + 1))
        assert (await h.post("raises", too_big)).status_code == 413
        assert (await h.post("missing", payload())).status_code == 404
        states = {event.endpoint: event.state for event in await h.journal.list_recent()}
    assert states["/webhooks/unserializable"] == EventState.SUCCEEDED  # stored as its repr
    for name in ("raises", "too_slow", "answers_500", "background_fails"):
        assert states[f"/webhooks/{name}"] == EventState.DEAD, name


class OutcomesUnrecordable(SQLiteJournal):
    """Records deliveries, then cannot write how an attempt ended (the disk filled up meanwhile)."""

    async def finish(self, event_id: int, *, result: Any, handler_ms: float) -> EventRecord:
        raise JournalUnavailable("The event journal is full.")

    async def fail(self, event_id: int, *, error: str, handler_ms: float, retry_at: float | None) -> EventRecord:
        raise JournalUnavailable("The event journal is full.")


async def test_an_outcome_that_cannot_be_recorded_reruns_the_event_after_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runs: list[int] = []

    async def handler(payload: WebhookPayload) -> int:
        runs.append(1)
        return len(runs)

    journal = OutcomesUnrecordable(tmp_path / "journal.sqlite3")
    with caplog.at_level(logging.INFO):
        async with serving(tmp_path, {"h": handler}, journal=journal) as h:
            answer = await h.post("h", payload())
            assert answer.status_code == 202 and answer.json()["status"] == "queued"
            assert (await h.journal.get(answer.json()["event_id"])).state == EventState.RUNNING
        assert "will run again after a restart" in caplog.text
        async with serving(tmp_path, {"h": handler}) as h:
            event = await h.settled(answer.json()["event_id"])
    assert event.result == 2 and runs == [1, 1]


async def test_journal_cap_is_read_from_the_environment_and_validated(tmp_path: Path) -> None:
    assert Settings.from_env({}).journal_max_bytes is None
    assert Settings.from_env({"WEBHOOK_JOURNAL_MAX_BYTES": " "}).journal_max_bytes is None
    settings = Settings.from_env({"WEBHOOK_JOURNAL_MAX_BYTES": "1048576", "DATA_DIR": str(tmp_path)})
    assert settings.journal_max_bytes == 1048576
    server = WebhooksServer(settings=settings)
    assert server.journal.max_bytes == 1048576
    await server.journal.close()
    for bad in ("1000", "-5", "lots", "1.5e6"):
        with pytest.raises(ConfigurationError, match="WEBHOOK_JOURNAL_MAX_BYTES"):
            Settings.from_env({"WEBHOOK_JOURNAL_MAX_BYTES": bad})


# --- request and background tasks, rebuilt from the journal --------------------------------------


async def test_request_and_background_tasks_are_rebuilt_for_a_retry(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    journal_states: list[tuple[str, list[str]]] = []
    server_box: list[WebhooksServer] = []

    async def handler(payload: WebhookPayload, request: Request, background_tasks: BackgroundTasks) -> str:
        seen.append(
            {
                "body": await request.body(),
                "headers": dict(request.headers),
                "query": dict(request.query_params),
                "event_id": request.state.event_id,
            }
        )
        attempt = len(seen)

        async def after_response() -> None:
            event_id = request.state.event_id
            journal = server_box[0].journal
            journal_states.append(
                ((await journal.get(event_id)).state, [a.outcome for a in await journal.attempts(event_id)])
            )
            if attempt == 1:
                raise RuntimeError("the background task failed")

        background_tasks.add_task(after_response)
        return f"attempt {attempt}"

    raw = json.dumps(payload(), indent=1).encode()
    async with serving(tmp_path, {"h": handler}) as h:
        server_box.append(h.server)
        answer = await h.post(
            "h", raw, webhook_id="wh-1", headers={"x-request-id": "r1"}, params={"secret": SECRET, "page": "2"}
        )
        event = await h.settled(answer.json()["event_id"])
        attempts = await h.journal.attempts(event.id)

    assert [a.outcome for a in attempts] == ["failed", "succeeded"]
    assert "the background task failed" in attempts[0].detail
    assert event.result == "attempt 2"
    # Each background task ran inside its attempt, before the attempt was recorded as over.
    assert journal_states == [("running", ["running"]), ("running", ["failed", "running"])]
    assert len(seen) == 2 and seen[0] == seen[1]
    first = seen[0]
    assert first["body"] == raw and first["event_id"] == event.id
    assert first["query"] == {"page": "2"}
    assert first["headers"]["webhook-id"] == "wh-1" and first["headers"]["x-request-id"] == "r1"
    assert first["headers"]["content-type"] == "application/json"
    assert "x-webhook-secret" not in first["headers"]
    assert SECRET not in json.dumps(first["headers"])


async def test_restart_resumes_interrupted_and_queued_events_with_the_same_request(
    tmp_path: Path, gates: Gates, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[int, bytes, dict[str, str]]] = []
    restarted = threading.Event()

    async def slow(payload: WebhookPayload, request: Request) -> str:
        seen.append((request.state.event_id, await request.body(), dict(request.headers)))
        if not restarted.is_set():
            await gates.wait_async("never")
        return "done"

    raw = [json.dumps(payload(sha=f"{n:040x}")).encode() for n in range(3)]
    async with serving(tmp_path, {"slow": slow}, concurrency=1) as h:
        answers = [await h.post("slow", body, webhook_id=f"wh-{n}") for n, body in enumerate(raw)]
        ids = [answer.json()["event_id"] for answer in answers]
        assert [(await h.journal.get(i)).state for i in ids] == ["running", "queued", "queued"]
    # The lifespan ended with the first handler mid-flight (as when the Space restarts).

    restarted.set()
    with caplog.at_level(logging.INFO):
        async with serving(tmp_path, {"slow": slow}, concurrency=1) as h:
            events = [await h.settled(i) for i in ids]
            outcomes = [await h.outcomes(i) for i in ids]
    assert outcomes == [["interrupted", "succeeded"], ["succeeded"], ["succeeded"]]
    assert [event.attempts for event in events] == [2, 1, 1]
    assert "Resuming 3 event(s)" in caplog.text and "1 interrupted" in caplog.text
    # The interrupted event's rerun got the same request as its first run.
    runs = [entry for entry in seen if entry[0] == ids[0]]
    assert len(runs) == 2 and runs[0] == runs[1] and runs[0][1] == raw[0]


# --- retention ------------------------------------------------------------------------------------


def delivery(n: int, *, received_at: float) -> Delivery:
    return Delivery(
        endpoint="/webhooks/h",
        delivery_key=f"id:{n}",
        webhook_id=str(n),
        received_at=received_at,
        headers={},
        query="",
        body=b"{}",
        scope="repo.content",
        action="update",
        repo_name=f"org/r{n}",
        repo_type="model",
        order_key=None,
    )


async def fill_journal(journal: SQLiteJournal, now: float) -> list[tuple[int, str, float]]:
    """Old (90 days) and recent events in every state: `(id, state, received_at)`, oldest id first."""
    rows: list[tuple[int, str, float]] = []
    plan = ["succeeded"] * 6 + ["failed", "dead", "running", "skipped", "duplicate", "succeeded", "succeeded"]
    plan.append("queued")  # last: a later claim_due would take it
    for n, state in enumerate(plan):
        received = now - 90 * 86400 if n % 2 == 0 else now - 60
        reason = "not wanted" if state == "skipped" else None
        event_id = (
            await journal.record(
                delivery(n, received_at=received), skipped_reason=reason, max_attempts=1, duplicate_window=600
            )
        ).event.id
        if state in ("succeeded", "failed", "dead", "running", "duplicate"):
            (claimed,) = await journal.claim_due(now=now, limit=1)
            assert claimed.id == event_id
        if state in ("succeeded", "duplicate"):
            await journal.finish(event_id, result="ok", handler_ms=1)
        elif state in ("failed", "dead"):
            await journal.fail(event_id, error="x", handler_ms=1, retry_at=now + 3600 if state == "failed" else None)
        if state == "duplicate":  # the original succeeded moments ago: the redelivery is a duplicate
            rows.append((event_id, "succeeded", received))
            event_id = (
                await journal.record(
                    delivery(n, received_at=received), skipped_reason=None, max_attempts=1, duplicate_window=600
                )
            ).event.id
        rows.append((event_id, state, received))
    assert [(await journal.get(event_id)).state for event_id, _, _ in rows] == [state for _, state, _ in rows]
    return rows


PRUNABLE = ("succeeded", "skipped", "duplicate")


async def test_prune_removes_finished_events_by_age_and_count_never_unfinished_or_dead(tmp_path: Path) -> None:
    now = time.time()
    journal = SQLiteJournal(tmp_path / "journal.sqlite3")
    rows = await fill_journal(journal, now)
    all_ids = {event_id for event_id, _, _ in rows}

    async def remaining() -> set[int]:
        return {event.id for event in await journal.list_recent(limit=100)}

    cutoff = now - 30 * 86400
    too_old = {event_id for event_id, state, received in rows if state in PRUNABLE and received < cutoff}
    assert await journal.prune(older_than=cutoff, keep_max=1000) == len(too_old) > 0
    assert await remaining() == all_ids - too_old

    newest_three = set(sorted(await remaining())[-3:])  # of every event in the journal, whatever its state
    beyond = {i for i, state, _ in rows if state in PRUNABLE and i not in newest_three and i not in too_old}
    assert await journal.prune(older_than=0, keep_max=3) == len(beyond) > 0
    assert await remaining() == all_ids - too_old - beyond
    assert {(await journal.get(i)).state for i in await remaining() - newest_three} == {"failed", "dead", "running"}
    with contextlib.closing(read_only(tmp_path / "journal.sqlite3")) as db:
        orphans = db.execute("SELECT COUNT(*) FROM attempts WHERE event_id NOT IN (SELECT id FROM events)")
        assert orphans.fetchone()[0] == 0  # pruned events take their attempts with them
    await journal.close()


async def test_server_prunes_at_start_with_its_retention_settings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The retention task runs once at start, then hourly; the start is what a test can see."""
    now = time.time()
    journal = SQLiteJournal(tmp_path / "journal.sqlite3")
    rows = await fill_journal(journal, now)
    await journal.close()
    unfinished = {event_id for event_id, state, _ in rows if state not in PRUNABLE}

    async def other(payload: WebhookPayload) -> None:  # the journal's events are for /webhooks/h
        return None

    with caplog.at_level(logging.INFO):
        async with serving(tmp_path, {"other": other}, retention_max_events=2, retention_days=365) as h:
            await h.until(lambda: "Pruned" in caplog.text, "the retention task to prune")
            left = {event.id: event.state for event in await h.journal.list_recent(limit=100)}
    assert unfinished <= set(left)
    finished = {event_id for event_id, state in left.items() if state in PRUNABLE}
    assert finished <= set(sorted(event_id for event_id, _, _ in rows)[-2:])


async def test_our_commit_coming_back_before_we_recorded_it_is_skipped_when_its_turn_comes(
    tmp_path: Path, gates: Gates
) -> None:
    """The loop guard asks again right before running: the echo of a commit the running handler is
    still making arrives before the commit is known as ours, and must not run once it is."""
    ours = "c" * 40
    runs: list[str] = []

    async def writer(payload: WebhookPayload) -> str:
        new_sha = payload.updatedRefs[0].newSha
        runs.append(new_sha)
        await gates.wait_async("committed")
        own_commits(tmp_path).add(ours)  # what hub_client() does once the Hub answers the commit
        return "wrote"

    def push(old: str, new: str) -> dict[str, Any]:
        return payload(repo="org/loop", sha=new, updatedRefs=[{"ref": "refs/heads/main", "oldSha": old, "newSha": new}])

    async with serving(tmp_path, {"writer": writer}) as h:
        first = await h.post("writer", push("a" * 40, "b" * 40))
        echo = await h.post("writer", push("b" * 40, ours))
        assert echo.json()["status"] == "queued"  # not known as ours yet: recorded, waiting its turn
        gates["committed"].set()
        await h.settled(first.json()["event_id"])
        skipped = await h.settled(echo.json()["event_id"], EventState.SKIPPED)
        assert await h.journal.attempts(skipped.id) == []

    assert runs == ["b" * 40]
    assert skipped.attempts == 0 and "made by this Space" in skipped.note
