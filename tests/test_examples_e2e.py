"""The example handlers end to end: the real app with the project's handlers, real HTTP posts of
realistic payloads, and a fake Hub (tests/fakehub.py) that records exactly what each handler did,
including the cases where it must do nothing. One app and one fake Hub serve the module; every
test uses repos of its own.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from apprunner import RunningApp, running_app, wait_until
from fakehub import FakeHub

from lib.core.sample_events import sample_payload

FINISHED = ("succeeded", "skipped", "duplicate", "failed", "dead")


@pytest.fixture(scope="module")
def tokens(hub: FakeHub) -> dict[str, str]:
    """The Space's account ("bot") and a human ("alice"), both members of the "acme" org."""
    return {name: hub.add_user(name, orgs=["acme"]) for name in ("bot", "alice")}


@pytest.fixture(scope="module")
def app(hub: FakeHub, tokens: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    folder = tmp_path_factory.mktemp("examples")
    with running_app(
        folder,
        handlers=None,  # the project's own handlers/
        HF_ENDPOINT=hub.url,
        HF_TOKEN=tokens["bot"],
        HF_HOME=str(folder / "hf_home"),
        NO_PROXY="127.0.0.1,localhost",
        MODEL_CARD_REQUIRED="license, language",
        WEBHOOK_MAX_ATTEMPTS="1",
    ) as running:
        yield running


def user_id(hub: FakeHub, token: str) -> str:
    answer = httpx.get(f"{hub.url}/api/whoami-v2", headers={"authorization": f"Bearer {token}"})
    return answer.json()["id"]


def journal_row(app: RunningApp, event_id: int) -> dict[str, Any]:
    db = sqlite3.connect(f"file:{app.data_dir / 'journal.sqlite3'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        row = db.execute("SELECT state, note, result, error FROM events WHERE id = ?", (event_id,)).fetchone()
    finally:
        db.close()
    return dict(row)


def deliver(app: RunningApp, handler: str, payload: dict) -> dict[str, Any]:
    """POST as the Hub does, then the event's outcome once its handler is done, from the journal."""
    answer = app.post(f"/webhooks/{handler}", payload, headers={"webhook-id": uuid.uuid4().hex})
    assert answer.is_success, answer.text
    event_id = int(answer.headers["x-webhook-event-id"])
    row = wait_until(
        lambda: (r := journal_row(app, event_id))["state"] in FINISHED and r, message=f"event {event_id} to finish"
    )
    row["result"] = json.loads(row["result"]) if row["result"] else None
    return row


def commit_event(repo: str, old: str | None, new: str, *, repo_type: str = "model") -> dict:
    payload = sample_payload(
        "commit", repo=repo, repo_type=repo_type, updatedRefs=[{"ref": "refs/heads/main", "oldSha": old, "newSha": new}]
    )
    payload["repo"]["headSha"] = new
    return payload


def discussion_event(kind: str, repo: str, num: int, *, text: str, author_id: str) -> dict:
    """A discussion or comment event about discussion `num` of `repo`, whose comment is `text` by `author_id`."""
    return sample_payload(
        kind, repo=repo, discussion={"num": num}, comment={"content": text, "author": {"id": author_id}}
    )


# --- discussion_bot ----------------------------------------------------------------------------


def test_the_bot_answers_ping_in_a_comment(app: RunningApp, hub: FakeHub, tokens: dict[str, str]) -> None:
    hub.add_repo("acme/bot-ping")
    num = hub.add_discussion("acme/bot-ping", "Is this model any good?", author="alice")
    hub.add_comment("acme/bot-ping", num, "/ping are you there?", author="alice")
    alice = user_id(hub, tokens["alice"])

    outcome = deliver(
        app,
        "discussion_bot",
        discussion_event("comment", "acme/bot-ping", num, text="/ping are you there?", author_id=alice),
    )

    assert outcome["state"] == "succeeded", outcome
    assert outcome["result"] == {"answered": True, "discussion": num}
    comments = hub.discussion("acme/bot-ping", num).comments
    assert [(c.author, c.content) for c in comments[-2:]] == [("alice", "/ping are you there?"), ("bot", "pong 🏓")]


def test_the_bot_answers_a_mention_in_a_new_pull_request(app: RunningApp, hub: FakeHub, tokens: dict[str, str]) -> None:
    hub.add_repo("acme/bot-mention")
    num = hub.add_discussion(
        "acme/bot-mention", "Fix typo", author="alice", pull_request=True, description="@Bot, look"
    )
    alice = user_id(hub, tokens["alice"])

    outcome = deliver(
        app,
        "discussion_bot",
        discussion_event("pr-opened", "acme/bot-mention", num, text="@Bot, look", author_id=alice),
    )

    assert outcome["result"] == {"answered": True, "discussion": num}
    assert [c.author for c in hub.discussion("acme/bot-mention", num).comments] == ["alice", "bot"]


@pytest.mark.parametrize(
    ("who", "text", "reason"),
    [
        ("bot", "pong 🏓 /ping", "my own comment"),
        ("alice", "Thanks, that answers it! (no ping here)", "not called (/ping or @bot)"),
        ("alice", "/pinging is not the command", "not called (/ping or @bot)"),
    ],
)
def test_the_bot_stays_silent(
    app: RunningApp, hub: FakeHub, tokens: dict[str, str], who: str, text: str, reason: str
) -> None:
    repo = f"acme/bot-silent-{uuid.uuid4().hex[:6]}"
    hub.add_repo(repo)
    num = hub.add_discussion(repo, "Hello", author="alice")
    hub.add_comment(repo, num, text, author=who)

    outcome = deliver(
        app, "discussion_bot", discussion_event("comment", repo, num, text=text, author_id=user_id(hub, tokens[who]))
    )

    assert outcome["result"] == {"answered": False, "reason": reason}
    assert [c.content for c in hub.discussion(repo, num).comments] == ["", text]
    assert not hub.find_requests("POST", f"/{repo}/discussions")


def test_the_bot_ignores_hidden_comments(app: RunningApp, hub: FakeHub) -> None:
    payload = sample_payload("comment", repo="acme/nowhere", comment={"hidden": True})
    del payload["comment"]["content"]  # the Hub leaves it out of hidden comments
    outcome = deliver(app, "discussion_bot", payload)
    assert outcome["result"] == {"answered": False, "reason": "no comment text"}


# --- model_card_check --------------------------------------------------------------------------

INCOMPLETE_CARD = "---\nlanguage: en\ntags:\n- demo\n---\n# My model\n"
COMPLETE_CARD = "---\nlicense: mit\nlanguage: en\n---\n# My model\n"


def test_a_card_without_license_gets_one_discussion(app: RunningApp, hub: FakeHub) -> None:
    first = hub.add_repo("acme/card-a", files={"README.md": COMPLETE_CARD})
    second = hub.commit("acme/card-a", {"README.md": INCOMPLETE_CARD}, "Rewrite the card", author="alice")

    outcome = deliver(app, "model_card_check", commit_event("acme/card-a", first, second))

    [discussion] = hub.discussions("acme/card-a")
    assert outcome["result"] == {"checked": True, "missing": ["license"], "discussion": discussion.num, "opened": True}
    assert (discussion.title, discussion.author, discussion.status) == (
        "Model card: add license to the metadata",
        "bot",
        "open",
    )
    assert not discussion.is_pull_request
    description = discussion.comments[0].content
    assert f"at commit {second[:7]} does not set `license`" in description
    assert "```yaml\n---\nlicense: apache-2.0\n---\n```" in description

    # A later commit with the same problem: the open discussion is enough.
    third = hub.commit("acme/card-a", {"weights.bin": "1"}, "Add weights", author="alice")
    again = deliver(app, "model_card_check", commit_event("acme/card-a", second, third))
    assert again["result"] == {"checked": True, "missing": ["license"], "discussion": discussion.num, "opened": False}
    assert len(hub.discussions("acme/card-a")) == 1


def test_each_configured_key_is_checked_and_a_missing_card_reports_all(app: RunningApp, hub: FakeHub) -> None:
    sha = hub.add_repo("acme/card-b", files={"weights.bin": "1"})  # no README.md at all
    outcome = deliver(app, "model_card_check", commit_event("acme/card-b", None, sha))
    [discussion] = hub.discussions("acme/card-b")
    assert outcome["result"]["missing"] == ["license", "language"]
    assert discussion.title == "Model card: add license, language to the metadata"
    assert "license: apache-2.0\nlanguage: en" in discussion.comments[0].content


def test_the_commit_that_was_checked_is_the_one_read(app: RunningApp, hub: FakeHub) -> None:
    """The event's commit is read, not main's latest: a fix pushed since does not hide the problem."""
    first = hub.add_repo("acme/card-c", files={"README.md": COMPLETE_CARD})
    broken = hub.commit("acme/card-c", {"README.md": INCOMPLETE_CARD}, "Oops", author="alice")
    hub.commit("acme/card-c", {"README.md": COMPLETE_CARD}, "Fix", author="alice")
    outcome = deliver(app, "model_card_check", commit_event("acme/card-c", first, broken))
    assert outcome["result"]["missing"] == ["license"]


def test_a_complete_card_opens_nothing(app: RunningApp, hub: FakeHub) -> None:
    first = hub.add_repo("acme/card-ok", files={"README.md": "# draft"})
    sha = hub.commit("acme/card-ok", {"README.md": COMPLETE_CARD}, "Card", author="alice")
    outcome = deliver(app, "model_card_check", commit_event("acme/card-ok", first, sha))
    assert outcome["result"] == {"checked": True, "missing": []}
    assert hub.discussions("acme/card-ok") == []


def test_other_repo_types_and_branches_are_left_alone(app: RunningApp, hub: FakeHub) -> None:
    hub.clear_requests()
    dataset = deliver(app, "model_card_check", commit_event("acme/some-data", "1" * 40, "2" * 40, repo_type="dataset"))
    assert dataset["state"] == "skipped"
    assert dataset["note"] == "repo type 'dataset' is not one of ['model']"
    branch = deliver(app, "model_card_check", sample_payload("new-branch", repo="acme/card-a"))
    assert branch["result"] == {"checked": False, "reason": "main did not move"}
    assert hub.requests == []  # neither called the Hub


# --- changelog (and the loop guard) ------------------------------------------------------------


def test_the_changelog_lists_a_push_and_its_own_commit_comes_back_skipped(app: RunningApp, hub: FakeHub) -> None:
    initial = hub.add_repo("acme/log-data", "dataset", files={"data.csv": "a\n1\n"})
    one = hub.commit("acme/log-data", {"data.csv": "a\n1\n2\n"}, "Add row 2", repo_type="dataset", author="alice")
    two = hub.commit("acme/log-data", {"data.csv": "a\n1\n2\n3\n"}, "Add row 3", repo_type="dataset", author="alice")

    outcome = deliver(app, "changelog", commit_event("acme/log-data", initial, two, repo_type="dataset"))

    repo = hub.repo("acme/log-data", "dataset")
    ours = repo.head
    assert outcome["result"] == {"updated": True, "added": [two, one], "commit": ours}
    latest = repo.commits[ours]
    assert (latest.author, latest.title, latest.parents) == ("bot", "Update CHANGELOG.md: 2 new commit(s)", [two])
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert hub.files_at("acme/log-data", repo_type="dataset")["CHANGELOG.md"] == (
        f"# Changelog\n\n- {today} `{two[:7]}` Add row 3 (alice)\n- {today} `{one[:7]}` Add row 2 (alice)\n"
    )

    # The Hub sends the changelog's own commit back: the loop guard skips it, nothing runs.
    echo = deliver(app, "changelog", commit_event("acme/log-data", two, ours, repo_type="dataset"))
    assert echo["state"] == "skipped"
    assert echo["note"].startswith(f"loop guard: commit {ours[:7]} was made by this Space")
    assert hub.repo("acme/log-data", "dataset").head == ours

    # Someone else pushes: a new line on top, the bot's own commit never listed.
    three = hub.commit("acme/log-data", {"data.csv": "a\n"}, "Reset", repo_type="dataset", author="alice")
    later = deliver(app, "changelog", commit_event("acme/log-data", ours, three, repo_type="dataset"))
    assert later["result"]["added"] == [three]
    changelog = hub.files_at("acme/log-data", repo_type="dataset")["CHANGELOG.md"]
    assert changelog.splitlines()[2:] == [
        f"- {today} `{three[:7]}` Reset (alice)",
        f"- {today} `{two[:7]}` Add row 3 (alice)",
        f"- {today} `{one[:7]}` Add row 2 (alice)",
    ]
    assert ours[:7] not in changelog


def test_replaying_a_changelog_event_adds_nothing(app: RunningApp, hub: FakeHub) -> None:
    initial = hub.add_repo("acme/log-replay")
    pushed = hub.commit("acme/log-replay", {"a.txt": "1"}, "One", author="alice")
    event = commit_event("acme/log-replay", initial, pushed)
    assert deliver(app, "changelog", event)["result"]["updated"] is True
    head = hub.repo("acme/log-replay").head

    replayed = deliver(app, "changelog", event)  # the Hub's Replay button: a new delivery id

    assert replayed["result"] == {"updated": False, "reason": "already up to date"}
    assert hub.repo("acme/log-replay").head == head


def test_the_changelog_ignores_pushes_that_do_not_move_main(app: RunningApp, hub: FakeHub) -> None:
    hub.add_repo("acme/log-branch")
    outcome = deliver(app, "changelog", sample_payload("tag", repo="acme/log-branch"))
    assert outcome["result"] == {"updated": False, "reason": "main did not move"}


# --- without HF_TOKEN --------------------------------------------------------------------------


def test_without_a_token_the_event_fails_with_the_fix(hub: FakeHub, tmp_path: Path) -> None:
    hub.add_repo("acme/no-token")
    with running_app(
        tmp_path,
        handlers=None,
        HF_ENDPOINT=hub.url,
        HF_HOME=str(tmp_path / "hf_home"),  # no HF_TOKEN, and no token saved by `hf auth login`
        WEBHOOK_MAX_ATTEMPTS="1",
    ) as app:
        hub.clear_requests()
        payload = sample_payload("comment", repo="acme/no-token", comment={"content": "/ping"})
        outcome = deliver(app, "discussion_bot", payload)
        logs = app.logs()

    assert outcome["state"] == "dead"
    last_line = outcome["error"].strip().splitlines()[-1]
    assert last_line.startswith("lib.core.errors.MissingToken: HF_TOKEN is not set: add it as a Space secret")
    assert "HF_TOKEN is not set: add it as a Space secret" in logs
    assert hub.requests == []
