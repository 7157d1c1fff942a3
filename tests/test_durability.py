"""Durable delivery end to end: the real `python app.py`, real HTTP, the journal read from its file.

One app process serves most tests (module scope); the crash test starts its own, kills it with
SIGKILL while events are queued and running, and starts it again in the same folder. Handlers are
files in the app's `handlers/` that note what they do in a shared log (`PROBE_DIR/log.txt`) and wait
on gate files the test creates, so "answered before the handler ended" is shown by ordering, never
by timing. The in-process counterparts, with more edge cases, are in `test_worker.py`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from apprunner import SECRET, RunningApp, base_env, fixture_json, make_space, start_app, wait_until

from lib.journal.statements import LAST_ATTEMPT

PREAMBLE = '''
import json, os, sqlite3, time
from pathlib import Path

from fastapi import BackgroundTasks, Request

from lib import WebhookPayload

PROBE = Path(os.environ["PROBE_DIR"])


def note(*fields):
    """One JSON line per step; O_APPEND keeps concurrent lines whole."""
    with open(PROBE / "log.txt", "a") as log:
        log.write(json.dumps(fields) + "\\n")


def wait_gate(name):
    deadline = time.monotonic() + 60
    while not (PROBE / "gates" / name).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(name)
        time.sleep(0.01)
'''

HANDLERS = {
    "fast.py": PREAMBLE
    + """
async def handle(payload: WebhookPayload):
    note("fast", payload.repo.headSha)
    return {"sha": payload.repo.headSha}
""",
    "gated.py": PREAMBLE
    + """
def handle(payload: WebhookPayload):
    note("gated", "start", payload.repo.headSha)
    wait_gate(payload.repo.headSha)
    note("gated", "end", payload.repo.headSha)
    return {"done": payload.repo.headSha}
""",
    "flaky.py": PREAMBLE
    + """
def handle(payload: WebhookPayload):
    log = PROBE / "log.txt"
    runs = log.read_text().count(json.dumps(["flaky", payload.repo.headSha])) if log.exists() else 0
    note("flaky", payload.repo.headSha)
    if runs < 2:
        raise RuntimeError(f"flaky failure {runs + 1}")
    return "third time lucky"
""",
    "switch.py": PREAMBLE
    + """
async def handle(payload: WebhookPayload):
    note("switch", payload.repo.headSha)
    if not (PROBE / "gates" / ("fixed-" + payload.repo.headSha)).exists():
        raise RuntimeError("broken until fixed")
    return "fixed"
""",
    "ordered.py": PREAMBLE
    + """
def handle(payload: WebhookPayload, request: Request):
    note("ordered", "start", payload.repo.name, request.headers["webhook-id"])
    wait_gate("ordered")
    time.sleep(0.005)
    note("ordered", "end", payload.repo.name, request.headers["webhook-id"])
""",
    "slow.py": PREAMBLE
    + """
import asyncio, hashlib


async def handle(payload: WebhookPayload, request: Request, background_tasks: BackgroundTasks):
    sha, event_id = payload.repo.headSha, request.state.event_id
    body = hashlib.sha256(await request.body()).hexdigest()
    note("slow", "start", sha, event_id, body, dict(request.headers), dict(request.query_params))

    def after() -> None:
        journal = sqlite3.connect(f"file:{os.environ['DATA_DIR']}/journal.sqlite3?mode=ro", uri=True)
        state = journal.execute("SELECT state FROM events WHERE id = ?", (event_id,)).fetchone()[0]
        journal.close()
        note("slow", "background", sha, state)

    background_tasks.add_task(after)
    while not (PROBE / "gates" / sha).exists():
        await asyncio.sleep(0.01)
    note("slow", "end", sha)
    return sha
