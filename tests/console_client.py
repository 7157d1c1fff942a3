"""The operator console over Gradio's HTTP API, as the page calls it, for end-to-end tests of a running app."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from apprunner import SECRET, RunningApp


class ConsoleClient:
    """A session of its own on the app's console, unlocked with `secret` unless `unlock=False`."""

    def __init__(self, app: RunningApp, *, unlock: bool = True, secret: str = SECRET) -> None:
        self.url = app.url
        self.session = uuid.uuid4().hex
        if unlock:
            kind, text = self.call("console_unlock", [secret, None])
            assert kind == "complete" and "Console unlocked" in text, text

    def call(self, api_name: str, data: list[Any]) -> tuple[str, str]:
        """Call one listener (the grant's slot is `None`: the server reads the session's); (event kind, data)."""
        started = httpx.post(
            f"{self.url}/gradio_api/call/{api_name}", json={"data": data, "session_hash": self.session}, timeout=30
        )
        assert started.status_code == 200, started.text
        kind = None
        with httpx.stream(
            "GET", f"{self.url}/gradio_api/call/{api_name}/{started.json()['event_id']}", timeout=60
        ) as s:
            for line in s.iter_lines():
                if line.startswith("event:"):
                    kind = line.removeprefix("event:").strip()
                elif line.startswith("data:") and kind in ("complete", "error"):
                    return kind, line.removeprefix("data:").strip()
        return "closed", ""
