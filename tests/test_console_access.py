"""Only the operator opens the console: the unlock rules, and every console function refusing a stranger.

Three layers are checked. `AccessControl` itself (secrets compared through `lib.core.secrets`, rate limits,
the owner check for Hugging Face sign-in). The `Console` backend functions called directly without
a grant, with an expired one and with a forged one. And the real app's Gradio HTTP routes
(`/gradio_api/call/<api_name>`), which anyone can call: as a stranger they return no event data
and change nothing, while the same calls after an unlock in the same session do return data,
so the harness is able to see a leak.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import fakehub
import httpx
import pytest
from apprunner import SECRET, fixture_body, running_app, wait_until

from lib import WebhooksServer
from lib.core.settings import Settings
from lib.journal.sqlite import SQLiteJournal
from lib.receiver.delivery import build_delivery
from lib.receiver.parsing import parse_payload
from lib.ui.access import (
    NO_SECRET_MESSAGE,
    AccessControl,
    AccessDenied,
    AttemptLimiter,
    Grant,
    TooManyAttempts,
    client_key,
    is_granted,
)
from lib.ui.console_actions import Console, ConsoleLocked, ConsoleRefusal

fake_hub = fakehub.fake_hub

MARKER_REPO = "Wauplin/leaderboard"
"""The repo of the event posted in these tests: it must never reach a stranger."""

COUNTING_HANDLER = '''"""Counts its runs in DATA_DIR/runs.txt."""
import os
from pathlib import Path

from lib import WebhookPayload


def handle(payload: WebhookPayload):
    with (Path(os.environ["DATA_DIR"]) / "runs.txt").open("a") as runs:
        runs.write(payload.repo.name + "\\n")
    return {"ok": True}
'''


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings(**overrides: object) -> Settings:
    return Settings(**{"webhook_secrets": ("s3cret-one", "s3cret-two"), **overrides})


def valid_grant() -> Grant:
    return Grant(who="webhook secret", method="secret", expires_at=time.time() + 60)


# --- unlocking with the secret --------------------------------------------------------------


def test_any_configured_secret_unlocks_and_a_wrong_one_does_not() -> None:
    access = AccessControl(settings())
    for secret in ("s3cret-one", " s3cret-two "):
        grant = access.unlock_with_secret(secret, keys=["ip:a"])
        assert is_granted(grant) and grant.method == "secret"
    with pytest.raises(AccessDenied, match="not one of this Space's webhook secrets"):
        access.unlock_with_secret("s3cret-on", keys=["ip:a"])


def test_without_a_configured_secret_nothing_unlocks_and_the_message_says_how_to_set_one() -> None:
    access = AccessControl(Settings(webhook_secrets=()))
    for candidate in ("", "anything", None):
        with pytest.raises(AccessDenied) as denied:
            access.unlock_with_secret(candidate, keys=["ip:a"])
        assert denied.value.message == NO_SECRET_MESSAGE
    assert "WEBHOOK_SECRET" in NO_SECRET_MESSAGE


def test_an_empty_entry_is_refused_without_counting_as_a_guess() -> None:
    access = AccessControl(settings(), limiter=AttemptLimiter(per_key=1, clock=Clock()))
    for _ in range(3):
        with pytest.raises(AccessDenied, match="Type one of"):
            access.unlock_with_secret("  ", keys=["ip:a"])
    assert access.unlock_with_secret("s3cret-one", keys=["ip:a"])


def test_wrong_secrets_are_limited_per_client_then_allowed_again_after_the_window() -> None:
    clock = Clock()
    access = AccessControl(settings(), limiter=AttemptLimiter(per_key=5, window_seconds=60, clock=clock))
    for _ in range(4):
        with pytest.raises(AccessDenied) as denied:
            access.unlock_with_secret("guess", keys=["ip:a", "session:1"])
        assert not isinstance(denied.value, TooManyAttempts)
    with pytest.raises(TooManyAttempts) as limited:
        access.unlock_with_secret("guess", keys=["ip:a", "session:1"])
    assert limited.value.message == "Too many wrong attempts: wait 60 s before trying again."
    clock.now += 20
    with pytest.raises(TooManyAttempts, match="wait 40 s"):
        access.unlock_with_secret("s3cret-one", keys=["ip:a", "session:2"])  # even the right one, same address
    assert access.unlock_with_secret("s3cret-one", keys=["ip:b", "session:3"])  # another client is not blocked
    clock.now += 41
    assert access.unlock_with_secret("s3cret-one", keys=["ip:a", "session:1"])


def test_many_guessers_together_do_not_lock_out_a_client_that_has_not_failed() -> None:
    """No limit for all clients together: it let one guesser (rotating addresses) lock the operator out."""
    access = AccessControl(settings(), limiter=AttemptLimiter(per_key=5, clock=Clock()))
    for guess in range(8):
        for address in range(100):
            with pytest.raises(AccessDenied) as denied:
                access.unlock_with_secret("guess", keys=[f"ip:198.51.100.{address}"])
            assert isinstance(denied.value, TooManyAttempts) == (guess >= 4)  # each from its 5th guess on
    assert access.unlock_with_secret("s3cret-one", keys=["ip:203.0.113.5"])


def test_secrets_are_compared_through_lib_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    """The console reuses the constant-time comparison of the webhook path rather than `==`."""
    import lib.ui.access

    calls = []
    real = lib.ui.access.verify_secret

    def spy(secrets, *, header, query):
        calls.append((tuple(secrets), header, query))
        return real(secrets, header=header, query=query)

    monkeypatch.setattr(lib.ui.access, "verify_secret", spy)
    AccessControl(settings()).unlock_with_secret("s3cret-two", keys=["ip:a"])
    assert calls == [(("s3cret-one", "s3cret-two"), "s3cret-two", None)]


def test_the_client_key_is_the_address_alone_and_an_ipv6_client_its_64() -> None:
    """The address the receiver resolved (`request.client.host`); an IPv6 subscriber picks any address of a /64."""
    assert client_key("203.0.113.7") == "ip:203.0.113.7"
    assert client_key("::ffff:203.0.113.7") == "ip:203.0.113.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff::9") == "ip:2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") == "ip:2001:db8:1:3::/64"
    assert client_key(None) == "ip:unknown"
    assert client_key("testclient") == "ip:testclient"


def test_grants_expire_and_look_alikes_are_not_grants() -> None:
    assert not is_granted(Grant(who="x", method="secret", expires_at=time.time() - 1))
    assert not is_granted({"who": "x", "method": "secret", "expires_at": time.time() + 60})
    assert not is_granted(None)
    assert is_granted(valid_grant())


# --- unlocking by signing in as the owner --------------------------------------------------------


def oauth_access(whoami=None, space_id: str = "acme/webhooks") -> AccessControl:
    return AccessControl(settings(space_id=space_id), oauth_enabled=True, whoami=whoami)


def test_the_space_owner_unlocks_by_signing_in_and_someone_else_does_not() -> None:
    access = oauth_access(space_id="alice/webhooks")
    grant = access.unlock_with_oauth(username="alice")
    assert is_granted(grant) and grant.who == "@alice" and grant.method == "oauth"
    with pytest.raises(AccessDenied, match="Signed in as mallory, but this Space belongs to alice"):
        access.unlock_with_oauth(username="mallory")
    with pytest.raises(AccessDenied, match="Sign in"):
        access.unlock_with_oauth(username=None)


def test_members_of_the_owning_organisation_unlock_through_profile_or_whoami() -> None:
    assert oauth_access().unlock_with_oauth(username="bob", profile_orgs=[{"preferred_username": "acme"}])
    assert oauth_access(whoami=lambda token: {"name": "bob", "orgs": [{"name": "acme"}]}).unlock_with_oauth(
        username="bob", token="hf_bob"
    )
    outsider = oauth_access(whoami=lambda token: {"name": "bob", "orgs": [{"name": "other"}]})
    with pytest.raises(AccessDenied):
        outsider.unlock_with_oauth(username="bob", token="hf_bob")


def test_an_org_display_name_that_reads_like_the_owner_does_not_count() -> None:
    access = oauth_access(whoami=lambda token: {"name": "mallory", "orgs": [{"name": "evil", "fullname": "acme"}]})
    with pytest.raises(AccessDenied):
        access.unlock_with_oauth(
            username="mallory", profile_orgs=[{"name": "acme", "preferred_username": "evil"}], token="hf_m"
        )


def test_a_token_of_someone_else_does_not_make_a_signed_in_stranger_a_member() -> None:
    """Gradio lets API callers pass `oauth_token`: it only counts if it belongs to the signed-in user."""
    access = oauth_access(whoami=lambda token: {"name": "carol", "orgs": [{"name": "acme"}]})
    with pytest.raises(AccessDenied):
        access.unlock_with_oauth(username="mallory", token="hf_carol")


def test_a_failing_hub_lookup_keeps_the_console_locked() -> None:
    def broken(token: str) -> dict:
        raise OSError("no network")

    with pytest.raises(AccessDenied):
        oauth_access(whoami=broken).unlock_with_oauth(username="bob", token="hf_bob")


def test_sign_in_does_nothing_outside_a_space_with_oauth() -> None:
    with pytest.raises(AccessDenied, match="hf_oauth"):
        AccessControl(settings(space_id="alice/webhooks"), oauth_enabled=False).unlock_with_oauth(username="alice")
    with pytest.raises(AccessDenied, match="hf_oauth"):
        AccessControl(settings(), oauth_enabled=True).unlock_with_oauth(username="alice")


def test_oauth_is_on_only_in_a_space_with_a_client_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lib.ui.access.oauth_installed", lambda: True)
    monkeypatch.setenv("OAUTH_CLIENT_ID", "abc")
    assert AccessControl(settings(space_id="alice/webhooks")).oauth_enabled
    assert not AccessControl(settings()).oauth_enabled
    monkeypatch.delenv("OAUTH_CLIENT_ID")
    assert not AccessControl(settings(space_id="alice/webhooks")).oauth_enabled


def test_org_membership_through_the_real_client_against_the_fake_hub(fake_hub) -> None:
    """`whoami` as the console calls it, answered by the fake Hub: the org list decides."""
    member = fake_hub.add_user("bob", orgs=["acme"])
    outsider = fake_hub.add_user("eve", orgs=["other"])
    from huggingface_hub import HfApi

    access = oauth_access(whoami=lambda token: HfApi(endpoint=fake_hub.url).whoami(token=token))
    assert access.unlock_with_oauth(username="bob", token=member)
    with pytest.raises(AccessDenied):
        access.unlock_with_oauth(username="eve", token=outsider)
    with pytest.raises(AccessDenied):
        access.unlock_with_oauth(username="eve", token="hf_not_a_token")


# --- the backend functions, called directly ---------------------------------------------------------


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    """A console over a journal holding one delivery, for a server that is not serving."""
    server = WebhooksServer(
        settings=Settings(webhook_secrets=(SECRET,), data_dir=tmp_path), journal=SQLiteJournal(tmp_path / "j.sqlite3")
    )

    @server.add_webhook
    def count_runs(payload) -> None:
        return None

    body = fixture_body("discussion-update-pr-closed-space.json")
    delivery = build_delivery(
        endpoint="/webhooks/count_runs",
        headers={"content-type": "application/json"},
        query_string="",
        body=body,
        payload=parse_payload(body),
        order_per_repo=True,
    )
    recorded = await server.journal.record(delivery, skipped_reason=None, max_attempts=3, duplicate_window=600)
    await server.journal.claim_due(now=time.time(), limit=1)
    await server.journal.fail(recorded.event.id, error="Traceback\nKeyError: 'license'", handler_ms=3.0, retry_at=None)
    yield Console(server)
    await server.journal.close()


STRANGERS = {
    "no grant": None,
    "expired grant": Grant(who="webhook secret", method="secret", expires_at=time.time() - 1),
    "forged grant": {"who": "webhook secret", "method": "secret", "expires_at": 1e12},
    "a string": "unlocked",
}


async def every_console_call(console: Console, grant: object) -> dict[str, object]:
    """Each backend function with plausible arguments; the values, or the exception raised."""
    calls = {
        "deliveries": lambda: console.deliveries(grant, "All", "All", "", "All", "All"),
        "verdict": lambda: console.verdict(grant),
        "event_detail": lambda: console.event_detail(grant, 1),
        "health": lambda: console.health(grant),
        "replay": lambda: console.replay(grant, 1),
        "replay_dead": lambda: console.replay_dead(grant, "All"),
        "send_test": lambda: console.send_test(grant, "/webhooks/count_runs", "commit", "a/b", "model"),
        "hub_view": lambda: console.hub_view(grant),
        "hub_sync": lambda: console.hub_sync(grant),
        "hub_enable": lambda: console.hub_enable(grant, "abc"),
    }
    results = {}
    for name, call in calls.items():
        try:
            result = call()
            results[name] = await result if inspect.isawaitable(result) else result
        except Exception as exc:
            results[name] = exc
    return results


@pytest.mark.anyio
@pytest.mark.parametrize("who", list(STRANGERS))
async def test_every_console_function_refuses_a_stranger_and_changes_nothing(console: Console, who: str) -> None:
    results = await every_console_call(console, STRANGERS[who])
    assert {name: type(value).__name__ for name, value in results.items()} == dict.fromkeys(results, "ConsoleLocked")
    event = await console.server.journal.get(1)
    assert event.state == "dead" and event.attempts == 1  # neither replay ran
    assert len(await console.server.journal.list_recent()) == 1  # no test event was sent


@pytest.mark.anyio
async def test_the_same_functions_answer_the_operator(console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control for the test above: with a grant the data is there, so its absence meant refusal."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("lib.hub.registration.hub_token", lambda: None)
    grant = valid_grant()
    assert (await console.deliveries(grant))["Repo"].tolist() == [MARKER_REPO]
    verdict = await console.verdict(grant)
    assert verdict.level == "bad" and "KeyError: 'license'" in verdict.markdown
    detail = await console.event_detail(grant, 1)
    assert MARKER_REPO in detail.payload and "KeyError" in detail.attempts
    assert detail.headers == {"content-type": "application/json"}
    assert (await console.health(grant)).table.count("|") > 10
    assert "No Hugging Face token" in console.hub_view(grant).message
    assert "Re-running 1 dead event(s)" in await console.replay_dead(grant, "All")
    assert (await console.server.journal.get(1)).state == "queued"


@pytest.mark.anyio
async def test_console_actions_await_the_journal_on_the_event_loop(console: Console) -> None:
    """Replays are async (they notify the worker on its loop), and so is every journal call they make: the
    journal is awaited on the loop (a write joins the loop's open group), never called on a thread."""
    journal = console.server.journal
    calls = []

    class Watched:
        def __getattr__(self, name: str):
            method = getattr(journal, name)

            def call(*args, **kwargs):
                try:
                    on_loop = asyncio.get_running_loop() is not None
                except RuntimeError:
                    on_loop = False
                result = method(*args, **kwargs)
                calls.append((name, inspect.isawaitable(result), on_loop))
                return result

            return call

    console.server._journal = Watched()
    grant = valid_grant()
    assert "Replaying" in await console.replay(grant, 1)
    await journal.claim_due(now=time.time(), limit=1)
    await journal.fail(1, error="again", handler_ms=1.0, retry_at=None)
    assert "Re-running" in await console.replay_dead(grant, "All")
    console.server._journal = journal
    assert [name for name, _, _ in calls] == ["replay", "replay_dead", "replay_dead"]  # its events, its job reports
    assert all(awaited and on_loop for _, awaited, on_loop in calls), calls


def console_listeners(console: Console) -> dict[str, Callable[..., Any]]:
    """The console's listener functions by api_name, as `build_console` wires them for `console.server`."""
    import gradio as gr

    from lib.ui.console import build_console

    with gr.Blocks() as page:
        build_console(console.server, page, access=console.access)
    return {str(fn.api_name): fn.fn for fn in page.fns.values()}


def as_plain_function(method: Callable[..., Any]) -> Callable[..., Any]:
    """`method` (a coroutine function, as the console's actions are) as a plain function, run off the
    loop like a sync action and calling back into the loop for its journal work."""

    def wrapped(self, *args):
        return anyio.from_thread.run(method, self, *args)

    return wrapped


async def run(listener: Callable[..., Any], *args: Any) -> Any:
    """Call a listener as Gradio does: a coroutine function on the event loop, a plain one off it."""
    if inspect.iscoroutinefunction(listener):
        return await listener(*args)
    return await anyio.to_thread.run_sync(listener, *args)


@pytest.mark.anyio
@pytest.mark.parametrize("actions", ["sync", "async"])
async def test_the_listeners_take_console_actions_sync_or_async(
    console: Console, monkeypatch: pytest.MonkeyPatch, actions: str
) -> None:
    """Same screens either way, and no journal read is made synchronously on the loop the deliveries use."""
    monkeypatch.setattr("lib.hub.registration.hub_token", lambda: None)
    if actions == "sync":
        for name in ("verdict", "deliveries", "event_detail", "health"):
            monkeypatch.setattr(Console, name, as_plain_function(getattr(Console, name)))
    journal, on_loop = console.server.journal, []

    class Watched:
        def __getattr__(self, name: str):
            method = getattr(journal, name)

            def call(*args, **kwargs):
                result = method(*args, **kwargs)
                with contextlib.suppress(RuntimeError):
                    if not inspect.isawaitable(result) and asyncio.get_running_loop():
                        on_loop.append(name)
                return result

            return call

    listeners = console_listeners(console)
    console.server._journal = Watched()
    grant = valid_grant()
    refreshed = await run(listeners["console_refresh"], grant, "All", "All", "", "All", "All")
    assert "KeyError: 'license'" in refreshed[-3].value and refreshed[-1]["Repo"].tolist() == [MARKER_REPO]
    for api_name in ("console_show", "console_show_test"):
        _title, attempts, payload, _headers, *_job = await run(listeners[api_name], grant, 1)
        assert MARKER_REPO in payload and "KeyError" in attempts
    assert (await run(listeners["console_health"], grant))[0].count("|") > 10
    assert "No Hugging Face token" in (await run(listeners["console_hub_list"], grant))[0]
    with pytest.raises(ConsoleLocked):
        await run(listeners["console_show"], None, 1)
    console.server._journal = journal
    assert on_loop == []


# --- the Gradio HTTP routes of the real app, as a stranger ------------------------------------------


class GradioCaller:
    """Calls event listeners the way any HTTP client can: POST /gradio_api/call/<api_name>, then read the stream."""

    def __init__(self, url: str, http: Any = httpx) -> None:
        """`http`: the `httpx` module, or an `httpx.Client` (e.g. one bound to another local address)."""
        self.url = url
        self.http = http
        config = http.get(url + "/config", timeout=30).json()
        self.config = config
        components = {component["id"]: component for component in config["components"]}
        self.inputs = {
            dependency["api_name"]: [components[i]["type"] for i in dependency["inputs"]]
            for dependency in config["dependencies"]
            if str(dependency.get("api_name") or "").startswith("console_")
        }

    def call(
        self, api_name: str, data: list, *, session: str | None = None, headers: dict | None = None
    ) -> tuple[str, str]:
        """("complete" | "error" | "http <status>", raw text of what came back)."""
        response = self.http.post(
            f"{self.url}/gradio_api/call/{api_name}",
            json={"data": data, "session_hash": session},
            headers=headers or {},
            timeout=30,
        )
        if response.status_code != 200:
            return f"http {response.status_code}", response.text
        event_id = response.json()["event_id"]
        kind = None
        with self.http.stream("GET", f"{self.url}/gradio_api/call/{api_name}/{event_id}", timeout=60) as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    kind = line.removeprefix("event:").strip()
                elif line.startswith("data:") and kind in ("complete", "error"):
                    return kind, line.removeprefix("data:").strip()
        return "closed", ""

    def sample_data(self, api_name: str, forged_grant: object = None) -> list:
        """Arguments of the right count and kinds; the state slot carries a forged grant (the server ignores it)."""
        values = {
            "state": forged_grant,
            "textbox": "",
            "number": 1,
            "dropdown": None,
        }
        data = [values.get(kind) for kind in self.inputs[api_name]]
        if api_name.startswith("console_send_test"):
            data = [forged_grant, "/webhooks/count_runs", "commit", "a/b", "model"]
        elif api_name.startswith(("console_refresh", "console_filter")):
            data = [forged_grant, "All", "All", "", "All", "All"]
        elif api_name.startswith("console_replay_dead"):
            data = [forged_grant, "All"]
        return data


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("console-access")
    with running_app(
        tmp,
        handlers={"count_runs.py": COUNTING_HANDLER},
        WEBHOOK_MAX_ATTEMPTS="1",
        HF_TOKEN="hf_not_used",
        HF_ENDPOINT="http://127.0.0.1:9",
    ) as app:
        response = app.post("/webhooks/count_runs", fixture_body("discussion-update-pr-closed-space.json"))
        assert response.status_code == 200, response.text
        yield app


@pytest.fixture(scope="module")
def gradio(app) -> GradioCaller:
    return GradioCaller(app.url)


def runs(app) -> int:
    path = app.data_dir / "runs.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_every_console_route_gives_a_stranger_nothing(app, gradio: GradioCaller) -> None:
    assert len(gradio.inputs) >= 20, sorted(gradio.inputs)  # every listener of the console is listed
    before = runs(app)
    forged = {"who": "webhook secret", "method": "secret", "expires_at": 1e12}
    leaks = {}
    for api_name in sorted(gradio.inputs):
        if api_name.startswith("console_unlock"):
            continue
        kind, text = gradio.call(api_name, gradio.sample_data(api_name, forged), session=uuid.uuid4().hex)
        if MARKER_REPO in text or "count_runs" in text or SECRET in text:
            leaks[api_name] = text[:300]
        if kind == "complete":  # only the locked panel may come back: no table rows, no details
            assert '"data": []' in text or "data" not in text, (api_name, text[:300])
    assert leaks == {}
    assert runs(app) == before  # no replay, no test event reached the handler


@pytest.mark.parametrize(
    "api_name", ["console_show", "console_replay", "console_replay_dead", "console_send_test", "console_hub_sync"]
)
def test_console_actions_raise_the_locked_error_over_http(gradio: GradioCaller, api_name: str) -> None:
    kind, text = gradio.call(api_name, gradio.sample_data(api_name), session=uuid.uuid4().hex)
    assert kind == "error"
    assert json.loads(text)["error"] == "The console is locked: unlock it with the webhook secret first."


def test_what_follows_a_failed_unlock_stays_silent(gradio: GradioCaller) -> None:
    """These run after every unlock attempt (and every page load with sign-in): no error popup for a stranger."""
    for api_name in ("console_refresh_after_unlock", "console_health_after_unlock", "console_hub_after_unlock"):
        kind, text = gradio.call(api_name, gradio.sample_data(api_name), session=uuid.uuid4().hex)
        assert kind == "complete", (api_name, text)
        assert MARKER_REPO not in text
    kind, text = gradio.call("console_refresh_after_unlock", gradio.sample_data("console_refresh"))
    assert json.loads(text)[3] == {"__type__": "update"}  # the unlock's own message ("wrong secret") stays


def test_the_same_routes_answer_after_an_unlock_in_that_session(app, gradio: GradioCaller) -> None:
    """The control: the harness sees event data when the session holds a grant."""
    session = uuid.uuid4().hex
    kind, text = gradio.call("console_unlock", [SECRET, None], session=session)
    assert kind == "complete" and "Console unlocked" in text and SECRET not in text
    kind, text = gradio.call("console_refresh", gradio.sample_data("console_refresh"), session=session)
    assert kind == "complete" and MARKER_REPO in text
    kind, text = gradio.call("console_show", [None, 1], session=session)
    assert kind == "complete" and MARKER_REPO in text
    before = runs(app)
    kind, text = gradio.call("console_replay", [None, 1], session=session)
    assert kind == "complete" and "Replaying event #1" in text
    wait_until(lambda: runs(app) > before, message="the replayed event to run the handler")
    # another session, even right after, is still a stranger
    kind, text = gradio.call("console_refresh", gradio.sample_data("console_refresh"), session=uuid.uuid4().hex)
    assert MARKER_REPO not in text


def test_a_wrong_secret_over_http_is_refused_and_then_rate_limited(gradio: GradioCaller) -> None:
    # A documentation address in the header (never contacted) keeps this client's count apart.
    headers = {"x-forwarded-for": "203.0.113.99"}
    answers = [
        gradio.call("console_unlock", ["wrong", None], session=uuid.uuid4().hex, headers=headers)[1] for _ in range(6)
    ]
    assert "not one of this Space's webhook secrets" in answers[0]
    assert "Too many wrong attempts: wait" in answers[4] and "Too many wrong attempts: wait" in answers[5]
    blocked = gradio.call("console_unlock", [SECRET, None], session=uuid.uuid4().hex, headers=headers)[1]
    assert "Too many wrong attempts" in blocked and "Console unlocked" not in blocked


def test_the_public_page_shows_endpoints_and_secret_status_but_no_event(app) -> None:
    page = httpx.get(app.url + "/", timeout=30).text + httpx.get(app.url + "/config", timeout=30).text
    assert app.url + "/webhooks/count_runs" in page
    assert "Webhook secret: configured" in page
    assert MARKER_REPO not in page and SECRET not in page


def test_run_history_is_off_so_the_typed_secret_is_never_stored_in_the_browser(gradio: GradioCaller) -> None:
    config = gradio.config
    assert config["run_history"] is False
    secret_boxes = [c for c in config["components"] if c.get("props", {}).get("elem_id") == "console-secret"]
    assert len(secret_boxes) == 1
    assert secret_boxes[0]["props"]["type"] == "password" and not secret_boxes[0]["props"].get("value")
    assert SECRET not in json.dumps(config)


# --- how the console is put on the page -------------------------------------------------------------


def build_page(tmp_path: Path, **settings_values: object):
    from lib.ui.landing import build_landing_page

    server = WebhooksServer(settings=Settings(webhook_secrets=(SECRET,), data_dir=tmp_path, **settings_values))

    @server.add_webhook
    def count_runs(payload) -> None:
        return None

    return build_landing_page(server)


def test_sign_in_appears_only_in_a_space_with_oauth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside a Space, a LoginButton would make Gradio mock sign-in with the machine's own HF login."""
    import gradio as gr

    def wiring(page) -> tuple[bool, bool]:
        has_button = any(isinstance(block, gr.LoginButton) for block in page.blocks.values())
        listens = any(fn.api_name == "console_oauth" for fn in page.fns.values())
        return has_button, listens

    monkeypatch.delenv("OAUTH_CLIENT_ID", raising=False)
    assert wiring(build_page(tmp_path, space_id="alice/hooks")) == (False, False)
    monkeypatch.setenv("OAUTH_CLIENT_ID", "client-id")
    assert wiring(build_page(tmp_path)) == (False, False)
    # Gradio's sign-in routes need gradio[oauth]; what matters here is what the console wires.
    monkeypatch.setattr("lib.ui.access.oauth_installed", lambda: True)
    monkeypatch.setattr("gradio.routes.attach_oauth", lambda app: None)
    assert wiring(build_page(tmp_path, space_id="alice/hooks")) == (True, True)


def test_without_gradio_oauth_installed_the_console_keeps_the_secret_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "authlib" else real(name))
    monkeypatch.setenv("OAUTH_CLIENT_ID", "client-id")
    assert not AccessControl(settings(space_id="alice/hooks")).oauth_enabled
    assert "gradio[oauth]" in caplog.text


