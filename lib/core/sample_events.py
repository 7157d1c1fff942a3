"""Realistic Hub webhook payloads, to try a handler without waiting for the Hub.

Every shape is copied from the payloads recorded in `tests/fixtures` (the Hub's documentation and
the `huggingface_hub` client's tests): the same keys, in the same order, nothing invented. Shas and
ids are fresh random hex on each call, so two samples are two events to the journal's duplicate
detection; the repo's own id is derived from its name, so samples of one repo look like one repo.

Used by `python -m lib.send` and the operator console.

Example:
    >>> payload = sample_payload("comment", repo="my-org/my-model", comment={"content": "/ping"})
    >>> payload["event"]
    {'action': 'create', 'scope': 'discussion.comment'}
"""

from __future__ import annotations

import copy
import hashlib
import random
import re
from collections.abc import Callable, Mapping
from typing import Any

SAMPLE_KINDS: dict[str, str] = {
    "commit": "a commit pushed to main (repo.content update, refs/heads/main moved)",
    "new-branch": "a branch created (repo.content update, refs/heads/dev with oldSha null)",
    "tag": "a tag put on main's head (repo.content update, refs/tags/v1.0 with oldSha null)",
    "pr-opened": "a pull request opened with its first comment (discussion create, isPullRequest true)",
    "discussion-opened": "a discussion opened with its first comment (discussion create)",
    "comment": "a new comment on an open discussion (discussion.comment create)",
    "pr-merged": "a pull request merged (discussion update, status merged, changes.mergeCommitId)",
    "visibility": 'the repo made private (repo.config update, updatedConfig {"private": true})',
    "repo-moved": "the repo renamed (repo move, movedTo)",
    "repo-created": "a repo created (repo create)",
    "repo-deleted": "a repo deleted (repo delete)",
}
"""Each kind `sample_payload` builds, with what it represents."""

REPO_TYPES = ("model", "dataset", "space")
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
HUB_URL = "https://huggingface.co"


def random_sha() -> str:
    """A fresh 40-hex git commit sha."""
    return f"{random.getrandbits(160):040x}"


def random_object_id() -> str:
    """A fresh 24-hex id, like the Hub's ids of discussions, comments, users and webhooks."""
    return f"{random.getrandbits(96):024x}"


def _stable_id(*parts: str) -> str:
    return hashlib.sha1("/".join(parts).encode()).hexdigest()[:24]


def _repo(name: str, repo_type: str, *, head_sha: str | None = None, private: bool = False) -> dict[str, Any]:
    """The `repo` block; `headSha` only when given (the Hub sends it on repo* scopes only)."""
    owner = name.partition("/")[0]
    block: dict[str, Any] = {"type": repo_type, "name": name, "id": _stable_id(repo_type, name), "private": private}
    if repo_type == "space":  # undocumented, but real Space payloads carry it
        block["subdomain"] = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    block["url"] = {
        "web": f"{HUB_URL}/{_URL_PREFIX[repo_type]}{name}",
        "api": f"{HUB_URL}/api/{repo_type}s/{name}",
    }
    if head_sha is not None:
        block["headSha"] = head_sha
    block["owner"] = {"id": _stable_id("owner", owner)}
    return block


def _discussion(repo: dict[str, Any], *, title: str, pull_request: bool, status: str = "open") -> dict[str, Any]:
    num = random.randint(1, 999)
    block: dict[str, Any] = {
        "id": random_object_id(),
        "title": title,
        "url": {"web": f"{repo['url']['web']}/discussions/{num}", "api": f"{repo['url']['api']}/discussions/{num}"},
        "status": status,
        "author": {"id": random_object_id()},
        "num": num,
        "isPullRequest": pull_request,
    }
    if pull_request:
        block["changes"] = {"base": "refs/heads/main"}
    return block


def _comment(discussion: dict[str, Any], content: str, *, author_id: str | None = None) -> dict[str, Any]:
    comment_id = random_object_id()
    return {
        "id": comment_id,
        "author": {"id": author_id or discussion["author"]["id"]},
        "content": content,
        "hidden": False,
        "url": {"web": f"{discussion['url']['web']}#{comment_id}"},
    }


