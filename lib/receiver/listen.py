"""The listening socket, bound before the server starts, so a port that is taken is an error at `launch()`.

uvicorn binds its own socket inside the server's thread, and when the port is taken it logs the
error and exits that thread: `launch(prevent_thread_lock=True)` then returned as if all were well,
with nothing listening. Binding here, in the caller's thread, turns that into an exception that
names the port and the fix. When no port was asked for, the next free one is taken, as Gradio
does (7860, 7861, ...), and the URL printed is the one really used.
"""

from __future__ import annotations

import errno
import logging
import socket

from ..core.errors import PortUnavailable

logger = logging.getLogger(__name__)

DEFAULT_PORT = 7860
PORTS_TRIED = 100
"""As Gradio: 7860 to 7959 when no port was asked for."""


def bind_listening_socket(host: str, port: int | None, *, search: bool = True) -> socket.socket:
    """A socket bound to `host` and `port`, for uvicorn to listen on.

    Args:
        host: the address to listen on (`127.0.0.1`, `0.0.0.0`, `::`).
        port: the port asked for (`launch(server_port=...)`, `GRADIO_SERVER_PORT`), or None for the first
            free one from 7860.
        search: with no port asked for, whether to look past 7860 (not in a Space, whose proxy
            sends to 7860 only).

    Raises:
        PortUnavailable: the port asked for is taken (or not ours to use), or none of the ports tried is free.
    """
    candidates = [port] if port is not None else range(DEFAULT_PORT, DEFAULT_PORT + (PORTS_TRIED if search else 1))
    for candidate in candidates:
        try:
            sock = _bind(host, candidate)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and port is None:
                continue  # as Gradio: the next one
            reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror or exc})"
            raise PortUnavailable(
                f"Cannot listen on {host}:{candidate}: the port {reason}. Stop what uses it, or choose another port "
                "with GRADIO_SERVER_PORT or launch(server_port=...)."
            ) from None
        if candidate != candidates[0]:
            logger.warning("Port %d is in use (another app?): listening on %d instead.", candidates[0], candidate)
        return sock
    first, last = candidates[0], candidates[-1]
    span = f"port {first} is" if first == last else f"ports {first} to {last} are all"
    raise PortUnavailable(
        f"Cannot listen on {host}: {span} in use. Stop the app already running there, or choose a port "
        "with GRADIO_SERVER_PORT or launch(server_port=...)."
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn binds: a port whose last connections are in TIME_WAIT is free; one someone listens on is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
