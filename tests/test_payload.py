"""Tests of lib.core.payload on the recorded Hub payloads in tests/fixtures (no network)."""

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import _webhooks_payload as reference
from pydantic import BaseModel, ValidationError

from lib.core import payload as ours
from lib.core.payload import (
    KNOWN_ACTIONS,
    KNOWN_DISCUSSION_STATUSES,
    KNOWN_REPO_TYPES,
    KNOWN_SCOPES,
    WebhookPayload,
    WebhookPayloadRepo,
    WebhookPayloadUpdatedRef,
)

FIXTURES = Path(__file__).parent / "fixtures"
FRAGMENTS = FIXTURES / "fragments"
FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))

SPACE_HEAD_SHA = "5e7f29fffcc579cb52539fddb14a1a4f85f39e44"
FRAGMENT_HEAD_SHA = "c379e821c9c95d613899e8c4343e4bfee2b0c600"
MAIN_NEW_SHA = "575db8b7a51b6f85eb06eee540738584589f131c"


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def fixture(name: str) -> dict[str, Any]:
    return load(FIXTURES / f"{name}.json")


def fragment(name: str) -> dict[str, Any]:
    return load(FRAGMENTS / f"{name}.json")


def base(scope: str = "repo.content", action: str = "update", **fragments: str) -> dict[str, Any]:
    """A whole payload: event + documented repo fragment + webhook, plus the named fragments."""
    body: dict[str, Any] = {
        "event": {"action": action, "scope": scope},
        **fragment("repo"),
        "webhook": {"id": "6390e855e30d9209411de93b", "version": 3},
    }
    for name in fragments.values():
        body.update(fragment(name))
    return body


def round_trip(model: WebhookPayload) -> dict[str, Any]:
    return json.loads(model.model_dump_json(by_alias=True, exclude_unset=True))


# --- whole recorded payloads -------------------------------------------------------------------


def test_fixture_files_are_present() -> None:
    assert len(FIXTURE_FILES) == 5


@pytest.mark.parametrize(
    "name, repo_name",
    [
        ("discussion-create-pr-opened", "openai-community/gpt2"),
        ("discussion-create-pr-opened-2023", "gpt2"),
        ("discussion-create-with-comment", "gpt2"),
    ],
)
def test_discussion_created_with_comment(name: str, repo_name: str) -> None:
    p = WebhookPayload.model_validate(fixture(name))

    assert (p.event.action, p.event.scope) == ("create", "discussion")
    assert (p.repo.type, p.repo.name, p.repo.id) == ("model", repo_name, "621ffdc036468d709f17434d")
    assert p.repo.private is False
    assert p.repo.owner is not None and p.repo.owner.id == "628b753283ef59b5be89e937"
    assert p.repo.head_sha is None  # discussion events carry no headSha
    assert p.discussion is not None
    assert (p.discussion.num, p.discussion.status, p.discussion.isPullRequest) == (19, "open", True)
    assert p.discussion.title == "Update co2 emissions"
    assert p.discussion.author.id == "61d2f90c3c2083e1c08af22d"
    assert p.discussion.changes is not None
    assert p.discussion.changes.base == "refs/heads/main"
    assert p.discussion.changes.mergeCommitId is None
    assert p.discussion.url.web.endswith(f"{repo_name}/discussions/19")
    assert p.comment is not None
    assert p.comment.content == "Add co2 emissions information to the model card"
    assert p.comment.hidden is False
    assert p.comment.url.api is None
    assert p.comment.url.web.endswith("#6399f58518721fdd27fc9caa")
    assert (p.webhook.id, p.webhook.version) == ("6390e855e30d9209411de93b", 3)
    assert p.updatedRefs is None and p.updatedConfig is None and p.movedTo is None


