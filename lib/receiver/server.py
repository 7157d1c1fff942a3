"""`WebhookReceiver`: webhook routes on our own FastAPI app, the journal and the worker behind them.

What differs from `huggingface_hub`'s server underneath: webhook requests never pass through
Gradio (a page is mounted beside them), the secret is checked before the body is read, every
delivery is journaled before it is acknowledged, and handlers run from the journal, so a slow or
crashing handler never turns into a timeout or a 5xx that gets the user's webhook suspended.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from ..core.errors import WebhookError
from ..core.events import Events
from ..core.jobs import JobNotRunning
from ..core.logs import configure_logging, current_event_id
from ..core.registry import Endpoint, discover_handlers, webhook_path
from ..core.settings import Settings, parse_secrets, placeholder_secret_message
from ..hub.client import CommitLedger, own_commits
from ..journal import JobRecord, Journal, Recorded, open_journal
from ..ops import Monitoring
from ..worker import EndpointLoad, Worker
from . import connections, listen, tunnel
from .acknowledge import acknowledge
from .auth import authenticate
from .body import read_body, request_headers
from .delivery import build_delivery
from .page_guard import PageGuard
from .parsing import parse_payload, payload_or_raw
from .proxy_headers import ProxyHeaders
from .retention import start_retention
from .start_log import log_start

if TYPE_CHECKING:
    import gradio as gr

logger = logging.getLogger(__name__)


UiBuilder = Callable[["WebhookReceiver"], "gr.Blocks"]


class WebhookReceiver:
    """The receiving half of `WebhooksServer`: webhook routes, the journal, the worker, serving.

    It knows nothing of the landing page: whoever builds the app passes one as `ui` (`lib`'s
    `WebhooksServer` passes the default page from `lib.ui`), so the receiver never imports the
    UI that depends on it. Without `ui`, it serves the webhook routes and FastAPI's docs only.

    Args:
        ui: the page to mount at "/": a `gradio.Blocks`, or a function building one from this server.
        webhook_secret: the secret the Hub sends (several comma-separated to rotate). Defaults
            to the `WEBHOOK_SECRET` environment variable; with none, the endpoints are open.
        settings: every other option; defaults to `Settings.from_env()` (see `.env.example`).
        journal: where events are recorded; defaults to `open_journal(settings)`: PostgreSQL when
            `DATABASE_URL` is set, else SQLite in `settings.data_dir`.

    Raises:
        ConfigurationError: a setting cannot work (an empty secret, a bad number, an unusable journal).
    """

    def __init__(
        self,
        ui: gr.Blocks | UiBuilder | None = None,
        webhook_secret: str | None = None,
        *,
        settings: Settings | None = None,
        journal: Journal | None = None,
    ) -> None:
        overrides = {}
        if webhook_secret is not None:
            overrides["webhook_secrets"] = parse_secrets(webhook_secret, source="webhook_secret")
        self.settings = settings or Settings.from_env(**overrides)
        configure_logging(self.settings.log_level)
        self._ui = ui
        self._journal = journal
        if journal is None and self.settings.database_url:  # a bad DATABASE_URL stops the start here, named
            self._journal = open_journal(self.settings)
        self.ledger: CommitLedger = own_commits(self.settings.data_dir)
        """The commits this Space made, for the loop guard; handlers' `hub_client()` records into it."""
        self.endpoints: dict[str, Endpoint] = {}
        self.worker: Worker | None = None
        self.launched = False
        self.local_url: str | None = None
        self.share_url: str | None = None
        self._uvicorn: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._tunnel: tunnel.ShareTunnel | None = None
        self.fastapi_app = FastAPI(title="Hub webhooks", lifespan=self._lifespan, docs_url="/docs")
        # The client's address as the Space's proxy saw it (proxy_headers.py), around the page only:
        # a delivery never uses the client's address, and it is the one path that must be lean.
        # In front of it, no uploads and no large bodies to Gradio's routes (see page_guard.py).
        self._page_app = PageGuard(
            ProxyHeaders(self.fastapi_app, trusted=self.settings.trusted_proxies),
            max_body_bytes=self.settings.max_body_bytes,
        )
        self.fastapi_app.add_exception_handler(WebhookError, _answer_error)  # type: ignore[arg-type]
        self.monitoring = Monitoring(self.settings, self.fastapi_app)  # GET /metrics and the alerts (lib/ops)
        if self.settings.uses_placeholder_secret:
            logger.warning(placeholder_secret_message(in_space=False))
        elif not self.settings.secret_configured:
            logger.warning(
                "No webhook secret is set: anyone who finds the URL can post events. Set WEBHOOK_SECRET "
                "in the Space settings (or pass webhook_secret=...) and give the Hub's webhook the same secret."
            )

    # --- registration -------------------------------------------------------------------------

    @property
    def registered_webhooks(self) -> dict[str, Callable[..., Any]]:
        """`{"/webhooks/<name>": handler}`, as the reference exposes it."""
        return {path: endpoint.handler for path, endpoint in self.endpoints.items()}

    @property
    def journal(self) -> Journal:
        """The event journal, opened on first use (so building the server touches no disk)."""
        if self._journal is None:
            self._journal = open_journal(self.settings)
        return self._journal

    def add_endpoint(self, endpoint: Endpoint) -> Endpoint:
        """Register an endpoint built elsewhere (e.g. by `discover_handlers`).

        Raises:
            ValueError: the path is taken.
            RuntimeError: the server was launched; routes added now would never be reached.
        """
        if self.launched:
            raise RuntimeError(
                f"Cannot add {endpoint.path}: the server is already running. Register every webhook before launch()."
            )
        if endpoint.path in self.endpoints:
            raise ValueError(f"Webhook {endpoint.path} already exists.")
        self.endpoints[endpoint.path] = endpoint
        self.fastapi_app.add_api_route(
            endpoint.path,
            self._receiver(endpoint),
            methods=["POST"],
            name=endpoint.name,
            summary=endpoint.summary or f"Webhook {endpoint.name}",
            description=f"Receives Hub webhook events ({endpoint.events.describe()}).",
        )
        # Said explicitly: the landing page mounted at "/" would otherwise answer other methods 404.
        self.fastapi_app.add_api_route(
            endpoint.path, _method_not_allowed, methods=OTHER_METHODS, include_in_schema=False
        )
        return endpoint

    def add_webhook(
        self, path: str | Callable[..., Any] | None = None, *, events: Events | None = None
    ) -> Callable[..., Any]:
        """Decorator registering a function as `POST /webhooks/<path or function name>`.

        Usable as `@app.add_webhook`, `@app.add_webhook("/path")` or `@app.add_webhook(path=...)`;
        it returns the function unchanged.

        Args:
            path: the path under `/webhooks`; defaults to the function's name.
            events: which events the function wants; others are acknowledged and skipped.

        Raises:
            ValueError: the path is already registered.
        """
        if callable(path):
            return self.add_webhook()(path)

        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            self.add_endpoint(Endpoint.create(webhook_path(path or func.__name__), func, events=events))
            return func

        return register

    def add_handlers(self, directory: str | Path, *, package: str = "handlers") -> list[Endpoint]:
        """Register every handler module in `directory` (see `handlers/README.md`)."""
        return [self.add_endpoint(endpoint) for endpoint in discover_handlers(Path(directory), package=package)]

    # --- the request path ---------------------------------------------------------------------

    async def asgi_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What uvicorn serves: a POST to a webhook path goes straight to `receive`, the rest to FastAPI.

        Webhook deliveries skip the FastAPI and Gradio middleware stacks (several layers per
        request for features they do not use); the landing page, the docs and any route a user
        adds to `fastapi_app` are served as usual.
        """
        # `/webhooks/x/` is `/webhooks/x`: a trailing slash pasted into the Hub must not lose events.
        endpoint = self.endpoints.get(scope["path"].rstrip("/")) if scope["type"] == "http" else None
        if endpoint is None or scope["method"] != "POST":
            await self._page_app(scope, receive, send)
            return
        try:
            response = await self.receive(endpoint, scope, receive)
        except WebhookError as exc:
            response = _error_response(scope, exc)
            self.monitoring.refused(endpoint.path, exc.status_code, exc.message)
        await response(scope, receive, send)

    def _receiver(self, endpoint: Endpoint) -> Callable[[Request], Any]:
        async def receive(request: Request) -> Response:
            return await self.receive(endpoint, request.scope, request.receive)

        receive.__name__ = f"receive_{endpoint.name.replace('/', '_')}"
        return receive

    async def receive(self, endpoint: Endpoint, scope: Scope, receive: Receive) -> Response:
        """One delivery, in the protocol's order: authenticate, read, validate, record, dispatch, acknowledge.

        Every step before `record` refuses with a 4xx (a `WebhookError`) and records nothing; a
        delivery the journal cannot commit is a 503 and runs nothing. Once it is committed, every
        answer is a 2xx: the handler's result if it ends within the acknowledgement budget, else 202.
        """
        started = time.perf_counter()
        settings = self.settings
        headers = request_headers(scope)
        query_string = scope["query_string"].decode("latin-1")
        authenticate(settings.webhook_secrets, headers=headers, query_string=query_string)
        body = await read_body(receive, headers, limit=settings.max_body_bytes)
        payload = parse_payload(body) if endpoint.takes_payload else payload_or_raw(body)  # None: raw delivery
        delivery = build_delivery(
            endpoint=endpoint.path,
            headers=headers,
            query_string=query_string,
            body=body,
            payload=payload,
            order_per_repo=endpoint.orders_by_repo(settings.order_per_repo),
        )
        recorded = await self.journal.record(
            delivery,
            skipped_reason=endpoint.events.rejection(payload),
            max_attempts=settings.max_attempts,
            duplicate_window=settings.duplicate_window_seconds,
        )
        outcome = self.worker.dispatch(recorded, payload) if self.worker is not None else None
        token = current_event_id.set(recorded.event.id)
        try:
            response = await acknowledge(self.journal, recorded, outcome, budget=settings.ack_budget_seconds)
            ack_ms = (time.perf_counter() - started) * 1000
            self._note_acknowledged(endpoint, recorded, ack_ms)
            self.monitoring.delivered(endpoint.path, recorded.outcome, response.status_code, ack_ms)
        finally:
            current_event_id.reset(token)
        return response

    def _note_acknowledged(self, endpoint: Endpoint, recorded: Recorded, ack_ms: float) -> None:
        """Keep the acknowledgement time for the console, and log the delivery (routine ones at DEBUG)."""
        try:
            self.journal.set_ack_ms(recorded.event.id, ack_ms)
        except WebhookError as exc:  # the event is recorded: a missing statistic must not turn into a 503
            logger.warning("Could not record the acknowledgement time: %s", exc.message)
        # Routine, so DEBUG: the console lists every delivery, and failures are logged as warnings.
        level = logging.INFO if recorded.outcome != "new" else logging.DEBUG
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "%s %s/%s on %s: %s in %.1f ms",
                endpoint.path,
                recorded.event.scope,
                recorded.event.action,
                recorded.event.repo_name or "no repository",
                recorded.outcome,
                ack_ms,
            )

    # --- running ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        if self.settings.run_handlers:  # else receive only: workers elsewhere run them (`python -m lib.worker`)
            self.worker = Worker(
                self.journal,
                self.endpoints,
                self.settings,
                ledger=self.ledger,
                on_attempt=self.monitoring.attempt_ended,
            )
            await self.worker.start()
        retention = start_retention(self)
        await self.monitoring.start(lambda: self.journal, lambda: self.endpoints, self.worker_load)
        try:
            yield
        finally:
            await self.monitoring.stop()
            retention.cancel()
            if self.worker is not None:
                await self.worker.stop()
            await self.journal.close()

    def public_url(self) -> str:
        """Where the Hub must send events: the Space's URL, else the share tunnel, else the local URL."""
        if self.settings.space_host:
            return f"https://{self.settings.space_host}"
        return (self.share_url or self.local_url or "http://127.0.0.1:7860").rstrip("/")

    def webhook_urls(self) -> dict[str, str]:
        base = self.public_url()
        return {path: base + path for path in self.endpoints}

    def worker_load(self) -> Mapping[str, EndpointLoad]:
        """What each endpoint holds of the worker now (see `Worker.load`); empty while no worker runs."""
        return self.worker.load() if self.worker is not None else {}

    def wake_worker(self) -> None:
        """Have the worker look at the journal now, not at its next poll (after a console replay)."""
        if self.worker is not None:
            self.worker.notify()

    async def cancel_job(self, event_id: int) -> JobRecord:
        """Cancel the running Hub Job of an event (the console's Cancel); its event ends dead, "cancelled".

        Raises:
            JobNotRunning: no worker runs, the event launched no job, or its job has ended.
            JobLaunchError: the Hub refused to cancel it.
        """
        if self.worker is None:
            raise JobNotRunning("The worker is not running: start the server first.")
        return await self.worker.jobs.cancel(event_id)

    def launch(self, prevent_thread_lock: bool = False, **launch_kwargs: Any) -> None:
        """Mount the landing page, start serving (uvicorn) and print each webhook's URL.

        Args:
            prevent_thread_lock: return once the server is up instead of blocking (notebooks, tests).
            **launch_kwargs: Gradio's `server_name`, `server_port` and `share`; other Gradio launch
                options are passed to the mounted page where they apply, else logged and ignored.
                Without a port (`server_port`, `GRADIO_SERVER_PORT`), the first free one from 7860.

        Raises:
            PortUnavailable: the port asked for is taken (or none from 7860 is free), before anything starts.
            RuntimeError: with `prevent_thread_lock`, the server stopped while starting (its log says why).
        """
        settings = self.settings
        host = (
            launch_kwargs.pop("server_name", None)
            or settings.server_name
            or ("0.0.0.0" if settings.space_id else "127.0.0.1")
        )
        asked_port = launch_kwargs.pop("server_port", None) or settings.server_port
        share = launch_kwargs.pop("share", None)
        mount_options = {k: launch_kwargs.pop(k) for k in list(launch_kwargs) if k in _MOUNT_OPTIONS}
        for ignored in launch_kwargs:
            logger.warning("launch(%s=...) is a Gradio option that does not apply here; ignored.", ignored)
        # Bound here, not in uvicorn's thread, so a port that is taken raises now (see listen.py).
        sock = listen.bind_listening_socket(host, int(asked_port) if asked_port else None, search=not settings.space_id)
        port = sock.getsockname()[1]
        browse_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        self.local_url = f"http://{browse_host}:{port}"
        self.launched = True

        if tunnel.should_share(share, gradio_share=settings.gradio_share, space_id=settings.space_id):
            self._tunnel = tunnel.open_share_tunnel(browse_host, port)
            self.share_url = self._tunnel.url if self._tunnel else None

        self._mount_page(host, port, mount_options)

        config = uvicorn.Config(
            self.asgi_app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,  # one line per delivery is ours to write (at DEBUG), not uvicorn's
            proxy_headers=False,  # applied to the page only (`_page_app`)
            lifespan="on",
            interface="asgi3",
            # A deadline and a size cap for request heads, a cap on idle connections (connections.py).
            **connections.uvicorn_options(
                header_timeout=settings.header_timeout_seconds, max_head_bytes=settings.max_header_bytes
            ),
        )
        self._uvicorn = uvicorn.Server(config)
        self._print_urls()
        # Everything loaded so far (Gradio, FastAPI, the handlers, the page) lives as long as the
        # app: kept out of the garbage collector's full passes, which would walk it all again and again.
        gc.freeze()
        if prevent_thread_lock:
            self._thread = threading.Thread(
                target=self._uvicorn.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True
            )
            self._thread.start()
            while not self._uvicorn.started and self._thread.is_alive():
                time.sleep(0.01)
            if not self._uvicorn.started:  # its thread died: never return as if all were well
                self._close_tunnel()
                raise RuntimeError(f"The server on {self.local_url} stopped while starting; its log says why.")
            return
        try:
            self._uvicorn.run(sockets=[sock])
        finally:
            self._close_tunnel()

    def _mount_page(self, host: str, port: int, mount_options: dict[str, Any]) -> None:
        """Mount the page given as `ui` at "/", beside the webhook routes; without one, serve no page."""
        if self._ui is None:
            return
        import gradio as gr  # only a server with a page pays for importing Gradio

        blocks = self._ui(self) if callable(self._ui) and not isinstance(self._ui, gr.Blocks) else self._ui
        mount_options.setdefault("run_history", False)
        mount_options.setdefault("footer_links", [])
        # Uploads only for a page that asks for them with a size (page_guard.py); Gradio's own cap behind.
        self._page_app.allow_uploads = "max_file_size" in mount_options
        mount_options.setdefault("max_file_size", 0)
        gr.mount_gradio_app(self.fastapi_app, blocks, path="/", server_name=host, server_port=port, **mount_options)

    def close(self) -> None:
        """Stop a server started with `prevent_thread_lock=True` (and its share tunnel)."""
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._close_tunnel()

    def _close_tunnel(self) -> None:
        if self._tunnel is not None:
            self._tunnel.close()
            self._tunnel = None

    def _print_urls(self) -> None:
        urls, settings = self.webhook_urls().values(), self.settings
        log_start(
            logger,
            urls,
            public_url=self.public_url(),
            local_url=self.local_url,
            journal_path=settings.journal_path,
            in_space=bool(settings.space_host),
        )


