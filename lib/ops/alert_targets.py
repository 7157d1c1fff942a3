"""Where alerts go: an incoming webhook (Slack, Discord, ...) and a discussion on the Space's own repo.

Each target takes one `Message` at a time and raises `AlertTargetError` when it did not take it,
so the alerts keep it and try again later. Neither ever runs on a delivery's path.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from ..core.errors import AlertTargetError
from .alert_store import Message

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10.0
DISCORD_MAX_CHARS = 2000
TITLE_PREFIX = "Alert: "


class HideUrl(logging.Filter):
    """Keeps a URL that is a credential out of httpx's request log lines (it logs every URL at INFO)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(str(arg) == self.url for arg in record.args):
            record.args = tuple("<WEBHOOK_ALERT_URL>" if str(arg) == self.url else arg for arg in record.args)
        return True


class WebhookTarget:
    """POSTs `{"text": ..., "content": ...}`: Slack reads `text`, Discord reads `content`, both ignore the other.

    Args:
        url: the incoming webhook's URL; it is the credential, so it is never logged.
    """

    name = "webhook"

    def __init__(self, url: str) -> None:
        self.url = url
        logging.getLogger("httpx").addFilter(HideUrl(url))

    async def send(self, message: Message, discussions: dict[str, int]) -> None:
        text = message.text
        body = {
            "text": text,
            "content": text if len(text) <= DISCORD_MAX_CHARS else text[: DISCORD_MAX_CHARS - 1] + "…",
        }
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as client:
                response = await client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise AlertTargetError(f"WEBHOOK_ALERT_URL could not be reached ({type(exc).__name__}).") from None
        if not 200 <= response.status_code < 300:
            raise AlertTargetError(f"WEBHOOK_ALERT_URL answered HTTP {response.status_code}.")


class DiscussionTarget:
    """One discussion per problem on the Space's own repo: opened when it is raised, commented on while it
    grows, commented on and closed when it recovers, reopened if it comes back. The owner gets the Hub's
    notification where they already look.

    A problem's discussion is remembered by number (`discussions`) and, if that was lost (a Space
    without persistent storage restarts), found again by its title, so a problem never gets a
    second discussion.

    Args:
        space_id: `owner/name` of the Space (`SPACE_ID`).
        token: a token that may write to it (`HF_TOKEN`).
    """

    name = "discussion"

    def __init__(self, space_id: str, token: str) -> None:
        self.space_id = space_id
        self.api = HfApi(token=token)

    async def send(self, message: Message, discussions: dict[str, int]) -> None:
        try:
            number = await asyncio.to_thread(self._send, message, discussions.get(message.key))
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "no answer"
            raise AlertTargetError(f"The Hub refused the alert discussion (HTTP {status}).") from None
        except (httpx.HTTPError, OSError) as exc:
            raise AlertTargetError(f"The Hub could not be reached ({type(exc).__name__}).") from None
        if number is not None:
            discussions[message.key] = number

    def _send(self, message: Message, number: int | None) -> int | None:
        """The discussion's number after the message went to it (None: a recovery with no discussion)."""
        title = TITLE_PREFIX + message.title
        if number is None:
            number = self._find(title)
        if message.action == "recover":
            if number is not None:
                self.api.change_discussion_status(
                    self.space_id, number, "closed", comment=message.text, repo_type="space"
                )
            return number
        if number is None:
            created = self.api.create_discussion(self.space_id, title, description=message.text, repo_type="space")
            return created.num
        if message.action == "raise":  # it came back: the same discussion, open again
            self.api.change_discussion_status(self.space_id, number, "open", comment=message.text, repo_type="space")
        else:
            self.api.comment_discussion(self.space_id, number, message.text, repo_type="space")
        return number

    def _find(self, title: str) -> int | None:
        for discussion in self.api.get_repo_discussions(self.space_id, discussion_type="discussion", repo_type="space"):
            if discussion.title == title:
                return discussion.num
        return None