def test_discussion_closed_on_space() -> None:
    p = WebhookPayload.model_validate(fixture("discussion-update-pr-closed-space"))

    assert (p.event.action, p.event.scope) == ("update", "discussion")
    assert (p.repo.type, p.repo.name) == ("space", "Wauplin/leaderboard")
    assert p.repo.url is not None and p.repo.url.web == "https://huggingface.co/spaces/Wauplin/leaderboard"
    assert p.discussion is not None
    assert (p.discussion.num, p.discussion.status, p.discussion.isPullRequest) == (4, "closed", True)
    assert p.comment is None
    assert p.webhook.id == "656a05348c99518820a4dd54"


def test_repo_content_update_with_new_pr_ref() -> None:
    p = WebhookPayload.model_validate(fixture("repo-content-update-space-new-pr-ref"))

    assert (p.event.action, p.event.scope) == ("update", "repo.content")
    assert (p.repo.type, p.repo.name, p.repo.id) == (
        "space",
        "Wauplin/gradio-user-history",
        "651311c46de9c503f3f34a9e",
    )
    assert p.repo.subdomain == "wauplin-gradio-user-history"
    assert p.repo.headSha == SPACE_HEAD_SHA
    assert p.discussion is None and p.comment is None
    assert p.updatedRefs is not None and len(p.updatedRefs) == 1
    ref = p.updatedRefs[0]
    assert ref.ref == "refs/pr/5"
    assert ref.oldSha is None
    assert ref.newSha == "227c78346870a85e5de4fff8a585db68df975406"
    assert ref.is_created and not ref.is_deleted
    assert ref.pr_num == 5 and ref.branch is None and ref.tag is None


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.stem)
def test_round_trip_keeps_every_fixture_key(path: Path) -> None:
    original = load(path)
    assert round_trip(WebhookPayload.model_validate(original)) == original
    assert round_trip(WebhookPayload.model_validate_json(path.read_bytes())) == original


# --- fragments combined into whole payloads -----------------------------------------------------


def test_base_payload_with_documented_repo() -> None:
    p = WebhookPayload.model_validate(base())

    assert (p.repo.name, p.repo.type, p.repo.id) == (
        "some-user/some-repo",
        "model",
        "6366c000a2abcdf2fd69a080",
    )
    assert p.repo.head_sha == FRAGMENT_HEAD_SHA
    assert p.repo.tags is None and p.repo.subdomain is None
    assert p.repo.url is not None and p.repo.url.api == "https://huggingface.co/api/models/some-user/some-repo"


def test_repo_with_tags_from_2025() -> None:
    body = base(repo="repo-with-tags-2025")
    p = WebhookPayload.model_validate(body)

    assert p.repo.tags == ["license:other", "has_space"]
    assert p.repo.headSha == FRAGMENT_HEAD_SHA
    assert round_trip(p) == body


def test_discussion_and_comment_fragments() -> None:
    body = base("discussion.comment", "create", d="discussion", c="comment")
    p = WebhookPayload.model_validate(body)

    assert p.discussion is not None
    assert (p.discussion.id, p.discussion.num, p.discussion.title) == (
        "639885d811ae2bad2b7ba461",
        3,
        "Hello!",
    )
    assert (p.discussion.status, p.discussion.isPullRequest) == ("open", True)
    assert p.comment is not None
    assert (p.comment.id, p.comment.content, p.comment.hidden) == (
        "6398872887bfcfb93a306f18",
        "This adds an env key",
        False,
    )
    assert p.comment.author.id == "61d2000c3c2083e1c08af22d"
    assert round_trip(p) == body


def test_updated_refs_fragment() -> None:
    body = base(r="updatedRefs")
    p = WebhookPayload.model_validate(body)

    assert p.updatedRefs is not None
    main, tag = p.updatedRefs
    assert (main.ref, main.oldSha, main.newSha) == (
        "refs/heads/main",
        "ce9a4674fa833a68d5a73ec355f0ea95eedd60b7",
        MAIN_NEW_SHA,
    )
    assert (tag.ref, tag.oldSha, tag.newSha) == ("refs/tags/test", None, MAIN_NEW_SHA)
    assert round_trip(p) == body


