"""Pydantic models of the payload the Hugging Face Hub POSTs to a webhook (webhook.version 3).

The class and attribute names are those of ``huggingface_hub._webhooks_payload``, so handler code
written against ``huggingface_hub.WebhookPayload`` runs unchanged. What differs, and why:

- **Forward compatible.** The Hub adds scopes, actions and keys over time (``updatedRefs`` 2024,
  ``updatedConfig`` 2025) and says receivers must not reject them. Every model keeps unknown keys
  (``extra="allow"``: reachable as attributes and in ``model_extra``), and ``event.action``,
  ``event.scope``, ``repo.type``, ``discussion.status`` and ``webhook.version`` are plain ``str`` /
  ``int``. The reference validates them against fixed ``Literal`` lists, so a new value is a 422
  and the Hub counts the delivery as failed. The known values are listed in the ``KNOWN_*``
  constants, for documentation only.
- **Only what the Hub has always sent is required**; everything else defaults to ``None`` so a
  payload from an older or newer Hub still parses.
- **``repo.headSha`` is kept.** The reference declares ``head_sha`` without the ``headSha`` alias,
  so the value the Hub sends is dropped and ``head_sha`` is always ``None``. Here ``head_sha`` has
  that alias, ``headSha`` is readable too, either name works in the constructor, and dumps emit
  ``headSha`` like the Hub.
- **``updatedConfig`` is modelled** (the reference ignores it).
- **Lossless round trip.** ``model_dump_json(by_alias=True, exclude_unset=True)`` gives back the
  JSON that was received, unknown keys and explicit ``null`` included, e.g. to store or replay it.

Example:
    >>> payload = WebhookPayload.model_validate_json(body)
    >>> if payload.matches(scope="repo.content") and "main" in payload.updated_branches:
    ...     rebuild(payload.repo.name, revision=payload.commit_sha)
"""

from typing import TypeAlias

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "KNOWN_ACTIONS",
    "KNOWN_DISCUSSION_STATUSES",
    "KNOWN_REPO_TYPES",
    "KNOWN_SCOPES",
    "DiscussionStatus_T",
    "ObjectId",
    "RepoChangeEvent_T",
    "RepoType_T",
    "SupportedWebhookVersion",
    "WebhookEvent_T",
    "WebhookPayload",
    "WebhookPayloadComment",
    "WebhookPayloadDiscussion",
    "WebhookPayloadDiscussionChanges",
    "WebhookPayloadEvent",
    "WebhookPayloadMovedTo",
    "WebhookPayloadRepo",
    "WebhookPayloadUpdatedConfig",
    "WebhookPayloadUpdatedRef",
    "WebhookPayloadUrl",
    "WebhookPayloadWebhook",
    "scope_matches",
]

# The reference's Literal aliases, kept by name but as plain `str`/`int`: a value the Hub adds
# tomorrow must parse. The values known today are in the KNOWN_* sets below.
WebhookEvent_T: TypeAlias = str
RepoChangeEvent_T: TypeAlias = str
RepoType_T: TypeAlias = str
DiscussionStatus_T: TypeAlias = str
SupportedWebhookVersion: TypeAlias = int

KNOWN_ACTIONS: frozenset[str] = frozenset({"create", "delete", "move", "update"})
KNOWN_SCOPES: frozenset[str] = frozenset({"repo", "repo.content", "repo.config", "discussion", "discussion.comment"})
KNOWN_REPO_TYPES: frozenset[str] = frozenset({"model", "dataset", "space"})
KNOWN_DISCUSSION_STATUSES: frozenset[str] = frozenset({"open", "closed", "merged", "draft"})

_BRANCH_PREFIX = "refs/heads/"
_TAG_PREFIX = "refs/tags/"
_PR_PREFIX = "refs/pr/"
_MAIN_REF = "refs/heads/main"


