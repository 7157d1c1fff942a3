"""uvicorn's HTTP protocol, with the limits a stranger must not be able to get around.

What uvicorn 0.54 does on its own (`uvicorn/protocols/http/httptools_impl.py`), and why a public
Space needs more:

- Its one timer is the keep-alive timer, armed when a response completes and cancelled by the
  next byte that arrives. A connection that never completes its first request head, or that
  dribbles the head of its next request, has no timer at all: it stays open for ever.
- httptools (llhttp) puts no limit on a head: a header's value grows (`bytes +=`) until its
  line ends, and uvicorn keeps every header in a list. A stranger's 100 MB header is held whole,
  and answered 401 only once it has all arrived.
- When the process runs out of file descriptors, libuv accepts every pending connection and
  closes it at once (`uv__emfile_trick`): real deliveries waiting to be accepted are reset.

`GuardedHttpToolsProtocol` adds, per connection:

- a deadline for the request head (`WEBHOOK_HEADER_TIMEOUT`, 10 s): counted from the connection's
  start, or from the first byte of a later request, it closes a connection whose head has not
  arrived whole by then (with 408 when part of one had), and also one that keeps sending the rest
  of a body nobody reads any more (answered early, e.g. 401 or 413). An idle connection between
  requests is left to uvicorn's keep-alive timer (`timeout_keep_alive`, 5 s);
- a cap on the size of a head (`WEBHOOK_MAX_HEADER_BYTES`, 32 KiB, as common servers use): past
  it the answer is 431 and the connection is closed, without reading on. An unfinished head is
  measured by the bytes received for it, checked after each read (at most 256 KB), so no more
  than the cap is kept between reads; a finished one by its request line and headers;
- a cap on the connections waiting for a request (new, between requests, or sending a head):
  `MAX_WAITING`, fewer if the process has few file descriptors (`connection_budget`). Past it,
  the connection that has waited longest is closed. A stranger's thousands of half-open
  connections then cost a real delivery nothing: its connection is accepted, and is served as
  soon as its head arrives; and they hold at most `MAX_WAITING` x the head cap (32 MiB) of memory.

uvicorn's own `limit_concurrency` is not used: past it, uvicorn answers 503 to every new request,
deliveries included, which is the failure a stranger must not be able to cause.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ..core.errors import HubWebhooksError

try:
    import resource
except ImportError:  # Windows has no `resource`: the defaults apply
    resource = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

DEFAULT_BACKLOG = 2048
"""uvicorn's own default."""
FILES_RESERVE = 64
"""File descriptors kept for everything but connections: the journal, the starts file, handlers' own."""
MIN_WAITING = 16
MAX_WAITING = 1024
"""Waiting connections kept at most, whatever the file descriptors allow: each may hold a head."""


class HeadTooLarge(HubWebhooksError):
    """Raised in the parser's callback to stop it: the request head passed the cap (answered 431)."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head deadline, a head size cap and a cap on waiting connections.

    Use `guarded_protocol(...)` to get a subclass with the limits set, and pass it to
    `uvicorn.Config(http=...)`: uvicorn makes one instance per connection.
    """

    header_timeout: ClassVar[float] = 10.0
    max_head_bytes: ClassVar[int] = 32 * 1024
    max_waiting: ClassVar[int] = MAX_WAITING
    _waiting: ClassVar[dict[GuardedHttpToolsProtocol, None]] = {}
    """The connections waiting for a request, the longest-waiting first (shared by one server's connections)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes: int | None = 0
        """Bytes received for the head being read, None while a body is."""
        self._heads = 0
        self._chunk = 0
        self._head_timer: asyncio.TimerHandle | None = None

    # --- connection events --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)
        self._start_waiting()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._waiting.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's `data_received`, counting the bytes of an unfinished head and arming its deadline."""
        self._unset_keepalive_if_required()
        counting, heads = self._head_bytes is not None, self._heads
        self._chunk = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, HeadTooLarge):
                self._refuse_head()
            else:
                message = "Invalid HTTP request received."
                logger.info("%s", message)  # uvicorn warns on its own logger, where repeats are not limited
                self.send_400_response(message)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._head_bytes is not None:  # a head is unfinished after this chunk
            if counting and self._heads == heads:  # and the whole chunk was part of it
                self._head_bytes += len(data)
            # (a head that began inside this chunk, after a pipelined request, is counted from the next one)
            if self._head_bytes > self.max_head_bytes:
                self._refuse_head()
                return
        if self._head_timer is None and self.timeout_keep_alive_task is None and not self._busy():
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    # --- parser callbacks ---------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        # A head that arrived within one chunk no larger than the cap is under it: no need to measure.
        if (self._head_bytes or self._chunk > self.max_head_bytes) and self._head_size() > self.max_head_bytes:
            raise HeadTooLarge("The request head is larger than the cap.")
        self._cancel_head_timer()
        self._waiting.pop(self, None)
        self._head_bytes = None
        self._heads += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._head_bytes = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self._busy():
            self._start_waiting()

    # --- limits -------------------------------------------------------------------------------

    def _head_size(self) -> int:
        """About the bytes of the head: its request line and header lines."""
        return len(self.url) + 16 + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _busy(self) -> bool:
        """Whether a request of this connection is being served (its response not complete)."""
        return (self.cycle is not None and not self.cycle.response_complete) or bool(self.pipeline)

    def _start_waiting(self) -> None:
        waiting = self._waiting
        waiting[self] = None
        if len(waiting) > self.max_waiting:
            logger.warning(
                "More than %d connections are waiting without sending a request; closing those waiting longest.",
                self.max_waiting,
            )
            while len(waiting) > self.max_waiting:
                next(iter(waiting))._close_waiting()

    def _close_waiting(self) -> None:
        self._waiting.pop(self, None)
        self._cancel_head_timer()
        if not self.transport.is_closing():
            self.transport.close()

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self._busy():
            return
        if self._head_bytes:
            self._answer_and_close(408, "The request head did not arrive in time.")
        else:
            self.transport.close()

    def _refuse_head(self) -> None:
        logger.info("Refused a request head over %d bytes (431).", self.max_head_bytes)
        self._cancel_head_timer()
        if self._busy():  # an answer is being written on this connection: do not cut into it
            self.transport.close()
        else:
            self._answer_and_close(
                431, f"Request header fields too large: a request head may have at most {self.max_head_bytes} bytes."
            )

    def _answer_and_close(self, status: int, message: str) -> None:
        body = message.encode("ascii")
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()


