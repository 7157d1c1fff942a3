"""Tests of lib.core.events: the `EVENTS = Events(...)` filter a handler module declares."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from lib.core.errors import ConfigurationError
from lib.core.events import ALL_EVENTS, Events
from lib.core.payload import WebhookPayload

FIXTURES = Path(__file__).parent / "fixtures"


def payload(
    scope: str = "repo.content",
    action: str = "update",
    *,
    repo_type: str = "model",
    repo_name: str = "my-org/my-model",
) -> WebhookPayload:
    body: dict[str, Any] = json.loads((FIXTURES / "repo-content-update-space-new-pr-ref.json").read_text())
    body["event"] = {"scope": scope, "action": action}
    body["repo"]["type"] = repo_type
    body["repo"]["name"] = repo_name
    return WebhookPayload.model_validate(body)


# --- construction: filters that can never match stop the start -------------------------------------


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"scope": []}, "Events(scope=[]) can never match"),
        ({"action": ()}, "Events(action=[]) can never match"),
        ({"repo_type": []}, "Events(repo_type=[]) can never match"),
        ({"repo": []}, "Events(repo=[]) can never match"),
        ({"scope": ""}, "non-empty strings"),
        ({"scope": ["repo", 5]}, "non-empty strings"),
        ({"action": "  "}, "non-empty strings"),
        ({"repo_type": "modle"}, "repo_type='modle'"),
        ({"repo_type": ["model", "models"]}, "repo_type='models'"),
        ({"scope": "repository"}, "scope='repository'"),
        ({"scope": "content"}, "scope='content'"),
        ({"scope": "Repo"}, "scope='Repo'"),
        ({"scope": "discusion"}, "'discussion.comment'); did you mean 'discussion'?"),
        ({"repo": "gpt2-no-owner"}, "owner/name"),
        ({"scope": "repo.content", "action": "create"}, "action='create'"),
        ({"scope": "repo.config", "action": "delete"}, "action='delete'"),
        ({"scope": "discussion.comment", "action": "move"}, "action='move'"),
        ({"scope": "repo.content", "action": ["update", "create"]}, "action='create'"),
    ],
)
def test_a_filter_that_can_never_match_is_refused(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Events(**kwargs)
    assert fragment in str(caught.value)


def test_the_refusal_lists_what_would_work() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Events(repo_type="modle")
    assert "['dataset', 'model', 'space']" in str(caught.value)

    with pytest.raises(ConfigurationError) as caught:
        Events(scope="repo.content", action="create")
    assert "['update']" in str(caught.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"scope": "repo"},
        {"scope": "repo.content", "action": "update"},
        {"scope": "repo", "action": ["create", "delete", "move", "update"]},
        {"scope": "discussion", "action": "create"},
        {"scope": "discussion.comment", "action": ["create", "update"]},
        {"scope": "repo.config.dois", "action": "update"},  # narrower than any known scope: parent's actions
        {"scope": "discussion.comment.reaction", "action": "create"},
        {"action": "move"},
        {"repo_type": ["model", "dataset", "space"]},
        {"repo": ["my-org/*", "someone/exact-name"]},
    ],
)
def test_filters_that_can_match_are_built(kwargs: dict[str, Any]) -> None:
    Events(**kwargs)
    assert Events(**kwargs).unknown_values() == []


# --- values the Hub is not known to send: accepted, with the nearest known value ------------------


@pytest.mark.parametrize(
    "kwargs, note",
    [
        (
            {"scope": "repo.contents"},
            "scope 'repo.contents' is not one the Hub is known to send; did you mean 'repo.content'?",
        ),
        ({"scope": "discussion.comments"}, "did you mean 'discussion.comment'?"),
        (
            {"scope": ["repo", "repo.contnet"]},
            "scope 'repo.contnet' is not one the Hub is known to send; did you mean 'repo.content'?",
        ),
        ({"action": "updated"}, "action 'updated' is not one the Hub is known to send; did you mean 'update'?"),
        (
            {"scope": "repo.content", "action": "archive"},
            "action 'archive' is not one the Hub is known to send (known: create, delete, move, update).",
        ),
    ],
)
def test_unknown_scopes_and_actions_are_accepted_with_the_nearest_known_value(
    kwargs: dict[str, Any], note: str
) -> None:
    notes = Events(**kwargs).unknown_values()
    assert len(notes) == 1 and note in notes[0]


def test_an_unknown_scope_really_matches_nothing_the_hub_sends_today() -> None:
    """The reason to warn: a typo'd scope skips every event."""
    events = Events(scope="repo.contents")
    assert events.rejection(payload()) == "scope 'repo.content' is not one of ['repo.contents']"


def test_a_single_string_and_a_list_are_the_same_filter() -> None:
    assert Events(scope="repo", action="update") == Events(scope=["repo"], action=("update",))
    assert Events(scope="repo").scopes == ("repo",)


