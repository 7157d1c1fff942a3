"""A stranger without the secret cannot lock the operator out of the console, nor fill its log.

Wrong secrets are counted per client, by the address the trusted proxy saw: the entry the Hub's
proxy adds to `X-Forwarded-For` in a Space, the socket's peer where no proxy is trusted. Nothing
the client chooses (its own `X-Forwarded-For` entries, its Gradio session) moves its count, and
nothing it sends adds to anyone else's. Checked on the functions that decide the address, on the
page's middleware, and on the real app over HTTP, where clients bound to other loopback addresses
play the operator and a proxy (`FORWARDED_ALLOW_IPS` names the proxy's address).

A call to a console listener with inputs the page never sends (too few, of the wrong kind, no
grant) is answered plainly, in at most one log line, never with a traceback.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from apprunner import SECRET, RunningApp, fixture_body, running_app
from test_console_access import COUNTING_HANDLER, MARKER_REPO, Clock, GradioCaller

from lib.core.forwarded import TrustedProxies, client_address, default_trusted_proxies
from lib.core.settings import Settings
from lib.receiver.proxy_headers import ProxyHeaders
from lib.ui.access import AccessControl, AccessDenied, AttemptLimiter, TooManyAttempts
from lib.ui.console_actions import INVALID_CALL_MESSAGE, LOCKED_MESSAGE

PROXY = "127.0.0.3"
"""The simulated proxy's address: the app is started with FORWARDED_ALLOW_IPS set to it."""

# --- which address is trusted when ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "client"),
    [
        # No trusted proxy in front: the peer is the client, whatever its header says.
        ("203.0.113.7", "198.51.100.1", "10.0.0.1", "203.0.113.7"),
        ("127.0.0.1", "198.51.100.1", "", "127.0.0.1"),
        # A trusted proxy: the entry it added, the rightmost; the client wrote the others.
        ("10.0.0.1", "198.51.100.1", "10.0.0.1", "198.51.100.1"),
        ("10.0.0.1", "6.6.6.6, 10.0.0.1, 198.51.100.1", "10.0.0.1", "198.51.100.1"),
        ("10.0.0.1", "", "10.0.0.1", "10.0.0.1"),
        ("10.0.0.1", None, "10.0.0.1", "10.0.0.1"),
        # Several trusted proxies (a network): read leftwards past each, up to the first stranger.
        ("10.9.9.9", "6.6.6.6, 198.51.100.1, 10.0.0.2", "10.0.0.0/8", "198.51.100.1"),
        ("10.9.9.9", "10.0.0.5, 10.0.0.2", "10.0.0.0/8", "10.0.0.5"),
        # `*` (a Space): whichever peer connects is one proxy, and no entry is one, not even loopback.
        ("172.16.5.4", "6.6.6.6, 198.51.100.1", "*", "198.51.100.1"),
        ("172.16.5.4", "198.51.100.1, 127.0.0.1", "*", "127.0.0.1"),
        ("172.16.5.4", None, "*", "172.16.5.4"),
        # How entries are written: ports, brackets, IPv4-mapped IPv6, text that is no address.
        ("10.0.0.1", "198.51.100.1:4711", "10.0.0.1", "198.51.100.1"),
        ("10.0.0.1", "[2001:db8::1]:4711", "10.0.0.1", "2001:db8::1"),
        ("10.0.0.1", "::ffff:198.51.100.1", "10.0.0.1", "198.51.100.1"),
        ("10.0.0.1", "6.6.6.6, unknown", "10.0.0.1", "unknown"),
        ("10.0.0.1", "198.51.100.1, , ", "10.0.0.1", "198.51.100.1"),
        (None, "198.51.100.1", "10.0.0.1", None),
    ],
)
def test_the_client_is_the_address_the_first_trusted_proxy_saw(
    peer: str | None, forwarded_for: str | None, trusted: str, client: str | None
) -> None:
    assert client_address(peer, forwarded_for, TrustedProxies.parse(trusted)) == client


def test_inside_a_space_any_peer_is_the_proxy_and_elsewhere_only_loopback() -> None:
    assert default_trusted_proxies(in_space=True) == "*"
    assert TrustedProxies.parse(default_trusted_proxies(in_space=False)).networks == (
        TrustedProxies.parse("127.0.0.1/32, ::1/128").networks
    )
    with pytest.raises(ValueError, match=r"'proxy\.internal' is neither an IP address nor a network"):
        TrustedProxies.parse("10.0.0.1, proxy.internal")


async def seen_by_the_page(peer: str, headers: list[tuple[str, str]], trusted: str) -> tuple[str, str]:
    """(client host, scheme) as the page behind `ProxyHeaders` sees a request from `peer`."""
    seen = {}

    async def page(scope, receive, send) -> None:
        seen.update(client=scope["client"][0], scheme=scope["scheme"])

    scope = {
        "type": "http",
        "scheme": "http",
        "client": (peer, 50000),
        "headers": [(name.encode(), value.encode()) for name, value in headers],
    }
    await ProxyHeaders(page, trusted=TrustedProxies.parse(trusted))(scope, None, None)
    return seen["client"], seen["scheme"]


