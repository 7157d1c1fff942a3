"""The loop guard: recognise a `repo.content` event that only brings back our own commits.

A handler that commits to a repo it watches triggers itself: the Hub sends its commit back as a new
`repo.content` event, the handler commits again, and the loop runs until the webhook's daily quota
or its suspension stops it. Commits made through `lib.hub_client()` are remembered (`lib/hub/client.py`);
this module only decides, from the payload and that memory, whether an event is such an echo. It
does no I/O, so the request path pays a few set lookups.
"""

from __future__ import annotations

from collections.abc import Container

from ..core.payload import WebhookPayload


def new_commit_shas(payload: WebhookPayload) -> list[str]:
    """The commits a `repo.content` event announces: each ref's `newSha`, else `repo.headSha`.

    Deleted refs (`newSha: null`) bring no commit. Old payloads without `updatedRefs` only name the
    head of main. Any other scope announces no commit.
    """
    if not payload.event.matches("repo.content"):
        return []
    if payload.updatedRefs:
        return [ref.newSha for ref in payload.updatedRefs if ref.newSha is not None]
    return [payload.repo.head_sha] if payload.repo.head_sha else []


def loop_guard_rejection(payload: WebhookPayload, own_commits: Container[str]) -> str | None:
    """Why the event must be skipped as our own echo, or None when a handler should see it.

    Skipped only when every new commit is ours: a push that mixes our commit with someone else's
    (or a tag someone put on our commit together with their own) still runs.

    Example:
        >>> loop_guard_rejection(payload, {"575db8b7a51b6f85eb06eee540738584589f131c"})
        'loop guard: commit 575db8b was made by this Space (lib.hub_client); skipped so it does not trigger itself'
    """
    shas = new_commit_shas(payload)
    if not shas or not all(sha in own_commits for sha in shas):
        return None
    short = ", ".join(dict.fromkeys(sha[:7] for sha in shas))
    noun = "commit" if len(set(shas)) == 1 else "commits"
    return (
        f"loop guard: {noun} {short} {'was' if noun == 'commit' else 'were'} made by this Space (lib.hub_client); "
        "skipped so it does not trigger itself"
    )
