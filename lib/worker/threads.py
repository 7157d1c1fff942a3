"""Where plain `def` handlers run: a thread of their own each, never the event loop, and counted.

Python cannot stop a thread, so a handler past its timeout keeps running on its thread after its
attempt has ended. `AttemptThreads` is the executor of one attempt: once the attempt is over, it
says how many of its threads still run, and calls back as each of them really ends, so that the
worker can count them against their endpoint's share (`bulkhead.py`) until then.

An event's next attempt (its retry, a replay, a redelivery's requeue) never runs alongside such a
thread: the threads of one event are chained, each starting its handler only once the one before
has ended, so a handler never runs twice at once on the same event. A retry that waits past its own
timeout fails without having started, and its thread ends as soon as the one before does.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, Future
from typing import Any

logger = logging.getLogger(__name__)


class ThreadPerCall(Executor):
    """Runs each plain `def` handler on a thread of its own.

    In a fixed pool of `concurrency` threads, a few stuck handlers would hold every thread and the
    events behind them would time out without ever starting, until every event was dead. Here a
    stuck handler only keeps its own thread, and how many threads one endpoint may hold, stuck or
    not, is the worker's bound (its share), not the pool's. Threads are daemons: a handler still
    running at shutdown is interrupted like any other, and its event resumes at the next start.
    """

    def __init__(self) -> None:
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._last: dict[Hashable, threading.Event] = {}
        """Per key (an event id): set when the last thread started for it has ended."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self.start(fn, args, kwargs, on_exit=None)

    def start(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        on_exit: Callable[[], None] | None,
        key: Hashable | None = None,
    ) -> Future[Any]:
        """`submit`, calling `on_exit` (on the thread) when the thread ends, whatever `fn` did.

        With a `key`, `fn` starts only once the thread started before for the same key has ended;
        until then the future is pending, so cancelling it (the attempt timed out) means `fn` never runs.
        """
        future: Future[Any] = Future()
        ended = threading.Event()
        with self._lock:
            before = self._last.get(key) if key is not None else None
            if key is not None:
                self._last[key] = ended

        def run() -> None:
            try:
                if before is not None and not before.is_set():
                    logger.warning(
                        "Attempt of event %s waits: its previous attempt's handler is still running past its timeout.",
                        key,
                    )
                    before.wait()
                if not future.set_running_or_notify_cancel():
                    return
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:
                    future.set_exception(exc)
            finally:
                ended.set()
                with self._lock:
                    if self._last.get(key) is ended:
                        del self._last[key]
                if on_exit is not None:
                    on_exit()

        threading.Thread(target=run, name=f"handler-{next(self._numbers)}", daemon=True).start()
        return future

    def for_attempt(self, key: Hashable | None = None) -> AttemptThreads:
        """An executor for one attempt (of the event `key`), which knows whether its threads outlive it."""
        return AttemptThreads(self, key)


class AttemptThreads(Executor):
    """The threads one attempt starts (a plain `def` handler starts one), through `pool`.

    When the attempt ends, `leave` says how many still run; each of those calls the callback given
    to `leave` when it ends. Thread-safe: threads end on their own, the attempt on the event loop.
    """

    def __init__(self, pool: ThreadPerCall, key: Hashable | None = None) -> None:
        self._pool = pool
        self._key = key
        self._lock = threading.Lock()
        self._alive = 0
        self._on_end: Callable[[], None] | None = None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._lock:
            self._alive += 1
        return self._pool.start(fn, args, kwargs, on_exit=self._ended, key=self._key)

    def leave(self, on_end: Callable[[], None]) -> int:
        """The attempt is over: how many of its threads still run; each calls `on_end` (on its thread) as it ends."""
        with self._lock:
            if self._alive:
                self._on_end = on_end
            return self._alive

    def _ended(self) -> None:
        with self._lock:
            self._alive -= 1
            on_end = self._on_end
        if on_end is not None:
            on_end()