@pytest.mark.anyio
async def test_the_page_sees_the_client_the_proxy_saw_and_a_strangers_headers_change_nothing() -> None:
    forwarded = [("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.1"), ("x-forwarded-proto", "https")]
    assert await seen_by_the_page("10.0.0.1", forwarded, "10.0.0.1") == ("198.51.100.1", "https")
    assert await seen_by_the_page("10.0.0.1", forwarded, "*") == ("198.51.100.1", "https")
    assert await seen_by_the_page("203.0.113.7", forwarded, "10.0.0.1") == ("203.0.113.7", "http")
    assert await seen_by_the_page("10.0.0.1", [("x-forwarded-proto", "gopher")], "10.0.0.1") == ("10.0.0.1", "http")


# --- the limit itself ----------------------------------------------------------------------------------


def test_a_flood_of_new_guessers_forgets_the_oldest_and_stays_bounded() -> None:
    """Memory stays bounded; a client forgotten that way had not failed for longest (no one is locked out)."""
    clock = Clock()
    limiter = AttemptLimiter(per_key=2, max_keys=3, clock=clock)
    access = AccessControl(Settings(webhook_secrets=("s3cret",)), limiter=limiter)
    for key in ["ip:a", "ip:a", "ip:b", "ip:c", "ip:d"]:
        clock.now += 1
        with pytest.raises(AccessDenied):
            access.unlock_with_secret("guess", keys=[key])
    assert list(limiter._by_key) == ["ip:b", "ip:c", "ip:d"]
    assert limiter.retry_after(["ip:a"]) == 0  # forgotten: the oldest
    limiter.record_failure(["ip:d"])
    assert limiter.retry_after(["ip:d"]) > 0 and list(limiter._by_key)[-1] == "ip:d"


def test_a_limited_client_counts_only_its_recent_failures() -> None:
    clock = Clock()
    access = AccessControl(Settings(webhook_secrets=("s3cret",)), limiter=AttemptLimiter(per_key=3, clock=clock))
    for _ in range(3):
        with pytest.raises(AccessDenied):
            access.unlock_with_secret("guess", keys=["ip:a"])
    with pytest.raises(TooManyAttempts):
        access.unlock_with_secret("s3cret", keys=["ip:a"])
    clock.now += 61
    with pytest.raises(AccessDenied) as denied:  # one failure in the window: not limited
        access.unlock_with_secret("guess", keys=["ip:a"])
    assert not isinstance(denied.value, TooManyAttempts)
    assert access.unlock_with_secret("s3cret", keys=["ip:a"])


# --- the real app, over HTTP -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with running_app(
        tmp_path_factory.mktemp("console-lockout"),
        handlers={"count_runs.py": COUNTING_HANDLER},
        FORWARDED_ALLOW_IPS=PROXY,
        HF_TOKEN="hf_not_used",
        HF_ENDPOINT="http://127.0.0.1:9",
    ) as app:
        response = app.post("/webhooks/count_runs", fixture_body("discussion-update-pr-closed-space.json"))
        assert response.status_code == 200, response.text
        yield app


@pytest.fixture(scope="module")
def callers(app: RunningApp) -> Iterator[dict[str, GradioCaller]]:
    """A Gradio API caller per loopback address the tests connect from."""
    clients = {
        address: httpx.Client(transport=httpx.HTTPTransport(local_address=address))
        for address in ("127.0.0.1", "127.0.0.2", PROXY, "127.0.0.4", "127.0.0.5")
    }
    yield {address: GradioCaller(app.url, http=client) for address, client in clients.items()}
    for client in clients.values():
        client.close()


def unlock(caller: GradioCaller, secret: str, *, forwarded_for: str | None = None, session: str | None = None) -> str:
    """What a console_unlock answers, from a fresh session unless one is given."""
    headers = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
    kind, text = caller.call("console_unlock", [secret, None], session=session or uuid.uuid4().hex, headers=headers)
    assert kind == "complete", text
    return text


LIMITED = "Too many wrong attempts: wait"
WRONG = "not one of this Space's webhook secrets"
UNLOCKED = "Console unlocked"


def test_a_stranger_rotating_forwarded_for_and_sessions_is_limited_and_the_operator_unlocks_at_once(
    app: RunningApp, callers: dict[str, GradioCaller]
) -> None:
    """Not behind the proxy: each guess claims another address and a fresh session, and counts all the same."""
    stranger, operator = callers["127.0.0.1"], callers["127.0.0.2"]
    answers = [unlock(stranger, f"guess-{n}", forwarded_for=f"198.51.100.{n}") for n in range(8)]
    assert [WRONG in answer for answer in answers] == [True] * 4 + [False] * 4
    assert all(LIMITED in answer for answer in answers[4:])
    assert LIMITED in unlock(stranger, SECRET, forwarded_for="203.0.113.250")  # even the right secret waits
    assert UNLOCKED in unlock(operator, SECRET)
    # Nobody was counted under an address the stranger wrote: one it claimed unlocks through the proxy.
    assert UNLOCKED in unlock(callers[PROXY], SECRET, forwarded_for="198.51.100.3")
    assert "(ip:127.0.0.1)" in app.logs() and "ip:198.51.100" not in app.logs()


