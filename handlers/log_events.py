"""Logs a one-line summary of every event: the simplest endpoint, and a check that deliveries arrive.

Subscribe to: anything (the repo and discussion domains). Needs no token and no settings.
Its line shows in the Space's Logs tab:
`[event 12] repo.content/update on my-org/my-model (model) at 5e7f29f by refs/heads/main`.
Try it: python -m lib.send commit (any kind; see python -m lib.send --help)
"""

from lib import WebhookPayload, log


def handle(payload: WebhookPayload) -> dict[str, str]:
    event, repo = payload.event, payload.repo
    summary = f"{event.scope}/{event.action} on {repo.name} ({repo.type})"
    if payload.commit_sha:
        summary += f" at {payload.commit_sha[:7]}"
    if payload.updatedRefs:
        summary += " by " + ", ".join(ref.ref for ref in payload.updatedRefs)
    if payload.discussion:
        summary += f", discussion #{payload.discussion.num} ({payload.discussion.status})"
    if payload.comment and payload.comment.content:
        summary += f", comment by {payload.comment.author.id}"
    log.info("%s", summary)  # payload data as an argument: the log escapes it and cuts it if huge
    return {"summary": summary}