@pytest.mark.parametrize(
    "name, private, extra",
    [
        ("updatedConfig_empty", None, {}),
        ("updatedConfig_private", False, {}),
        ("updatedConfig_xetEnabled-2025", None, {"xetEnabled": True}),
    ],
)
def test_updated_config_fragments(name: str, private: bool | None, extra: dict[str, Any]) -> None:
    body = base("repo.config", c=name)
    p = WebhookPayload.model_validate(body)

    assert p.updatedConfig is not None
    assert p.updatedConfig.private is private
    assert p.updatedConfig.model_extra == extra
    assert round_trip(p) == body


def test_updated_config_extra_is_an_attribute() -> None:
    p = WebhookPayload.model_validate(base("repo.config", c="updatedConfig_xetEnabled-2025"))

    assert p.updatedConfig is not None
    assert p.updatedConfig.xetEnabled is True


# --- unknown keys and future values -------------------------------------------------------------


def with_unknown_keys() -> dict[str, Any]:
    body = base("discussion", "create", d="discussion", c="comment", r="updatedRefs")
    body["future"] = {"nested": [1, None, "x"]}
    body["event"]["source"] = "api"
    body["repo"]["likes"] = 42
    body["repo"]["owner"]["name"] = "some-user"
    body["repo"]["url"]["git"] = None
    body["discussion"]["reactions"] = []
    body["discussion"]["changes"]["head"] = "refs/pr/3"
    body["comment"]["edited"] = True
    body["webhook"]["name"] = "ci"
    body["updatedRefs"][0]["forced"] = False
    return body


def test_round_trip_keeps_unknown_keys_at_every_level() -> None:
    body = with_unknown_keys()
    snapshot = copy.deepcopy(body)

    assert round_trip(WebhookPayload.model_validate(body)) == snapshot


def test_unknown_keys_are_reachable() -> None:
    p = WebhookPayload.model_validate(with_unknown_keys())

    assert p.model_extra == {"future": {"nested": [1, None, "x"]}}
    assert p.future == {"nested": [1, None, "x"]}
    assert p.event.source == "api"
    assert p.repo.likes == 42
    assert p.repo.owner is not None and p.repo.owner.name == "some-user"
    assert p.repo.url is not None and p.repo.url.model_extra == {"git": None}
    assert p.discussion is not None and p.discussion.reactions == []
    assert p.discussion.changes is not None and p.discussion.changes.head == "refs/pr/3"
    assert p.comment is not None and p.comment.edited is True
    assert p.webhook.name == "ci"
    assert p.updatedRefs is not None and p.updatedRefs[0].forced is False


def test_explicit_nulls_survive_round_trip_and_absent_keys_stay_absent() -> None:
    body = base()
    body["repo"]["subdomain"] = None
    body["movedTo"] = None
    dumped = round_trip(WebhookPayload.model_validate(body))

    assert dumped == body
    assert "discussion" not in dumped and "tags" not in dumped["repo"]


@pytest.mark.parametrize(
    "path, value",
    [
        (("event", "action"), "archive"),
        (("event", "scope"), "repo.config.dois"),
        (("event", "scope"), "collection"),
        (("discussion", "status"), "locked"),
        (("repo", "type"), "kernel"),
        (("webhook", "version"), 4),
    ],
)
def test_future_values_are_accepted(path: tuple[str, str], value: object) -> None:
    body = base(d="discussion")
    body[path[0]][path[1]] = value
    p = WebhookPayload.model_validate(body)

    assert getattr(getattr(p, path[0]), path[1]) == value
    assert round_trip(p) == body