class _HubModel(BaseModel):
    """Base of every model: keeps unknown keys and accepts/emits both a field's name and alias."""

    model_config = ConfigDict(
        extra="allow",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class ObjectId(_HubModel):
    """Anything the Hub identifies by id (repo owner, authors, the webhook itself)."""

    id: str


class WebhookPayloadUrl(_HubModel):
    """Links to an object: `web` for people, `api` for the Hub API (comments have no `api`)."""

    web: str
    api: str | None = None


class WebhookPayloadMovedTo(_HubModel):
    """Where a repo went, on a `repo` / `move` event."""

    name: str
    owner: ObjectId


class WebhookPayloadWebhook(ObjectId):
    """The webhook that fired. `version` is 3 today; any int is accepted so v4 is not a 422."""

    version: SupportedWebhookVersion


def scope_matches(scope: str, pattern: str) -> bool:
    """Whether `pattern` equals `scope` or is a parent of it, by whole dot-separated segments."""
    return scope == pattern or scope.startswith(pattern + ".")


class WebhookPayloadEvent(_HubModel):
    """What happened: `action` (create, update, ...) on `scope` (repo.content, discussion, ...)."""

    action: WebhookEvent_T
    scope: str

    def matches(self, scope: str) -> bool:
        """Whether this event's scope is `scope` or a narrower scope below it.

        The Hub says a narrower scope it adds later (e.g. ``repo.config.dois``) is an update of
        its parent, so handlers should match by prefix. Prefixes are whole segments: ``"repo"``
        matches ``"repo.content"`` but ``"repo.con"`` does not.
        """
        return scope_matches(self.scope, scope)


class WebhookPayloadDiscussionChanges(_HubModel):
    """The branches of a pull request; `mergeCommitId` appears once it is merged."""

    base: str | None = None
    mergeCommitId: str | None = None


class WebhookPayloadComment(ObjectId):
    """A comment on a discussion. `content` is absent when the comment is `hidden`."""

    author: ObjectId
    hidden: bool
    content: str | None = None
    url: WebhookPayloadUrl


class WebhookPayloadDiscussion(ObjectId):
    """A discussion or pull request (`isPullRequest`) on the repo."""

    num: int
    author: ObjectId
    url: WebhookPayloadUrl
    title: str
    isPullRequest: bool
    status: DiscussionStatus_T
    changes: WebhookPayloadDiscussionChanges | None = None
    pinned: bool | None = None


class WebhookPayloadRepo(ObjectId):
    """The repo the event is about. `name` is "owner/name" (a few legacy models have no owner part)."""

    owner: ObjectId | None = None
    # The Hub sends `headSha`; the reference called the field `head_sha` without alias and lost it.
    # Only present on repo* scopes.
    head_sha: str | None = Field(default=None, alias="headSha")
    name: str
    # The reference requires `private`, but it is not in the v3 guarantees we rely on. `None` means
    # "not sent"; it is falsy like False, so reference-style `if payload.repo.private:` still works,
    # and code that must be sure a repo is public can test `is False`.
    private: bool | None = None
    subdomain: str | None = None  # Spaces only, undocumented
    tags: list[str] | None = None  # removed from payloads in 2026, present in older ones
    type: RepoType_T
    url: WebhookPayloadUrl | None = None

    @property
    def headSha(self) -> str | None:  # the Hub's own key name
        """The latest commit on main, under the Hub's key name (same value as `head_sha`)."""
        return self.head_sha

    @property
    def namespace(self) -> str | None:
        """The owner part of `name` ("owner" in "owner/name"); None for legacy names like "gpt2"."""
        owner, sep, _ = self.name.partition("/")
        return owner if sep else None

    @property
    def repo_name(self) -> str:
        """The part of `name` after the owner ("name" in "owner/name"; all of "gpt2")."""
        return self.name.partition("/")[2] or self.name


class WebhookPayloadUpdatedRef(_HubModel):
    """A git ref changed by a `repo.content` event. A new ref has no `oldSha`, a deleted one no `newSha`."""

    ref: str
    oldSha: str | None = None
    newSha: str | None = None

    @property
    def is_created(self) -> bool:
        """Whether the ref did not exist before this event (branch, tag or PR just opened)."""
        return self.oldSha is None

    @property
    def is_deleted(self) -> bool:
        """Whether the ref was removed by this event."""
        return self.newSha is None

    @property
    def branch(self) -> str | None:
        """The branch name for `refs/heads/<branch>`, else None."""
        return self.ref.removeprefix(_BRANCH_PREFIX) if self.ref.startswith(_BRANCH_PREFIX) else None

    @property
    def tag(self) -> str | None:
        """The tag name for `refs/tags/<tag>`, else None."""
        return self.ref.removeprefix(_TAG_PREFIX) if self.ref.startswith(_TAG_PREFIX) else None

    @property
    def pr_num(self) -> int | None:
        """The pull request number for `refs/pr/<num>`, else None (so a push to a PR is easy to spot)."""
        num = self.ref.removeprefix(_PR_PREFIX) if self.ref.startswith(_PR_PREFIX) else ""
        return int(num) if num.isdigit() else None


class WebhookPayloadUpdatedConfig(_HubModel):
    """The settings changed by a `repo.config` event: `{"private": bool}`, or `{}` for any other.

    Other keys (e.g. `xetEnabled`, sent in 2025) are kept as extras.
    """

    private: bool | None = None


class WebhookPayload(_HubModel):
    """The whole JSON body of a webhook delivery.

    Example:
        >>> payload = WebhookPayload.model_validate_json(body)
        >>> payload.matches(scope="discussion", action="create")
        True
    """

    event: WebhookPayloadEvent
    repo: WebhookPayloadRepo
    discussion: WebhookPayloadDiscussion | None = None
    comment: WebhookPayloadComment | None = None
    webhook: WebhookPayloadWebhook
    movedTo: WebhookPayloadMovedTo | None = None
    updatedRefs: list[WebhookPayloadUpdatedRef] | None = None
    updatedConfig: WebhookPayloadUpdatedConfig | None = None

    def matches(self, *, scope: str | None = None, action: str | None = None) -> bool:
        """Whether the event has this scope (or a narrower one) and exactly this action.

        Either argument may be omitted to accept any value; see `WebhookPayloadEvent.matches`
        for why scopes match by prefix.
        """
        if scope is not None and not self.event.matches(scope):
            return False
        return action is None or self.event.action == action

    @property
    def commit_sha(self) -> str | None:
        """The commit this event is about, to check out or to report a status on.

        For `repo.content`, the new head of `refs/heads/main` when it moved (more precise than
        `repo.headSha` if events race); for a merged pull request, its merge commit; otherwise
        `repo.headSha`. None when the payload names no commit (e.g. most discussion events).
        """
        if self.event.matches("repo.content"):
            for updated in self.updatedRefs or []:
                if updated.ref == _MAIN_REF and updated.newSha is not None:
                    return updated.newSha
        changes = self.discussion.changes if self.discussion is not None else None
        if changes is not None and changes.mergeCommitId is not None:
            return changes.mergeCommitId
        return self.repo.head_sha

    @property
    def updated_branches(self) -> list[str]:
        """Names of the branches created or moved by this event (deleted ones are left out)."""
        return [
            updated.branch
            for updated in self.updatedRefs or []
            if updated.branch is not None and not updated.is_deleted
        ]
