"""The loop guard: the decision (sans-IO), the commit ledger, the Hub client that fills it, and the
real app skipping a handler's own commit when the Hub sends it back, even after a restart."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from apprunner import RunningApp, fixture_json, running_app, start_app
from fakehub import FakeHub, fake_hub  # noqa: F401  (pytest fixture)

import lib.hub.client as hub_module
from lib.core.payload import WebhookPayload
from lib.core.sample_events import random_sha, sample_payload
from lib.hub.client import (
    LEDGER_FILE,
    MISSING_TOKEN_MESSAGE,
    CommitLedger,
    HubClient,
    MissingToken,
    hub_client,
    own_commits,
    using_ledger,
)
from lib.hub.loop_guard import loop_guard_rejection, new_commit_shas

OURS, THEIRS = "a" * 40, "b" * 40


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without ledgers or clients from another test."""
    monkeypatch.setattr(hub_module, "_ledgers", {})
    monkeypatch.setattr(hub_module, "_clients", {})


def payload_with_refs(*refs: tuple[str, str | None, str | None], head: str | None = None) -> WebhookPayload:
    raw = sample_payload("commit")
    raw["updatedRefs"] = [{"ref": ref, "oldSha": old, "newSha": new} for ref, old, new in refs]
    raw["repo"]["headSha"] = head or random_sha()
    return WebhookPayload.model_validate(raw)


# --- the decision ------------------------------------------------------------------------------


def test_an_event_whose_only_commit_is_ours_is_rejected_with_a_clear_reason() -> None:
    payload = payload_with_refs(("refs/heads/main", THEIRS, OURS), head=OURS)
    reason = loop_guard_rejection(payload, {OURS})
    assert reason == (
        "loop guard: commit aaaaaaa was made by this Space (lib.hub_client); skipped so it does not trigger itself"
    )


def test_several_refs_all_ours_are_rejected() -> None:
    other = "c" * 40
    payload = payload_with_refs(("refs/heads/main", THEIRS, OURS), ("refs/pr/3", None, other))
    assert "commits aaaaaaa, ccccccc were made" in loop_guard_rejection(payload, {OURS, other})


def test_a_push_mixing_our_commit_with_someone_elses_runs() -> None:
    payload = payload_with_refs(("refs/heads/main", THEIRS, OURS), ("refs/heads/dev", None, THEIRS))
    assert loop_guard_rejection(payload, {OURS}) is None


def test_someone_elses_commit_runs() -> None:
    assert loop_guard_rejection(payload_with_refs(("refs/heads/main", OURS, THEIRS)), {OURS}) is None


def test_a_deleted_ref_brings_no_commit_so_it_runs() -> None:
    payload = payload_with_refs(("refs/heads/dev", OURS, None), head=OURS)
    assert new_commit_shas(payload) == []
    assert loop_guard_rejection(payload, {OURS}) is None


def test_without_updated_refs_the_head_sha_is_the_new_commit() -> None:
    raw = sample_payload("commit")
    del raw["updatedRefs"]
    raw["repo"]["headSha"] = OURS
    payload = WebhookPayload.model_validate(raw)
    assert new_commit_shas(payload) == [OURS]
    assert loop_guard_rejection(payload, {OURS}) is not None
    del raw["repo"]["headSha"]
    assert loop_guard_rejection(WebhookPayload.model_validate(raw), {OURS}) is None


def test_the_recorded_main_and_tag_update_is_ours_only_if_its_commit_is() -> None:
    raw = {**fixture_json("discussion-create-pr-opened.json"), **fixture_json("fragments/updatedRefs.json")}
    raw["event"] = {"action": "update", "scope": "repo.content"}
    del raw["discussion"], raw["comment"]
    payload = WebhookPayload.model_validate(raw)
    shas = set(new_commit_shas(payload))
    assert shas == {"575db8b7a51b6f85eb06eee540738584589f131c"}  # main and the tag point at one commit
    assert loop_guard_rejection(payload, shas) is not None
    assert loop_guard_rejection(payload, {"ce9a4674fa833a68d5a73ec355f0ea95eedd60b7"}) is None  # the old sha


@pytest.mark.parametrize("kind", ["comment", "pr-opened", "pr-merged", "visibility", "repo-created", "repo-moved"])
def test_other_scopes_are_never_rejected(kind: str) -> None:
    payload = WebhookPayload.model_validate(sample_payload(kind))
    everything = {payload.repo.head_sha, payload.commit_sha}
    assert loop_guard_rejection(payload, everything) is None