""",
}

MAIN_ENV = {
    "WEBHOOK_ACK_BUDGET": "1",
    "WEBHOOK_RETRY_BASE": "0.2",
    "WEBHOOK_RETRY_MAX": "0.5",
    "WEBHOOK_MAX_ATTEMPTS": "3",
    "WEBHOOK_CONCURRENCY": "2",
    "WEBHOOK_JOURNAL_MAX_BYTES": str(1024 * 1024),
    "WEBHOOK_MAX_BODY_BYTES": str(2 * 1024 * 1024),
}


def payload(repo: str = "org/a", sha: str = "a" * 40, **extra: Any) -> dict[str, Any]:
    """The recorded `repo.content` fixture, about `repo` at commit `sha`."""
    body = fixture_json("repo-content-update-space-new-pr-ref.json")
    body["repo"].update(name=repo, headSha=sha, id=hashlib.sha256(repo.encode()).hexdigest()[:24])
    body.update(extra)
    return body


def sha(label: str) -> str:
    return hashlib.sha1(label.encode()).hexdigest()


@dataclass
class Probe:
    """A running app, the log its handlers write, the gates they wait on, and every answer it gave."""

    app: RunningApp
    folder: Path
    answers: list[tuple[str, int, str]] = field(default_factory=list)

    def post(self, name: str, body: dict | bytes, *, tag: str = "", **kwargs: Any) -> httpx.Response:
        response = self.app.post(f"/webhooks/{name}", body, **kwargs)
        self.answers.append((tag or name, response.status_code, response.text))
        return response

    def post_many(self, requests: list[tuple[str, dict, dict[str, Any]]]) -> list[httpx.Response]:
        """POST concurrently, as the Hub does when several events happen at once."""
        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            return list(pool.map(lambda r: self.post(r[0], r[1], **r[2]), requests))

    def open(self, gate: str) -> None:
        (self.folder / "gates" / gate).touch()

    def log(self) -> list[list[Any]]:
        path = self.folder / "log.txt"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def rows(self, sql: str, parameters: tuple = ()) -> list[sqlite3.Row]:
        """Read the journal file from outside the app, read-only: only what it committed."""
        with contextlib.closing(sqlite3.connect(f"file:{self.app.data_dir}/journal.sqlite3?mode=ro", uri=True)) as db:
            db.row_factory = sqlite3.Row
            return db.execute(sql, parameters).fetchall()

    def event(self, event_id: int) -> sqlite3.Row:
        return self.rows("SELECT * FROM event_rows WHERE id = ?", (event_id,))[0]

    def outcomes(self, event_id: int) -> list[str]:
        """The attempts table, then the attempt the event's own row holds (running or succeeded)."""
        rows = self.rows(
            f"SELECT number, outcome FROM attempts WHERE event_id = ?1 UNION ALL "
            f"SELECT number, outcome FROM ({LAST_ATTEMPT} AND id = ?1) ORDER BY number",
            (event_id,),
        )
        return [row[1] for row in rows]

    def settled(self, event_id: int, *states: str) -> sqlite3.Row:
        wanted = states or ("succeeded",)
        return wait_until(
            lambda: (row := self.event(event_id))["state"] in wanted and row,
            message=f"event {event_id} to be {'/'.join(wanted)}",
        )


def event_id(response: httpx.Response) -> int:
    return int(response.headers["x-webhook-event-id"])


def launch(tmp_path: Path, **env: str) -> tuple[RunningApp, Path]:
    probe_dir = tmp_path / "probe"
    (probe_dir / "gates").mkdir(parents=True)
    folder = make_space(tmp_path / "space", HANDLERS)
    return start_app(folder, base_env(tmp_path / "data", PROBE_DIR=str(probe_dir), **env)), probe_dir


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    app, probe_dir = launch(tmp_path_factory.mktemp("durability"), **MAIN_ENV)
    probe = Probe(app, probe_dir)
    try:
        yield probe
    finally:
        for gate in ("ordered", *(line[2] for line in probe.log() if line[0] in ("gated", "slow"))):
            probe.open(gate)
        probe.app.stop()  # the crash test swaps in the restarted app


# --- recorded before acknowledged; 200 or 202 ----------------------------------------------------


