"""An optional public URL for a receiver running on a laptop, through Gradio's share tunnel.

The Hub delivers webhooks to a public HTTPS address, so a receiver running on a laptop never
sees one unless something forwards it. `huggingface_hub.WebhooksServer` solves this by launching
its Gradio app with `share=True` outside a Space: you can register the printed
`https://<random>.gradio.live` URL as the webhook target and test handlers before deploying.
Our receiver is a plain FastAPI app served by uvicorn, so it asks Gradio for the tunnel alone:
`open_share_tunnel` calls `gradio.networking.setup_tunnel`, the function `Blocks.launch` uses,
and this module only decides *whether* to call it, bounds how long it may take, turns its
failures into one log line and gives back a way to close it. It implements no tunnel itself.

The public URL is reachable by anyone who learns it, and the tunnel forwards every path of the
local app, not only the webhook routes. What protects the webhook routes is the webhook secret
(`WEBHOOK_SECRET`), checked on every request; the random sub-domain is not a secret. Whatever
else the app serves (a console, a landing page) must check access itself.

Example:
    >>> import os
    >>> from lib.receiver.tunnel import open_share_tunnel, should_share
    >>> if should_share(None, gradio_share=os.environ.get("GRADIO_SHARE"), space_id=None):  # doctest: +SKIP
    ...     tunnel = open_share_tunnel("127.0.0.1", 7860)
    ...     # On shutdown:
    ...     if tunnel is not None:
    ...         tunnel.close()
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Final
from urllib.parse import urlsplit, urlunsplit

logger = logging.getLogger(__name__)

DEFAULT_SHARE: Final = False
"""Whether to open a tunnel when neither the caller nor `GRADIO_SHARE` says (see `should_share`)."""

_MAX_REASON_CHARS: Final = 400
"""Gradio's tunnel errors can carry frpc's whole log; the warning keeps it to one readable line."""

_STOP_WAIT_SECONDS: Final = 3.0
"""How long `close` waits for frpc to exit after SIGTERM before it sends SIGKILL."""


@dataclass(frozen=True, slots=True)
class ShareTunnel:
    """An open share tunnel: its public URL and how to close it.

    Attributes:
        url: The public `https://…` address forwarding to the local server.
        close: Stops the tunnel's frpc process. Idempotent, never raises and prints nothing, so
            it can go straight into an app's shutdown hook. Without it the tunnel still ends with
            the interpreter, through the `atexit` hook Gradio registers (which prints a line).
    """

    url: str
    close: Callable[[], None]


def should_share(share: bool | None, *, gradio_share: str | None, space_id: str | None) -> bool:
    """Decide whether to open a share tunnel.

    In order:

    1. Inside a Space (`SPACE_ID` is set) never: the Space already has a public URL, and Gradio
       itself refuses `share=True` there. An explicit request is logged as ignored.
    2. An explicit `share=True` or `share=False` is obeyed.
    3. `share=None` reads `GRADIO_SHARE` like `Blocks.launch` does: "true" or "false", any case.
       Another value is logged and ignored.
    4. Otherwise `DEFAULT_SHARE`, which is False: the tunnel is opt-in.

    Why opt-in, when `WebhooksServer` shares by default outside a Space: a default-on tunnel
    would, on every local start (a quick run, a test, a script), publish the whole local app,
    including any console and, if no secret is configured yet, webhook routes that run handlers
    holding `HF_TOKEN`, to the internet; it would also call api.gradio.app and, the first time,
    download and run Gradio's frpc binary, all without being asked. The benefit does not need
    the default: the URL is new on every start, so pointing a webhook at it is always a
    deliberate step, and `share=True` or `GRADIO_SHARE=true` is one more word. Gradio's own
    `launch()` makes the same choice (`share=False` unless asked, outside notebooks).

    Args:
        share: The caller's wish: True, False, or None for "use the environment and default".
        gradio_share: `GRADIO_SHARE` as set (`Settings.gradio_share`), or None.
        space_id: `SPACE_ID` (`Settings.space_id`): set inside a Space.

    Returns:
        True when `open_share_tunnel` should be called.

    Example:
        >>> should_share(None, gradio_share="true", space_id=None)
        True
        >>> should_share(True, gradio_share=None, space_id="user/space")
        False
    """
    asked_by = "share=True"
    if share is None:
        share = _parse_gradio_share(gradio_share)
        asked_by = "GRADIO_SHARE=true"
    if space_id is not None:
        if share:
            logger.warning(
                "%s ignored: running in the Space %r (SPACE_ID is set), which is already public at "
                "its own URL; no share tunnel is opened.",
                asked_by,
                space_id,
            )
        return False
    return DEFAULT_SHARE if share is None else share


def open_share_tunnel(local_host: str, local_port: int, *, timeout: float = 10.0) -> ShareTunnel | None:
    """Open Gradio's share tunnel to a local server, or log why not; never raise, never hang.

    Does what `Blocks.launch(share=True)` does with its default arguments: a fresh share token,
    Gradio's share server (or `GRADIO_SHARE_SERVER_ADDRESS`, read by Gradio at import), and the
    returned address rewritten to https. Gradio fetches the server address from api.gradio.app,
    writes its certificate to `.gradio/certificate.pem` under the current directory, and
    downloads the frpc client to `~/.cache/huggingface/gradio/frpc/` the first time.

    Gradio's own timeouts are 30 s per step and its wait for frpc checks the clock only between
    lines of output, and a blocked network can stall a DNS lookup, so the attempt runs in a
    daemon thread and this function waits for it at most `timeout` seconds. On timeout the frpc
    process started so far is stopped, and a tunnel that still comes up later is closed at once,
    so no public URL stays open unannounced. The thread is a daemon: it never delays exit.

    It blocks the calling thread for up to `timeout`; from async code, call it through
    `asyncio.to_thread`. It may run before the local server listens: frpc connects to the local
    port per incoming request. Importing Gradio (a few seconds, once) is not counted in `timeout`.

    Args:
        local_host: The address the local server listens on, as given to uvicorn.
        local_port: Its port.
        timeout: Seconds to wait for the public URL before giving up. The first run on a machine
            also downloads frpc (about 10 MB) within this budget; if it runs out, the download
            goes on in the background and the next start is faster.

    Returns:
        The open tunnel, or None after logging one warning that says what failed and that the
        app still serves locally.

    Example:
        >>> tunnel = open_share_tunnel("127.0.0.1", 7860, timeout=10)  # doctest: +SKIP
        >>> tunnel.url  # doctest: +SKIP
        'https://0123456789abcdef.gradio.live'
    """
    local_url = _local_url(local_host, local_port)
    try:
        from gradio import networking, tunneling
    except Exception as exc:
        _warn_not_opened(f"Gradio could not be imported ({_describe(exc)})", local_url)
        return None

    share_token = secrets.token_urlsafe(32)
    close = _closer(tunneling, share_token)
    lock = threading.Lock()
    done = threading.Event()
    outcome: dict[str, str | BaseException] = {}
    abandoned = False

    def attempt() -> None:
        try:
            outcome["url"] = networking.setup_tunnel(
                local_host=local_host,
                local_port=local_port,
                share_token=share_token,
                share_server_address=None,
                share_server_tls_certificate=None,
            )
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            with lock:
                done.set()
                too_late = abandoned
        if too_late:
            close()

    threading.Thread(target=attempt, name=f"share-tunnel-{local_port}", daemon=True).start()
    done.wait(timeout)
    with lock:
        abandoned = not done.is_set()
    if abandoned:
        close()
        _warn_not_opened(f"Gradio's share tunnel gave no public URL within {timeout:g} s", local_url)
        return None

    url, error = outcome.get("url"), outcome.get("error")
    if not isinstance(url, str) or not url:
        close()
        reason = _describe(error) if isinstance(error, BaseException) else f"no URL ({url!r})"
        _warn_not_opened(f"Gradio's share tunnel failed: {reason}{_frpc_hint(tunneling)}", local_url)
        return None

    public_url = urlunsplit(("https", *urlsplit(url)[1:]))
    logger.info(
        "Share tunnel open: %s -> %s. Anyone with the URL can reach the app; the webhook secret "
        "is what protects the webhook routes.",
        public_url,
        local_url,
    )
    return ShareTunnel(url=public_url, close=close)


def _parse_gradio_share(value: str | None) -> bool | None:
    """Read `GRADIO_SHARE` as Gradio does ("true", any case), also accepting an explicit "false"."""
    if value is None or not value.strip():
        return None
    normalised = value.strip().lower()
    if normalised in ("true", "false"):
        return normalised == "true"
    logger.warning("GRADIO_SHARE=%r is neither 'true' nor 'false'; ignoring it.", value)
    return None


def _closer(tunneling: ModuleType, share_token: str) -> Callable[[], None]:
    """Build the `close` of one attempt: stop the frpc processes Gradio started with its token.

    `setup_tunnel` returns only the URL; the `Tunnel` it made is in `gradio.tunneling.CURRENT_TUNNELS`
    and is recognised by the share token, which is unique to the attempt. Gradio's `Tunnel.kill`
    prints, so the process is stopped here; setting `proc` to None first makes Gradio's `atexit`
    call a no-op and makes a thread still waiting for frpc's output stop instead of spinning.
    """

    def close() -> None:
        try:
            mine = [t for t in list(tunneling.CURRENT_TUNNELS) if t.share_token == share_token]
            for tunnel in mine:
                proc, tunnel.proc = tunnel.proc, None
                with contextlib.suppress(ValueError):
                    tunneling.CURRENT_TUNNELS.remove(tunnel)
                if proc is not None:
                    _stop(proc)
        except Exception as exc:
            logger.warning("Could not close the share tunnel: %s", _describe(exc))

    return close


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate frpc, kill it if it lingers, and reap it so no zombie or open pipe is left."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=_STOP_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=_STOP_WAIT_SECONDS)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(Exception):
                pipe.close()


def _frpc_hint(tunneling: ModuleType) -> str:
    """Say when frpc is not installed yet: Gradio downloads it on first use, which needs the internet."""
    binary = getattr(tunneling, "BINARY_PATH", None)
    if binary is None or Path(binary).exists():
        return ""
    return f" (Gradio's frpc client is not downloaded yet: {binary})"


def _describe(exc: BaseException) -> str:
    """One line naming the exception and its causes, e.g. `RuntimeError: … <- ConnectError: …`."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        message = " ".join(str(current).split())
        part = f"{type(current).__name__}: {message}" if message else type(current).__name__
        if not parts or parts[-1] != part:  # httpx re-raises httpcore's error under the same name
            parts.append(part)
        suppressed = current.__suppress_context__
        current = current.__cause__ or (None if suppressed else current.__context__)
    text = " <- ".join(parts)
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 1] + "…"


def _local_url(host: str, port: int) -> str:
    """The local address for log lines, with IPv6 hosts bracketed."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _warn_not_opened(reason: str, local_url: str) -> None:
    """The one line a failed attempt logs: what failed, and that nothing else did."""
    logger.warning("No share tunnel: %s. The app still serves locally at %s.", reason.rstrip(". "), local_url)