def test_known_value_sets_document_v3_and_are_not_enforced() -> None:
    assert {"create", "delete", "move", "update"} == KNOWN_ACTIONS
    assert "repo.content" in KNOWN_SCOPES and "discussion.comment" in KNOWN_SCOPES
    assert {"model", "dataset", "space"} == KNOWN_REPO_TYPES
    assert {"open", "closed", "merged", "draft"} == KNOWN_DISCUSSION_STATUSES
    assert "archive" not in KNOWN_ACTIONS  # ... yet test_future_values_are_accepted parses it


def test_hidden_comment_has_no_content() -> None:
    body = base("discussion.comment", "update", d="discussion", c="comment")
    del body["comment"]["content"]
    body["comment"]["hidden"] = True
    p = WebhookPayload.model_validate(body)

    assert p.comment is not None and p.comment.hidden is True and p.comment.content is None
    assert round_trip(p) == body


def test_moved_to() -> None:
    body = base("repo", "move")
    body["movedTo"] = {"name": "new-owner/new-name", "owner": {"id": "abc"}}
    p = WebhookPayload.model_validate(body)

    assert p.movedTo is not None
    assert (p.movedTo.name, p.movedTo.owner.id) == ("new-owner/new-name", "abc")


def test_minimal_payload_parses() -> None:
    """Only what the Hub has always sent is required."""
    body = {
        "event": {"action": "create", "scope": "repo"},
        "repo": {"type": "model", "name": "a/b", "id": "1"},
        "webhook": {"id": "w", "version": 3},
    }
    p = WebhookPayload.model_validate(body)

    assert p.repo.private is None and p.repo.owner is None and p.repo.url is None
    assert round_trip(p) == body


# --- invalid payloads ---------------------------------------------------------------------------


def _without_event(body: dict[str, Any]) -> None:
    del body["event"]


def _without_repo_name(body: dict[str, Any]) -> None:
    del body["repo"]["name"]


def _event_not_object(body: dict[str, Any]) -> None:
    body["event"] = "repo.content"


def _updated_refs_not_list(body: dict[str, Any]) -> None:
    body["updatedRefs"] = {"ref": "refs/heads/main"}


def _ref_without_ref(body: dict[str, Any]) -> None:
    body["updatedRefs"] = [{"oldSha": None, "newSha": "x"}]


def _webhook_version_not_int(body: dict[str, Any]) -> None:
    body["webhook"]["version"] = "three"


def _discussion_without_num(body: dict[str, Any]) -> None:
    body.update(fragment("discussion"))
    del body["discussion"]["num"]


@pytest.mark.parametrize(
    "break_it",
    [
        _without_event,
        _without_repo_name,
        _event_not_object,
        _updated_refs_not_list,
        _ref_without_ref,
        _webhook_version_not_int,
        _discussion_without_num,
    ],
)
def test_bad_payloads_raise_validation_error(break_it: Any) -> None:
    body = base()
    WebhookPayload.model_validate(body)  # valid before breaking it
    break_it(body)

    with pytest.raises(ValidationError):
        WebhookPayload.model_validate(body)


def test_bad_json_raises_validation_error() -> None:
    with pytest.raises(ValidationError):
        WebhookPayload.model_validate_json(b"{not json")


# --- headSha fix and compatibility with huggingface_hub ----------------------------------------


def test_head_sha_under_both_names() -> None:
    p = WebhookPayload.model_validate(fixture("repo-content-update-space-new-pr-ref"))

    assert p.repo.head_sha == SPACE_HEAD_SHA
    assert p.repo.headSha == SPACE_HEAD_SHA


def test_reference_model_drops_head_sha() -> None:
    """Documents the defect fixed here: huggingface_hub's model loses the headSha the Hub sends."""
    from huggingface_hub import WebhookPayload as ReferencePayload

    body = fixture("repo-content-update-space-new-pr-ref")
    assert body["repo"]["headSha"] == SPACE_HEAD_SHA

    assert ReferencePayload.model_validate(body).repo.head_sha is None
    assert WebhookPayload.model_validate(body).repo.head_sha == SPACE_HEAD_SHA


