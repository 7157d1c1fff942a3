"""Turning an authenticated request into a `Delivery` the journal can record.

Two keys are derived here. The delivery key recognises the same event arriving again (the Hub's
retries and its Replay button): the `Webhook-Id` header when the Hub sent one, else a hash of
the fields that identify the event. The order key groups the events that must run one after
another: those about the same repository, for the same endpoint.

A raw delivery (a body that is not a payload, for a handler that takes none) has no repository:
it runs unordered, and only its `Webhook-Id` makes a repeat of it a duplicate. Without one, each
POST is its own event, as each called the reference's handler.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode

from ..core.payload import WebhookPayload
from ..journal import RAW_ACTION, RAW_SCOPE, Delivery
from .auth import SECRET_QUERY_PARAMETER

WEBHOOK_ID_HEADER = "webhook-id"
TEST_EVENT_HEADER = "x-webhook-test"
"""Set by our own console and `lib.send` so test events are marked as such in the journal."""
KEPT_HEADERS = ("content-type", "user-agent", WEBHOOK_ID_HEADER, TEST_EVENT_HEADER, "x-request-id")
"""What the journal keeps of a request's headers: an allow-list, so the secret is never among them."""


def identifying_fields(payload: WebhookPayload) -> dict[str, object]:
    """What tells one Hub event from another when there is no `Webhook-Id` header."""
    repo, discussion, comment = payload.repo, payload.discussion, payload.comment
    return {
        "webhook": payload.webhook.id,
        "scope": payload.event.scope,
        "action": payload.event.action,
        "repo": repo.id,
        "headSha": repo.headSha,
        "updatedRefs": [ref.model_dump(by_alias=True) for ref in payload.updatedRefs or []],
        "updatedConfig": payload.updatedConfig.model_dump(by_alias=True) if payload.updatedConfig else None,
        "movedTo": payload.movedTo.name if payload.movedTo else None,
        "discussion": [discussion.id, discussion.status, discussion.title] if discussion else None,
        "comment": [comment.id, comment.hidden, comment.content] if comment else None,
    }


def delivery_key(webhook_id: str | None, payload: WebhookPayload | None) -> str:
    """`id:<Webhook-Id>` when the Hub sent one, else `payload:<sha256 of the identifying fields>`
    (`raw:<a new uuid>` for a raw delivery: nothing tells a repeat of it from a new POST)."""
    if webhook_id:
        return f"id:{webhook_id}"
    if payload is None:
        return f"raw:{uuid.uuid4().hex}"
    canonical = json.dumps(identifying_fields(payload), sort_keys=True, separators=(",", ":"))
    return "payload:" + hashlib.sha256(canonical.encode()).hexdigest()


def without_secret(query_string: str) -> str:
    """The query string with the `secret` parameter removed, so the journal never stores it."""
    if not query_string:
        return ""
    pairs = [(k, v) for k, v in parse_qsl(query_string, keep_blank_values=True) if k != SECRET_QUERY_PARAMETER]
    return urlencode(pairs)


def build_delivery(
    *,
    endpoint: str,
    headers: Mapping[str, str],
    query_string: str,
    body: bytes,
    payload: WebhookPayload | None,
    order_per_repo: bool,
) -> Delivery:
    """Everything the journal keeps about a request: never the secret, always the raw body.

    `payload` is None for a raw delivery (see `parsing.payload_or_raw`).
    """
    webhook_id = headers.get(WEBHOOK_ID_HEADER) or None
    kept = {name: headers[name] for name in KEPT_HEADERS if name in headers}
    if payload is None:
        scope, action, repo_name, repo_type, order_key = RAW_SCOPE, RAW_ACTION, "", "", None
    else:
        repo = payload.repo
        scope, action, repo_name, repo_type = payload.event.scope, payload.event.action, repo.name, str(repo.type)
        order_key = f"{endpoint} {repo.type}/{repo.name}" if order_per_repo else None
    return Delivery(
        endpoint=endpoint,
        delivery_key=delivery_key(webhook_id, payload),
        webhook_id=webhook_id,
        received_at=time.time(),
        headers=kept,
        query=without_secret(query_string),
        body=body,
        scope=scope,
        action=action,
        repo_name=repo_name,
        repo_type=repo_type,
        order_key=order_key,
        is_test=headers.get(TEST_EVENT_HEADER, "").lower() in {"1", "true", "yes"},
    )