def test_every_console_listener_is_private_and_takes_the_session_grant(tmp_path: Path) -> None:
    page = build_page(tmp_path)
    console_fns = [fn for fn in page.fns.values() if str(fn.api_name).startswith("console_")]
    assert len(console_fns) >= 20
    for fn in console_fns:
        assert fn.api_visibility == "private", fn.api_name
        kinds = [type(block).__name__ for block in fn.inputs]
        assert kinds[:1] == ["State"] or fn.api_name.startswith("console_unlock"), (fn.api_name, kinds)


def test_tracebacks_show_the_handler_frames_relative_to_the_app() -> None:
    from lib.ui.console_format import readable_traceback

    text = (
        "Traceback (most recent call last):\n"
        '  File "/home/user/app/lib/worker/worker.py", line 178, in _attempt\n'
        "    result = await asyncio.wait_for(\n"
        "             ^^^^^^^^^^^^^^^^^^^^^^^\n"
        '  File "/usr/lib/python3.11/asyncio/tasks.py", line 489, in wait_for\n'
        "    return fut.result()\n"
        '  File "/home/user/app/handlers/retrain.py", line 12, in handle\n'
        '    return card["license"]\n'
        "KeyError: 'license'"
    )
    assert readable_traceback(text, root="/home/user/app") == (
        "Traceback (most recent call last):\n"
        '  File "handlers/retrain.py", line 12, in handle\n'
        '    return card["license"]\n'
        "KeyError: 'license'\n"
        "(2 frame(s) of the webhook runner hidden)"
    )