def _envelope(
    scope: str,
    action: str,
    repo: dict[str, Any],
    *,
    before_webhook: dict[str, Any] | None = None,
    after_webhook: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole payload, keys in the order the Hub sends them."""
    return {
        "event": {"action": action, "scope": scope},
        "repo": repo,
        **(before_webhook or {}),
        "webhook": {"id": random_object_id(), "version": 3},
        **(after_webhook or {}),
    }


def _ref_update(repo: str, repo_type: str, ref: str, *, old: str | None, new: str, head: str) -> dict[str, Any]:
    return _envelope(
        "repo.content",
        "update",
        _repo(repo, repo_type, head_sha=head),
        after_webhook={"updatedRefs": [{"ref": ref, "oldSha": old, "newSha": new}]},
    )


def _commit(repo: str, repo_type: str) -> dict[str, Any]:
    new = random_sha()
    return _ref_update(repo, repo_type, "refs/heads/main", old=random_sha(), new=new, head=new)


def _new_branch(repo: str, repo_type: str) -> dict[str, Any]:
    return _ref_update(repo, repo_type, "refs/heads/dev", old=None, new=random_sha(), head=random_sha())


def _tag(repo: str, repo_type: str) -> dict[str, Any]:
    head = random_sha()
    return _ref_update(repo, repo_type, "refs/tags/v1.0", old=None, new=head, head=head)


def _opened(repo: str, repo_type: str, *, pull_request: bool) -> dict[str, Any]:
    block = _repo(repo, repo_type)
    if pull_request:
        discussion = _discussion(block, title="Update README.md", pull_request=True)
        text = "Add usage instructions to the README"
    else:
        discussion = _discussion(block, title="Question about this repo", pull_request=False)
        text = "Hello! Which license does this repo use?"
    return _envelope(
        "discussion", "create", block, before_webhook={"discussion": discussion, "comment": _comment(discussion, text)}
    )


def _comment_event(repo: str, repo_type: str) -> dict[str, Any]:
    block = _repo(repo, repo_type)
    discussion = _discussion(block, title="Question about this repo", pull_request=False)
    comment = _comment(discussion, "Thanks, that answers it!", author_id=random_object_id())
    return _envelope(
        "discussion.comment", "create", block, before_webhook={"discussion": discussion, "comment": comment}
    )


def _pr_merged(repo: str, repo_type: str) -> dict[str, Any]:
    block = _repo(repo, repo_type)
    discussion = _discussion(block, title="Update README.md", pull_request=True, status="merged")
    discussion["changes"]["mergeCommitId"] = random_sha()
    return _envelope("discussion", "update", block, before_webhook={"discussion": discussion})


def _visibility(repo: str, repo_type: str) -> dict[str, Any]:
    block = _repo(repo, repo_type, head_sha=random_sha(), private=True)
    return _envelope("repo.config", "update", block, after_webhook={"updatedConfig": {"private": True}})


def _moved(repo: str, repo_type: str) -> dict[str, Any]:
    block = _repo(repo, repo_type, head_sha=random_sha())
    moved_to = {"name": f"{repo}-renamed", "owner": block["owner"]}
    return _envelope("repo", "move", block, after_webhook={"movedTo": copy.deepcopy(moved_to)})


def _lifecycle(action: str) -> Callable[[str, str], dict[str, Any]]:
    def build(repo: str, repo_type: str) -> dict[str, Any]:
        return _envelope("repo", action, _repo(repo, repo_type, head_sha=random_sha()))

    return build


_BUILDERS: dict[str, Callable[[str, str], dict[str, Any]]] = {
    "commit": _commit,
    "new-branch": _new_branch,
    "tag": _tag,
    "pr-opened": lambda repo, repo_type: _opened(repo, repo_type, pull_request=True),
    "discussion-opened": lambda repo, repo_type: _opened(repo, repo_type, pull_request=False),
    "comment": _comment_event,
    "pr-merged": _pr_merged,
    "visibility": _visibility,
    "repo-moved": _moved,
    "repo-created": _lifecycle("create"),
    "repo-deleted": _lifecycle("delete"),
}


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` applied: dicts merge key by key, anything else replaces."""
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def sample_payload(kind: str, *, repo: str = "my-user/my-model", repo_type: str = "model", **overrides: Any) -> dict:
    """A realistic payload of `kind` (see `SAMPLE_KINDS`) about `repo`.

    Args:
        kind: one of `SAMPLE_KINDS`.
        repo: the repo's "owner/name".
        repo_type: model, dataset or space.
        **overrides: top-level payload keys to change; dicts are merged into the sample
            (`comment={"content": "/ping"}` keeps the comment's id and author), other values replace.
            The discussion's and comment's URLs follow an overridden `num` or `id`.

    Raises:
        ValueError: an unknown kind or repo type (the message lists the known ones).

    Example:
        >>> sample_payload("commit", repo="my-org/data", repo_type="dataset")["updatedRefs"][0]["ref"]
        'refs/heads/main'
    """
    if kind not in _BUILDERS:
        raise ValueError(f"Unknown sample kind {kind!r}; choose one of: {', '.join(SAMPLE_KINDS)}.")
    if repo_type not in REPO_TYPES:
        raise ValueError(f"Unknown repo type {repo_type!r}; choose one of: {', '.join(REPO_TYPES)}.")
    payload = _merge(_BUILDERS[kind](repo, repo_type), overrides)
    _relink(payload, overrides)
    return payload


def _relink(payload: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """Point the discussion's and comment's URLs at their (possibly overridden) number and id."""
    discussion, comment = payload.get("discussion"), payload.get("comment")
    if isinstance(discussion, dict) and "url" not in (overrides.get("discussion") or {}):
        num = discussion.get("num")
        discussion["url"] = {key: f"{url}/discussions/{num}" for key, url in payload["repo"]["url"].items()}
    if isinstance(comment, dict) and isinstance(discussion, dict) and "url" not in (overrides.get("comment") or {}):
        comment["url"] = {"web": f"{discussion['url']['web']}#{comment.get('id')}"}
