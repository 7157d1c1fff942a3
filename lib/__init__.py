"""What a handler author and `app.py` use; everything else in `lib/` is the machinery behind it.

`WebhooksServer`, `webhook_endpoint` and the `WebhookPayload*` models have the names and call
shapes of `huggingface_hub`'s, so `from huggingface_hub import ...` becomes `from lib import ...`.
"""

from .core.errors import ConfigurationError, HandlerModuleError, PortUnavailable, WebhookError
from .core.events import Events
from .core.jobs import JobEnd, JobLaunchError, JobNotLaunched, LaunchedJob
from .core.logs import log
from .core.payload import (
    ObjectId,
    WebhookPayload,
    WebhookPayloadComment,
    WebhookPayloadDiscussion,
    WebhookPayloadDiscussionChanges,
    WebhookPayloadEvent,
    WebhookPayloadMovedTo,
    WebhookPayloadRepo,
    WebhookPayloadUpdatedConfig,
    WebhookPayloadUpdatedRef,
    WebhookPayloadUrl,
    WebhookPayloadWebhook,
)
from .core.rate_limit import RateLimit
from .hub.client import HubClient, MissingToken, hub_client
from .webhooks_server import WebhooksServer, webhook_endpoint
from .worker.launch import run_job, run_uv_job

__all__ = [
    "ConfigurationError",
    "Events",
    "HandlerModuleError",
    "HubClient",
    "JobEnd",
    "JobLaunchError",
    "JobNotLaunched",
    "LaunchedJob",
    "MissingToken",
    "ObjectId",
    "PortUnavailable",
    "RateLimit",
    "WebhookError",
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
    "WebhooksServer",
    "hub_client",
    "log",
    "run_job",
    "run_uv_job",
    "webhook_endpoint",
]