@pytest.mark.anyio
async def test_the_verdict_follows_the_event_from_dead_to_retrying_to_working(console: Console) -> None:
    grant, journal = valid_grant(), console.server.journal
    assert (await console.verdict(grant)).level == "bad"
    await journal.replay(1, max_attempts=3)
    await journal.claim_due(now=time.time(), limit=1)
    await journal.fail(1, error="Traceback\nTimeoutError: the Hub was slow", handler_ms=1.0, retry_at=time.time() + 60)
    verdict = await console.verdict(grant)
    assert verdict.level == "warn" and "1 event(s) failing" in verdict.markdown and "TimeoutError" in verdict.markdown
    await journal.replay(1, max_attempts=3)
    await journal.claim_due(now=time.time(), limit=1)
    await journal.finish(1, result={"ok": True}, handler_ms=2.0)
    verdict = await console.verdict(grant)
    assert verdict.level == "ok" and "Working" in verdict.markdown and verdict.dead == 0


@pytest.mark.anyio
async def test_with_no_delivery_yet_the_verdict_says_where_the_hub_must_send(tmp_path: Path) -> None:
    server = WebhooksServer(
        settings=Settings(webhook_secrets=(SECRET,), data_dir=tmp_path), journal=SQLiteJournal(tmp_path / "j.sqlite3")
    )
    server.add_webhook("on_commit")(lambda payload: None)
    verdict = await Console(server).verdict(valid_grant())
    assert verdict.level == "idle" and "http://127.0.0.1:7860/webhooks/on_commit" in verdict.markdown
    await server.journal.close()