def test_behind_the_proxy_the_limit_follows_the_address_the_proxy_added(callers: dict[str, GradioCaller]) -> None:
    proxy = callers[PROXY]
    # The stranger (198.51.100.7, the entry the proxy appends) writes anything to its left.
    answers = [unlock(proxy, "guess", forwarded_for=f"10.{n}.0.1, 203.0.113.{n}, 198.51.100.7") for n in range(7)]
    assert [WRONG in answer for answer in answers] == [True] * 4 + [False] * 3
    assert LIMITED in unlock(proxy, SECRET, forwarded_for="203.0.113.5, 198.51.100.7")
    # Another visitor through the same proxy unlocks at the first try, even one the stranger pretended to be.
    assert UNLOCKED in unlock(proxy, SECRET, forwarded_for="198.51.100.7, 203.0.113.5")
    # A direct client claiming the proxy's entry is counted under its own address.
    direct = callers["127.0.0.4"]
    for _ in range(5):
        unlock(direct, "guess", forwarded_for="198.51.100.99")
    assert LIMITED in unlock(direct, SECRET)
    assert UNLOCKED in unlock(proxy, SECRET, forwarded_for="198.51.100.99")


# --- calls the page never sends ---------------------------------------------------------------------------

MALFORMED = [
    ("console_show", []),  # fewer values than inputs
    ("console_show", [None, "one"]),  # not a number
    ("console_show", [None, {"event": 1}]),
    ("console_replay", ["1; DROP TABLE events"]),  # the grant's slot left out, as the API allows
    ("console_replay", [None, [1, 2]]),
    ("console_replay_dead", [None, "/webhooks/elsewhere"]),  # not one of the dropdown's choices
    ("console_refresh", [None, "All"]),
    ("console_refresh", [None, 7, "All", "", "All"]),
    ("console_send_test", [None, "/webhooks/count_runs"]),
    ("console_hub_enable", []),
    ("console_hub_sync", [None, "extra", "values"]),  # more values than inputs: the extra ones are ignored
    ("console_pick", [None]),  # no event data (the row clicked)
    ("console_unlock", []),
]


def test_calls_the_page_never_sends_are_answered_plainly_without_a_traceback(
    app: RunningApp, callers: dict[str, GradioCaller]
) -> None:
    caller = callers["127.0.0.5"]
    log_before = len(app.logs())
    answers = {}
    for api_name, data in MALFORMED:
        kind, text = caller.call(api_name, data, session=uuid.uuid4().hex)
        answers[(api_name, json.dumps(data))] = (kind, json.loads(text)["error"] if kind == "error" else text)
    log = app.logs()[log_before:]
    assert {key: kind for key, (kind, _) in answers.items()} == dict.fromkeys(answers, "error")
    assert {message for _, message in answers.values()} == {INVALID_CALL_MESSAGE, LOCKED_MESSAGE}
    assert answers[("console_show", "[]")][1] == INVALID_CALL_MESSAGE
    assert answers[("console_pick", "[null]")][1] == LOCKED_MESSAGE
    assert "Traceback" not in log and "Wanted inputs" not in log, log
    assert len(log.splitlines()) <= len(MALFORMED), log
    assert "Refused a call to console_show: 0 of its 2 inputs sent" in log


def test_with_a_grant_a_malformed_call_or_a_mistake_is_a_plain_answer_too(
    app: RunningApp, callers: dict[str, GradioCaller]
) -> None:
    caller, session = callers["127.0.0.5"], uuid.uuid4().hex
    assert UNLOCKED in unlock(caller, SECRET, session=session)
    log_before = len(app.logs())
    kind, text = caller.call("console_show", [None, "one"], session=session)
    assert kind == "error" and json.loads(text)["error"] == INVALID_CALL_MESSAGE
    for number, message in [(99999, "There is no event #99999"), (1e30, "There is no event #"), (None, "Pick a")]:
        kind, text = caller.call("console_show", [None, number], session=session)
        assert kind == "error" and message in json.loads(text)["error"], text
    kind, text = caller.call("console_pick", [None], session=session)  # no row clicked: no event number
    assert kind == "complete" and json.loads(text) == [None], text
    kind, text = caller.call("console_show", [None, 1], session=session)  # the control: the session does answer
    assert kind == "complete" and MARKER_REPO in text
    assert "Traceback" not in app.logs()[log_before:]
