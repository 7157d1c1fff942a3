"""Where plain `def` handlers run: a thread of their own each, never the event loop."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any


class ThreadPerCall(Executor):
    """Runs each plain `def` handler on a thread of its own.

    Python cannot stop a thread, so a handler past its timeout keeps running. In a fixed pool of
    `concurrency` threads, a few stuck handlers would hold every thread and the events behind them
    would time out without ever starting, until every event was dead. Here a stuck handler only
    keeps its own thread; how many attempts run at once is the worker's bound, not the pool's.
    Threads are daemons: a handler still running at shutdown is interrupted like any other, and its
    event resumes at the next start.
    """

    def __init__(self) -> None:
        self._numbers = itertools.count(1)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)

        threading.Thread(target=run, name=f"handler-{next(self._numbers)}", daemon=True).start()
        return future
