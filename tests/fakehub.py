"""A small, stateful fake of the Hugging Face Hub HTTP API, for tests.

`FakeHub` is a real HTTP server on 127.0.0.1 (uvicorn, in a background thread of the test process, on a
free port). The real `huggingface_hub` client talks to it when pointed at its URL, in the test process and
in child processes alike. Paths, status codes, headers and JSON shapes follow what `huggingface_hub` 2.4
sends and parses (`hf_api.py`, `file_download.py`, `_commit_api.py`, `community.py`, `utils/_http.py`).
It keeps state (users and tokens, repos with a git-like commit history, discussions and pull requests,
webhooks, Jobs) so that tests can seed it and assert what the code under test did, and it records every
request it receives.

Pointing the client at it:

- Child processes (e.g. the app started with `subprocess`): set `HF_ENDPOINT=<hub.url>` in their
  environment (`hub.client_env(token=...)` returns the variables to add). `huggingface_hub` reads
  `HF_ENDPOINT` when it is imported, so that is all a child needs.
- In the test process, `huggingface_hub` is already imported: pass the endpoint explicitly,
  `HfApi(endpoint=hub.url, token=...)`, `hf_hub_download(..., endpoint=hub.url)`. Functions that take no
  `endpoint` (`ModelCard.load`, the module-level `huggingface_hub.model_info`, ...) use
  `huggingface_hub.constants.ENDPOINT`: the `fake_hub` fixture patches it (and the other import-time
  constants, see `point_client_at`) for the duration of the test.

Use the `fake_hub` pytest fixture (`from fakehub import fake_hub` in a conftest), or `start_fake_hub()`
as a context manager outside pytest.

Auth, as on the Hub: tokens are sent as `Authorization: Bearer <token>`. Register them with
`hub.add_user(name, token)`. A request with an unknown token gets 401 "Invalid credentials in
Authorization header" on every route. Anonymous reads of public repos are allowed; writes need a token
whose role is not "read"; committing to a repo, creating a repo, merging a PR need the user to be the
namespace (or one of its `orgs`). Private repos answer 401 (anonymous) or 404 (no access), both with
`X-Error-Code: RepoNotFound`; a missing repo answers 404 `RepoNotFound`.

Limits (what is NOT faked):

- Files are small and stored in memory; preupload always answers `uploadMode: "regular"`, so the client
  never goes through LFS or Xet (no `X-Xet-*` header is ever sent). `lfsFile` commit operations get 501.
- Repo ids must be `namespace/name` (no legacy single-segment ids). No gated repos, no tags API, no
  branch creation API (branches: `main`, plus `refs/pr/N` for pull requests), no collections, no Spaces
  runtime/secrets API, no buckets, no search/listing of repos, no likes, no rate limits. Jobs: see
  `tests/fakehub_jobs.py` (launch, list, inspect, cancel, labels, logs, hardware; no scheduled jobs).
- Webhooks are stored and managed but never delivered: the fake does not POST payloads anywhere.
- Merging a PR applies the PR's changes (relative to where it forked) onto the target branch as one
  squash commit; there is no conflict detection. Diffs are plain `difflib` unified diffs.
- `update_webhook` always sends `watched` (the client sends `[]` when not given): an empty list keeps
  the stored watched items instead of erasing them.
- Any route the fake does not implement answers 501 with a JSON `{"error": ...}` naming it. An
  unexpected exception in the fake answers 500 and is kept in `hub.errors` (the fixture fails the test
  at teardown if any occurred).
"""

from __future__ import annotations

import base64
import copy
import difflib
import hashlib
import http.client
import itertools
import json
import os
import re
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import pytest
import uvicorn
import yaml
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = [
    "Comment",
    "Commit",
    "Discussion",
    "FakeHub",
    "RecordedRequest",
    "Repo",
    "User",
    "Webhook",
    "fake_hub",
    "point_client_at",
    "start_fake_hub",
]

REPO_TYPES = ("model", "dataset", "space")
WEBHOOK_DOMAINS = ("repo", "discussion")
WEBHOOK_WATCH_TYPES = ("bucket", "dataset", "model", "org", "space", "user")
DEFAULT_GITATTRIBUTES = (
    "*.bin filter=lfs diff=lfs merge=lfs -text\n"
    "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    "*.parquet filter=lfs diff=lfs merge=lfs -text\n"
)
_INVALID_TOKEN_MESSAGE = "Invalid credentials in Authorization header"
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_YAML_BLOCK_RE = re.compile(r"^\s*---[\r\n]+(.*?)[\r\n]+---(?:[\r\n]|$)", re.DOTALL)
_ids = itertools.count(1)


# --------------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------------


def _now_iso() -> str:
    """Timestamp in the Hub's format, e.g. '2024-05-01T12:00:00.123Z'."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _object_id() -> str:
    """A 24-hex id, like the Hub's MongoDB ids (discussion, event and webhook ids)."""
    return f"{int(time.time()):08x}{next(_ids):016x}"


def _git_blob_oid(content: bytes) -> str:
    """Git's blob sha1, which is what the Hub returns as a file's `oid`/`ETag` (and the client computes)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _tree_oid(files: Mapping[str, bytes], prefix: str = "") -> str:
    listing = "\n".join(f"{p}:{_git_blob_oid(c)}" for p, c in sorted(files.items()) if p.startswith(prefix))
    return hashlib.sha1(f"tree {prefix}\n{listing}".encode()).hexdigest()


def _to_bytes(content: str | bytes) -> bytes:
    return content.encode() if isinstance(content, str) else content


def _card_data(readme: bytes | None) -> dict[str, Any] | None:
    """The YAML header of a README.md, as the Hub exposes it in `cardData` (None if absent/invalid)."""
    if readme is None:
        return None
    match = _YAML_BLOCK_RE.match(readme.decode("utf-8", errors="replace"))
    if match is None:
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _apply_ops(files: Mapping[str, bytes], ops: Iterable[tuple[str, str, bytes | None]]) -> dict[str, bytes]:
    """The tree after commit ops ('file' | 'deletedFile' | 'deletedFolder', path, content), as the Hub
    applies them; a deletion of something missing is a 404 EntryNotFound."""
    out = dict(files)
    for kind, path, content in ops:
        if kind == "file":
            assert content is not None
            out[path] = content
        elif kind == "deletedFile":
            if path not in out:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            del out[path]
        else:  # deletedFolder
            prefix = path.rstrip("/") + "/"
            doomed = [p for p in out if p.startswith(prefix)]
            if not doomed:
                raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
            for p in doomed:
                del out[p]
    return out


def _url_prefix(repo_type: str) -> str:
    """Web-URL prefix of a repo type: '' for models, 'datasets/' and 'spaces/' otherwise."""
    return "" if repo_type == "model" else f"{repo_type}s/"


def _check_repo_args(repo_id: str, repo_type: str) -> None:
    if repo_type not in REPO_TYPES:
        raise ValueError(f"repo_type must be one of {REPO_TYPES}, got {repo_type!r}")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"FakeHub repo ids must be 'namespace/name', got {repo_id!r}")


# --------------------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------------------


@dataclass
class User:
    """A Hub account and its (single) access token."""

    name: str
    token: str
    role: str = "write"  # "read", "write" or "fineGrained" (treated as write)
    orgs: list[str] = field(default_factory=list)
    fullname: str = ""
    id: str = field(default_factory=_object_id)

    def owns(self, namespace: str) -> bool:
        return namespace == self.name or namespace in self.orgs

    def to_author(self) -> dict[str, Any]:
        """The `author` object of discussions and events."""
        return _author_json(self.name, self.fullname, self.id)


def _author_json(name: str, fullname: str = "", user_id: str = "") -> dict[str, Any]:
    return {
        "_id": user_id or hashlib.sha1(name.encode()).hexdigest()[:24],
        "avatarUrl": f"/avatars/{hashlib.md5(name.encode()).hexdigest()}.svg",
        "fullname": fullname or name,
        "name": name,
        "type": "user",
        "isPro": False,
        "isHf": False,
        "isMod": False,
    }


@dataclass
class Commit:
    """One commit. `files` is the whole tree at that commit (path -> content)."""

    oid: str
    parents: list[str]
    title: str
    message: str
    author: str
    date: str
    files: dict[str, bytes]


@dataclass
class Comment:
    """A comment event of a discussion, flattened for assertions."""

    id: str
    author: str
    content: str
    hidden: bool
    edited: bool


@dataclass
class Discussion:
    """A discussion or pull request. `events` are stored in the Hub's JSON shape (as the API returns them)."""

    num: int
    title: str
    author: str
    status: str  # "open", "closed", "merged" or "draft"
    is_pull_request: bool
    created_at: str
    events: list[dict[str, Any]] = field(default_factory=list)
    target_branch: str | None = None  # "refs/heads/main" for pull requests
    fork_oid: str | None = None  # commit the PR branch was created from
    merge_commit_oid: str | None = None
    id: str = field(default_factory=_object_id)

    @property
    def git_reference(self) -> str | None:
        return f"refs/pr/{self.num}" if self.is_pull_request else None

    @property
    def comments(self) -> list[Comment]:
        return [
            Comment(
                id=e["id"],
                author=e["author"]["name"],
                content=e["data"]["latest"]["raw"],
                hidden=e["data"]["hidden"],
                edited=e["data"]["edited"],
            )
            for e in self.events
            if e["type"] == "comment"
        ]