_MOUNT_OPTIONS = {
    "auth",
    "auth_message",
    "auth_dependency",
    "root_path",
    "allowed_paths",
    "blocked_paths",
    "favicon_path",
    "show_error",
    "max_file_size",
    "ssr_mode",
    "theme",
    "css",
    "css_paths",
    "js",
    "head",
    "head_paths",
    "footer_links",
    "run_history",
    "pwa",
    "i18n",
    "mcp_server",
}


OTHER_METHODS = ["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"]


async def _method_not_allowed(request: Request) -> JSONResponse:
    """405 for anything but POST on a webhook path, so a wrong method is not mistaken for a wrong URL."""
    return JSONResponse(
        {"error": f"{request.method} is not allowed here: the Hub sends webhook events with POST."},
        status_code=405,
        headers={"Allow": "POST"},
    )


async def _answer_error(request: Request, exc: WebhookError) -> JSONResponse:
    return _error_response(request.scope, exc)


def _error_response(scope: Scope, exc: WebhookError) -> JSONResponse:
    """The one place where our errors become HTTP answers."""
    # One key per answer and endpoint: a flood of one kind (401s, 503s while the disk is full) is
    # written a few times per interval with a count, and never hides the lines of another kind.
    logger.info(
        "%s %s answered %d: %s",
        scope["method"],
        scope["path"],
        exc.status_code,
        exc.message,
        extra={"repeat_key": ("answered", exc.status_code, scope["path"])},
    )
    return JSONResponse({"error": exc.message}, status_code=exc.status_code)