# --- the ledger --------------------------------------------------------------------------------


def test_the_ledger_remembers_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "data" / LEDGER_FILE
    ledger = CommitLedger(path)
    assert OURS not in ledger and not path.exists()  # nothing written until a commit is made
    ledger.add(OURS)
    ledger.add(OURS)
    assert OURS in ledger and THEIRS not in ledger
    assert path.read_text() == OURS + "\n"
    assert OURS in CommitLedger(path)  # as after a restart


def test_the_ledger_reads_its_file_once(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_FILE
    path.write_text(OURS + "\n")
    ledger = CommitLedger(path)
    assert OURS in ledger
    path.unlink()  # a second read would now find nothing
    assert OURS in ledger and THEIRS not in ledger
    ledger.add(THEIRS)  # appending recreates the file
    assert path.read_text() == THEIRS + "\n"


def test_the_ledger_keeps_the_newest_and_compacts_its_file(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_FILE
    ledger = CommitLedger(path, limit=3)
    shas = [random_sha() for _ in range(7)]
    for sha in shas:
        ledger.add(sha)
    assert [sha in ledger for sha in shas] == [False] * 4 + [True] * 3
    lines = path.read_text().split()
    assert len(lines) <= 6 and lines[-3:] == shas[-3:]
    reloaded = CommitLedger(path, limit=3)
    assert [sha in reloaded for sha in shas] == [False] * 4 + [True] * 3


def test_the_ledger_is_safe_under_concurrent_commits(tmp_path: Path) -> None:
    ledger = CommitLedger(tmp_path / LEDGER_FILE)
    shas = [random_sha() for _ in range(200)]
    threads = [threading.Thread(target=lambda chunk=shas[i::4]: [ledger.add(s) for s in chunk]) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ledger) == 200
    assert sorted((tmp_path / LEDGER_FILE).read_text().split()) == sorted(shas)


def test_own_commits_is_one_ledger_per_folder_and_the_one_given_to_the_handler_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = own_commits(tmp_path / "a")
    assert own_commits(tmp_path / "a") is first
    second = own_commits(tmp_path / "b")
    assert second is not first
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "b"))
    assert own_commits() is second  # outside a handler: the DATA_DIR folder, as Settings reads it
    with using_ledger(first):  # what the worker does around each handler run
        assert own_commits() is first
    assert own_commits() is second  # naming a folder never changes the default (no global state)


# --- the Hub client ----------------------------------------------------------------------------


@pytest.fixture
def client(fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubClient:  # noqa: F811
    token = fake_hub.add_user("bot", orgs=["acme"])
    fake_hub.add_repo("acme/model", files={"README.md": "# hi"})
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))  # the ledger outside a handler run
    return hub_client()


def test_every_commit_the_client_makes_is_recorded(client: HubClient, fake_hub: FakeHub, tmp_path: Path) -> None:  # noqa: F811
    uploaded = client.upload_file(path_or_fileobj=b"ok", path_in_repo="status.txt", repo_id="acme/model")
    deleted = client.delete_file("status.txt", repo_id="acme/model")
    future = client.upload_file(
        path_or_fileobj=b"later", path_in_repo="later.txt", repo_id="acme/model", run_as_future=True
    )
    in_future = future.result(timeout=30)
    history = [commit.oid for commit in fake_hub.repo("acme/model").history()]
    assert history[:3] == [in_future.oid, deleted.oid, uploaded.oid]
    assert all(client.made(sha) for sha in history[:3])
    assert not client.made(history[3])  # the initial commit is someone else's
    assert (tmp_path / "data" / LEDGER_FILE).read_text().split() == [uploaded.oid, deleted.oid, in_future.oid]


def test_one_client_per_token_and_whoami_is_asked_once(client: HubClient, fake_hub: FakeHub) -> None:  # noqa: F811
    assert hub_client() is client
    assert client.me["name"] == "bot" and hub_client().me["name"] == "bot"
    assert len(fake_hub.find_requests("GET", "/api/whoami-v2")) == 1