@dataclass
class Repo:
    """A repo: refs ('refs/heads/main', 'refs/pr/1' -> commit oid), commits, discussions."""

    repo_id: str
    repo_type: str
    private: bool
    created_at: str
    refs: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    discussions: dict[int, Discussion] = field(default_factory=dict)
    sdk: str | None = None
    id: str = field(default_factory=_object_id)

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]

    @property
    def branches(self) -> dict[str, str]:
        return {ref[len("refs/heads/") :]: oid for ref, oid in self.refs.items() if ref.startswith("refs/heads/")}

    @property
    def head(self) -> str:
        """Commit oid of the `main` branch."""
        return self.refs["refs/heads/main"]

    def history(self, oid: str | None = None) -> list[Commit]:
        """Commits reachable from `oid` (default: main) following first parents, newest first."""
        out: list[Commit] = []
        current: str | None = oid or self.head
        while current is not None:
            commit = self.commits[current]
            out.append(commit)
            current = commit.parents[0] if commit.parents else None
        return out


@dataclass
class Webhook:
    id: str
    owner: str
    url: str | None
    watched: list[dict[str, str]]
    domains: list[str]
    secret: str | None
    disabled: bool = False
    created_at: str = field(default_factory=_now_iso)

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "watched": copy.deepcopy(self.watched),
            "domains": list(self.domains),
            "secret": self.secret,
            "disabled": self.disabled,
            "createdAt": self.created_at,
        }


@dataclass(frozen=True)
class RecordedRequest:
    """A request received by the fake. Unpacks as `(method, path, json, headers)`.

    `path` is percent-decoded, without the query string. `json` is the parsed body: a JSON value, the list
    of NDJSON lines (commit endpoint), a `{key: [values]}` dict for form bodies, else None. `headers` have
    lower-case names and the `authorization` value replaced by '<redacted>'. `user` is the name the token
    resolved to (None if anonymous or invalid), `status` the status code the fake answered.
    """

    method: str
    path: str
    json: Any
    headers: dict[str, str]
    query: dict[str, list[str]]
    status: int
    user: str | None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.method, self.path, self.json, self.headers))


class HubError(Exception):
    """Raised by route handlers; turned into the Hub's error response (JSON `error` + `X-Error-*` headers)."""

    def __init__(
        self, status: int, message: str, code: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})

    def response(self) -> Response:
        headers = {"X-Error-Message": self.message.encode("ascii", "replace").decode(), **self.headers}
        if self.code:
            headers["X-Error-Code"] = self.code
        return JSONResponse({"error": self.message}, status_code=self.status, headers=headers)


@dataclass
class _Call:
    """What a route handler gets: the parsed request and the authenticated user."""

    method: str
    path: str  # percent-decoded
    raw_path: str  # as sent (e.g. 'refs%2Fpr%2F1' kept escaped)
    query: dict[str, list[str]]
    headers: Headers
    body: bytes
    user: User | None
    base_url: str

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str) -> bool:
        return (self.param(name) or "").lower() in ("1", "true", "yes")

    def json(self) -> Any:
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError as err:
            raise HubError(400, f"Invalid JSON body: {err}") from err

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode(), keep_blank_values=True)


def _parse_body_for_record(headers: Headers, body: bytes) -> Any:
    if not body:
        return None
    content_type = headers.get("content-type", "")
    try:
        if "ndjson" in content_type:
            return [json.loads(line) for line in body.splitlines() if line.strip()]
        if "json" in content_type:
            return json.loads(body)
        if "x-www-form-urlencoded" in content_type:
            return parse_qs(body.decode(), keep_blank_values=True)
    except ValueError:
        return None
    return None


# --------------------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------------------

_Handler = Callable[..., Response]
_ROUTES: list[tuple[frozenset[str], re.Pattern[str], _Handler]] = []

_TYPE = r"(?P<rtype>models|datasets|spaces)"
_REPO = r"(?P<repo_id>[^/]+/[^/]+)"
_API_REPO = rf"/api/{_TYPE}/{_REPO}"


def _route(methods: str, pattern: str) -> Callable[[_Handler], _Handler]:
    """Register a handler for `methods` (space separated) on a regex matched against the RAW request path.

    Matching the raw path matters: the client sends revisions and tree paths with '/' escaped as '%2F'
    (e.g. 'refs%2Fpr%2F1'). Each named group is percent-decoded before being passed to the handler.
    """

    def register(handler: _Handler) -> _Handler:
        _ROUTES.append((frozenset(methods.split()), re.compile(f"^{pattern}$"), handler))
        return handler

    return register


def _singular(rtype: str) -> str:
    return rtype[:-1]


# --------------------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------------------


