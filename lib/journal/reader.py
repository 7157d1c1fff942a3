"""The console's reads on a thread of their own, with a connection of their own.

A statistics query scans every event the journal keeps; on the event loop it would hold up every
delivery meanwhile. SQLite lets go of the GIL while it steps through rows, so on a thread such a
read costs the loop nothing. A plain thread rather than an executor: the app may be launched from
an `atexit` callback (`webhook_endpoint`), when executors refuse new work.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

Read = tuple[str, Any, asyncio.AbstractEventLoop, "asyncio.Future[list[sqlite3.Row]]"]


class ReadThread:
    """Runs SQL reads one after the other on a daemon thread, started on the first read.

    Args:
        connect: opens the thread's connection (on the thread, at its first read).
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._reads: queue.SimpleQueue[Read | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def read(self, sql: str, parameters: Any = ()) -> list[sqlite3.Row]:
        """The rows of `sql`, read on the thread.

        Raises:
            sqlite3.Error: the read failed.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[sqlite3.Row]] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="journal-reads", daemon=True)
            self._thread.start()
        self._reads.put((sql, parameters, loop, future))
        return await future

    def close(self) -> None:
        """Let the thread finish the reads asked for, close its connection and end."""
        if self._thread is not None:
            self._reads.put(None)
            self._thread.join(timeout=5.0)
            self._thread = None

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        while (read := self._reads.get()) is not None:
            sql, parameters, loop, future = read
            try:
                if connection is None:
                    connection = self._connect()
                rows = connection.execute(sql, parameters).fetchall()
            except sqlite3.Error as exc:
                _settle_soon(loop, future, None, exc)
            else:
                _settle_soon(loop, future, rows, None)
        if connection is not None:
            connection.close()


def _settle_soon(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[list[sqlite3.Row]],
    rows: list[sqlite3.Row] | None,
    error: sqlite3.Error | None,
) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(_settle, future, rows, error)


def _settle(future: asyncio.Future[list[sqlite3.Row]], rows: list[sqlite3.Row] | None, error: Exception | None) -> None:
    if future.done():  # the reader was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(rows)  # type: ignore[arg-type]