def test_commits_between_stops_at_the_old_commit(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    fake_hub.page_size = 2
    token = fake_hub.add_user("alice")
    first = fake_hub.add_repo("alice/long", files={"a": "0"})
    shas = [fake_hub.commit("alice/long", {"a": str(i)}, f"change {i}", author="alice") for i in range(1, 9)]
    client = HubClient(token=token, ledger=CommitLedger(Path("/nonexistent/ledger")))
    fake_hub.clear_requests()
    commits = client.commits_between("alice/long", shas[-3], shas[-1])
    assert [c.commit_id for c in commits] == [shas[-1], shas[-2]]
    assert [c.title for c in commits] == ["change 8", "change 7"] and commits[0].authors == ["alice"]
    assert len(fake_hub.find_requests("GET", "/commits/")) == 2  # pages up to the old commit, not all 5
    everything = client.commits_between("alice/long", None, shas[-1], limit=100)
    assert [c.commit_id for c in everything] == [*reversed(shas), first]


def test_no_token_raises_the_message_that_says_where_to_set_it(fake_hub: FakeHub) -> None:  # noqa: F811
    with pytest.raises(MissingToken) as raised:
        hub_client()
    assert str(raised.value) == MISSING_TOKEN_MESSAGE
    assert str(raised.value).startswith("HF_TOKEN is not set: add it as a Space secret")


def test_read_text_is_none_for_a_missing_file(client: HubClient) -> None:
    assert client.read_text("acme/model", "README.md") == "# hi"
    assert client.read_text("acme/model", "nope.md") is None


# --- end to end: the real app ------------------------------------------------------------------

STATUS_HANDLER = '''\
"""Writes status.txt into the repo that changed: a handler that commits to the repo it watches."""
from lib import Events, hub_client

EVENTS = Events(scope="repo.content")


def handle(payload):
    info = hub_client().upload_file(
        path_or_fileobj=f"last seen: {payload.commit_sha}".encode(),
        path_in_repo="status.txt",
        repo_id=payload.repo.name,
        repo_type=payload.repo.type,
    )
    return {"commit": info.oid}
'''


def commit_event(repo: str, old: str, new: str) -> dict:
    payload = sample_payload(
        "commit", repo=repo, updatedRefs=[{"ref": "refs/heads/main", "oldSha": old, "newSha": new}]
    )
    payload["repo"]["headSha"] = new
    return payload


def test_the_app_skips_its_own_commit_even_after_a_restart(fake_hub: FakeHub, tmp_path: Path) -> None:  # noqa: F811
    token = fake_hub.add_user("bot", orgs=["acme"])
    fake_hub.add_user("alice", orgs=["acme"])
    initial = fake_hub.add_repo("acme/model", files={"README.md": "# model"})
    pushed = fake_hub.commit("acme/model", {"weights.bin": "1"}, "New weights", author="alice")
    env = {"HF_ENDPOINT": fake_hub.url, "HF_TOKEN": token, "HF_HOME": str(tmp_path / "hf_home")}
    with running_app(tmp_path, handlers={"status.py": STATUS_HANDLER}, **env) as app:
        answer = post(app, commit_event("acme/model", initial, pushed))
        assert answer.status_code == 200, answer.text
        ours = answer.json()["commit"]
        assert fake_hub.repo("acme/model").head == ours
        assert fake_hub.files_at("acme/model")["status.txt"] == f"last seen: {pushed}"

        echo = commit_event("acme/model", pushed, ours)
        assert_skipped_by_loop_guard(app, echo)
        app.kill()  # no clean shutdown: the ledger must already be on disk
        restarted = start_app(app.folder, app.env)
        try:
            assert_skipped_by_loop_guard(restarted, echo)
            someone = fake_hub.commit("acme/model", {"weights.bin": "2"}, "Newer weights", author="alice")
            again = post(restarted, commit_event("acme/model", ours, someone))
            assert again.status_code == 200 and again.json()["commit"] == fake_hub.repo("acme/model").head
        finally:
            restarted.stop()
    commits = fake_hub.repo("acme/model").history()
    assert [c.author for c in commits] == ["bot", "alice", "bot", "alice", "system"]  # no loop


def post(app: RunningApp, payload: dict):
    """POST as the Hub does, with a delivery id of its own (so no repeat is taken for a duplicate)."""
    return app.post("/webhooks/status", payload, headers={"webhook-id": uuid.uuid4().hex})


def assert_skipped_by_loop_guard(app: RunningApp, payload: dict) -> None:
    answer = post(app, payload)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "skipped", body
    assert body["reason"].startswith("loop guard: commit ") and "made by this Space" in body["reason"]
