"""Tests of lib.receiver.auth, body and parsing: the sans-I/O checks the request path runs before a handler.

The same behaviours over real HTTP are in test_e2e_http.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lib.core.errors import InvalidSecret, MalformedPayload, MissingSecret, PayloadTooLarge
from lib.core.payload import WebhookPayload
from lib.receiver.auth import verify_secret
from lib.receiver.body import check_declared_length, read_limited
from lib.receiver.delivery import build_delivery, without_secret
from lib.receiver.parsing import MAX_REPORTED_ERRORS, BadRequest, parse_payload, payload_or_raw

FIXTURES = Path(__file__).parent / "fixtures"
VALID = (FIXTURES / "discussion-create-pr-opened.json").read_bytes()

# --- verify_secret: the truth table --------------------------------------------------------------

OK, MISSING, INVALID = "ok", 401, 403


@pytest.mark.parametrize(
    "secrets, header, query, expected",
    [
        # no secret configured: always open
        ((), None, None, OK),
        ((), "anything", "anything", OK),
        # one secret
        (("s3cret",), None, None, MISSING),
        (("s3cret",), "s3cret", None, OK),
        (("s3cret",), None, "s3cret", OK),
        (("s3cret",), "wrong", None, INVALID),
        (("s3cret",), None, "wrong", INVALID),
        (("s3cret",), "", None, INVALID),
        (("s3cret",), None, "", INVALID),
        (("s3cret",), "wrong", "s3cret", OK),
        (("s3cret",), "s3cret", "wrong", OK),
        (("s3cret",), "wrong", "wrong", INVALID),
        (("s3cret",), "S3CRET", None, INVALID),
        (("s3cret",), "s3cret ", None, INVALID),
        (("s3cret",), "s3cre", None, INVALID),
        (("s3cret",), "s3crett", None, INVALID),
        # rotation: every configured secret is accepted
        (("old", "new"), "old", None, OK),
        (("old", "new"), "new", None, OK),
        (("old", "new"), None, "new", OK),
        (("old", "new"), "old,new", None, INVALID),
        (("old", "new"), "other", None, INVALID),
        # values that are not ASCII: refused, never a crash
        (("s3cret",), "sécret", None, INVALID),
        (("s3cret",), "\udcff\udcfe", None, INVALID),
        (("s3cret",), "ÿþ", None, INVALID),
        (("s3cret",), None, "\ufffd", INVALID),
        (("s3cret",), "\x00", None, INVALID),
    ],
)
def test_verify_secret(secrets: tuple[str, ...], header: str | None, query: str | None, expected: object) -> None:
    if expected == OK:
        verify_secret(secrets, header=header, query=query)
        return
    error = MissingSecret if expected == MISSING else InvalidSecret
    with pytest.raises(error) as caught:
        verify_secret(secrets, header=header, query=query)
    assert caught.value.status_code == expected
    for secret in secrets:
        assert secret not in caught.value.message


def test_missing_secret_message_says_where_to_send_it() -> None:
    with pytest.raises(MissingSecret) as caught:
        verify_secret(("s3cret",), header=None, query=None)
    assert "X-Webhook-Secret" in caught.value.message
    assert "?secret=" in caught.value.message


def test_invalid_secret_message_gives_the_fix_without_the_secret() -> None:
    with pytest.raises(InvalidSecret) as caught:
        verify_secret(("s3cret",), header="s3cre", query=None)
    assert "WEBHOOK_SECRET" in caught.value.message
    assert "s3cre" not in caught.value.message


# --- declared length -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "0", "10", "1024"])
def test_declared_length_within_the_limit(value: str | None) -> None:
    check_declared_length(value, limit=1024)


@pytest.mark.parametrize("value", ["1025", "99999999999999999999999"])
def test_declared_length_over_the_limit_is_413_before_reading(value: str) -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        check_declared_length(value, limit=1024)
    assert caught.value.status_code == 413
    assert "1024" in caught.value.message


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "", "0x10", "+5", "1_0", "²"])
def test_declared_length_that_is_not_a_byte_count_is_400(value: str) -> None:
    with pytest.raises(BadRequest) as caught:
        check_declared_length(value, limit=1024)
    assert caught.value.status_code == 400
    assert "Content-Length" in caught.value.message


# --- streamed body -----------------------------------------------------------------------------------


async def chunks(sizes: list[int], consumed: list[int]) -> AsyncIterator[bytes]:
    for size in sizes:
        consumed.append(size)
        yield b"x" * size


def read(sizes: list[int], limit: int) -> tuple[bytes | PayloadTooLarge, list[int]]:
    consumed: list[int] = []
    try:
        return asyncio.run(read_limited(chunks(sizes, consumed), limit=limit)), consumed
    except PayloadTooLarge as exc:
        return exc, consumed


def test_a_body_exactly_at_the_limit_is_read() -> None:
    body, consumed = read([400, 600], limit=1000)
    assert body == b"x" * 1000
    assert consumed == [400, 600]


def test_a_streamed_body_stops_being_read_once_past_the_limit() -> None:
    error, consumed = read([600, 401, 10_000, 10_000], limit=1000)
    assert isinstance(error, PayloadTooLarge)
    assert error.status_code == 413
    assert consumed == [600, 401]  # the remaining 20 kB were never pulled


def test_an_empty_stream_is_an_empty_body() -> None:
    assert read([], limit=10) == (b"", [])


# --- parse_payload -----------------------------------------------------------------------------------


def test_a_recorded_payload_parses() -> None:
    payload = parse_payload(VALID)
    assert isinstance(payload, WebhookPayload)
    assert payload.event.scope == "discussion"


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"", "empty"),
        (b"  \n\t ", "empty"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b'{"event": "\xff"}', "not valid JSON"),
        (b"\x00\x01\x02", "not valid JSON"),
        (b'{"event": {', "not valid JSON"),
        (b'{"a": 1,}', "trailing comma"),
        (b"[" * 100_000 + b"]" * 100_000, "recursion limit"),
        (b'{"x":' * 10_000 + b"1" + b"}" * 10_000, "recursion limit"),
        (b"9" * 5000, "not valid JSON"),
        (b'{"repo": {"name": "a/\\ud800"}}', "not valid JSON"),
    ],
)
def test_bodies_that_are_not_json_are_400_with_a_precise_message(body: bytes, fragment: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_payload(body)
    assert caught.value.status_code == 400
    assert fragment in caught.value.message


def test_a_json_syntax_error_says_where() -> None:
    with pytest.raises(BadRequest, match=r"line 1 column \d+"):
        parse_payload(b'{"event": {"action" "update"}}')


@pytest.mark.parametrize("body", [b"null", b"[]", b"[1, 2]", b'"text"', b"42", b"1e999999", b"true"])
def test_json_that_is_not_an_object_is_422(body: bytes) -> None:
    with pytest.raises(MalformedPayload) as caught:
        parse_payload(body)
    assert caught.value.status_code == 422
    assert not isinstance(caught.value, BadRequest)
    assert "(body): Input should be an object" in caught.value.message


def test_missing_keys_are_listed() -> None:
    with pytest.raises(MalformedPayload) as caught:
        parse_payload(b"{}")
    message = caught.value.message
    assert caught.value.status_code == 422
    for key in ("event: Field required", "repo: Field required", "webhook: Field required"):
        assert key in message


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (("event",), "update", "event: Input should be an object"),
        (("event", "action"), 1, "event.action: Input should be a valid string"),
        (("event", "scope"), None, "event.scope: Input should be a valid string"),
        (("repo",), [], "repo: Input should be an object"),
        (("repo", "name"), {"x": 1}, "repo.name: Input should be a valid string"),
        (("repo", "id"), 12, "repo.id: Input should be a valid string"),
        (("repo", "private"), "maybe", "repo.private: Input should be a valid boolean"),
        (("webhook", "version"), "three", "webhook.version: Input should be a valid integer"),
        (("discussion", "num"), "nineteen", "discussion.num: Input should be a valid integer"),
        (("discussion", "author"), "user", "discussion.author: Input should be an object"),
        (("comment", "hidden"), [], "comment.hidden: Input should be a valid boolean"),
        (("updatedRefs",), {"ref": "x"}, "updatedRefs: Input should be a valid array"),
    ],
)
def test_a_wrong_type_at_any_level_is_422_naming_the_field(path: tuple[str, ...], value: object, expected: str) -> None:
    body = json.loads(VALID)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value

    with pytest.raises(MalformedPayload) as caught:
        parse_payload(json.dumps(body).encode())
    assert caught.value.status_code == 422
    assert expected in caught.value.message


def test_many_problems_are_capped_with_a_count() -> None:
    body = {"event": {"action": 1, "scope": 2}, "repo": {"id": 3, "name": 4, "type": 5}, "webhook": {"id": 6}}
    body["updatedRefs"] = [{"ref": i} for i in range(20)]

    with pytest.raises(MalformedPayload) as caught:
        parse_payload(json.dumps(body).encode())
    message = caught.value.message
    assert message.count(": Input should be") + message.count(": Field required") == MAX_REPORTED_ERRORS
    assert "more)" in message


def test_the_error_does_not_echo_input_values() -> None:
    body = json.loads(VALID)
    body["repo"]["private"] = "leaky-value-123"
    with pytest.raises(MalformedPayload) as caught:
        parse_payload(json.dumps(body).encode())
    assert "leaky-value-123" not in caught.value.message


def test_a_huge_integer_inside_a_payload_is_accepted() -> None:
    body = json.loads(VALID)
    body["webhook"]["version"] = 10**30
    assert parse_payload(json.dumps(body).encode()).webhook.version == 10**30


# --- the secret never reaches the journal ------------------------------------------------------------


def test_the_secret_query_parameter_is_dropped() -> None:
    assert without_secret("secret=s3cret&a=1&secret=other&b=") == "a=1&b="
    assert without_secret("secret=s3cret") == ""


def test_the_recorded_delivery_holds_no_secret() -> None:
    headers = {"x-webhook-secret": "s3cret", "content-type": "application/json", "webhook-id": "abc"}
    delivery = build_delivery(
        endpoint="/webhooks/x",
        headers=headers,
        query_string="secret=s3cret&keep=1",
        body=VALID,
        payload=parse_payload(VALID),
        order_per_repo=True,
    )
    assert "s3cret" not in repr(delivery)
    assert delivery.headers == {"content-type": "application/json", "webhook-id": "abc"}
    assert delivery.query == "keep=1"


# --- a handler without a payload: raw deliveries -----------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"  \n", b"not json", b'{"hello": "world"}', b"[1, 2]"])
def test_a_body_that_is_no_payload_is_a_raw_delivery_for_a_handler_that_takes_none(body: bytes) -> None:
    assert payload_or_raw(body) is None
    delivery = build_delivery(
        endpoint="/webhooks/ping",
        headers={"content-type": "text/plain", "x-webhook-test": "1"},
        query_string="secret=s3&x=1",
        body=body,
        payload=None,
        order_per_repo=True,
    )
    assert (delivery.scope, delivery.action, delivery.repo_name, delivery.order_key) == ("raw", "post", "", None)
    assert delivery.is_raw and delivery.is_test and delivery.body == body and delivery.query == "x=1"
    again = build_delivery(
        endpoint="/webhooks/ping", headers={}, query_string="", body=body, payload=None, order_per_repo=True
    )
    assert again.delivery_key != delivery.delivery_key  # no Webhook-Id: each POST is its own event


def test_a_raw_delivery_with_a_webhook_id_is_keyed_by_it() -> None:
    delivery = build_delivery(
        endpoint="/webhooks/ping",
        headers={"webhook-id": "abc"},
        query_string="",
        body=b"",
        payload=None,
        order_per_repo=True,
    )
    assert delivery.delivery_key == "id:abc"


def test_a_payload_is_still_a_hub_event_for_a_handler_that_takes_none() -> None:
    payload = payload_or_raw(VALID)
    assert payload is not None and payload.event.scope == "discussion"