def test_reference_model_rejects_what_ours_accepts() -> None:
    """Documents the forward-compatibility fix: the reference 422s on a new action or version."""
    from huggingface_hub import WebhookPayload as ReferencePayload

    body = base(action="archive")
    body["webhook"]["version"] = 4
    with pytest.raises(ValidationError):
        ReferencePayload.model_validate(body)
    assert WebhookPayload.model_validate(body).event.action == "archive"


@pytest.mark.parametrize("kwarg", ["headSha", "head_sha"])
def test_head_sha_constructor_accepts_both_names_and_dumps_hub_name(kwarg: str) -> None:
    repo = WebhookPayloadRepo(id="1", name="a/b", type="model", **{kwarg: "abc"})

    assert repo.head_sha == "abc" and repo.headSha == "abc"
    assert repo.model_dump(by_alias=True, exclude_unset=True) == {
        "id": "1",
        "name": "a/b",
        "type": "model",
        "headSha": "abc",
    }
    assert json.loads(repo.model_dump_json(by_alias=True))["headSha"] == "abc"
    assert "head_sha" not in repo.model_dump()  # Hub-shaped by default, too
    assert repo.model_extra == {}


REFERENCE_CLASSES = sorted(
    name
    for name, obj in vars(reference).items()
    if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == reference.__name__
)


def test_reference_classes_are_all_covered() -> None:
    assert len(REFERENCE_CLASSES) == 11
    assert set(REFERENCE_CLASSES) <= set(ours.__all__)


@pytest.mark.parametrize("name", REFERENCE_CLASSES)
def test_every_reference_field_exists_on_ours(name: str) -> None:
    ref_cls = getattr(reference, name)
    our_cls = getattr(ours, name)

    for field in ref_cls.model_fields:
        assert field in our_cls.model_fields or hasattr(our_cls, field), f"{name}.{field}"


def test_reference_type_alias_names_exist() -> None:
    for alias in ("WebhookEvent_T", "RepoChangeEvent_T", "RepoType_T", "DiscussionStatus_T"):
        assert hasattr(reference, alias)
        assert getattr(ours, alias) is str


# --- helpers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scope, pattern, expected",
    [
        ("repo.content", "repo.content", True),
        ("repo.content", "repo", True),
        ("repo.config", "repo.config", True),
        ("repo.config.dois", "repo.config", True),
        ("repo.config.dois", "repo", True),
        ("repo.content", "repo.con", False),
        ("repo.config", "repo.content", False),
        ("repo", "repo.content", False),
        ("repository", "repo", False),
        ("discussion.comment", "discussion", True),
        ("discussion", "discussion.comment", False),
        ("discussion", "repo", False),
        ("collection", "collection", True),
        ("repo", "", False),
    ],
)
def test_event_matches_whole_scope_segments(scope: str, pattern: str, expected: bool) -> None:
    p = WebhookPayload.model_validate(base(scope))

    assert p.event.matches(pattern) is expected
    assert p.matches(scope=pattern) is expected


@pytest.mark.parametrize(
    "scope, action, expected",
    [
        (None, None, True),
        ("repo", None, True),
        (None, "update", True),
        ("repo", "update", True),
        ("repo.content", "update", True),
        ("repo.content", "upd", False),
        ("repo.content", "create", False),
        ("repo.config", "update", False),
        ("discussion", None, False),
    ],
)
def test_payload_matches_scope_and_action(scope: str | None, action: str | None, expected: bool) -> None:
    p = WebhookPayload.model_validate(base("repo.content", "update"))

    assert p.matches(scope=scope, action=action) is expected


@pytest.mark.parametrize(
    "name, namespace, repo_name",
    [
        ("openai-community/gpt2", "openai-community", "gpt2"),
        ("gpt2", None, "gpt2"),
        ("Wauplin/gradio-user-history", "Wauplin", "gradio-user-history"),
    ],
)
def test_repo_name_split(name: str, namespace: str | None, repo_name: str) -> None:
    repo = WebhookPayloadRepo(id="1", name=name, type="model")

    assert repo.namespace == namespace
    assert repo.repo_name == repo_name


