"""The Hub client for handlers: `hub_client()`, an `HfApi` that remembers the commits it makes.

Handlers that write to the Hub should use it instead of a bare `HfApi()`: every commit it makes
(`create_commit`, and so `upload_file`, `upload_folder`, `delete_file` ...) is recorded in
`<DATA_DIR>/own_commits.txt`, and the receiver skips a `repo.content` event that only brings back
such commits (`lib/hub/loop_guard.py`), so a handler that writes to a repo it watches does not trigger
itself forever. The record is read once per process and appended to on each commit; it survives
restarts when DATA_DIR is persistent storage.

Example:
    ```python
    from lib import hub_client

    def handle(payload):
        hub = hub_client()  # raises MissingToken, with the fix, when HF_TOKEN is not set
        hub.upload_file(path_or_fileobj=b"ok", path_in_repo="status.txt", repo_id=payload.repo.name)
    ```
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from urllib.parse import quote

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import RemoteEntryNotFoundError
from huggingface_hub.hf_api import GitCommitInfo
from huggingface_hub.utils import paginate, parse_datetime

from ..core.errors import MissingToken
from ..core.settings import default_data_dir, main_script

logger = logging.getLogger(__name__)

LEDGER_FILE = "own_commits.txt"
MAX_REMEMBERED = 10_000
"""Commits remembered; an echo arrives seconds after its commit, so this is years of margin."""


MISSING_TOKEN_MESSAGE = (
    "HF_TOKEN is not set: add it as a Space secret (Space settings → Variables and secrets → New secret, "
    "name HF_TOKEN, value a token with write access from https://huggingface.co/settings/tokens), or put "
    "HF_TOKEN=... in .env when running locally. Handlers that call the Hub cannot work without it; the "
    "events that failed can be replayed once it is set."
)


class CommitLedger:
    """The shas of the commits this Space made, kept in memory and appended to one file.

    Reading is a set lookup (the file is read once, on first use); writing appends one line and
    flushes it to disk, so a crash right after a commit still remembers it. The file is rewritten
    with the newest `limit` shas when it grows past twice that.
    """

    def __init__(self, path: Path, *, limit: int = MAX_REMEMBERED) -> None:
        self.path = path
        self.limit = limit
        self._lock = threading.Lock()
        self._shas: dict[str, None] | None = None  # insertion-ordered set, oldest first
        self._lines = 0

    def _load(self) -> dict[str, None]:
        with self._lock:
            if self._shas is None:
                try:
                    lines = self.path.read_text().split()
                except FileNotFoundError:
                    lines = []
                self._lines = len(lines)
                self._shas = dict.fromkeys(lines[-self.limit :])
            return self._shas

    def __contains__(self, sha: object) -> bool:
        shas = self._shas if self._shas is not None else self._load()
        return sha in shas

    def __len__(self) -> int:
        return len(self._load())

    def add(self, sha: str) -> None:
        """Remember one commit (idempotent)."""
        shas = self._load()
        with self._lock:
            if sha in shas:
                return
            shas[sha] = None
            while len(shas) > self.limit:
                del shas[next(iter(shas))]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as file:
                file.write(sha + "\n")
                file.flush()
                os.fsync(file.fileno())
            self._lines += 1
            if self._lines > 2 * self.limit:
                self._compact(shas)

    def _compact(self, shas: dict[str, None]) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text("".join(sha + "\n" for sha in shas))
        os.replace(temporary, self.path)
        self._lines = len(shas)


_ledgers: dict[Path, CommitLedger] = {}
_ledgers_lock = threading.Lock()
_active_ledger: ContextVar[CommitLedger | None] = ContextVar("active_ledger", default=None)


def own_commits(data_dir: Path | str | None = None) -> CommitLedger:
    """The ledger of this Space's commits in `data_dir` (one instance per folder per process).

    Without a folder: the ledger the running handler was given (`using_ledger`, which the worker
    sets around every attempt with the server's), else the one in DATA_DIR as `Settings` reads it
    (job mode, scripts).
    """
    if data_dir is None:
        active = _active_ledger.get()
        if active is not None:
            return active
    folder = Path(data_dir) if data_dir is not None else default_data_dir(os.environ, script=main_script())
    ledger = _ledgers.get(folder)
    if ledger is None:
        with _ledgers_lock:
            ledger = _ledgers.setdefault(folder, CommitLedger(folder / LEDGER_FILE))
    return ledger


@contextlib.contextmanager
def using_ledger(ledger: CommitLedger | None) -> Iterator[None]:
    """Make `ledger` the one `hub_client()` records commits in, for the code run inside (None: no change).

    A context variable rather than a global: it follows the handler onto its thread (the worker
    copies the context) and never leaks into another server in the same process.
    """
    if ledger is None:
        yield
        return
    token = _active_ledger.set(ledger)
    try:
        yield
    finally:
        _active_ledger.reset(token)


class HubClient(HfApi):
    """`HfApi`, plus: commits are recorded for the loop guard, and a few helpers handlers need.

    Get one with `hub_client()`; every `HfApi` method works as documented by `huggingface_hub`.
    """

    def __init__(self, *, ledger: CommitLedger, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ledger = ledger

    def create_commit(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """`HfApi.create_commit`, recording the new commit's sha (also for `run_as_future=True`)."""
        result = super().create_commit(*args, **kwargs)
        if isinstance(result, Future):
            result.add_done_callback(self._record_future)
        else:
            self.ledger.add(result.oid)
        return result

    def _record_future(self, future: Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.ledger.add(future.result().oid)

    def made(self, sha: str | None) -> bool:
        """Whether this Space made the commit `sha` (through a `hub_client()`)."""
        return sha is not None and sha in self.ledger

    @property
    def me(self) -> dict[str, Any]:
        """`whoami()` for the token, cached: the Hub rate-limits that endpoint hard."""
        return self.whoami(cache=True)

    def read_text(
        self, repo_id: str, path: str, *, repo_type: str = "model", revision: str | None = None
    ) -> str | None:
        """The content of one file of a repo at `revision` (default main), or None if it does not exist."""
        try:
            local = self.hf_hub_download(repo_id, path, repo_type=repo_type, revision=revision)
        except RemoteEntryNotFoundError:
            return None
        return Path(local).read_text(encoding="utf-8-sig")

    def commits_between(
        self, repo_id: str, old_sha: str | None, new_sha: str, *, repo_type: str = "model", limit: int = 50
    ) -> list[GitCommitInfo]:
        """The commits reachable from `new_sha` down to (not including) `old_sha`, newest first.

        Unlike `list_repo_commits`, which pages through the whole history, this stops at `old_sha`
        or after `limit` commits, so a push to a repo with a long history costs one request.
        """
        commits: list[GitCommitInfo] = []
        for item in self._history(repo_id, new_sha, repo_type=repo_type):
            if item["id"] == old_sha or len(commits) >= limit:
                break
            commits.append(
                GitCommitInfo(
                    commit_id=item["id"],
                    authors=[author["user"] for author in item["authors"]],
                    created_at=parse_datetime(item["date"]),
                    title=item["title"],
                    message=item["message"],
                    formatted_title=None,
                    formatted_message=None,
                )
            )
        return commits

    def _history(self, repo_id: str, revision: str, *, repo_type: str) -> Iterator[dict[str, Any]]:
        url = f"{self.endpoint}/api/{repo_type}s/{repo_id}/commits/{quote(revision, safe='')}"
        yield from paginate(url, params={}, headers=self._build_hf_headers())


_clients: dict[tuple[str, str, Path], HubClient] = {}
_stand_in: ContextVar[Any] = ContextVar("hub_stand_in", default=None)


@contextlib.contextmanager
def using_hub(hub: Any) -> Iterator[None]:
    """Make `hub_client()` return `hub` for the code run inside (None: no change).

    How a handler's test gives it a Hub of its own (`lib.testing.run_handler(..., hub=...)`): a
    `HubClient` pointed at a local fake Hub, or any stand-in object with the methods the handler
    calls. A context variable, like the ledger, so it follows the handler onto its thread.
    """
    if hub is None:
        yield
        return
    token = _stand_in.set(hub)
    try:
        yield
    finally:
        _stand_in.reset(token)


def hub_client(*, token: str | None = None) -> HubClient:
    """The Hub client for handlers, authenticated with HF_TOKEN (or the token `hf auth login` saved).

    One client per token is kept, so `hub.me` (whoami) is asked once per process.

    Raises:
        MissingToken: no token is configured; the message says where to set it.
    """
    stand_in = _stand_in.get()
    if stand_in is not None:  # a test gave the handler its own Hub (`using_hub`)
        return stand_in
    token = token or get_token()
    if not token:
        raise MissingToken(MISSING_TOKEN_MESSAGE)
    ledger = own_commits()
    key = (token, constants.ENDPOINT, ledger.path)
    client = _clients.get(key)
    if client is None:
        client = _clients.setdefault(key, HubClient(token=token, endpoint=constants.ENDPOINT, ledger=ledger))
    return client
