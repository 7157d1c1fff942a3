"""Turning an authenticated request into a `Delivery` the journal can record.

Two keys are derived here. The delivery key recognises the same event arriving again (the Hub's
retries and its Replay button): the `Webhook-Id` header when the Hub sent one, else a hash of
the fields that identify the event. The order key groups the events that must run one after
another: those about the same repository, for the same endpoint.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode

from ..core.payload import WebhookPayload
from ..journal import Delivery
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


def delivery_key(webhook_id: str | None, payload: WebhookPayload) -> str:
    """`id:<Webhook-Id>` when the Hub sent one, else `payload:<sha256 of the identifying fields>`."""
    if webhook_id:
        return f"id:{webhook_id}"
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
    payload: WebhookPayload,
    order_per_repo: bool,
) -> Delivery:
    """Everything the journal keeps about a request: never the secret, always the raw body."""
    webhook_id = headers.get(WEBHOOK_ID_HEADER) or None
    kept = {name: headers[name] for name in KEPT_HEADERS if name in headers}
    repo = payload.repo
    return Delivery(
        endpoint=endpoint,
        delivery_key=delivery_key(webhook_id, payload),
        webhook_id=webhook_id,
        received_at=time.time(),
        headers=kept,
        query=without_secret(query_string),
        body=body,
        scope=payload.event.scope,
        action=payload.event.action,
        repo_name=repo.name,
        repo_type=str(repo.type),
        order_key=f"{endpoint} {repo.type}/{repo.name}" if order_per_repo else None,
        is_test=headers.get(TEST_EVENT_HEADER, "").lower() in {"1", "true", "yes"},
    )