def guarded_protocol(*, header_timeout: float, max_head_bytes: int, max_waiting: int) -> type[GuardedHttpToolsProtocol]:
    """A `GuardedHttpToolsProtocol` with these limits, for one server (its waiting connections its own)."""

    class Protocol(GuardedHttpToolsProtocol):
        pass

    Protocol.header_timeout = header_timeout
    Protocol.max_head_bytes = max_head_bytes
    Protocol.max_waiting = max(1, max_waiting)
    Protocol._waiting = {}
    Protocol.__name__ = Protocol.__qualname__ = "GuardedHttpToolsProtocol"
    return Protocol


@dataclass(frozen=True)
class ConnectionBudget:
    """How the file descriptors a process may open are shared between pending and waiting connections."""

    open_files: int
    """The open-files limit (`RLIMIT_NOFILE`), after raising it to what the system allows."""
    backlog: int
    """Connections the kernel keeps pending for us (`listen()`'s backlog): libuv accepts them all at once."""
    max_waiting: int
    """Connections kept open while they wait for a request."""


def connection_budget(*, in_use: int | None = None) -> ConnectionBudget:
    """Raise the open-files limit to its hard limit and share it out, so accepting never runs out.

    The pending connections (the backlog) are all accepted in one go, so room is kept for all of
    them on top of the waiting ones, plus `FILES_RESERVE` for the rest of the app. Then a flood of
    connections closes the longest-waiting ones instead of reaching the limit, where libuv would
    reset every pending connection, real deliveries included.
    """
    if resource is None:
        return ConnectionBudget(open_files=0, backlog=DEFAULT_BACKLOG, max_waiting=MAX_WAITING)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:
            logger.warning("Could not raise the open-files limit from %d to %d: %s", soft, wanted, exc)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    if in_use is None:
        try:
            in_use = len(os.listdir("/proc/self/fd"))
        except OSError:
            in_use = 64
    free = soft - in_use - FILES_RESERVE
    backlog = max(MIN_WAITING, min(DEFAULT_BACKLOG, free // 4))
    max_waiting = max(MIN_WAITING, min(MAX_WAITING, free - backlog))
    if free < 4 * MIN_WAITING:
        logger.warning(
            "Only %d file descriptors are free for connections (the open-files limit is %d); raise it "
            "(ulimit -n) so strangers' idle connections cannot crowd out deliveries.",
            max(free, 0),
            soft,
        )
    return ConnectionBudget(open_files=soft, backlog=backlog, max_waiting=max_waiting)


def uvicorn_options(*, header_timeout: float, max_head_bytes: int) -> dict[str, Any]:
    """What `launch()` passes to `uvicorn.Config` for these limits: the protocol and the backlog."""
    budget = connection_budget()
    protocol = guarded_protocol(
        header_timeout=header_timeout, max_head_bytes=max_head_bytes, max_waiting=budget.max_waiting
    )
    return {"http": protocol, "backlog": budget.backlog}
