"""A closed-loop HTTP/1.1 load generator on raw asyncio streams, for `bench/run.py`.

Why not httpx: its per-request overhead (~0.5 ms of Python) would make the generator, not the
server, the bottleneck on a 2-core machine. Here each of `concurrency` senders owns one
keep-alive connection, writes a prebuilt request (only the `Webhook-Id` differs) and reads the
answer by its `Content-Length`, so a request costs a few tens of microseconds on our side.
The `raw` server row of the benchmark shows the ceiling this generator reaches.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

REQUEST_TIMEOUT_SECONDS = 30.0
"""Past this one request counts as an error (the Hub gives up at about 30 s too)."""


@dataclass
class LoadResult:
    """What one phase of load measured."""

    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    """One entry per 2xx answer."""
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    """Non-2xx answers, timeouts and broken connections."""
    error_samples: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    timed_out: bool = False
    """The phase hit its duration bound before sending every request."""

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    def percentile(self, fraction: float) -> float | None:
        """Nearest-rank percentile of the 2xx latencies, in ms."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        rank = max(1, round(fraction * len(ordered)))
        return ordered[min(len(ordered), rank) - 1]

    def note_error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)


def build_request(path: str, host: str, body: bytes, headers: dict[str, str]) -> Callable[[int], bytes]:
    """A function returning the bytes of request number `i` (with `Webhook-Id: <run>-<i>`)."""
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head += f"Content-Length: {len(body)}\r\n"
    run = f"{time.time_ns():x}"
    prefix, suffix = head.encode(), b"\r\n" + body

    def request(i: int) -> bytes:
        return prefix + f"Webhook-Id: bench-{run}-{i}\r\n".encode() + suffix

    return request


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; return its status and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, chunked, keep_alive = 0, False, True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and value == "close":
            keep_alive = False
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, keep_alive


async def run_load(
    host: str,
    port: int,
    request: Callable[[int], bytes],
    *,
    requests: int,
    concurrency: int,
    max_seconds: float,
    first_index: int = 0,
) -> LoadResult:
    """Send `requests` requests from `concurrency` senders; stop early after `max_seconds`."""
    result = LoadResult()
    counter = itertools.count(first_index)
    last = first_index + requests
    deadline = time.perf_counter() + max_seconds

    async def sender() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            while True:
                index = next(counter)
                if index >= last:
                    return
                if time.perf_counter() > deadline:
                    result.timed_out = True
                    return
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                result.sent += 1
                started = time.perf_counter()
                try:
                    writer.write(request(index))
                    status, keep_alive = await asyncio.wait_for(_read_response(reader), REQUEST_TIMEOUT_SECONDS)
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
                    result.note_error(f"{type(exc).__name__}: {exc}")
                    writer.close()
                    reader = writer = None
                    continue
                elapsed_ms = (time.perf_counter() - started) * 1000
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if 200 <= status < 300:
                    result.latencies_ms.append(elapsed_ms)
                else:
                    result.note_error(f"HTTP {status}")
                if not keep_alive:
                    writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    result.elapsed_s = time.perf_counter() - started
    return result