class FakeHub:
    """State of the fake Hub plus its ASGI app (the instance itself is the ASGI callable).

    All methods are thread-safe: the server runs in another thread. Accessors (`repo`, `discussions`,
    `webhooks`, `requests`, ...) return deep copies, i.e. snapshots.
    """

    def __init__(self, *, page_size: int = 50, resolve_redirects: bool = True) -> None:
        """`page_size`: discussions/commits per page (the Hub uses 50). `resolve_redirects`: answer
        `/resolve/<branch>/...` with a 307 to `/api/resolve-cache/.../<commit>/...` as the Hub does
        (downloads at a commit sha are always served directly)."""
        self.page_size = page_size
        self.resolve_redirects = resolve_redirects
        self._lock = threading.RLock()
        self._users: dict[str, User] = {}
        self._repos: dict[tuple[str, str], Repo] = {}
        self._webhooks: dict[str, Webhook] = {}
        self._requests: list[RecordedRequest] = []
        self._errors: list[str] = []
        self._commit_counter = itertools.count(1)
        self._url: str | None = None
        from fakehub_jobs import FakeJobs  # here, not at the top: it imports this module (and adds its routes)

        self.jobs = FakeJobs(self, page_size=page_size)  # the Jobs API's state and test controls

    # ---- basics -----------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. 'http://127.0.0.1:54321' (set once the server is started)."""
        if self._url is None:
            raise RuntimeError("FakeHub is not started: use start_fake_hub() or the fake_hub fixture")
        return self._url

    def client_env(self, token: str | None = None) -> dict[str, str]:
        """Environment variables pointing a child process's `huggingface_hub` at this fake."""
        env = {"HF_ENDPOINT": self.url, "HF_HUB_DISABLE_TELEMETRY": "1"}
        if token is not None:
            env["HF_TOKEN"] = token
        return env

    # ---- seeding ----------------------------------------------------------------------------------------

    def add_user(
        self,
        name: str,
        token: str | None = None,
        *,
        role: str = "write",
        orgs: Iterable[str] = (),
        fullname: str = "",
    ) -> str:
        """Register a user and its token (default `hf_fake_<name>`); returns the token."""
        token = token or f"hf_fake_{name}"
        with self._lock:
            self._users[token] = User(name=name, token=token, role=role, orgs=list(orgs), fullname=fullname)
        return token

    def add_repo(
        self,
        repo_id: str,
        repo_type: str = "model",
        files: Mapping[str, str | bytes] | None = None,
        *,
        private: bool = False,
        sdk: str | None = None,
        author: str = "system",
        message: str = "initial commit",
    ) -> str:
        """Create a repo whose `main` has one commit with exactly `files`; returns that commit's sha."""
        _check_repo_args(repo_id, repo_type)
        with self._lock:
            if (repo_type, repo_id) in self._repos:
                raise ValueError(f"{repo_type} repo {repo_id} already exists")
            repo = Repo(repo_id=repo_id, repo_type=repo_type, private=private, created_at=_now_iso(), sdk=sdk)
            self._repos[(repo_type, repo_id)] = repo
            oid = self._new_commit(repo, None, {p: _to_bytes(c) for p, c in (files or {}).items()}, message, "", author)
            repo.refs["refs/heads/main"] = oid
            return oid

    def commit(
        self,
        repo_id: str,
        files: Mapping[str, str | bytes] | None = None,
        message: str = "Update files",
        *,
        repo_type: str = "model",
        revision: str = "main",
        delete: Iterable[str] = (),
        author: str = "system",
        description: str = "",
    ) -> str:
        """Commit on a branch (or `refs/pr/N`) as if someone else pushed; returns the new commit sha."""
        with self._lock:
            repo = self._repo(repo_id, repo_type)
            ref = self._writable_ref(repo, revision)
            if ref is None:
                raise ValueError(f"{revision!r} is not a branch of {repo_id}")
            ops: list[tuple[str, str, bytes | None]] = [("file", p, _to_bytes(c)) for p, c in (files or {}).items()]
            ops += [("deletedFile", p, None) for p in delete]
            return self._apply_commit(repo, ref, ops, message, description, author)

    def add_discussion(
        self,
        repo_id: str,
        title: str,
        *,
        author: str,
        description: str = "",
        repo_type: str = "model",
        pull_request: bool = False,
    ) -> int:
        """Open a discussion (or an empty, draft, pull request) as `author`; returns its number."""
        with self._lock:
            repo = self._repo(repo_id, repo_type)
            return self._open_discussion(repo, title, description, self._user_by_name(author), pull_request).num

    def add_comment(self, repo_id: str, num: int, text: str, *, author: str, repo_type: str = "model") -> str:
        """Comment on a discussion as `author`; returns the comment (event) id."""
        with self._lock:
            discussion = self._discussion(self._repo(repo_id, repo_type), num)
            event = self._comment_event(self._user_by_name(author), text)
            discussion.events.append(event)
            return event["id"]

    # ---- accessors (snapshots) --------------------------------------------------------------------------

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        with self._lock:
            return copy.deepcopy(self._repo(repo_id, repo_type))

    def has_repo(self, repo_id: str, repo_type: str = "model") -> bool:
        with self._lock:
            return (repo_type, repo_id) in self._repos

    def blobs_at(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        """All files of a repo at a revision (branch, `refs/pr/N` or commit sha)."""
        with self._lock:
            repo = self._repo(repo_id, repo_type)
            oid = self._resolve(repo, revision)
            if oid is None:
                raise KeyError(f"revision {revision!r} not found in {repo_id}")
            return dict(repo.commits[oid].files)

    def files_at(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, str]:
        """Same as `blobs_at`, decoded as UTF-8."""
        return {p: c.decode("utf-8", errors="replace") for p, c in self.blobs_at(repo_id, revision, repo_type).items()}

    def discussions(self, repo_id: str, repo_type: str = "model") -> list[Discussion]:
        """Discussions and PRs of a repo, by number."""
        with self._lock:
            repo = self._repo(repo_id, repo_type)
            return [copy.deepcopy(repo.discussions[n]) for n in sorted(repo.discussions)]

    def discussion(self, repo_id: str, num: int, repo_type: str = "model") -> Discussion:
        with self._lock:
            return copy.deepcopy(self._discussion(self._repo(repo_id, repo_type), num))

    def webhooks(self) -> list[Webhook]:
        """All webhooks, of all users, in creation order."""
        with self._lock:
            return copy.deepcopy(list(self._webhooks.values()))

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in order (internal health checks excluded)."""
        with self._lock:
            return list(self._requests)

    def find_requests(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Recorded requests filtered by method and by a regex searched in the (decoded) path."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper()) and (path is None or re.search(path, r.path))
        ]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    @property
    def errors(self) -> list[str]:
        """Tracebacks of unexpected exceptions raised inside the fake (each one answered a 500)."""
        with self._lock:
            return list(self._errors)

    # ---- internal state helpers (call with the lock held) -----------------------------------------------

    def _repo(self, repo_id: str, repo_type: str) -> Repo:
        try:
            return self._repos[(repo_type, repo_id)]
        except KeyError:
            raise KeyError(f"no {repo_type} repo {repo_id!r} in the FakeHub") from None

    def _discussion(self, repo: Repo, num: int) -> Discussion:
        try:
            return repo.discussions[num]
        except KeyError:
            raise KeyError(f"no discussion #{num} in {repo.repo_id}") from None

    def _user_by_name(self, name: str) -> User:
        for user in self._users.values():
            if user.name == name:
                return user
        return User(name=name, token="")  # unregistered author: fine for seeding

    def _resolve(self, repo: Repo, revision: str) -> str | None:
        """Commit oid for a revision: commit sha (full, or unique prefix of 7+), branch, refs/..."""
        if revision in repo.commits:
            return revision
        for ref in (revision, f"refs/heads/{revision}", f"refs/tags/{revision}"):
            if ref in repo.refs:
                return repo.refs[ref]
        if re.fullmatch(r"[0-9a-f]{7,39}", revision):
            matches = [oid for oid in repo.commits if oid.startswith(revision)]
            if len(matches) == 1:
                return matches[0]
        return None

    def _writable_ref(self, repo: Repo, revision: str) -> str | None:
        """Full ref name if `revision` names a branch or a PR ref, else None."""
        for ref in (revision, f"refs/heads/{revision}"):
            if ref in repo.refs and (ref.startswith("refs/heads/") or ref.startswith("refs/pr/")):
                return ref
        return None

    def _new_commit(
        self, repo: Repo, parent: str | None, files: dict[str, bytes], title: str, message: str, author: str
    ) -> str:
        seed = f"{repo.repo_type}/{repo.repo_id}\n{parent}\n{_tree_oid(files)}\n{title}\n{next(self._commit_counter)}"
        oid = hashlib.sha1(f"{seed}\n{time.time_ns()}".encode()).hexdigest()
        repo.commits[oid] = Commit(
            oid=oid,
            parents=[parent] if parent else [],
            title=title,
            message=message,
            author=author,
            date=_now_iso(),
            files=files,
        )
        return oid

    def _apply_commit(
        self,
        repo: Repo,
        ref: str,
        ops: list[tuple[str, str, bytes | None]],
        title: str,
        message: str,
        author: str,
    ) -> str:
        """Apply commit ops on top of `ref` as a new commit; move the ref; returns the commit oid."""
        parent = repo.refs[ref]
        files = _apply_ops(repo.commits[parent].files, ops)
        oid = self._new_commit(repo, parent, files, title, message, author)
        repo.refs[ref] = oid
        if ref.startswith("refs/pr/"):
            pr = repo.discussions[int(ref.rsplit("/", 1)[1])]
            if pr.status == "draft":
                pr.status = "open"
            pr.events.append(self._event("commit", self._user_by_name(author), {"subject": title, "oid": oid}))
        return oid

    def _event(self, kind: str, user: User, data: dict[str, Any]) -> dict[str, Any]:
        return {"id": _object_id(), "type": kind, "createdAt": _now_iso(), "author": user.to_author(), "data": data}

    def _comment_event(self, user: User, text: str) -> dict[str, Any]:
        now = _now_iso()
        latest = {"raw": text, "html": _to_html(text), "updatedAt": now, "author": user.to_author()}
        event = self._event(
            "comment",
            user,
            {
                "edited": False,
                "hidden": False,
                "latest": latest,
                "numEdits": 0,
                "editors": [user.name],
                "editorAvatarUrls": [],
                "reactions": [],
                "isReport": False,
                "history": [copy.deepcopy(latest)],
            },
        )
        event["createdAt"] = now
        return event

    def _open_discussion(
        self, repo: Repo, title: str, description: str, user: User, pull_request: bool, *, draft: bool = True
    ) -> Discussion:
        num = max(repo.discussions, default=0) + 1
        discussion = Discussion(
            num=num,
            title=title,
            author=user.name,
            status=("draft" if draft else "open") if pull_request else "open",
            is_pull_request=pull_request,
            created_at=_now_iso(),
        )
        discussion.events.append(self._comment_event(user, description))
        if pull_request:
            discussion.target_branch = "refs/heads/main"
            discussion.fork_oid = repo.head
            repo.refs[f"refs/pr/{num}"] = repo.head
        repo.discussions[num] = discussion
        return discussion

    # ---- ASGI -------------------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":  # lifespan is disabled; nothing else is expected
            return
        request = Request(scope, receive)
        body = await request.body()
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").split("?", 1)[0]
        if raw_path == "/__fakehub__/ping":
            await Response("ok", media_type="text/plain")(scope, receive, send)
            return
        response = self._handle(scope, request.headers, raw_path, body)
        # The exact time, not uvicorn's Date (refreshed once a second): `fetch_job_logs` stops at events
        # logged after Date + 1 s, so a stale Date would cut off the newest log lines.
        response.headers["Date"] = formatdate(usegmt=True)
        await response(scope, receive, send)

    def _handle(self, scope: dict[str, Any], headers: Headers, raw_path: str, body: bytes) -> Response:
        method = scope["method"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        with self._lock:
            user: User | None = None
            try:
                user = self._authenticate(headers)
                call = _Call(
                    method=method,
                    path=scope["path"],
                    raw_path=raw_path,
                    query=query,
                    headers=headers,
                    body=body,
                    user=user,
                    base_url=f"http://{headers.get('host', '127.0.0.1')}",
                )
                response = self._dispatch(call, raw_path)
            except HubError as err:
                response = err.response()
            except Exception:
                self._errors.append(f"{method} {scope['path']}\n{traceback.format_exc()}")
                response = HubError(500, "FakeHub internal error (see hub.errors)").response()
            recorded_headers = {k.lower(): v for k, v in headers.items()}
            if "authorization" in recorded_headers:
                recorded_headers["authorization"] = "<redacted>"
            self._requests.append(
                RecordedRequest(
                    method=method,
                    path=scope["path"],
                    json=_parse_body_for_record(headers, body),
                    headers=recorded_headers,
                    query=query,
                    status=response.status_code,
                    user=user.name if user else None,
                )
            )
            return response

    def _authenticate(self, headers: Headers) -> User | None:
        authorization = headers.get("authorization")
        if authorization is None:
            return None
        scheme, _, token = authorization.partition(" ")
        user = self._users.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise HubError(401, _INVALID_TOKEN_MESSAGE)
        return user

    def _dispatch(self, call: _Call, raw_path: str) -> Response:
        path_matched = False
        for methods, pattern, handler in _ROUTES:
            match = pattern.match(raw_path)
            if match is None:
                continue
            path_matched = True
            if call.method in methods:
                kwargs = {k: (unquote(v) if v is not None else None) for k, v in match.groupdict().items()}
                return handler(self, call, **kwargs)
        what = "this method on" if path_matched else "the route"
        raise HubError(501, f"FakeHub does not implement {what} {call.method} {call.path}", "NotImplemented")

    # ---- access control ---------------------------------------------------------------------------------

    def _readable_repo(self, call: _Call, repo_type: str, repo_id: str) -> Repo:
        repo = self._repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        if repo.private:
            if call.user is None:
                raise HubError(401, "Invalid username or password.", "RepoNotFound")
            if not call.user.owns(repo.namespace):
                raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    @staticmethod
    def _writer(call: _Call) -> User:
        """The caller, who must be authenticated with a token allowed to write."""
        if call.user is None:
            raise HubError(401, "You must be authenticated to perform this action")
        if call.user.role == "read":
            raise HubError(403, "You don't have the rights to perform this action with a read token")
        return call.user

    def _repo_writer(self, call: _Call, repo: Repo) -> User:
        user = self._writer(call)
        if not user.owns(repo.namespace):
            raise HubError(403, f"You don't have the rights to write to {repo.repo_type} {repo.repo_id}")
        return user

    def _commit_oid(self, repo: Repo, revision: str) -> str:
        oid = self._resolve(repo, revision)
        if oid is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return oid

    # ---- JSON shapes ------------------------------------------------------------------------------------

    def _repo_info_json(self, call: _Call, repo: Repo, oid: str) -> dict[str, Any]:
        commit = repo.commits[oid]
        card = _card_data(commit.files.get("README.md"))
        tags = [str(t) for t in (card or {}).get("tags") or []]
        if card and card.get("license"):
            tags.append(f"license:{card['license']}")
        blobs = call.flag("blobs")
        siblings = [
            {"rfilename": p, **({"size": len(c), "blobId": _git_blob_oid(c)} if blobs else {})}
            for p, c in sorted(commit.files.items())
        ]
        data: dict[str, Any] = {
            "_id": repo.id,
            "id": repo.repo_id,
            "author": repo.namespace,
            "sha": oid,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "likes": 0,
            "tags": tags,
            "siblings": siblings,
            "usedStorage": sum(len(c) for c in commit.files.values()),
        }
        if card is not None:
            data["cardData"] = card
        if repo.repo_type == "model":
            data.update(modelId=repo.repo_id, downloads=0, spaces=[])
            for key in ("library_name", "pipeline_tag"):
                if card and card.get(key):
                    data[key] = card[key]
        elif repo.repo_type == "dataset":
            data.update(downloads=0, description="")
        else:
            subdomain = repo.repo_id.replace("/", "-").replace("_", "-").lower()
            data.update(
                sdk=repo.sdk or (card or {}).get("sdk"),
                subdomain=subdomain,
                host=f"https://{subdomain}.hf.space",
                runtime={
                    "stage": "RUNNING",
                    "hardware": {"current": "cpu-basic", "requested": "cpu-basic"},
                    "storage": None,
                    "gcTimeout": 172800,
                    "replicas": {"current": 1, "requested": 1},
                    "devMode": False,
                },
                models=[],
                datasets=[],
            )
        expand = call.query.get("expand") or call.query.get("expand[]")
        if expand:
            data = {k: v for k, v in data.items() if k in {"_id", "id", *expand}}
        return data

    def _discussion_json(self, repo: Repo, d: Discussion, *, details: bool, with_diff: bool = False) -> dict[str, Any]:
        author = self._user_by_name(d.author)
        data: dict[str, Any] = {
            "_id": d.id,
            "num": d.num,
            "title": d.title,
            "status": d.status,
            "createdAt": d.created_at,
            "isPullRequest": d.is_pull_request,
            "author": author.to_author(),
            "repo": {"name": repo.repo_id, "type": repo.repo_type},
            "pinned": False,
            "numComments": sum(1 for e in d.events if e["type"] == "comment"),
            "topReactions": [],
        }
        if not details:
            return data
        data.update(events=copy.deepcopy(d.events), locked=False, collection="discussions")
        if d.is_pull_request:
            changes: dict[str, Any] = {"base": d.target_branch}
            if d.merge_commit_oid:
                changes["mergeCommitId"] = d.merge_commit_oid
            data.update(changes=changes, filesWithConflicts=[])
            if with_diff:
                data["diff"] = self._pr_diff(repo, d)
        return data

    def _pr_diff(self, repo: Repo, d: Discussion) -> str:
        before = repo.commits[d.fork_oid].files if d.fork_oid else {}
        after = repo.commits[repo.refs[f"refs/pr/{d.num}"]].files
        chunks: list[str] = []
        for path in sorted(set(before) | set(after)):
            old, new = before.get(path), after.get(path)
            if old == new:
                continue
            old_lines = (old or b"").decode("utf-8", "replace").splitlines(keepends=True)
            new_lines = (new or b"").decode("utf-8", "replace").splitlines(keepends=True)
            chunks.append(f"diff --git a/{path} b/{path}\n")
            chunks.extend(
                difflib.unified_diff(
                    old_lines,
                    new_lines,
                    "/dev/null" if old is None else f"a/{path}",
                    "/dev/null" if new is None else f"b/{path}",
                )
            )
        return "".join(chunks)

    def _tree_entry(self, repo: Repo, oid: str, path: str, *, is_dir: bool, expand: bool) -> dict[str, Any]:
        files = repo.commits[oid].files
        if is_dir:
            entry: dict[str, Any] = {"type": "directory", "oid": _tree_oid(files, path + "/"), "size": 0, "path": path}
        else:
            entry = {"type": "file", "oid": _git_blob_oid(files[path]), "size": len(files[path]), "path": path}
        if expand:
            last = self._last_commit_touching(repo, oid, path, is_dir=is_dir)
            entry["lastCommit"] = {"id": last.oid, "title": last.title, "date": last.date}
            if not is_dir:
                entry["securityFileStatus"] = {"status": "safe", "avScan": None, "pickleImportScan": None}
        return entry

    def _last_commit_touching(self, repo: Repo, oid: str, path: str, *, is_dir: bool) -> Commit:
        def state(c: Commit) -> Any:
            return _tree_oid(c.files, path + "/") if is_dir else c.files.get(path)

        history = repo.history(oid)
        for commit, parent in itertools.pairwise([*history, None]):
            if parent is None or state(commit) != state(parent):
                return commit
        return history[-1]

    # ================================================================================================
    # Routes: users
    # ================================================================================================

    @_route("GET", r"/api/whoami-v2")
    def _whoami(self, call: _Call) -> Response:
        user = call.user
        if user is None:
            raise HubError(401, "Invalid username or password.")
        return JSONResponse(
            {
                "type": "user",
                "id": user.id,
                "name": user.name,
                "fullname": user.fullname or user.name,
                "email": f"{user.name}@example.com",
                "emailVerified": True,
                "canPay": False,
                "isPro": False,
                "periodEnd": None,
                "avatarUrl": _author_json(user.name)["avatarUrl"],
                "orgs": [
                    {
                        "type": "org",
                        "id": hashlib.sha1(org.encode()).hexdigest()[:24],
                        "name": org,
                        "fullname": org,
                        "email": None,
                        "canPay": False,
                        "periodEnd": None,
                        "avatarUrl": _author_json(org)["avatarUrl"],
                        "roleInOrg": "write",
                        "isEnterprise": False,
                    }
                    for org in user.orgs
                ],
                "auth": {
                    "type": "access_token",
                    "accessToken": {"displayName": f"{user.name}-token", "role": user.role, "createdAt": _now_iso()},
                },
            }
        )

    @_route("POST", r"/api/validate-yaml")
    def _validate_yaml(self, call: _Call) -> Response:
        content = (call.json() or {}).get("content", "")
        match = _YAML_BLOCK_RE.match(content)
        if match is not None:
            try:
                yaml.safe_load(match.group(1))
            except yaml.YAMLError as err:
                return JSONResponse({"errors": [{"message": f"Invalid YAML: {err}"}], "warnings": []}, 400)
        return JSONResponse({"errors": [], "warnings": []})

    # ================================================================================================
    # Routes: repos
    # ================================================================================================

    @_route("POST", r"/api/repos/create")
    def _create_repo(self, call: _Call) -> Response:
        user = self._writer(call)
        body = call.json() or {}
        repo_type = body.get("type") or "model"
        name, namespace = body.get("name"), body.get("organization") or user.name
        if repo_type not in REPO_TYPES or not name or "/" in name:
            raise HubError(400, "Invalid repo name or type")
        repo_id = f"{namespace}/{name}"
        url = f"{call.base_url}/{_url_prefix(repo_type)}{repo_id}"
        if not user.owns(namespace):
            raise HubError(403, f"You don't have the rights to create a {repo_type} under the namespace {namespace}")
        if (repo_type, repo_id) in self._repos:
            return JSONResponse({"error": f"You already created this {repo_type} repo", "url": url}, 409)
        if repo_type == "space" and not body.get("sdk"):
            raise HubError(400, "sdk is required for Spaces")
        private = body.get("visibility", "private" if body.get("private") else "public") != "public"
        files = {".gitattributes": DEFAULT_GITATTRIBUTES}
        self.add_repo(repo_id, repo_type, files, private=private, sdk=body.get("sdk"))
        return JSONResponse({"url": url, "name": repo_id, "id": self._repos[(repo_type, repo_id)].id})

    @_route("DELETE", r"/api/repos/delete")
    def _delete_repo(self, call: _Call) -> Response:
        user = self._writer(call)
        body = call.json() or {}
        repo_type = body.get("type") or "model"
        repo_id = f"{body.get('organization') or user.name}/{body.get('name')}"
        repo = self._readable_repo(call, repo_type, repo_id)
        self._repo_writer(call, repo)
        del self._repos[(repo_type, repo_id)]
        return JSONResponse({})

    @_route("GET", rf"{_API_REPO}(?:/revision/(?P<rev>[^/]+))?")
    def _repo_info(self, call: _Call, rtype: str, repo_id: str, rev: str | None) -> Response:
        repo = self._readable_repo(call, _singular(rtype), repo_id)
        return JSONResponse(self._repo_info_json(call, repo, self._commit_oid(repo, rev or "main")))

    @_route("GET", rf"{_API_REPO}/refs")
    def _refs(self, call: _Call, rtype: str, repo_id: str) -> Response:
        repo = self._readable_repo(call, _singular(rtype), repo_id)

        def entries(prefix: str, short: bool) -> list[dict[str, str]]:
            return [
                {"name": ref[len(prefix) :] if short else ref, "ref": ref, "targetCommit": oid}
                for ref, oid in sorted(repo.refs.items())
                if ref.startswith(prefix)
            ]

        data: dict[str, Any] = {
            "branches": entries("refs/heads/", True),
            "converts": entries("refs/convert/", True),
            "tags": entries("refs/tags/", True),
        }
        if call.flag("include_prs"):
            data["pullRequests"] = entries("refs/pr/", False)
        return JSONResponse(data)

    @_route("GET", rf"{_API_REPO}/commits/(?P<rev>[^/]+)")
    def _list_commits(self, call: _Call, rtype: str, repo_id: str, rev: str) -> Response:
        repo = self._readable_repo(call, _singular(rtype), repo_id)
        history = repo.history(self._commit_oid(repo, rev))
        page = int(call.param("p", "0") or 0)
        chunk = history[page * self.page_size : (page + 1) * self.page_size]
        formatted = call.param("expand[]") == "formatted"
        items = []
        for c in chunk:
            item: dict[str, Any] = {
                "id": c.oid,
                "title": c.title,
                "message": c.message,
                "authors": [{"user": c.author, "avatar": _author_json(c.author)["avatarUrl"]}],
                "date": c.date,
            }
            if formatted:
                item["formatted"] = {"title": _to_html(c.title), "message": _to_html(c.message)}
            items.append(item)
        headers = {}
        if (page + 1) * self.page_size < len(history):
            next_query = f"p={page + 1}" + ("&expand%5B%5D=formatted" if formatted else "")
            headers["Link"] = f'<{call.base_url}{call.raw_path}?{next_query}>; rel="next"'
        return JSONResponse(items, headers=headers)

    @_route("GET", rf"{_API_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?")
    def _list_tree(self, call: _Call, rtype: str, repo_id: str, rev: str, path: str | None) -> Response:
        repo = self._readable_repo(call, _singular(rtype), repo_id)
        oid = self._commit_oid(repo, rev)
        files = repo.commits[oid].files
        base = (path or "").strip("/")
        prefix = f"{base}/" if base else ""
        if base and not any(p.startswith(prefix) for p in files):
            raise HubError(404, f"Entry not found: {base}", "EntryNotFound", {"X-Repo-Commit": oid})
        recursive, expand = call.flag("recursive"), call.flag("expand")
        dirs: set[str] = set()
        file_paths: list[str] = []
        for p in sorted(files):
            if not p.startswith(prefix):
                continue
            rel_parts = p[len(prefix) :].split("/")
            for depth in range(1, len(rel_parts)):
                if recursive or depth == 1:
                    dirs.add(prefix + "/".join(rel_parts[:depth]))
            if recursive or len(rel_parts) == 1:
                file_paths.append(p)
        entries = [self._tree_entry(repo, oid, d, is_dir=True, expand=expand) for d in sorted(dirs)]
        entries += [self._tree_entry(repo, oid, p, is_dir=False, expand=expand) for p in file_paths]
        return JSONResponse(entries)

    @_route("POST", rf"{_API_REPO}/paths-info/(?P<rev>[^/]+)")
    def _paths_info(self, call: _Call, rtype: str, repo_id: str, rev: str) -> Response:
        repo = self._readable_repo(call, _singular(rtype), repo_id)
        oid = self._commit_oid(repo, rev)
        form = call.form()
        paths, expand = form.get("paths", []), form.get("expand", ["false"])[-1].lower() == "true"
        files = repo.commits[oid].files
        out = []
        for p in paths:
            p = p.strip("/")
            if p in files:
                out.append(self._tree_entry(repo, oid, p, is_dir=False, expand=expand))
            elif any(f.startswith(p + "/") for f in files):
                out.append(self._tree_entry(repo, oid, p, is_dir=True, expand=expand))
        return JSONResponse(out)

    # ================================================================================================
    # Routes: commits
    # ================================================================================================

    @_route("POST", rf"{_API_REPO}/preupload/(?P<rev>[^/]+)")
    def _preupload(self, call: _Call, rtype: str, repo_id: str, rev: str) -> Response:
        repo = self._readable_repo(call, _singular(rtype), repo_id)
        self._writer(call)
        oid = self._commit_oid(repo, rev)
        files = repo.commits[oid].files
        out = [
            {
                "path": f["path"],
                "uploadMode": "regular",  # never "lfs": keeps the client away from LFS and Xet
                "shouldIgnore": False,
                "oid": _git_blob_oid(files[f["path"]]) if f["path"] in files else None,
            }
            for f in (call.json() or {}).get("files", [])
        ]
        return JSONResponse({"files": out, "commitOid": oid})

    @_route("POST", rf"{_API_REPO}/commit/(?P<rev>[^/]+)")
    def _create_commit(self, call: _Call, rtype: str, repo_id: str, rev: str) -> Response:
        repo = self._readable_repo(call, _singular(rtype), repo_id)
        user = self._writer(call)
        try:
            lines = [json.loads(line) for line in call.body.splitlines() if line.strip()]
        except ValueError as err:
            raise HubError(400, f"Invalid NDJSON body: {err}") from err
        header = next((line["value"] for line in lines if line.get("key") == "header"), None)
        if header is None or not header.get("summary"):
            raise HubError(400, "Missing commit header with a summary")
        ops: list[tuple[str, str, bytes | None]] = []
        for line in lines:
            key, value = line.get("key"), line.get("value") or {}
            if key == "file":
                raw = value.get("content", "")
                content = base64.b64decode(raw) if value.get("encoding") == "base64" else raw.encode()
                ops.append(("file", value["path"], content))
            elif key in ("deletedFile", "deletedFolder"):
                ops.append((key, value["path"], None))
            elif key == "lfsFile":
                raise HubError(501, "FakeHub does not store LFS files (preupload always answers 'regular')")
            elif key != "header":
                raise HubError(400, f"Unknown commit operation {key!r}")

        ref = self._writable_ref(repo, rev)
        if ref is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        _apply_ops(repo.commits[repo.refs[ref]].files, ops)  # validate before changing any state
        parent_commit = header.get("parentCommit")
        pr: Discussion | None = None
        if call.flag("create_pr"):
            if not ref.startswith("refs/heads/"):
                raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            pr = self._open_discussion(repo, header["summary"], header.get("description", ""), user, True, draft=False)
            pr.target_branch = ref
            base = self._commit_oid(repo, parent_commit) if parent_commit else repo.refs[ref]
            pr.fork_oid = base
            ref = f"refs/pr/{pr.num}"
            repo.refs[ref] = base
        else:
            pr_num = int(ref.rsplit("/", 1)[1]) if ref.startswith("refs/pr/") else None
            if pr_num is None or repo.discussions[pr_num].author != user.name:
                self._repo_writer(call, repo)
            if parent_commit and not repo.refs[ref].startswith(parent_commit):
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
        oid = self._apply_commit(repo, ref, ops, header["summary"], header.get("description", ""), user.name)
        web_repo = f"{call.base_url}/{_url_prefix(repo.repo_type)}{repo.repo_id}"
        return JSONResponse(
            {
                "success": True,
                "commitOid": oid,
                "commitUrl": f"{web_repo}/commit/{oid}",
                "pullRequestUrl": f"{web_repo}/discussions/{pr.num}" if pr else None,
            }
        )

    # ================================================================================================
    # Routes: file downloads
    # ================================================================================================

    @_route("GET HEAD", rf"/api/resolve-cache/{_TYPE}/{_REPO}/(?P<rev>[0-9a-f]{{40}})/(?P<path>.+)")
    def _resolve_cache(self, call: _Call, rtype: str, repo_id: str, rev: str, path: str) -> Response:
        return self._serve_file(call, _singular(rtype), repo_id, rev, path, allow_redirect=False)

    @_route("GET HEAD", rf"/(?:(?P<prefix>datasets|spaces)/)?{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)")
    def _resolve_file(self, call: _Call, prefix: str | None, repo_id: str, rev: str, path: str) -> Response:
        return self._serve_file(call, _singular(prefix) if prefix else "model", repo_id, rev, path)

    def _serve_file(
        self, call: _Call, repo_type: str, repo_id: str, rev: str, path: str, *, allow_redirect: bool = True
    ) -> Response:
        repo = self._readable_repo(call, repo_type, repo_id)
        oid = self._commit_oid(repo, rev)
        content = repo.commits[oid].files.get(path)
        if content is None:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": oid})
        etag = f'"{_git_blob_oid(content)}"'
        headers = {"X-Repo-Commit": oid, "ETag": etag}
        if allow_redirect and self.resolve_redirects and not _SHA_RE.match(rev):
            location = f"/api/resolve-cache/{repo_type}s/{repo_id}/{oid}/{quote(path)}"
            return Response(status_code=307, headers={**headers, "Location": location})
        filename = path.rsplit("/", 1)[-1]
        headers.update(
            {
                "Accept-Ranges": "bytes",
                "Content-Disposition": f"inline; filename*=UTF-8''{quote(filename)}; filename=\"{quote(filename)}\";",
            }
        )
        try:
            content.decode("utf-8")
            media_type = "text/plain; charset=utf-8"
        except UnicodeDecodeError:
            media_type = "application/octet-stream"
        range_match = re.fullmatch(r"bytes=(\d*)-(\d*)", call.headers.get("range", "").strip())
        if range_match and any(range_match.groups()):
            start_s, end_s = range_match.groups()
            size = len(content)
            start = int(start_s) if start_s else max(size - int(end_s), 0)
            end = min(int(end_s), size - 1) if start_s and end_s else size - 1
            if start >= size:
                return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            return Response(content[start : end + 1], 206, headers=headers, media_type=media_type)
        return Response(content, headers=headers, media_type=media_type)

    # ================================================================================================
    # Routes: discussions and pull requests
    # ================================================================================================

    @_route("GET", rf"{_API_REPO}/discussions")
    def _list_discussions(self, call: _Call, rtype: str, repo_id: str) -> Response:
        repo = self._readable_repo(call, _singular(rtype), repo_id)
        kind, status, author = call.param("type", "all"), call.param("status", "all"), call.param("author")
        selected = [
            d
            for d in sorted(repo.discussions.values(), key=lambda d: d.num, reverse=True)
            if (kind == "all" or (kind == "pull_request") == d.is_pull_request)
            and (status == "all" or (status == "open") == (d.status in ("open", "draft")))
            and (author is None or d.author == author)
        ]
        page = int(call.param("p", "0") or 0)
        start = page * self.page_size
        return JSONResponse(
            {
                "discussions": [
                    self._discussion_json(repo, d, details=False) for d in selected[start : start + self.page_size]
                ],
                "count": len(selected),
                "start": start,
                "numClosedDiscussions": sum(1 for d in selected if d.status in ("closed", "merged")),
            }
        )

    @_route("POST", rf"{_API_REPO}/discussions")
    def _create_discussion(self, call: _Call, rtype: str, repo_id: str) -> Response:
        repo = self._readable_repo(call, _singular(rtype), repo_id)
        user = self._writer(call)
        body = call.json() or {}
        title = (body.get("title") or "").strip()
        if not title:
            raise HubError(400, "Title is required")
        discussion = self._open_discussion(
            repo, title, body.get("description") or "", user, bool(body.get("pullRequest"))
        )
        return JSONResponse(self._discussion_json(repo, discussion, details=True))

    @_route("GET", rf"{_API_REPO}/discussions/(?P<num>\d+)")
    def _discussion_details(self, call: _Call, rtype: str, repo_id: str, num: str) -> Response:
        repo = self._readable_repo(call, _singular(rtype), repo_id)
        discussion = repo.discussions.get(int(num))
        if discussion is None:
            raise HubError(404, "Discussion not found")
        return JSONResponse(self._discussion_json(repo, discussion, details=True, with_diff=call.flag("diff")))

    def _discussion_for_change(self, call: _Call, rtype: str, repo_id: str, num: str) -> tuple[Repo, Discussion, User]:
        repo = self._readable_repo(call, _singular(rtype), repo_id)
        user = self._writer(call)
        discussion = repo.discussions.get(int(num))
        if discussion is None:
            raise HubError(404, "Discussion not found")
        return repo, discussion, user

    @_route("POST", rf"{_API_REPO}/discussions/(?P<num>\d+)/(?P<action>comment|status|title|merge)")
    def _change_discussion(self, call: _Call, rtype: str, repo_id: str, num: str, action: str) -> Response:
        repo, discussion, user = self._discussion_for_change(call, rtype, repo_id, num)
        body = call.json() or {}
        can_moderate = user.name == discussion.author or user.owns(repo.namespace)
        if action == "comment":
            text = (body.get("comment") or "").strip()
            if not text:
                raise HubError(400, "Comment is required")
            event = self._comment_event(user, text)
            discussion.events.append(event)
            return JSONResponse({"newMessage": event})
        if action == "title":
            if not can_moderate:
                raise HubError(403, "You don't have the rights to rename this discussion")
            new_title = (body.get("title") or "").strip()
            if not new_title:
                raise HubError(400, "Title is required")
            event = self._event("title-change", user, {"from": discussion.title, "to": new_title})
            discussion.title = new_title
            discussion.events.append(event)
            return JSONResponse({"newTitle": event})
        if action == "status":
            new_status = body.get("status")
            if new_status not in ("open", "closed"):
                raise HubError(400, "status must be 'open' or 'closed'")
            if not can_moderate:
                raise HubError(403, "You don't have the rights to change the status of this discussion")
            if discussion.status == "merged":
                raise HubError(400, "This pull request is already merged")
            if body.get("comment"):
                discussion.events.append(self._comment_event(user, body["comment"]))
            event = self._event("status-change", user, {"status": new_status})
            discussion.status = new_status
            discussion.events.append(event)
            return JSONResponse({"newStatus": event})
        # merge
        if not discussion.is_pull_request:
            raise HubError(400, "Only pull requests can be merged")
        self._repo_writer(call, repo)
        if discussion.status != "open":
            raise HubError(400, f"Cannot merge a pull request with status {discussion.status!r}")
        self._merge(repo, discussion, user, body.get("comment"))
        return JSONResponse({})

    def _merge(self, repo: Repo, pr: Discussion, user: User, comment: str | None) -> None:
        assert pr.target_branch is not None and pr.fork_oid is not None
        fork = repo.commits[pr.fork_oid].files
        head = repo.commits[repo.refs[f"refs/pr/{pr.num}"]].files
        ops: list[tuple[str, str, bytes | None]] = [("file", p, c) for p, c in head.items() if fork.get(p) != c]
        target = repo.commits[repo.refs[pr.target_branch]].files
        ops += [("deletedFile", p, None) for p in fork if p not in head and p in target]
        description = pr.events[0]["data"]["latest"]["raw"] if pr.events else ""
        oid = self._apply_commit(repo, pr.target_branch, ops, f"{pr.title} (#{pr.num})", description, user.name)
        if comment:
            pr.events.append(self._comment_event(user, comment))
        pr.events.append(self._event("status-change", user, {"status": "merged"}))
        pr.status, pr.merge_commit_oid = "merged", oid

    @_route("POST", rf"{_API_REPO}/discussions/(?P<num>\d+)/comment/(?P<comment_id>[0-9a-fA-F]+)/(?P<action>edit|hide)")
    def _change_comment(
        self, call: _Call, rtype: str, repo_id: str, num: str, comment_id: str, action: str
    ) -> Response:
        repo, discussion, user = self._discussion_for_change(call, rtype, repo_id, num)
        event = next((e for e in discussion.events if e["id"] == comment_id and e["type"] == "comment"), None)
        if event is None:
            raise HubError(404, "Comment not found")
        data = event["data"]
        is_author = event["author"]["name"] == user.name
        if action == "edit":
            if not is_author:
                raise HubError(403, "You can only edit your own comments")
            content = (call.json() or {}).get("content", "")
            latest = {"raw": content, "html": _to_html(content), "updatedAt": _now_iso(), "author": user.to_author()}
            data.update(latest=latest, edited=True, numEdits=data["numEdits"] + 1)
            data["history"].insert(0, copy.deepcopy(latest))
        else:
            if not (is_author or user.owns(repo.namespace)):
                raise HubError(403, "You don't have the rights to hide this comment")
            data["hidden"] = True
            data["latest"].update(raw="", html="")
        return JSONResponse({"updatedComment": copy.deepcopy(event)})

    # ================================================================================================
    # Routes: webhooks
    # ================================================================================================

    def _own_webhook(self, call: _Call, webhook_id: str) -> Webhook:
        user = self._writer(call)
        webhook = self._webhooks.get(webhook_id)
        if webhook is None or webhook.owner != user.name:
            raise HubError(404, "Webhook not found")
        return webhook

    @staticmethod
    def _validate_webhook_fields(body: dict[str, Any], *, creating: bool) -> None:
        watched = body.get("watched")
        if creating and not watched:
            raise HubError(400, "watched must contain at least one item")
        for item in watched or []:
            if not isinstance(item, dict) or item.get("type") not in WEBHOOK_WATCH_TYPES or not item.get("name"):
                raise HubError(400, f"Invalid watched item: {item!r}")
        domains = body.get("domains")
        if domains is not None and (not domains or any(d not in WEBHOOK_DOMAINS for d in domains)):
            raise HubError(400, f"domains must be a non-empty subset of {list(WEBHOOK_DOMAINS)}")
        if "jobSourceId" in body:
            raise HubError(501, "FakeHub does not implement Job webhooks")
        if creating and not body.get("url"):
            raise HubError(400, "url is required")

    @_route("GET", r"/api/settings/webhooks")
    def _list_webhooks(self, call: _Call) -> Response:
        user = self._writer(call)
        return JSONResponse([w.to_api() for w in self._webhooks.values() if w.owner == user.name])

    @_route("POST", r"/api/settings/webhooks")
    def _create_webhook(self, call: _Call) -> Response:
        user = self._writer(call)
        body = call.json() or {}
        self._validate_webhook_fields(body, creating=True)
        webhook = Webhook(
            id=_object_id(),
            owner=user.name,
            url=body["url"],
            watched=[{"type": w["type"], "name": w["name"]} for w in body["watched"]],
            domains=list(body.get("domains") or WEBHOOK_DOMAINS),
            secret=body.get("secret"),
        )
        self._webhooks[webhook.id] = webhook
        return JSONResponse({"webhook": webhook.to_api()})

    @_route("GET", r"/api/settings/webhooks/(?P<webhook_id>[^/]+)")
    def _get_webhook(self, call: _Call, webhook_id: str) -> Response:
        return JSONResponse({"webhook": self._own_webhook(call, webhook_id).to_api()})

    @_route("POST", r"/api/settings/webhooks/(?P<webhook_id>[^/]+)")
    def _update_webhook(self, call: _Call, webhook_id: str) -> Response:
        webhook = self._own_webhook(call, webhook_id)
        body = call.json() or {}
        self._validate_webhook_fields(body, creating=False)
        if body.get("watched"):
            webhook.watched = [{"type": w["type"], "name": w["name"]} for w in body["watched"]]
        if body.get("domains") is not None:
            webhook.domains = list(body["domains"])
        if body.get("url") is not None:
            webhook.url = body["url"]
        if "secret" in body:
            webhook.secret = body["secret"]
        return JSONResponse({"webhook": webhook.to_api()})

    @_route("POST", r"/api/settings/webhooks/(?P<webhook_id>[^/]+)/(?P<action>enable|disable)")
    def _toggle_webhook(self, call: _Call, webhook_id: str, action: str) -> Response:
        webhook = self._own_webhook(call, webhook_id)
        webhook.disabled = action == "disable"
        return JSONResponse({"webhook": webhook.to_api()})

    @_route("DELETE", r"/api/settings/webhooks/(?P<webhook_id>[^/]+)")
    def _delete_webhook(self, call: _Call, webhook_id: str) -> Response:
        self._own_webhook(call, webhook_id)
        del self._webhooks[webhook_id]
        return JSONResponse({})


def _to_html(text: str) -> str:
    """Cheap markdown 'rendering': paragraphs, HTML-escaped."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "".join(f"<p>{para}</p>\n" for para in escaped.split("\n\n") if para.strip())


# --------------------------------------------------------------------------------------------------------
# Server and pytest fixture
# --------------------------------------------------------------------------------------------------------


def _wait_until_up(url: str, thread: threading.Thread, timeout: float) -> None:
    host, port = url.removeprefix("http://").split(":")
    deadline = time.monotonic() + timeout
    while True:
        if not thread.is_alive():
            raise RuntimeError("FakeHub server thread died while starting")
        conn = http.client.HTTPConnection(host, int(port), timeout=1)  # http.client: never uses a proxy
        try:
            conn.request("GET", "/__fakehub__/ping")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        if time.monotonic() > deadline:
            raise RuntimeError(f"FakeHub did not answer on {url} within {timeout}s")
        time.sleep(0.02)


@contextmanager
def start_fake_hub(hub: FakeHub | None = None, *, timeout: float = 10.0) -> Iterator[FakeHub]:
    """Run `hub` (a new FakeHub by default) on 127.0.0.1:<free port> in a background thread.

    Yields once the server answers HTTP; stops it (and waits for the thread) on exit. The socket is bound
    before the server starts, so the port is known without a race and stays valid for child processes.
    """
    hub = hub or FakeHub()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        hub,
        host="127.0.0.1",
        port=port,
        http="h11",
        loop="asyncio",
        lifespan="off",
        log_level="warning",
        access_log=False,
        date_header=False,  # FakeHub.__call__ sets an exact one
        timeout_keep_alive=30,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"fakehub-{port}", daemon=True)
    thread.start()
    hub._url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(hub.url, thread, timeout)
        yield hub
    finally:
        hub.jobs.allow_runs()  # answers held by `hub.jobs.hold_run_responses()` would delay the shutdown
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def point_client_at(hub: FakeHub, monkeypatch: pytest.MonkeyPatch, hf_home: Path) -> None:
    """Point `huggingface_hub` at `hub`, in this process and in child processes started afterwards.

    Environment (inherited by children): HF_ENDPOINT=hub.url, HF_HUB_DISABLE_TELEMETRY=1, HF_HOME=hf_home
    (fresh cache, no stored token), HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE unset, HF_TOKEN and
    HUGGING_FACE_HUB_TOKEN unset (a real token must never reach tests; pass a registered fake token
    explicitly, e.g. `env={**os.environ, **hub.client_env(token=...)}`), 127.0.0.1 added to NO_PROXY.
    In-process: `huggingface_hub.constants` values computed at import time (ENDPOINT, the resolve URL
    template, cache and token paths, offline flag) and the endpoint of the module-level `HfApi` behind
    `huggingface_hub.model_info` & co. All restored by `monkeypatch` at teardown.
    """
    from huggingface_hub import constants, hf_api

    hf_home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HOME", str(hf_home))
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(name)
        monkeypatch.setenv(name, f"{current},127.0.0.1" if current else "127.0.0.1,localhost")

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HOME", str(hf_home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(hf_home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(hf_home / "stored_tokens"))
    monkeypatch.setattr(hf_api.api, "endpoint", hub.url)


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    """A running FakeHub, with `huggingface_hub` pointed at it (see `point_client_at`).

    In-process code may rely on the patched defaults (`HfApi()`, `ModelCard.load(...)`), but passing
    `endpoint=fake_hub.url` explicitly is clearer. Child processes started during the test inherit
    HF_ENDPOINT. Fails the test at teardown if the fake itself crashed while answering a request.
    """
    with start_fake_hub() as hub:
        point_client_at(hub, monkeypatch, tmp_path / "hf_home")
        yield hub
    if hub.errors:
        pytest.fail("FakeHub raised while answering requests:\n" + "\n".join(hub.errors), pytrace=False)