def test_delivery_is_journaled_with_its_exact_bytes_before_the_answer(probe: Probe) -> None:
    raw = (json.dumps(payload(sha=sha("raw"), note="café \u2603"), indent=2, ensure_ascii=False) + "\n\n").encode()
    answer = probe.post(
        "fast",
        raw,
        secret=None,
        params={"secret": SECRET, "from": "hub"},
        headers={"webhook-id": "wh-raw", "user-agent": "HF-Webhooks/1", "x-request-id": "r-1"},
    )
    assert answer.status_code == 200 and answer.json() == {"sha": sha("raw")}
    row = probe.event(event_id(answer))
    assert bytes(row["body"]) == raw
    assert (row["endpoint"], row["webhook_id"], row["state"], row["query"]) == (
        "/webhooks/fast",
        "wh-raw",
        "succeeded",
        "from=hub",
    )
    assert row["received_at"] > 0
    headers = json.loads(row["headers"])
    assert headers["webhook-id"] == "wh-raw" and headers["x-request-id"] == "r-1"
    assert headers["user-agent"] == "HF-Webhooks/1" and headers["content-type"] == "application/json"
    assert "x-webhook-secret" not in headers

    # A slow handler: 202 with the event id, and at that moment the event is already on disk.
    slow_sha = sha("slow")
    answer = probe.post("gated", payload(repo="org/slow", sha=slow_sha))
    assert answer.status_code == 202
    assert answer.json() == {"status": "queued", "event_id": event_id(answer)}
    row = probe.event(event_id(answer))
    assert (
        row["state"] in ("queued", "running")
        and bytes(row["body"]) == json.dumps(payload(repo="org/slow", sha=slow_sha)).encode()
    )
    assert ["gated", "end", slow_sha] not in probe.log()  # the answer came before the handler ended
    probe.open(slow_sha)
    assert json.loads(probe.settled(event_id(answer))["result"]) == {"done": slow_sha}

    for file in probe.app.data_dir.glob("journal.sqlite3*"):
        assert SECRET.encode() not in file.read_bytes(), file.name


def test_failing_handlers_are_retried_then_left_dead_and_answered_2xx(probe: Probe) -> None:
    flaky = probe.post("flaky", payload(repo="org/flaky", sha=sha("flaky")))
    broken = probe.post("switch", payload(repo="org/broken", sha=sha("broken")))
    for answer in (flaky, broken):
        assert answer.status_code == 202 and answer.json()["status"] == "failed"
        assert "will be retried" in answer.json()["detail"]

    event = probe.settled(event_id(flaky))
    assert event["attempts"] == 3 and json.loads(event["result"]) == "third time lucky"
    assert probe.outcomes(event_id(flaky)) == ["failed", "failed", "succeeded"]
    event = probe.settled(event_id(broken), "dead")
    assert event["attempts"] == 3 and "broken until fixed" in event["error"]
    assert probe.outcomes(event_id(broken)) == ["failed", "failed", "failed"]
    assert probe.log().count(["switch", sha("broken")]) == 3


def test_blocking_handler_does_not_stop_another_endpoint_answering(probe: Probe) -> None:
    blocked = sha("blocking")
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(probe.post, "gated", payload(repo="org/blocking", sha=blocked))
        wait_until(lambda: ["gated", "start", blocked] in probe.log(), message="the blocking handler to start")
        other = probe.post("fast", payload(repo="org/other", sha=sha("other")))
        assert other.status_code == 200 and other.json() == {"sha": sha("other")}
        assert ["gated", "end", blocked] not in probe.log()  # answered while the sync handler still held
        probe.open(blocked)
        probe.settled(event_id(first.result()))


