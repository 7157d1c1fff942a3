"""Every example handler, tested the way a handler author tests theirs: `lib.testing.run_handler`,
plain pytest, no server. Copy this file's shape for your own handlers (handlers/README.md).

A handler that calls the Hub gets either a stand-in (`hub=`, an object with the methods it calls)
or a real client pointed at the local fake Hub (`hub_endpoint=`, `token=`; tests/fakehub.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fakehub import FakeHub, fake_hub  # noqa: F401  (the fixture)

from lib.hub.client import own_commits
from lib.testing import run_handler

FIXTURES = Path(__file__).parent / "fixtures"


# --- log_events: no Hub, no settings ---------------------------------------------------------------


def test_log_events_summarises_a_commit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    run = run_handler("handlers/log_events.py", "commit", repo="my-org/my-model")

    assert run.ok
    assert run.result["summary"].startswith("repo.content/update on my-org/my-model (model) at ")
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("handlers.log_events", run.result["summary"])]


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_log_events_handles_every_recorded_payload(fixture: str) -> None:
    run = run_handler("handlers/log_events.py", FIXTURES / fixture)
    assert run.ok, run.error
    assert run.payload.repo.name in run.result["summary"]


# --- discussion_bot: a stand-in for the Hub ----------------------------------------------------------


class BotHub:
    """Just what discussion_bot calls: `hub.me` and `hub.comment_discussion`."""

    def __init__(self) -> None:
        self.me = {"id": "bot-id", "name": "bot"}
        self.comments: list[tuple[Any, ...]] = []

    def comment_discussion(self, repo: str, num: int, text: str, *, repo_type: str) -> SimpleNamespace:
        self.comments.append((repo, num, text, repo_type))
        return SimpleNamespace(id="comment-id")


def test_discussion_bot_answers_ping() -> None:
    hub = BotHub()
    run = run_handler("handlers/discussion_bot.py", "comment", repo="my-org/m", comment={"content": "/ping"}, hub=hub)

    assert run.result == {"answered": True, "discussion": run.payload.discussion.num}
    assert hub.comments == [("my-org/m", run.payload.discussion.num, "pong 🏓", "model")]


def test_discussion_bot_never_answers_itself() -> None:
    hub = BotHub()
    run = run_handler(
        "handlers/discussion_bot.py", "comment", comment={"content": "/ping", "author": {"id": "bot-id"}}, hub=hub
    )
    assert run.result == {"answered": False, "reason": "my own comment"} and hub.comments == []


def test_discussion_bot_is_skipped_for_commits() -> None:
    run = run_handler("handlers/discussion_bot.py", "commit", hub=BotHub())
    assert run.skipped and run.reason == "scope 'repo.content' is not one of ['discussion']"


def test_a_handler_given_no_hub_fails_saying_how_to_give_one() -> None:
    run = run_handler("handlers/discussion_bot.py", "comment", comment={"content": "/ping"})
    assert not run.ok and "gave it no Hub" in str(run.error)


# --- model_card_check and changelog: the local fake Hub ------------------------------------------------


def test_model_card_check_opens_one_discussion(fake_hub: FakeHub) -> None:  # noqa: F811
    token = fake_hub.add_user("bot")
    sha = fake_hub.add_repo("bot/m", files={"README.md": "---\nlanguage: en\n---\n# M\n"})
    event = {"updatedRefs": [{"ref": "refs/heads/main", "oldSha": None, "newSha": sha}]}

    first = run_handler(
        "handlers/model_card_check.py", "commit", repo="bot/m", **event, hub_endpoint=fake_hub.url, token=token
    )
    again = run_handler(
        "handlers/model_card_check.py", "commit", repo="bot/m", **event, hub_endpoint=fake_hub.url, token=token
    )

    assert first.result == {"checked": True, "missing": ["license"], "discussion": 1, "opened": True}
    assert again.result == {"checked": True, "missing": ["license"], "discussion": 1, "opened": False}
    assert [d.title for d in fake_hub.discussions("bot/m")] == ["Model card: add license to the metadata"]


def test_changelog_commits_once_and_its_echo_is_skipped(fake_hub: FakeHub, tmp_path: Path) -> None:  # noqa: F811
    token = fake_hub.add_user("bot")
    old = fake_hub.add_repo("bot/m", files={"a.txt": "1"})
    new = fake_hub.commit("bot/m", {"a.txt": "2"}, "Second commit")
    ledger = own_commits(tmp_path)  # the commits this Space made, kept across the two runs

    def push(before: str, after: str) -> Any:
        refs = [{"ref": "refs/heads/main", "oldSha": before, "newSha": after}]
        return run_handler(
            "handlers/changelog.py",
            "commit",
            repo="bot/m",
            updatedRefs=refs,
            hub_endpoint=fake_hub.url,
            token=token,
            ledger=ledger,
        )

    run = push(old, new)
    assert run.result["updated"] is True and run.result["added"] == [new]
    assert "Second commit" in fake_hub.files_at("bot/m")["CHANGELOG.md"]

    echo = push(new, run.result["commit"])  # the Hub sends the handler's own commit back
    assert echo.skipped and echo.reason.startswith("loop guard:")


# --- the example in handlers/README.md runs as written ---------------------------------------------


def test_the_readme_example_passes() -> None:
    readme = (Path(__file__).parent.parent / "handlers" / "README.md").read_text()
    section = readme.split("## Testing a handler", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "handlers/README.md", "exec"), namespace)
    tests = [value for name, value in namespace.items() if name.startswith("test_")]
    assert len(tests) == 2
    for test in tests:
        test()
