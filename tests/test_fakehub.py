"""Tests of the FakeHub test fixture, driven only through the real `huggingface_hub` client."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import fakehub
import httpx
import pytest
from fakehub import FakeHub, start_fake_hub
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    ModelCard,
    hf_hub_download,
)
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

fake_hub = fakehub.fake_hub  # the fixture under test

README = """---
license: apache-2.0
tags:
- text-classification
---
# A model

Some words.
"""


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    """The fake with two users and a public model repo owned by alice."""
    fake_hub.add_user("alice", "hf_alice")
    fake_hub.add_user("bob", "hf_bob")
    fake_hub.add_repo("alice/model", files={"README.md": README, "config.json": '{"a": 1}'})
    return fake_hub


def api_for(hub: FakeHub, token: str | bool) -> HfApi:
    return HfApi(endpoint=hub.url, token=token)


# --------------------------------------------------------------------------------------------------------
# Repo info
# --------------------------------------------------------------------------------------------------------


def test_model_info_of_existing_repo(hub: FakeHub) -> None:
    info = api_for(hub, "hf_alice").model_info("alice/model")

    assert info.id == "alice/model"
    assert info.sha == hub.repo("alice/model").head
    assert re.fullmatch(r"[0-9a-f]{40}", info.sha)
    assert sorted(s.rfilename for s in info.siblings) == ["README.md", "config.json"]
    assert info.card_data.license == "apache-2.0"
    assert info.author == "alice"
    assert info.private is False


def test_model_info_of_missing_repo_raises_repository_not_found(hub: FakeHub) -> None:
    with pytest.raises(RepositoryNotFoundError) as err:
        api_for(hub, "hf_alice").model_info("alice/nope")
    assert err.value.response.status_code == 404
    assert err.value.response.headers["X-Error-Code"] == "RepoNotFound"


def test_model_info_at_revision_and_missing_revision(hub: FakeHub) -> None:
    first = hub.repo("alice/model").head
    hub.commit("alice/model", {"extra.txt": "x"}, "add extra")
    api = api_for(hub, "hf_alice")

    old = api.model_info("alice/model", revision=first)
    assert old.sha == first
    assert "extra.txt" not in [s.rfilename for s in old.siblings]
    with pytest.raises(RevisionNotFoundError):
        api.model_info("alice/model", revision="no-such-branch")


def test_dataset_and_space_info(hub: FakeHub) -> None:
    hub.add_repo("alice/data", "dataset", {"README.md": "---\nlicense: mit\n---\n", "train.csv": "a,b\n1,2\n"})
    hub.add_repo("alice/app", "space", {"README.md": "---\nsdk: gradio\n---\n", "app.py": "print()"}, sdk="gradio")
    api = api_for(hub, "hf_alice")

    dataset = api.dataset_info("alice/data")
    assert dataset.card_data.license == "mit"
    assert sorted(s.rfilename for s in dataset.siblings) == ["README.md", "train.csv"]
    space = api.repo_info("alice/app", repo_type="space")
    assert space.sdk == "gradio"
    assert space.runtime.stage == "RUNNING"
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info("alice/model")  # exists as a model only


def test_private_repo_needs_an_owner_token(hub: FakeHub) -> None:
    hub.add_repo("alice/secret", files={"README.md": "hush"}, private=True)

    assert api_for(hub, "hf_alice").model_info("alice/secret").private is True
    with pytest.raises(RepositoryNotFoundError) as anonymous:
        api_for(hub, False).model_info("alice/secret")
    assert anonymous.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError) as other_user:
        api_for(hub, "hf_bob").model_info("alice/secret")
    assert other_user.value.response.status_code == 404


def test_unknown_token_is_rejected_even_on_public_repos(hub: FakeHub) -> None:
    with pytest.raises(HfHubHTTPError) as err:
        api_for(hub, "hf_wrong").model_info("alice/model")
    assert not isinstance(err.value, RepositoryNotFoundError)
    assert err.value.response.status_code == 401
    assert "Invalid credentials in Authorization header" in str(err.value)


# --------------------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------------------


def test_download_readme_at_main_and_at_a_commit_sha(hub: FakeHub, tmp_path: Path) -> None:
    first = hub.repo("alice/model").head
    second = hub.commit("alice/model", {"README.md": "# rewritten\n"}, "Rewrite README", author="bob")

    at_main = hf_hub_download("alice/model", "README.md", endpoint=hub.url, cache_dir=tmp_path, token="hf_alice")
    at_first = hf_hub_download(
        "alice/model", "README.md", revision=first, endpoint=hub.url, cache_dir=tmp_path, token="hf_alice"
    )

    assert Path(at_main).read_text() == "# rewritten\n"
    assert f"/snapshots/{second}/" in at_main
    assert Path(at_first).read_text() == README
    assert f"/snapshots/{first}/" in at_first
    # A branch is resolved with a 307 to the commit's resolve-cache URL, as on the Hub.
    heads = [(r.path, r.status) for r in hub.find_requests("HEAD")]
    assert ("/alice/model/resolve/main/README.md", 307) in heads
    assert (f"/api/resolve-cache/models/alice/model/{second}/README.md", 200) in heads
    assert (f"/alice/model/resolve/{first}/README.md", 200) in heads


def test_download_missing_file_or_revision(hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(RemoteEntryNotFoundError) as err:
        hf_hub_download("alice/model", "missing.txt", endpoint=hub.url, cache_dir=tmp_path, token="hf_alice")
    assert err.value.response.headers["X-Repo-Commit"] == hub.repo("alice/model").head
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(
            "alice/model", "README.md", revision="nope", endpoint=hub.url, cache_dir=tmp_path, token="hf_alice"
        )
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("alice/missing", "README.md", endpoint=hub.url, cache_dir=tmp_path, token="hf_alice")


def test_download_from_dataset_and_space_repos_without_redirects(fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.resolve_redirects = False
    fake_hub.add_repo("org/data", "dataset", {"data/train.csv": "a,b\n"})
    fake_hub.add_repo("org/app", "space", {"app.py": "import gradio\n"}, sdk="gradio")

    csv = hf_hub_download("org/data", "data/train.csv", repo_type="dataset", endpoint=fake_hub.url, cache_dir=tmp_path)
    app = hf_hub_download("org/app", "app.py", repo_type="space", endpoint=fake_hub.url, cache_dir=tmp_path)

    assert Path(csv).read_text() == "a,b\n"
    assert Path(app).read_text() == "import gradio\n"
    assert {r.path for r in fake_hub.find_requests("GET")} == {
        "/datasets/org/data/resolve/main/data/train.csv",
        "/spaces/org/app/resolve/main/app.py",
    }


def test_model_card_load_reads_the_license(hub: FakeHub) -> None:
    # ModelCard.load takes no endpoint: it uses huggingface_hub.constants, which the fixture points at the fake.
    assert hub.url == hf_constants.ENDPOINT
    card = ModelCard.load("alice/model")
    assert card.data.license == "apache-2.0"
    assert card.data.tags == ["text-classification"]
    assert "Some words." in card.text


# --------------------------------------------------------------------------------------------------------
# Commits and repos
# --------------------------------------------------------------------------------------------------------


def test_create_commit_adds_a_file_visible_everywhere(hub: FakeHub, tmp_path: Path) -> None:
    api = api_for(hub, "hf_alice")
    parent = hub.repo("alice/model").head

    info = api.create_commit(
        "alice/model",
        [CommitOperationAdd("notes/new.txt", b"fresh content"), CommitOperationDelete("config.json")],
        commit_message="Add notes",
        commit_description="Longer text",
    )

    assert re.fullmatch(r"[0-9a-f]{40}", info.oid)
    assert info.oid != parent
    assert info.commit_url == f"{hub.url}/alice/model/commit/{info.oid}"
    assert hub.files_at("alice/model") == {"README.md": README, "notes/new.txt": "fresh content"}
    stored = hub.repo("alice/model").commits[info.oid]
    assert (stored.parents, stored.title, stored.message) == ([parent], "Add notes", "Longer text")
    assert stored.author == "alice"

    downloaded = hf_hub_download("alice/model", "notes/new.txt", endpoint=hub.url, cache_dir=tmp_path)
    assert Path(downloaded).read_bytes() == b"fresh content"
    commits = api.list_repo_commits("alice/model")
    assert [c.commit_id for c in commits] == [info.oid, parent]
    assert (commits[0].title, commits[0].message, commits[0].authors) == ("Add notes", "Longer text", ["alice"])
    assert "notes/new.txt" in api.list_repo_files("alice/model")

    # The commit went through preupload ("regular" upload mode, never LFS/Xet) then the NDJSON commit endpoint.
    (preupload,) = hub.find_requests("POST", "/preupload/")
    assert preupload.json["files"][0]["path"] == "notes/new.txt"
    (commit,) = hub.find_requests("POST", r"/api/models/alice/model/commit/main$")
    assert commit.headers["content-type"] == "application/x-ndjson"
    assert [line["key"] for line in commit.json] == ["header", "file", "deletedFile"]
    assert commit.json[0]["value"] == {"summary": "Add notes", "description": "Longer text"}


def test_uploading_an_unchanged_file_makes_no_commit(hub: FakeHub) -> None:
    # The preupload answer carries the remote file's git oid, so the client detects the no-op by itself.
    head = hub.repo("alice/model").head
    info = api_for(hub, "hf_alice").upload_file(
        path_or_fileobj=README.encode(), path_in_repo="README.md", repo_id="alice/model"
    )
    assert info.oid == head
    assert hub.find_requests("POST", "/commit/") == []


def test_commit_with_a_stale_parent_commit_is_rejected(hub: FakeHub) -> None:
    parent = hub.repo("alice/model").head
    hub.commit("alice/model", {"other.txt": "someone else"}, "concurrent change", author="bob")

    with pytest.raises(HfHubHTTPError) as err:
        api_for(hub, "hf_alice").create_commit(
            "alice/model", [CommitOperationAdd("x.txt", b"x")], commit_message="late", parent_commit=parent
        )
    assert err.value.response.status_code == 412


def test_deleting_a_missing_file_fails_without_side_effects(hub: FakeHub) -> None:
    head = hub.repo("alice/model").head

    with pytest.raises(RemoteEntryNotFoundError, match="A file with this name doesn't exist"):
        api_for(hub, "hf_bob").create_commit(
            "alice/model", [CommitOperationDelete("nope.txt")], commit_message="rm", create_pr=True
        )

    assert hub.repo("alice/model").head == head
    assert hub.discussions("alice/model") == []


def test_commits_need_write_access(hub: FakeHub) -> None:
    hub.add_user("reader", "hf_reader", role="read", orgs=["alice"])
    operations = [CommitOperationAdd("x.txt", b"x")]

    with pytest.raises(HfHubHTTPError) as not_owner:
        api_for(hub, "hf_bob").create_commit("alice/model", operations, commit_message="nope")
    assert not_owner.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as read_token:
        api_for(hub, "hf_reader").create_commit("alice/model", operations, commit_message="nope")
    assert read_token.value.response.status_code == 403
    assert "x.txt" not in hub.files_at("alice/model")


def test_list_repo_commits_follows_pagination(hub: FakeHub) -> None:
    hub.page_size = 2
    shas = [hub.commit("alice/model", {"n.txt": str(i)}, f"commit {i}") for i in range(4)]

    commits = api_for(hub, "hf_alice").list_repo_commits("alice/model")

    assert [c.commit_id for c in commits] == [*reversed(shas), hub.repo("alice/model").history()[-1].oid]
    assert [c.title for c in commits[:2]] == ["commit 3", "commit 2"]
    assert len(hub.find_requests("GET", "/commits/")) == 3


def test_pull_request_from_a_commit_then_merge(hub: FakeHub, tmp_path: Path) -> None:
    api = api_for(hub, "hf_bob")  # bob does not own alice/model but may open a PR
    info = api.create_commit(
        "alice/model", [CommitOperationAdd("README.md", b"# better\n")], commit_message="Improve card", create_pr=True
    )

    assert (info.pr_num, info.pr_revision) == (1, "refs/pr/1")
    assert info.pr_url == f"{hub.url}/alice/model/discussions/1"
    assert hub.files_at("alice/model")["README.md"] == README  # main untouched
    pr_readme = hf_hub_download(
        "alice/model", "README.md", revision="refs/pr/1", endpoint=hub.url, cache_dir=tmp_path, token="hf_bob"
    )
    assert Path(pr_readme).read_text() == "# better\n"
    details = api.get_discussion_details("alice/model", 1)
    assert (details.is_pull_request, details.status, details.author) == (True, "open", "bob")
    assert details.target_branch == "refs/heads/main"
    assert "+# better" in details.diff
    assert [e.type for e in details.events] == ["comment", "commit"]

    with pytest.raises(HfHubHTTPError) as err:
        api.merge_pull_request("alice/model", 1)
    assert err.value.response.status_code == 403
    api_for(hub, "hf_alice").merge_pull_request("alice/model", 1)

    assert hub.files_at("alice/model")["README.md"] == "# better\n"
    merged = api.get_discussion_details("alice/model", 1)
    assert merged.status == "merged"
    assert merged.merge_commit_oid == hub.repo("alice/model").head


def test_create_repo(hub: FakeHub) -> None:
    api = api_for(hub, "hf_alice")

    url = api.create_repo("alice/new-data", repo_type="dataset", private=True)

    assert (url.repo_id, url.repo_type, str(url)) == ("alice/new-data", "dataset", f"{hub.url}/datasets/alice/new-data")
    repo = hub.repo("alice/new-data", "dataset")
    assert repo.private is True
    assert list(repo.commits[repo.head].files) == [".gitattributes"]
    assert repo.commits[repo.head].author == "system"
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo("alice/new-data", repo_type="dataset")
    assert err.value.response.status_code == 409
    assert api.create_repo("alice/new-data", repo_type="dataset", exist_ok=True).repo_id == "alice/new-data"
    assert api.create_repo("alice/app", repo_type="space", space_sdk="gradio").repo_type == "space"
    assert hub.repo("alice/app", "space").sdk == "gradio"
    with pytest.raises(HfHubHTTPError) as forbidden:
        api_for(hub, "hf_bob").create_repo("alice/not-yours")
    assert forbidden.value.response.status_code == 403


# --------------------------------------------------------------------------------------------------------
# Discussions
# --------------------------------------------------------------------------------------------------------


def test_create_discussion_and_comment(hub: FakeHub) -> None:
    bob = api_for(hub, "hf_bob")

    created = bob.create_discussion("alice/model", "Question about the card", description="What license?")
    comment = api_for(hub, "hf_alice").comment_discussion("alice/model", created.num, "Apache 2.0, see header.")

    assert (created.num, created.author, created.status, created.is_pull_request) == (1, "bob", "open", False)
    assert (comment.author, comment.content) == ("alice", "Apache 2.0, see header.")
    listed = list(bob.get_repo_discussions("alice/model"))
    assert [(d.num, d.title, d.author) for d in listed] == [(1, "Question about the card", "bob")]
    details = bob.get_discussion_details("alice/model", 1)
    assert [(e.type, e.author, e.content) for e in details.events] == [
        ("comment", "bob", "What license?"),
        ("comment", "alice", "Apache 2.0, see header."),
    ]
    assert details.url == f"{hub.url}/alice/model/discussions/1"
    stored = hub.discussion("alice/model", 1)
    assert [(c.author, c.content) for c in stored.comments] == [
        ("bob", "What license?"),
        ("alice", "Apache 2.0, see header."),
    ]


def test_change_discussion_status_and_title(hub: FakeHub) -> None:
    num = hub.add_discussion("alice/model", "Typo", author="bob", description="in README")
    alice = api_for(hub, "hf_alice")

    closed = alice.change_discussion_status("alice/model", num, "closed", comment="Fixed, thanks")
    renamed = alice.rename_discussion("alice/model", num, "Typo in README")

    assert (closed.new_status, closed.author) == ("closed", "alice")
    assert (renamed.old_title, renamed.new_title) == ("Typo", "Typo in README")
    details = alice.get_discussion_details("alice/model", num)
    assert (details.status, details.title) == ("closed", "Typo in README")
    assert [e.type for e in details.events] == ["comment", "comment", "status-change", "title-change"]
    assert [d.num for d in alice.get_repo_discussions("alice/model", discussion_status="open")] == []
    assert api_for(hub, "hf_bob").change_discussion_status("alice/model", num, "open").new_status == "open"

    hub.add_user("carol", "hf_carol")
    with pytest.raises(HfHubHTTPError) as err:
        api_for(hub, "hf_carol").change_discussion_status("alice/model", num, "closed")
    assert err.value.response.status_code == 403


def test_edit_and_hide_comments(hub: FakeHub) -> None:
    num = hub.add_discussion("alice/model", "Spam?", author="bob")
    comment_id = hub.add_comment("alice/model", num, "buy things", author="bob")

    edited = api_for(hub, "hf_bob").edit_discussion_comment("alice/model", num, comment_id, "sorry")
    with pytest.warns(UserWarning, match="Hiding a comment is irreversible"):
        hidden = api_for(hub, "hf_alice").hide_discussion_comment("alice/model", num, comment_id)

    assert (edited.content, edited.edited, edited.number_of_edits) == ("sorry", True, 2)
    assert hidden.hidden is True
    assert hub.discussion("alice/model", num).comments[-1].hidden is True


def test_discussion_listing_paginates_and_filters(hub: FakeHub) -> None:
    hub.page_size = 2
    for i in range(3):
        hub.add_discussion("alice/model", f"Discussion {i}", author="bob")
    hub.add_discussion("alice/model", "Empty PR", author="alice", pull_request=True)
    api = api_for(hub, "hf_alice")

    everything = list(api.get_repo_discussions("alice/model"))
    assert [d.num for d in everything] == [4, 3, 2, 1]
    assert len(hub.find_requests("GET", "/discussions$")) == 2
    assert [d.num for d in api.get_repo_discussions("alice/model", discussion_type="pull_request")] == [4]
    assert [d.num for d in api.get_repo_discussions("alice/model", author="bob")] == [3, 2, 1]
    assert everything[0].status == "draft"  # an empty PR is a draft until something is pushed to refs/pr/4


def test_discussions_need_an_authenticated_writer(hub: FakeHub) -> None:
    with pytest.raises(HfHubHTTPError) as err:
        api_for(hub, False).create_discussion("alice/model", "anonymous")
    assert err.value.response.status_code == 401


# --------------------------------------------------------------------------------------------------------
# Users and webhooks
# --------------------------------------------------------------------------------------------------------


def test_whoami(hub: FakeHub) -> None:
    hub.add_user("carol", "hf_carol", role="read", orgs=["acme"])

    me = api_for(hub, "hf_carol").whoami()

    assert (me["type"], me["name"]) == ("user", "carol")
    assert [org["name"] for org in me["orgs"]] == ["acme"]
    assert me["auth"]["accessToken"]["role"] == "read"
    with pytest.raises(HfHubHTTPError) as err:
        api_for(hub, "hf_unknown").whoami()
    assert err.value.response.status_code == 401
    assert "Invalid user token" in str(err.value)


def test_webhook_lifecycle(hub: FakeHub) -> None:
    api = api_for(hub, "hf_alice")

    created = api.create_webhook(
        url="https://example.com/webhook",
        watched=[{"type": "model", "name": "alice/model"}, {"type": "user", "name": "alice"}],
        domains=["repo", "discussion"],
        secret="s3cret",
    )
    assert re.fullmatch(r"[0-9a-f]{24}", created.id)
    assert (created.url, created.secret, created.disabled, created.job) == (
        "https://example.com/webhook",
        "s3cret",
        False,
        None,
    )
    assert [(w.type, w.name) for w in created.watched] == [("model", "alice/model"), ("user", "alice")]
    assert created.domains == ["repo", "discussion"]
    assert [w.id for w in api.list_webhooks()] == [created.id]
    assert api.get_webhook(created.id) == created

    updated = api.update_webhook(
        created.id, url="https://example.com/v2", watched=[{"type": "org", "name": "acme"}], domains=["discussion"]
    )
    assert (updated.url, updated.domains, updated.secret) == ("https://example.com/v2", ["discussion"], "s3cret")
    assert [(w.type, w.name) for w in updated.watched] == [("org", "acme")]
    assert api.disable_webhook(created.id).disabled is True
    assert hub.webhooks()[0].disabled is True
    assert api.enable_webhook(created.id).disabled is False

    api.delete_webhook(created.id)
    assert api.list_webhooks() == []
    assert hub.webhooks() == []
    with pytest.raises(HfHubHTTPError) as err:
        api.get_webhook(created.id)
    assert err.value.response.status_code == 404


def test_webhooks_belong_to_their_owner(hub: FakeHub) -> None:
    webhook = api_for(hub, "hf_alice").create_webhook(url="https://x.test", watched=[{"type": "user", "name": "alice"}])
    bob = api_for(hub, "hf_bob")

    assert bob.list_webhooks() == []
    with pytest.raises(HfHubHTTPError) as err:
        bob.disable_webhook(webhook.id)
    assert err.value.response.status_code == 404
    assert (hub.webhooks()[0].owner, hub.webhooks()[0].domains) == ("alice", ["repo", "discussion"])
    with pytest.raises(HfHubHTTPError) as invalid:
        bob.create_webhook(url="https://x.test", watched=[{"type": "planet", "name": "mars"}])
    assert invalid.value.response.status_code == 400


# --------------------------------------------------------------------------------------------------------
# Recording, errors, plumbing
# --------------------------------------------------------------------------------------------------------


def test_requests_are_recorded_with_redacted_auth(hub: FakeHub) -> None:
    api_for(hub, "hf_bob").create_discussion("alice/model", "Hello", description="Hi there")
    api_for(hub, False).model_info("alice/model")

    post = hub.find_requests("POST", "/discussions$")[0]
    method, path, body, headers = post
    assert (method, path) == ("POST", "/api/models/alice/model/discussions")
    assert body == {"title": "Hello", "description": "Hi there", "pullRequest": False}
    assert headers["authorization"] == "<redacted>"
    assert "hf_bob" not in json.dumps(headers)
    assert "hf_hub/" in headers["user-agent"]
    assert (post.user, post.status) == ("bob", 200)
    anonymous = hub.requests[-1]
    assert (anonymous.method, anonymous.path, anonymous.user, anonymous.json) == (
        "GET",
        "/api/models/alice/model",
        None,
        None,
    )
    assert "authorization" not in anonymous.headers
    hub.clear_requests()
    assert hub.requests == []


def test_unimplemented_routes_answer_501(hub: FakeHub) -> None:
    with pytest.raises(HfHubHTTPError) as err:
        list(api_for(hub, "hf_alice").list_models(author="alice"))
    assert err.value.response.status_code == 501
    assert "FakeHub does not implement" in err.value.response.json()["error"]
    response = httpx.delete(f"{hub.url}/api/models/alice/model", timeout=5)
    assert response.status_code == 501


def test_in_process_defaults_point_at_the_fake(hub: FakeHub) -> None:
    import huggingface_hub

    assert HfApi().endpoint == hub.url
    assert huggingface_hub.model_info("alice/model", token=False).id == "alice/model"
    assert os.environ["HF_ENDPOINT"] == hub.url
    assert "HF_HUB_OFFLINE" not in os.environ
    assert os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"


def test_a_subprocess_reaches_the_fake_through_hf_endpoint(hub: FakeHub) -> None:
    code = textwrap.dedent(
        """
        import json
        from huggingface_hub import HfApi, hf_hub_download

        api = HfApi()
        info = api.model_info("alice/model")
        path = hf_hub_download("alice/model", "README.md")
        api.comment_discussion("alice/model", 1, "from a child process")
        print(json.dumps({"endpoint": api.endpoint, "sha": info.sha, "me": api.whoami()["name"], "path": path}))
        """
    )
    hub.add_discussion("alice/model", "Ping", author="bob")

    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **hub.client_env(token="hf_alice")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["endpoint"] == hub.url
    assert (result["sha"], result["me"]) == (hub.repo("alice/model").head, "alice")
    assert result["path"].startswith(os.environ["HF_HOME"])
    assert Path(result["path"]).read_text() == README
    assert hub.discussion("alice/model", 1).comments[-1].content == "from a child process"
    assert {r.user for r in hub.requests} == {"alice"}


def test_start_fake_hub_outside_the_fixture() -> None:
    with start_fake_hub() as hub:
        hub.add_repo("x/y", files={"a.txt": "a"})
        assert HfApi(endpoint=hub.url, token=False).model_info("x/y").id == "x/y"
        url = hub.url
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/api/models/x/y", timeout=2)


def test_internal_errors_answer_500_and_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    with start_fake_hub() as hub:
        hub.add_repo("x/y")
        monkeypatch.setattr(hub, "_repo_info_json", broken)
        with pytest.raises(HfHubHTTPError) as err:
            HfApi(endpoint=hub.url, token=False).model_info("x/y")
    assert err.value.response.status_code == 500
    assert "RuntimeError: boom" in hub.errors[0]
