"""`WebhooksServer` and `webhook_endpoint`: a drop-in for `huggingface_hub`'s, with our landing page.

A script written for the reference runs here by changing its import line. This is where the two
halves meet: the receiver (`lib.receiver`) and its default page (`lib.ui`). Neither imports the
other; the page depends on a narrow view of the server, and the receiver is handed the page.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .core.settings import Settings
from .journal import Journal
from .receiver.server import UiBuilder, WebhookReceiver
from .ui.landing import build_landing_page

if TYPE_CHECKING:
    import gradio as gr


class WebhooksServer(WebhookReceiver):
    """A web app that receives Hugging Face Hub webhooks and hands each event to your function.

    Args:
        ui: the landing page: a `gradio.Blocks`, or a function building one from this server.
            Defaults to the page that lists the endpoints, how to configure them, and the console.
        webhook_secret: the secret the Hub sends (several comma-separated to rotate). Defaults
            to the `WEBHOOK_SECRET` environment variable; with none, the endpoints are open.
        settings: every other option; defaults to `Settings.from_env()` (see `.env.example`).
        journal: where events are recorded; defaults to SQLite in `settings.data_dir`.

    Raises:
        ConfigurationError: a setting cannot work (an empty secret, a bad number, an unusable journal).

    Example:
        ```python
        from lib import WebhooksServer, WebhookPayload

        app = WebhooksServer(webhook_secret="my_secret_key")

        @app.add_webhook("/say_hello")
        async def hello(payload: WebhookPayload):
            return {"message": f"hello from {payload.repo.name}"}

        app.launch()
        ```
    """

    def __init__(
        self,
        ui: gr.Blocks | UiBuilder | None = None,
        webhook_secret: str | None = None,
        *,
        settings: Settings | None = None,
        journal: Journal | None = None,
    ) -> None:
        super().__init__(build_landing_page if ui is None else ui, webhook_secret, settings=settings, journal=journal)


_default_server: WebhooksServer | None = None


def _get_default_server() -> WebhooksServer:
    global _default_server
    if _default_server is None:
        _default_server = WebhooksServer()
    return _default_server


def webhook_endpoint(path: str | Callable[..., Any] | None = None) -> Callable[..., Any]:
    """Register a function on a default server that starts when the script ends.

    `func.launch()` starts it right away instead (notebooks). Returns the function unchanged.

    Example:
        ```python
        from lib import webhook_endpoint, WebhookPayload

        @webhook_endpoint
        async def trigger_training(payload: WebhookPayload):
            if payload.repo.type == "dataset" and payload.event.action == "update":
                ...
        ```
    """
    if callable(path):
        return webhook_endpoint()(path)

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        server = _get_default_server()
        server.add_webhook(path)(func)
        if len(server.endpoints) == 1:
            atexit.register(server.launch)

        def launch_now(**launch_kwargs: Any) -> None:
            atexit.unregister(server.launch)
            server.launch(**launch_kwargs)

        func.launch = launch_now  # type: ignore[attr-defined]
        return func

    return register
