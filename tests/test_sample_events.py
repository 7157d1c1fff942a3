"""`lib.core.sample_events`: every kind is a payload the Hub could have sent, shaped like the recorded ones."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from apprunner import FIXTURES

from lib.core.events import Events
from lib.core.payload import WebhookPayload
from lib.core.sample_events import SAMPLE_KINDS, sample_payload
from lib.hub.loop_guard import new_commit_shas
from lib.receiver.delivery import delivery_key

EXPECTED_EVENT = {
    "commit": ("repo.content", "update"),
    "new-branch": ("repo.content", "update"),
    "tag": ("repo.content", "update"),
    "pr-opened": ("discussion", "create"),
    "discussion-opened": ("discussion", "create"),
    "comment": ("discussion.comment", "create"),
    "pr-merged": ("discussion", "update"),
    "visibility": ("repo.config", "update"),
    "repo-moved": ("repo", "move"),
    "repo-created": ("repo", "create"),
    "repo-deleted": ("repo", "delete"),
}
SHA = re.compile(r"^[0-9a-f]{40}$")
OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
# Documented in HUB-WEBHOOKS.md but in no recorded payload: `movedTo` (repo move) and
# `changes.mergeCommitId` (merged pull requests).
DOCUMENTED_ONLY = {"$": {"movedTo"}, "$.movedTo": {"name", "owner"}, "$.movedTo.owner": {"id"}}
DOCUMENTED_ONLY["$.discussion.changes"] = {"mergeCommitId"}


def _shapes(value: Any, path: str = "$", into: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    """Every object's keys, by its path (list items share their list's path)."""
    into = {} if into is None else into
    if isinstance(value, dict):
        into.setdefault(path, set()).update(value)
        for key, item in value.items():
            _shapes(item, f"{path}.{key}", into)
    elif isinstance(value, list):
        for item in value:
            _shapes(item, f"{path}[]", into)
    return into


def _recorded_shapes() -> dict[str, set[str]]:
    shapes: dict[str, set[str]] = {}
    for file in [*FIXTURES.glob("*.json"), *FIXTURES.glob("fragments/*.json")]:
        _shapes(json.loads(file.read_text()), into=shapes)
    for path, keys in DOCUMENTED_ONLY.items():
        shapes.setdefault(path, set()).update(keys)
    return shapes


RECORDED = _recorded_shapes()


def test_the_kinds_are_the_ones_the_console_and_send_list() -> None:
    assert list(SAMPLE_KINDS) == list(EXPECTED_EVENT)
    assert all(description and "\n" not in description for description in SAMPLE_KINDS.values())


@pytest.mark.parametrize("kind", list(SAMPLE_KINDS))
@pytest.mark.parametrize("repo_type", ["model", "dataset", "space"])
def test_every_sample_parses_with_the_expected_event(kind: str, repo_type: str) -> None:
    payload = WebhookPayload.model_validate(sample_payload(kind, repo="acme/thing", repo_type=repo_type))
    assert (payload.event.scope, payload.event.action) == EXPECTED_EVENT[kind]
    assert (payload.repo.name, payload.repo.type) == ("acme/thing", repo_type)
    assert payload.webhook.version == 3
    assert payload.model_extra == {}  # no key outside the model either


@pytest.mark.parametrize("kind", list(SAMPLE_KINDS))
def test_every_key_is_one_the_hub_sends(kind: str) -> None:
    for repo_type in ("model", "space"):
        for path, keys in _shapes(sample_payload(kind, repo_type=repo_type)).items():
            invented = keys - RECORDED.get(path, set())
            assert not invented, f"{kind}: {path} has keys no recorded payload has: {sorted(invented)}"


def test_repo_blocks_follow_the_hubs_urls() -> None:
    model = sample_payload("repo-created", repo="acme/m")["repo"]
    dataset = sample_payload("repo-created", repo="acme/d", repo_type="dataset")["repo"]
    space = sample_payload("repo-created", repo="Acme/My_Space", repo_type="space")["repo"]
    assert model["url"] == {"web": "https://huggingface.co/acme/m", "api": "https://huggingface.co/api/models/acme/m"}
    assert dataset["url"]["web"] == "https://huggingface.co/datasets/acme/d"
    assert dataset["url"]["api"] == "https://huggingface.co/api/datasets/acme/d"
    assert space["url"]["web"] == "https://huggingface.co/spaces/Acme/My_Space"
    assert space["subdomain"] == "acme-my-space"
    assert "subdomain" not in model


def test_head_sha_only_on_repo_scopes() -> None:
    for kind in SAMPLE_KINDS:
        payload = sample_payload(kind)
        assert ("headSha" in payload["repo"]) == payload["event"]["scope"].startswith("repo"), kind


def test_ids_and_shas_are_fresh_on_every_call_but_the_repo_id_is_stable() -> None:
    first, second = sample_payload("comment"), sample_payload("comment")
    for block in ("discussion", "comment", "webhook"):
        assert OBJECT_ID.match(first[block]["id"])
        assert first[block]["id"] != second[block]["id"]
    assert first["repo"]["id"] == second["repo"]["id"]
    assert OBJECT_ID.match(first["repo"]["id"])
    assert sample_payload("comment", repo="acme/other")["repo"]["id"] != first["repo"]["id"]
    commits = [sample_payload("commit")["updatedRefs"][0] for _ in range(2)]
    assert all(SHA.match(ref["newSha"]) and SHA.match(ref["oldSha"]) for ref in commits)
    assert commits[0]["newSha"] != commits[1]["newSha"]


@pytest.mark.parametrize("kind", list(SAMPLE_KINDS))
def test_two_samples_are_two_events_to_duplicate_detection(kind: str) -> None:
    keys = {delivery_key(None, WebhookPayload.model_validate(sample_payload(kind))) for _ in range(3)}
    assert len(keys) == 3


def test_ref_updates_name_their_commits() -> None:
    commit = WebhookPayload.model_validate(sample_payload("commit"))
    assert commit.updated_branches == ["main"]
    assert commit.commit_sha == commit.repo.head_sha == commit.updatedRefs[0].newSha
    branch = WebhookPayload.model_validate(sample_payload("new-branch"))
    assert branch.updated_branches == ["dev"] and branch.updatedRefs[0].is_created
    tag = WebhookPayload.model_validate(sample_payload("tag"))
    assert tag.updatedRefs[0].tag == "v1.0" and tag.updatedRefs[0].newSha == tag.repo.head_sha
    assert new_commit_shas(commit) == [commit.commit_sha]


def test_discussion_kinds() -> None:
    opened = WebhookPayload.model_validate(sample_payload("pr-opened"))
    assert opened.discussion.isPullRequest and opened.discussion.status == "open"
    assert opened.discussion.changes.base == "refs/heads/main"
    assert opened.comment.author.id == opened.discussion.author.id
    assert opened.comment.url.web == f"{opened.discussion.url.web}#{opened.comment.id}"
    discussion = WebhookPayload.model_validate(sample_payload("discussion-opened"))
    assert not discussion.discussion.isPullRequest and discussion.discussion.changes is None
    merged = WebhookPayload.model_validate(sample_payload("pr-merged"))
    assert merged.discussion.status == "merged" and merged.comment is None
    assert merged.commit_sha == merged.discussion.changes.mergeCommitId
    comment = WebhookPayload.model_validate(sample_payload("comment"))
    assert comment.comment.content and not comment.comment.hidden


def test_config_and_move_kinds() -> None:
    private = WebhookPayload.model_validate(sample_payload("visibility"))
    assert private.updatedConfig.private is True and private.repo.private is True
    moved = WebhookPayload.model_validate(sample_payload("repo-moved", repo="acme/old"))
    assert moved.movedTo.name == "acme/old-renamed" and moved.movedTo.owner.id == moved.repo.owner.id


def test_overrides_merge_into_the_sample() -> None:
    payload = sample_payload("comment", comment={"content": "/ping", "author": {"id": "a" * 24}})
    assert payload["comment"]["content"] == "/ping"
    assert payload["comment"]["author"] == {"id": "a" * 24}
    assert OBJECT_ID.match(payload["comment"]["id"]) and payload["comment"]["hidden"] is False
    refs = [{"ref": "refs/heads/main", "oldSha": None, "newSha": "b" * 40}]
    assert sample_payload("commit", updatedRefs=refs)["updatedRefs"] == refs  # lists replace


def test_an_overridden_discussion_number_moves_its_urls() -> None:
    payload = sample_payload("comment", repo="acme/m", discussion={"num": 7})
    assert payload["discussion"]["url"] == {
        "web": "https://huggingface.co/acme/m/discussions/7",
        "api": "https://huggingface.co/api/models/acme/m/discussions/7",
    }
    assert payload["comment"]["url"]["web"] == f"https://huggingface.co/acme/m/discussions/7#{payload['comment']['id']}"
    kept = sample_payload("comment", discussion={"num": 7, "url": {"web": "w", "api": "a"}})
    assert kept["discussion"]["url"] == {"web": "w", "api": "a"}


def test_unknown_kinds_and_repo_types_say_what_exists() -> None:
    with pytest.raises(ValueError, match="choose one of: commit, new-branch"):
        sample_payload("push")
    with pytest.raises(ValueError, match="model, dataset, space"):
        sample_payload("commit", repo_type="bucket")


def test_the_example_handlers_filters_see_the_samples_as_documented() -> None:
    bot = Events(scope="discussion", action="create")
    card = Events(scope="repo.content", repo_type="model")
    wanted = {kind for kind in SAMPLE_KINDS if bot.accepts(WebhookPayload.model_validate(sample_payload(kind)))}
    assert wanted == {"pr-opened", "discussion-opened", "comment"}
    assert card.accepts(WebhookPayload.model_validate(sample_payload("commit")))
    assert not card.accepts(WebhookPayload.model_validate(sample_payload("commit", repo_type="dataset")))