@pytest.mark.parametrize(
    "ref, old, new, created, deleted, branch, tag, pr_num",
    [
        ("refs/heads/main", "a", "b", False, False, "main", None, None),
        ("refs/heads/feature/x", None, "b", True, False, "feature/x", None, None),
        ("refs/heads/old", "a", None, False, True, "old", None, None),
        ("refs/tags/v1.0", None, "b", True, False, None, "v1.0", None),
        ("refs/pr/5", None, "b", True, False, None, None, 5),
        ("refs/pr/12", "a", "b", False, False, None, None, 12),
        ("refs/pr/abc", "a", "b", False, False, None, None, None),
        ("refs/convert/parquet", "a", "b", False, False, None, None, None),
    ],
)
def test_updated_ref_helpers(
    ref: str,
    old: str | None,
    new: str | None,
    created: bool,
    deleted: bool,
    branch: str | None,
    tag: str | None,
    pr_num: int | None,
) -> None:
    updated = WebhookPayloadUpdatedRef(ref=ref, oldSha=old, newSha=new)

    assert (updated.is_created, updated.is_deleted) == (created, deleted)
    assert (updated.branch, updated.tag, updated.pr_num) == (branch, tag, pr_num)


def test_commit_sha_repo_content_prefers_new_main_head() -> None:
    body = base(r="updatedRefs")
    assert body["repo"]["headSha"] != MAIN_NEW_SHA

    assert WebhookPayload.model_validate(body).commit_sha == MAIN_NEW_SHA


def test_commit_sha_repo_content_without_main_falls_back_to_head_sha() -> None:
    p = WebhookPayload.model_validate(fixture("repo-content-update-space-new-pr-ref"))

    assert p.commit_sha == SPACE_HEAD_SHA


def test_commit_sha_repo_content_main_deleted_falls_back_to_head_sha() -> None:
    body = base(r="updatedRefs")
    body["updatedRefs"][0]["newSha"] = None

    assert WebhookPayload.model_validate(body).commit_sha == FRAGMENT_HEAD_SHA


def test_commit_sha_main_ref_ignored_outside_repo_content() -> None:
    body = base("repo", "update", r="updatedRefs")

    assert WebhookPayload.model_validate(body).commit_sha == FRAGMENT_HEAD_SHA


def test_commit_sha_merged_pull_request() -> None:
    body = base("discussion", "update", d="discussion")
    body["discussion"]["status"] = "merged"
    body["discussion"]["changes"]["mergeCommitId"] = "merge123"

    assert WebhookPayload.model_validate(body).commit_sha == "merge123"


def test_commit_sha_open_pull_request_falls_back_to_head_sha() -> None:
    body = base("discussion", "update", d="discussion")

    assert WebhookPayload.model_validate(body).commit_sha == FRAGMENT_HEAD_SHA


def test_commit_sha_none_when_payload_names_no_commit() -> None:
    p = WebhookPayload.model_validate(fixture("discussion-update-pr-closed-space"))

    assert p.commit_sha is None


def test_updated_branches() -> None:
    body = base(r="updatedRefs")
    body["updatedRefs"] += [
        {"ref": "refs/heads/dev", "oldSha": None, "newSha": "c"},
        {"ref": "refs/heads/gone", "oldSha": "d", "newSha": None},
        {"ref": "refs/pr/7", "oldSha": "e", "newSha": "f"},
    ]

    assert WebhookPayload.model_validate(body).updated_branches == ["main", "dev"]


def test_updated_branches_empty_without_branch_refs() -> None:
    assert WebhookPayload.model_validate(base()).updated_branches == []
    p = WebhookPayload.model_validate(fixture("repo-content-update-space-new-pr-ref"))
    assert p.updated_branches == []