def test_the_hub_limit_bars_share_one_grid_and_show_nothing_at_zero() -> None:
    """Each row was a grid of its own, so bars started wherever each endpoint's name ended, and an
    endpoint with no trigger showed a green dot."""
    import re

    from lib.ui.console_format import usage_bars

    shown = usage_bars([("a", 0), ("a_much_longer_endpoint_name", 3), ("busy", 950)])
    assert shown.count('class="usage-grid"') == 1 and "usage-row" not in shown
    widths = re.findall(r'<div class="usage-(\w+)" style="width:([\d.]+)%"></div>', shown)
    assert widths == [("ok", "0.0"), ("ok", "0.5"), ("bad", "95.0")]
    assert "0 / 1,000" in shown and "950 / 1,000" in shown


@pytest.mark.anyio
async def test_the_console_never_points_a_hub_webhook_at_a_local_url(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Create / update webhooks on a local app would register http://127.0.0.1:... with the real Hub, which
    can never deliver there; it is refused before any Hub call, with the ways to a public URL."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_TOKEN", "hf_not_used")
    monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")
    with pytest.raises(ConsoleRefusal, match="only works on this machine: the Hub cannot reach it") as refused:
        console.hub_sync(valid_grant())
    assert "GRADIO_SHARE=true bin/run" in str(refused.value)
