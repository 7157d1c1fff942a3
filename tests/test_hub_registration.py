"""Listing, creating and fixing the Hub webhooks that point at this Space, against the fake Hub.

The real `huggingface_hub` client talks to `tests/fakehub.py` over HTTP, so the calls, their
arguments and the answers parsed are those the Space would exchange with the Hub.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import fakehub
import pytest
from fakehub import FakeHub
from huggingface_hub import HfApi

from lib import WebhooksServer
from lib.core.events import Events
from lib.core.registry import Endpoint
from lib.core.settings import Settings
from lib.hub.registration import (
    HubRegistrationError,
    enable_webhook,
    list_space_webhooks,
    secret_state,
    sync_webhooks,
)
from lib.journal.sqlite import SQLiteJournal
from lib.ui.access import Grant
from lib.ui.console_actions import Console, ConsoleLocked

fake_hub = fakehub.fake_hub

BASE = "https://acme-webhooks.hf.space"
SECRET = "s3cret"


def handler(payload) -> None:
    return None


ENDPOINTS = [
    Endpoint.create("/webhooks/on_commit", handler, events=Events(scope="repo.content")),
    Endpoint.create("/webhooks/on_comment", handler, events=Events(scope="discussion.comment")),
]


def test_secret_state_says_whether_the_hub_sends_ours_without_the_value() -> None:
    assert secret_state("a", ("b", "a")) == "matches"
    assert secret_state("c", ("b", "a")) == "differs"
    assert secret_state(None, ("a",)) == "none"
    assert secret_state("", ("a",)) == "none"


def test_only_webhooks_pointing_at_this_space_are_listed(fake_hub: FakeHub) -> None:
    token = fake_hub.add_user("alice")
    api = HfApi(endpoint=fake_hub.url, token=token)
    api.create_webhook(url=BASE + "/webhooks/on_commit", watched=[{"type": "user", "name": "alice"}], secret=SECRET)
    api.create_webhook(url=BASE + "/webhooks/old", watched=[{"type": "user", "name": "alice"}], secret="other")
    api.create_webhook(url="https://elsewhere.example/hook", watched=[{"type": "user", "name": "alice"}])
    api.create_webhook(url=BASE + ".evil.example/x", watched=[{"type": "user", "name": "alice"}])
    hooks = list_space_webhooks(token, base_url=BASE, secrets=(SECRET,))
    assert [(hook.url, hook.secret, hook.watched) for hook in hooks] == [
        (BASE + "/webhooks/on_commit", "matches", ("user:alice",)),
        (BASE + "/webhooks/old", "differs", ("user:alice",)),
    ]
    assert all(SECRET not in repr(hook) and "other" not in repr(hook) for hook in hooks)


def test_sync_creates_one_webhook_per_endpoint_with_url_secret_and_domains(fake_hub: FakeHub) -> None:
    token = fake_hub.add_user("alice")
    results = sync_webhooks(token, ENDPOINTS, base_url=BASE, owner="alice", secret=SECRET, secrets=(SECRET,))
    assert [(r.path, r.action) for r in results] == [
        ("/webhooks/on_commit", "created"),
        ("/webhooks/on_comment", "created"),
    ]
    stored = {hook.url: hook for hook in fake_hub.webhooks()}
    commit = stored[BASE + "/webhooks/on_commit"]
    assert (commit.owner, commit.secret, commit.domains) == ("alice", SECRET, ["repo"])
    assert commit.watched == [{"type": "user", "name": "alice"}]
    assert stored[BASE + "/webhooks/on_comment"].domains == ["discussion"]
    assert all(r.webhook.secret == "matches" and not r.webhook.disabled for r in results)


def test_a_space_owned_by_an_organisation_watches_the_org(fake_hub: FakeHub) -> None:
    token = fake_hub.add_user("alice", orgs=["acme"])
    sync_webhooks(token, ENDPOINTS[:1], base_url=BASE, owner="acme", secret=SECRET, secrets=(SECRET,))
    assert fake_hub.webhooks()[0].watched == [{"type": "org", "name": "acme"}]


def test_outside_a_space_the_token_user_is_watched(fake_hub: FakeHub) -> None:
    token = fake_hub.add_user("alice")
    sync_webhooks(token, ENDPOINTS[:1], base_url=BASE, owner=None, secret=SECRET, secrets=(SECRET,))
    assert fake_hub.webhooks()[0].watched == [{"type": "user", "name": "alice"}]


def test_sync_fixes_an_existing_webhook_keeping_what_it_watches(fake_hub: FakeHub) -> None:
    token = fake_hub.add_user("alice")
    api = HfApi(endpoint=fake_hub.url, token=token)
    narrow = [{"type": "model", "name": "alice/only-this"}]
    api.create_webhook(url=BASE + "/webhooks/on_commit", watched=narrow, domains=["discussion"], secret="old")
    fake_hub.clear_requests()
    results = sync_webhooks(token, ENDPOINTS[:1], base_url=BASE, owner="alice", secret=SECRET, secrets=(SECRET,))
    assert [r.action for r in results] == ["updated"]
    (hook,) = fake_hub.webhooks()
    assert (hook.secret, hook.watched, hook.domains) == (SECRET, narrow, ["discussion", "repo"])
    (update,) = fake_hub.find_requests("POST", r"/api/settings/webhooks/[^/]+$")
    assert update.json["watched"] == narrow  # passed explicitly, never left to the API's default


def test_a_rejected_token_becomes_an_error_that_says_what_to_fix(fake_hub: FakeHub) -> None:
    with pytest.raises(HubRegistrationError, match="invalid or expired"):
        list_space_webhooks("hf_unknown", base_url=BASE, secrets=())
    reader = fake_hub.add_user("reader", role="read")
    with pytest.raises(HubRegistrationError, match="may not manage webhooks"):
        sync_webhooks(reader, ENDPOINTS, base_url=BASE, owner="reader", secret=SECRET, secrets=(SECRET,))


def test_a_disabled_webhook_can_be_enabled_again(fake_hub: FakeHub) -> None:
    token = fake_hub.add_user("alice")
    api = HfApi(endpoint=fake_hub.url, token=token)
    created = api.create_webhook(url=BASE + "/webhooks/on_commit", watched=[{"type": "user", "name": "alice"}])
    api.disable_webhook(created.id)
    assert list_space_webhooks(token, base_url=BASE, secrets=())[0].disabled
    assert not enable_webhook(token, created.id, secrets=()).disabled
    assert not fake_hub.webhooks()[0].disabled


# --- through the console's backend ----------------------------------------------------------


@pytest.fixture
def console(tmp_path: Path, fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> Console:
    monkeypatch.setenv("HF_TOKEN", fake_hub.add_user("alice"))
    settings = Settings(
        webhook_secrets=(SECRET,), data_dir=tmp_path, space_id="alice/hooks", space_host="alice-hooks.hf.space"
    )
    server = WebhooksServer(settings=settings, journal=SQLiteJournal(tmp_path / "j.sqlite3"))
    for endpoint in ENDPOINTS:
        server.add_endpoint(endpoint)
    yield Console(server)
    asyncio.run(server.journal.close())


def test_the_console_lists_missing_webhooks_then_registers_them(console: Console, fake_hub: FakeHub) -> None:
    grant = Grant(who="webhook secret", method="secret", expires_at=time.time() + 60)
    view = console.hub_view(grant)
    assert "No Hub webhook points at" in view.message and "on_commit" in view.message and view.table.empty
    view = console.hub_sync(grant)
    assert "on_commit `` created" in view.message and "on_comment `` created" in view.message
    assert sorted(view.table["URL"]) == [
        "https://alice-hooks.hf.space/webhooks/on_comment",
        "https://alice-hooks.hf.space/webhooks/on_commit",
    ]
    assert set(view.table["Secret"]) == {"✅ the Space's"} and SECRET not in view.table.to_csv()
    assert "Every endpoint has a Hub webhook" in console.hub_view(grant).message


def test_the_console_flags_a_webhook_sending_another_secret_or_disabled(console: Console, fake_hub: FakeHub) -> None:
    token = console_token = os.environ["HF_TOKEN"]
    api = HfApi(endpoint=fake_hub.url, token=token)
    hook = api.create_webhook(
        url="https://alice-hooks.hf.space/webhooks/on_commit", watched=[{"type": "user", "name": "alice"}], secret="x"
    )
    api.disable_webhook(hook.id)
    grant = Grant(who="webhook secret", method="secret", expires_at=time.time() + 60)
    view = console.hub_view(grant)
    assert "sends another secret" in view.message and "is disabled" in view.message
    assert view.disabled_ids == [hook.id]
    assert console.hub_enable(grant, hook.id).disabled_ids == []
    assert console_token  # the token itself never shows
    assert console_token not in view.message


def test_the_console_refuses_hub_actions_to_a_stranger(console: Console, fake_hub: FakeHub) -> None:
    fake_hub.clear_requests()
    for call in (console.hub_view, console.hub_sync, lambda grant: console.hub_enable(grant, "x")):
        with pytest.raises(ConsoleLocked):
            call(None)
    assert fake_hub.requests == [] and fake_hub.webhooks() == []