def test_no_more_than_the_configured_concurrency_run_at_once(probe: Probe) -> None:
    shas = [sha(f"concurrent {n}") for n in range(5)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        posted = pool.submit(
            probe.post_many, [("gated", payload(repo=f"org/c{n}", sha=s), {}) for n, s in enumerate(shas)]
        )

        def started() -> list[str]:
            return [line[2] for line in probe.log() if line[:2] == ["gated", "start"] and line[2] in shas]

        wait_until(lambda: len(started()) == 2, message="two handlers to start")
        states = [row[0] for row in probe.rows("SELECT state FROM events WHERE endpoint = '/webhooks/gated'")]
        assert states.count("running") == 2
        for s in shas:
            probe.open(s)
        answers = posted.result()
    for answer in answers:
        probe.settled(event_id(answer))
    running = peak = 0
    for line in probe.log():
        if line[0] == "gated" and line[2] in shas:
            running += 1 if line[1] == "start" else -1
            peak = max(peak, running)
    assert peak == 2


def test_events_of_one_repo_are_handled_one_at_a_time_in_arrival_order(probe: Probe) -> None:
    requests = [
        ("ordered", payload(repo=repo, sha=sha(f"{repo} {n}")), {"headers": {"webhook-id": f"{repo} #{n}"}})
        for n in range(6)
        for repo in ("org/one", "org/two")
    ]
    with ThreadPoolExecutor(max_workers=1) as pool:
        posted = pool.submit(probe.post_many, requests)
        wait_until(
            lambda: len(probe.rows("SELECT id FROM events WHERE endpoint = '/webhooks/ordered'")) == 12,
            message="12 recorded events",
        )
        probe.open("ordered")
        for answer in posted.result():
            probe.settled(event_id(answer))
    arrival = {
        row["webhook_id"]: row["id"] for row in probe.rows("SELECT * FROM events WHERE endpoint = '/webhooks/ordered'")
    }
    log = [line for line in probe.log() if line[0] == "ordered"]
    for repo in ("org/one", "org/two"):
        marks = [(mark, webhook_id) for _, mark, name, webhook_id in log if name == repo]
        assert len(marks) == 12
        for start, end in zip(marks[::2], marks[1::2], strict=True):
            assert start[0] == "start" and end == ("end", start[1]), marks  # never two at once
        started = [webhook_id for mark, webhook_id in marks if mark == "start"]
        assert started == sorted(started, key=arrival.__getitem__)  # in the order the journal received them
    running = peak = 0
    for line in log:  # the two repos did interleave
        running += 1 if line[1] == "start" else -1
        peak = max(peak, running)
    assert peak == 2


# --- redeliveries ---------------------------------------------------------------------------------


def test_redeliveries_are_answered_without_running_twice_unless_the_event_failed(probe: Probe) -> None:
    held = sha("held")
    original = probe.post("gated", payload(repo="org/held", sha=held), headers={"webhook-id": "wh-held"})
    assert original.status_code == 202
    while_running = probe.post("gated", payload(repo="org/held", sha=held), headers={"webhook-id": "wh-held"})
    probe.open(held)
    probe.settled(event_id(original))
    after_success = probe.post("gated", payload(repo="org/held", sha=held), headers={"webhook-id": "wh-held"})
    for answer, state in ((while_running, "running"), (after_success, "succeeded")):
        assert answer.status_code == 200
        body = answer.json()
        assert body["status"] == "duplicate" and body["original_event_id"] == event_id(original), body
        assert body["original_state"] == state
    assert probe.log().count(["gated", "start", held]) == 1

    # Without a Webhook-Id: the same payload twice is one event.
    by_body = probe.post("fast", payload(repo="org/body", sha=sha("body")))
    same_body = probe.post("fast", payload(repo="org/body", sha=sha("body")))
    assert by_body.status_code == 200 and same_body.status_code == 200
    assert same_body.json()["status"] == "duplicate"
    assert same_body.json()["original_event_id"] == event_id(by_body)
    assert probe.log().count(["fast", sha("body")]) == 1

    # A redelivery of a dead event runs it again, and answers with the handler's result.
    dead_sha = sha("dead then fixed")
    dead = probe.post("switch", payload(repo="org/dead", sha=dead_sha), headers={"webhook-id": "wh-dead"})
    probe.settled(event_id(dead), "dead")
    probe.open("fixed-" + dead_sha)
    again = probe.post("switch", payload(repo="org/dead", sha=dead_sha), headers={"webhook-id": "wh-dead"})
    assert again.status_code == 200 and again.json() == "fixed"
    assert probe.settled(event_id(dead))["attempts"] == 4
    assert probe.outcomes(event_id(dead)) == ["failed", "failed", "failed", "succeeded"]
    assert probe.event(event_id(again))["original_id"] == event_id(dead)


# --- the journal full -----------------------------------------------------------------------------


def test_full_journal_answers_503_records_nothing_and_the_app_keeps_serving(probe: Probe) -> None:
    big = payload(repo="org/big", sha=sha("big"), padding="x" * (1536 * 1024))  # under the 2 MiB body limit
    before = probe.rows("SELECT COUNT(*) FROM events")[0][0]
    answer = probe.post("fast", big, headers={"webhook-id": "wh-big"}, tag="journal full")
    assert answer.status_code == 503
    message = answer.json()["error"]
    assert "journal is full" in message and "WEBHOOK_JOURNAL_MAX_BYTES" in message
    assert probe.rows("SELECT COUNT(*) FROM events")[0][0] == before
    assert probe.rows("SELECT COUNT(*) FROM events WHERE webhook_id = 'wh-big'")[0][0] == 0
    assert ["fast", sha("big")] not in probe.log()

    small = probe.post("fast", payload(repo="org/small", sha=sha("small")))
    assert small.status_code == 200 and small.json() == {"sha": sha("small")}
    assert httpx.get(probe.app.url + "/", timeout=30).status_code == 200


def test_the_full_journal_was_the_only_5xx(probe: Probe) -> None:
    """Run last: every answer this app gave in this module, plus requests that must fail, are < 500."""
    for secret, body, status in ((None, payload(), 401), ("wrong", payload(), 403), (SECRET, b"{oops", 400)):
        assert probe.post("fast", body, secret=secret).status_code == status
    assert probe.post("fast", {"not": "a payload"}).status_code == 422
    assert probe.post("fast", payload(padding="x" * (3 * 1024 * 1024))).status_code == 413
    server_errors = [(tag, status, text) for tag, status, text in probe.answers if status >= 500]
    assert all(tag == "journal full" and status == 503 for tag, status, _ in server_errors), server_errors


# --- a crash ----------------------------------------------------------------------------------------


def test_sigkill_loses_no_acknowledged_event_and_reruns_only_the_interrupted_ones(probe: Probe) -> None:
    """Run last: it kills the module's app mid-flight and restarts it in the same folder, same settings."""
    shas = [sha(f"crash {n}") for n in range(5)]
    bodies = [json.dumps(payload(repo=f"org/crash{n}", sha=s), indent=1).encode() for n, s in enumerate(shas)]
    requests = [
        (
            "slow",
            body,
            {
                "secret": None,
                "params": {"secret": SECRET, "n": str(n)},
                "headers": {"webhook-id": f"wh-crash-{n}", "x-request-id": f"req-{n}"},
            },
        )
        for n, body in enumerate(bodies)
    ]
    answers = probe.post_many(requests)
    assert [answer.status_code for answer in answers] == [202] * 5
    ids = [event_id(answer) for answer in answers]
    wait_until(lambda: len([line for line in probe.log() if line[:2] == ["slow", "start"]]) == 2, message="2 starts")
    mid_flight = {row["id"] for row in probe.rows("SELECT id FROM events WHERE state = 'running'")}
    assert len(mid_flight) == 2 and mid_flight <= set(ids)  # WEBHOOK_CONCURRENCY=2; the other 3 are queued
    probe.app.kill()

    assert sorted(probe.event(i)["state"] for i in ids) == ["queued"] * 3 + ["running"] * 2
    probe.app = start_app(probe.app.folder, probe.app.env)
    for s in shas:
        probe.open(s)
    events = [probe.settled(i) for i in ids]

    assert [json.loads(event["result"]) for event in events] == shas  # every acknowledged event was handled
    assert "Resuming 5 event(s) from the journal: 2 interrupted when the app stopped, 3 queued" in probe.app.logs()
    log = probe.log()
    for n, (event_id_, s) in enumerate(zip(ids, shas, strict=True)):
        starts = [line for line in log if line[:3] == ["slow", "start", s]]
        if event_id_ in mid_flight:  # ran once more, and its first attempt is marked interrupted
            assert probe.outcomes(event_id_) == ["interrupted", "succeeded"]
            assert len(starts) == 2 and starts[0] == starts[1]
        else:
            assert probe.outcomes(event_id_) == ["succeeded"] and len(starts) == 1
        for _, _, _, seen_id, body_hash, headers, query in starts:
            # The request is rebuilt from the journal: same body, headers but the secret, no secret param.
            assert seen_id == event_id_ and body_hash == hashlib.sha256(bodies[n]).hexdigest()
            assert query == {"n": str(n)}
            assert headers["webhook-id"] == f"wh-crash-{n}" and headers["x-request-id"] == f"req-{n}"
            assert "x-webhook-secret" not in headers
        assert bytes(probe.event(event_id_)["body"]) == bodies[n]
        # The background task ran after the handler, inside the attempt: not yet recorded as over. (This
        # reader is another connection: it may not see the claim yet, committed with a later group.)
        [background] = [line for line in log if line[:3] == ["slow", "background", s]]
        assert background[3] in ("queued", "running"), background
