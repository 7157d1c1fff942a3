"""The real app (`python app.py`) over real HTTP: authentication before the body, size limits,
answers to broken input (never a 5xx), forward compatibility, event filters, the example handler,
and the secret never leaking. One app process serves the whole module.
"""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from apprunner import FIXTURES, ROOT, RunningApp, fixture_body, fixture_json, running_app, wait_until

OLD_SECRET = "rotated-0ld-Secret"
SECRET = "Sup3r-Secret-Value-XYZ"
SECRETS = (OLD_SECRET, SECRET)
LIMIT = 1024 * 1024  # the default WEBHOOK_MAX_BODY_BYTES
FIXTURE_NAMES = sorted(path.name for path in FIXTURES.glob("*.json"))
VALID = fixture_body("discussion-create-pr-opened.json")

HANDLERS = {
    "log_events.py": (ROOT / "handlers" / "log_events.py").read_text(),
    "_shared.py": '''\
"""A helper module: not an endpoint, importable by handlers."""

def describe(payload):
    return {"scope": payload.event.scope, "action": payload.event.action}
''',
    "echo.py": '''\
"""Echoes what the handler sees, so the 200 body proves it."""
from fastapi import Request

from handlers._shared import describe
from lib import WebhookPayload


def handle(payload: WebhookPayload, request: Request):
    return {
        **describe(payload),
        "repo_type": payload.repo.type,
        "repo_name": payload.repo.name,
        "head_sha": payload.repo.head_sha,
        "webhook_version": payload.webhook.version,
        "discussion_status": payload.discussion.status if payload.discussion else None,
        "extra": payload.model_extra,
        "event_extra": payload.event.model_extra,
        "repo_extra": payload.repo.model_extra,
        "headers": dict(request.headers),
        "query": request.url.query,
    }
''',
    "only_discussions.py": '''\
"""Runs for discussions only."""
from lib import Events, log

EVENTS = Events(scope="discussion")


def handle(payload):
    log.info("only_discussions ran for %s", payload.event.scope)
    return {"ran": True}
''',
    "crashes.py": '''\
"""Always raises."""


def handle(payload):
    raise RuntimeError("handler bug")
''',
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with running_app(
        tmp_path_factory.mktemp("e2e"),
        handlers=HANDLERS,
        WEBHOOK_SECRET=f" {OLD_SECRET} , {SECRET} ",
        WEBHOOK_MAX_ATTEMPTS="1",
    ) as running:
        yield running


def post(app: RunningApp, path: str, body: bytes | dict, **kwargs: Any) -> httpx.Response:
    """POST as the Hub does: the secret in the header and a `Webhook-Id` unique to this delivery
    (without it, identical bodies would be answered as redeliveries of the first)."""
    kwargs.setdefault("secret", SECRET)
    kwargs["headers"] = {"webhook-id": uuid.uuid4().hex, **dict(kwargs.get("headers", {}))}
    return app.post(path, body, **kwargs)


def journal_rows(app: RunningApp, sql: str, parameters: tuple = ()) -> list[sqlite3.Row]:
    db = sqlite3.connect(f"file:{app.data_dir / 'journal.sqlite3'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return db.execute(sql, parameters).fetchall()
    finally:
        db.close()


def event_state(app: RunningApp, event_id: int) -> str:
    [row] = journal_rows(app, "SELECT state FROM events WHERE id = ?", (event_id,))
    return row["state"]


def raw_exchange(
    app: RunningApp, head: str, parts: Sequence[bytes] = (), *, timeout: float = 15.0
) -> tuple[int, bytes]:
    """Send a hand-written request (possibly incomplete) and return the status and body of the answer.

    The answer must come while the connection is still open and the request unfinished: that is
    what proves the server answered without waiting for (or reading) the rest.
    """
    url = urllib.parse.urlsplit(app.url)
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode("latin-1"))
        for part in parts:
            sock.sendall(part)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        head_bytes, _, rest = received.partition(b"\r\n\r\n")
        status = int(head_bytes.split(b" ", 2)[1])
        length = re.search(rb"(?i)content-length: *(\d+)", head_bytes)
        while length and len(rest) < int(length.group(1)):
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, rest


def request_head(*lines: str) -> str:
    """The head of a POST to the echo endpoint, with extra header lines."""
    return (
        "POST /webhooks/echo HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\n"
        + "".join(line + "\n" for line in lines)
        + "\n"
    )


# --- authentication ----------------------------------------------------------------------------------


def test_a_valid_secret_in_the_header_is_accepted(app: RunningApp) -> None:
    response = post(app, "/webhooks/echo", VALID)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "discussion"


def test_every_configured_secret_is_accepted_for_rotation(app: RunningApp) -> None:
    for secret in SECRETS:
        assert post(app, "/webhooks/echo", VALID, secret=secret).status_code == 200


def test_the_secret_in_the_query_is_accepted(app: RunningApp) -> None:
    response = post(app, f"/webhooks/echo?secret={SECRET}&other=1", VALID, secret=None)
    assert response.status_code == 200, response.text
    assert response.json()["query"] == "other=1"


def test_a_missing_secret_is_401(app: RunningApp) -> None:
    response = post(app, "/webhooks/echo", VALID, secret=None)
    assert response.status_code == 401
    assert "X-Webhook-Secret" in response.json()["error"]


@pytest.mark.parametrize("secret", ["wrong", "", SECRET.lower(), SECRET[:-1], f"{OLD_SECRET},{SECRET}"])
def test_a_wrong_secret_is_403(app: RunningApp, secret: str) -> None:
    response = post(app, "/webhooks/echo", VALID, secret=secret)
    assert response.status_code == 403
    assert "does not match" in response.json()["error"]


def test_a_non_ascii_secret_header_is_403_not_a_crash(app: RunningApp) -> None:
    for value in (b"\xff\xfe\x80", "sécret".encode(), b"\xc3"):
        response = httpx.post(app.url + "/webhooks/echo", content=VALID, headers={"x-webhook-secret": value})
        assert response.status_code == 403


@pytest.mark.parametrize("query", ["secret=%ff%fe", "secret=s%C3%A9cret", "secret=", "secret=%00"])
def test_a_strange_secret_in_the_query_is_403(app: RunningApp, query: str) -> None:
    response = httpx.post(f"{app.url}/webhooks/echo?{query}", content=VALID)
    assert response.status_code == 403


@pytest.mark.parametrize("body", [b"\xff\x00garbage", b"{not json", b"{}", b"", b"[" * 5000])
def test_an_unauthenticated_caller_learns_nothing_about_parsing(app: RunningApp, body: bytes) -> None:
    missing = post(app, "/webhooks/echo", body, secret=None)
    wrong = post(app, "/webhooks/echo", body, secret="nope")

    assert (missing.status_code, wrong.status_code) == (401, 403)
    for response in (missing, wrong):
        text = response.text
        assert "JSON" not in text
        assert "Field required" not in text
        assert "payload" not in text.lower()


def test_the_secret_is_checked_before_the_body_is_read(app: RunningApp) -> None:
    # The body is announced but never sent: an answer can only come from checking the headers.
    status, body = raw_exchange(app, request_head("Content-Length: 5000"))
    assert status == 401
    assert b"X-Webhook-Secret" in body

    status, _ = raw_exchange(app, request_head("Content-Length: 5000", "X-Webhook-Secret: wrong"))
    assert status == 403


# --- size limits ----------------------------------------------------------------------------------------


def padded(size: int) -> bytes:
    """A valid payload of exactly `size` bytes (an unknown key holds the padding)."""
    body = json.loads(VALID)
    body["padding"] = ""
    base = len(json.dumps(body).encode())
    body["padding"] = "x" * (size - base)
    encoded = json.dumps(body).encode()
    assert len(encoded) == size
    return encoded


def test_a_body_exactly_at_the_limit_is_accepted(app: RunningApp) -> None:
    response = post(app, "/webhooks/log_events", padded(LIMIT))
    assert response.status_code == 200, response.text


def test_a_body_one_byte_over_the_limit_is_413(app: RunningApp) -> None:
    response = post(app, "/webhooks/log_events", padded(LIMIT + 1))
    assert response.status_code == 413
    assert str(LIMIT) in response.json()["error"]


def test_an_oversized_content_length_is_refused_before_the_body_is_sent(app: RunningApp) -> None:
    head = request_head(f"Content-Length: {10 * LIMIT}", f"X-Webhook-Secret: {SECRET}")
    status, body = raw_exchange(app, head)  # not one byte of the 10 MiB is sent
    assert status == 413
    assert str(LIMIT) in json.loads(body)["error"]


def test_a_chunked_body_is_cut_off_once_past_the_limit(app: RunningApp) -> None:
    head = request_head("Transfer-Encoding: chunked", f"X-Webhook-Secret: {SECRET}")
    piece = b"x" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    # Just over the limit, and the final zero-length chunk never comes: the server must answer anyway.
    status, body = raw_exchange(app, head, [chunk] * (LIMIT // len(piece) + 1))
    assert status == 413
    assert str(LIMIT) in json.loads(body)["error"]


def test_a_chunked_body_under_the_limit_is_read(app: RunningApp) -> None:
    def stream() -> Iterator[bytes]:
        for start in range(0, len(VALID), 100):
            yield VALID[start : start + 100]

    response = httpx.post(
        app.url + "/webhooks/echo", content=stream(), headers={"x-webhook-secret": SECRET}
    )  # a generator: httpx sends it chunked, without Content-Length
    assert response.status_code == 200, response.text


# --- broken input: precise 4xx, never a 5xx --------------------------------------------------------------


def mutated(path: tuple[str, ...], value: Any) -> bytes:
    body = json.loads(VALID)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(body).encode()


BROKEN_BODIES: list[tuple[str, bytes, int]] = [
    ("empty", b"", 400),
    ("whitespace", b" \r\n ", 400),
    ("binary", bytes(range(256)) * 4, 400),
    ("not utf-8", b'{"event": "\xff\xfe"}', 400),
    ("latin-1 text", '{"repo": "caf\xe9"}'.encode("latin-1"), 400),
    ("truncated", VALID[: len(VALID) // 2], 400),
    ("trailing garbage", VALID + b"}", 400),
    ("huge number", b"9" * 10_000, 400),
    ("deeply nested arrays", b"[" * 50_000 + b"]" * 50_000, 400),
    ("deeply nested objects", b'{"a":' * 20_000 + b"1" + b"}" * 20_000, 400),
    ("lone surrogate", VALID.replace(b'"openai-community/gpt2"', b'"\\ud800"', 1), 400),
    ("null", b"null", 422),
    ("array", b"[1, 2, 3]", 422),
    ("array of payloads", b"[" + VALID + b"]", 422),
    ("string", b'"hello"', 422),
    ("number", b"1e999999", 422),
    ("true", b"true", 422),
    ("empty object", b"{}", 422),
    ("event is a string", mutated(("event",), "update"), 422),
    ("action is a number", mutated(("event", "action"), 7), 422),
    ("scope is null", mutated(("event", "scope"), None), 422),
    ("repo is a list", mutated(("repo",), []), 422),
    ("repo name is an object", mutated(("repo", "name"), {"a": 1}), 422),
    ("repo owner is a string", mutated(("repo", "owner"), "someone"), 422),
    ("webhook version is text", mutated(("webhook", "version"), "three"), 422),
    ("webhook is missing", json.dumps({k: v for k, v in json.loads(VALID).items() if k != "webhook"}).encode(), 422),
    ("discussion num is text", mutated(("discussion", "num"), "x"), 422),
    ("discussion url is a string", mutated(("discussion", "url"), "http://x"), 422),
    ("comment hidden is a list", mutated(("comment", "hidden"), []), 422),
    ("comment author is null", mutated(("comment", "author"), None), 422),
    ("updatedRefs is an object", mutated(("updatedRefs",), {"ref": "refs/heads/main"}), 422),
    ("updatedRefs item is a string", mutated(("updatedRefs",), ["refs/heads/main"]), 422),
]


@pytest.mark.parametrize("body, status", [(b, s) for _, b, s in BROKEN_BODIES], ids=[n for n, _, _ in BROKEN_BODIES])
def test_broken_bodies_get_a_precise_4xx(app: RunningApp, body: bytes, status: int) -> None:
    for endpoint in ("/webhooks/echo", "/webhooks/only_discussions"):
        response = post(app, endpoint, body)
        assert response.status_code == status, response.text
        error = response.json()["error"]
        if status == 400:
            assert "empty" in error or "not valid JSON" in error
        else:
            assert "not a Hub webhook payload" in error


def test_a_422_lists_every_problem(app: RunningApp) -> None:
    response = post(app, "/webhooks/echo", b'{"event": {"action": 1}, "repo": {"id": "x"}}')
    assert response.status_code == 422
    error = response.json()["error"]
    for problem in (
        "event.action: Input should be a valid string",
        "event.scope: Field required",
        "repo.name: Field required",
        "repo.type: Field required",
        "webhook: Field required",
    ):
        assert problem in error


def test_a_400_says_where_the_json_breaks(app: RunningApp) -> None:
    response = post(app, "/webhooks/echo", b'{"event": {"action": "update",, }}')
    assert response.status_code == 400
    assert re.search(r"line 1 column \d+", response.json()["error"])


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "0x10", "99999999999999999999999999"])
def test_a_bad_content_length_header_is_400(app: RunningApp, value: str) -> None:
    status, _ = raw_exchange(app, request_head(f"Content-Length: {value}", f"X-Webhook-Secret: {SECRET}"))
    assert status == 400


def test_other_content_types_and_header_bytes_do_not_matter(app: RunningApp) -> None:
    headers = {"content-type": "text/plain", "user-agent": b"agent \xe9\xff"}
    response = post(app, "/webhooks/echo", VALID, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["headers"]["user-agent"] == "agent \xe9\xff"  # latin-1, as HTTP carries it


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_another_method_on_a_webhook_is_405(app: RunningApp, method: str) -> None:
    response = httpx.request(method, app.url + "/webhooks/echo", headers={"x-webhook-secret": SECRET})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize("path", ["/webhooks/nope", "/webhooks/_shared", "/webhooks/", "/webhooks/echo/extra"])
def test_an_unknown_endpoint_is_404(app: RunningApp, path: str) -> None:
    assert post(app, path, VALID).status_code == 404


def test_a_trailing_slash_reaches_the_same_endpoint(app: RunningApp) -> None:
    """A URL pasted into the Hub with a trailing slash must not turn every delivery into a 404."""
    response = post(app, "/webhooks/echo/", VALID)
    assert response.status_code == 200, response.text
    assert event_state(app, int(response.headers["x-webhook-event-id"])) == "succeeded"


def test_a_crashing_handler_is_not_a_5xx(app: RunningApp) -> None:
    response = post(app, "/webhooks/crashes", VALID)
    assert response.status_code == 202
    assert response.json()["status"] == "dead"
    event_id = int(response.headers["x-webhook-event-id"])
    assert event_state(app, event_id) == "dead"


# --- forward compatibility ------------------------------------------------------------------------------


def future_payload() -> dict[str, Any]:
    body = fixture_json("discussion-create-pr-opened.json")
    body["event"] = {"action": "lock", "scope": "repo.config.dois", "actor": {"id": "x"}}
    body["webhook"]["version"] = 4
    body["repo"]["type"] = "kernel"
    body["repo"]["license"] = "apache-2.0"
    body["discussion"]["status"] = "locked"
    body["reactions"] = [{"emoji": "🚀", "count": 2}]
    body["newTopLevel"] = {"nested": [1, 2, {"deep": None}]}
    return body


def test_unknown_future_fields_and_kinds_reach_the_handler(app: RunningApp) -> None:
    response = post(app, "/webhooks/echo", future_payload())

    assert response.status_code == 200, response.text
    seen = response.json()
    assert (seen["scope"], seen["action"]) == ("repo.config.dois", "lock")
    assert (seen["repo_type"], seen["webhook_version"], seen["discussion_status"]) == ("kernel", 4, "locked")
    assert seen["extra"] == {
        "reactions": [{"emoji": "🚀", "count": 2}],
        "newTopLevel": {"nested": [1, 2, {"deep": None}]},
    }
    assert seen["event_extra"] == {"actor": {"id": "x"}}
    assert seen["repo_extra"] == {"license": "apache-2.0"}


def test_a_future_scope_matches_its_parent_in_a_filter(app: RunningApp) -> None:
    body = future_payload()
    body["event"]["scope"] = "discussion.reaction"
    response = post(app, "/webhooks/only_discussions", body)
    assert response.status_code == 200
    assert response.json() == {"ran": True}


def test_head_sha_reaches_the_handler(app: RunningApp) -> None:
    body = fixture_json("repo-content-update-space-new-pr-ref.json")
    response = post(app, "/webhooks/echo", body)
    assert response.json()["head_sha"] == body["repo"]["headSha"]


# --- event filters -----------------------------------------------------------------------------------------


def test_an_unwanted_event_is_acknowledged_skipped_and_not_run(app: RunningApp) -> None:
    marker = "only_discussions ran for repo.content"
    response = post(app, "/webhooks/only_discussions", fixture_body("repo-content-update-space-new-pr-ref.json"))

    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "skipped"
    assert answer["reason"] == "scope 'repo.content' is not one of ['discussion']"
    assert event_state(app, answer["event_id"]) == "skipped"
    assert marker not in app.logs()


def test_a_wanted_event_runs(app: RunningApp) -> None:
    response = post(app, "/webhooks/only_discussions", fixture_body("discussion-create-with-comment.json"))
    assert response.status_code == 200
    assert response.json() == {"ran": True}
    event_id = int(response.headers["x-webhook-event-id"])
    assert event_state(app, event_id) == "succeeded"
    assert f"[event {event_id}]: only_discussions ran for discussion" in app.logs()


# --- the example handler -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_log_events_handles_every_recorded_payload(app: RunningApp, name: str) -> None:
    body = fixture_json(name)
    response = post(app, "/webhooks/log_events", fixture_body(name))

    assert response.status_code == 200, response.text
    summary = response.json()["summary"]
    assert summary.startswith(f"{body['event']['scope']}/{body['event']['action']} on {body['repo']['name']}")
    event_id = int(response.headers["x-webhook-event-id"])
    line = f"handlers.log_events [event {event_id}]: {summary}"  # the handler's own logger
    wait_until(lambda: line in app.logs(), timeout=10, message=f"log line {line!r}")


def test_log_events_summarises_commits_and_refs(app: RunningApp) -> None:
    response = post(app, "/webhooks/log_events", fixture_body("repo-content-update-space-new-pr-ref.json"))
    summary = response.json()["summary"]
    assert " at 5e7f29f" in summary
    assert "by refs/pr/5" in summary


# --- the secret never leaks -----------------------------------------------------------------------------------


def test_the_handler_sees_the_request_without_the_secret(app: RunningApp) -> None:
    response = post(
        app,
        f"/webhooks/echo?secret={OLD_SECRET}&keep=me",
        VALID,
        headers={"webhook-id": "delivery-123", "user-agent": "hub-test"},
    )
    seen = response.json()
    assert seen["query"] == "keep=me"
    assert seen["headers"]["webhook-id"] == "delivery-123"
    assert seen["headers"]["user-agent"] == "hub-test"
    assert "x-webhook-secret" not in seen["headers"]
    assert SECRET not in response.text and OLD_SECRET not in response.text


def test_the_secret_appears_nowhere(app: RunningApp) -> None:
    # Every way of sending it, right and wrong, then every place it could end up.
    post(app, f"/webhooks/log_events?secret={SECRET}", VALID, secret=None)
    post(app, f"/webhooks/log_events?secret={urllib.parse.quote(OLD_SECRET)}", VALID, secret=OLD_SECRET)
    post(app, f"/webhooks/echo?secret={SECRET}", b"{broken", secret=None)
    post(app, f"/webhooks/echo?secret={SECRET}x", VALID, secret=None)
    post(app, "/webhooks/echo", VALID, secret=SECRET + "x")
    post(app, f"/webhooks/nope?secret={SECRET}", VALID)
    httpx.get(f"{app.url}/webhooks/echo?secret={SECRET}")
    answers = [
        post(app, f"/webhooks/echo?secret={SECRET}", VALID, secret=SECRET).text,
        httpx.get(app.url + "/config").text,
        httpx.get(app.url + "/").text,
        httpx.get(app.url + "/openapi.json").text,
    ]

    places = {"logs": app.logs(), **{f"answer {i}": text for i, text in enumerate(answers)}}
    for name, text in places.items():
        for secret in SECRETS:
            assert secret not in text, f"secret found in {name}"
    files = sorted(app.data_dir.rglob("*"))
    assert any(path.name == "journal.sqlite3" for path in files)
    for path in files:
        if path.is_file():
            data = path.read_bytes()
            for secret in SECRETS:
                assert secret.encode() not in data, f"secret found in {path}"
                assert urllib.parse.quote(secret).encode() not in data, f"secret found in {path}"
    [row] = journal_rows(app, "SELECT COUNT(*) AS n FROM events WHERE query LIKE '%secret%'")
    assert row["n"] == 0


def test_each_acknowledgement_is_logged_at_debug_only(app: RunningApp, tmp_path: Path) -> None:
    """The console lists every delivery; the Space's logs get a line per delivery only when asked."""
    quiet = post(app, "/webhooks/echo", VALID)
    assert quiet.status_code == 200
    routine = f"/webhooks/echo discussion/create on {json.loads(VALID)['repo']['name']}: new in"
    with running_app(tmp_path, handlers=HANDLERS, WEBHOOK_SECRET=SECRET, WEBHOOK_LOG_LEVEL="DEBUG") as verbose:
        answer = post(verbose, "/webhooks/echo", VALID)
        assert answer.status_code == 200
        event_id = answer.headers["x-webhook-event-id"]
        wait_until(lambda: f"[event {event_id}]: {routine}" in verbose.logs(), message="the DEBUG line")
    assert routine not in app.logs()