def test_events_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Events().scopes = ("repo",)  # type: ignore[misc]


# --- what a filter accepts, and why it rejects ------------------------------------------------------


def test_no_filter_accepts_everything_including_unknown_kinds() -> None:
    assert ALL_EVENTS.accepts(payload())
    assert ALL_EVENTS.accepts(payload("repo.config.dois", "publish", repo_type="kernel"))


@pytest.mark.parametrize(
    "wanted, scope, accepted",
    [
        ("repo", "repo", True),
        ("repo", "repo.content", True),
        ("repo", "repo.config", True),
        ("repo", "repo.config.dois", True),
        ("repo.config", "repo.config.dois", True),
        ("repo.content", "repo", False),
        ("repo.content", "repo.config", False),
        ("repo.con", "repo.content", False),
        ("repo", "repository", False),
        ("discussion", "discussion.comment", True),
        ("discussion.comment", "discussion", False),
        ("discussion", "repo.content", False),
    ],
)
def test_scopes_match_by_whole_segment_prefix(wanted: str, scope: str, accepted: bool) -> None:
    assert Events(scope=wanted).accepts(payload(scope)) is accepted


def test_rejection_names_the_scope() -> None:
    reason = Events(scope="discussion").rejection(payload("repo.content"))
    assert reason == "scope 'repo.content' is not one of ['discussion']"


def test_rejection_names_the_action() -> None:
    reason = Events(scope="repo", action=["create", "delete"]).rejection(payload("repo", "update"))
    assert reason == "action 'update' is not one of ['create', 'delete']"


def test_rejection_names_the_repo_type() -> None:
    reason = Events(repo_type="dataset").rejection(payload(repo_type="space"))
    assert reason == "repo type 'space' is not one of ['dataset']"


def test_rejection_names_the_repo() -> None:
    reason = Events(repo="my-org/*").rejection(payload(repo_name="other-org/x"))
    assert reason == "repo 'other-org/x' matches none of ['my-org/*']"


def test_the_first_failing_criterion_is_reported() -> None:
    wanted = Events(scope="discussion", repo_type="dataset")
    assert wanted.rejection(payload("repo.content", repo_type="model")).startswith("scope")
    assert wanted.rejection(payload("discussion", "create", repo_type="model")).startswith("repo type")


@pytest.mark.parametrize(
    "pattern, name, accepted",
    [
        ("my-org/*", "my-org/model", True),
        ("my-org/*", "my-org-2/model", False),
        ("my-org/*", "other/my-org", False),
        ("*/bert-*", "google/bert-base", True),
        ("*/bert-*", "google/roberta", False),
        ("someone/exact", "someone/exact", True),
        ("someone/exact", "someone/exact-2", False),
        ("someone/m?del", "someone/model", True),
    ],
)
def test_repo_patterns_are_shell_style(pattern: str, name: str, accepted: bool) -> None:
    assert Events(repo=pattern).accepts(payload(repo_name=name)) is accepted


def test_every_criterion_must_hold() -> None:
    wanted = Events(scope="repo.content", action="update", repo_type=["model", "dataset"], repo="my-org/*")
    assert wanted.accepts(payload(repo_type="dataset", repo_name="my-org/data"))
    assert wanted.rejection(payload(repo_type="space", repo_name="my-org/app")) is not None
    assert wanted.rejection(payload(repo_type="model", repo_name="you/model")) is not None


# --- what the landing page says about a filter -------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, domains",
    [
        ({}, ("repo", "discussion")),
        ({"scope": "repo.content"}, ("repo",)),
        ({"scope": ["repo.content", "repo.config"]}, ("repo",)),
        ({"scope": "discussion.comment"}, ("discussion",)),
        ({"scope": ["discussion", "repo"]}, ("discussion", "repo")),
        ({"repo_type": "model"}, ("repo", "discussion")),
    ],
)
def test_domains_to_tick_on_the_hub(kwargs: dict[str, Any], domains: tuple[str, ...]) -> None:
    assert Events(**kwargs).domains == domains


def test_describe_without_criteria() -> None:
    assert Events().describe() == "every event"


def test_describe_lists_each_criterion() -> None:
    wanted = Events(scope=["repo.content", "repo.config"], action="update", repo_type="model", repo="my-org/*")
    assert wanted.describe() == ("scope repo.content or repo.config, action update, repo type model, repo my-org/*")


def test_a_raw_delivery_passes_only_a_filter_that_wants_every_event() -> None:
    assert ALL_EVENTS.rejection(None) is None
    reason = Events(scope="repo.content").rejection(None)
    assert reason == "not a Hub event, and it wants scope repo.content"
    assert Events(repo="my-org/*").rejection(None) is not None
