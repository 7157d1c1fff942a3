"""A plain `def` handler past its timeout keeps running on its thread (Python cannot stop a thread).
Its event's next attempt must not start the handler again while that thread still runs: the
handler would run twice at once on the same event. `lib/worker/threads.py` chains the threads of
one event; these tests break the chain's promise if they can.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable
from pathlib import Path

import pytest
from test_worker import Gates, gates, payload, serving  # noqa: F401  (gates is a fixture)

from lib import WebhookPayload
from lib.worker.threads import ThreadPerCall

pytestmark = pytest.mark.anyio


async def test_a_retry_never_runs_alongside_its_previous_attempt_still_running(
    tmp_path: Path,
    gates: Gates,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    lock = threading.Lock()
    running, most, started = 0, 0, []

    def overruns_once(payload: WebhookPayload) -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            started.append(len(started) + 1)
        try:
            if started == [1]:
                gates.wait("first attempt may end")  # long past its 0.3 s
            return "done"
        finally:
            with lock:
                running -= 1

    settings = {
        "handler_timeout_seconds": 0.3,
        "max_attempts": 5,
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.05,
    }
    async with serving(tmp_path, {"h": overruns_once}, **settings) as h:
        event_id = (await h.post("h", payload())).json()["event_id"]
        # The first attempt times out, and so does the retry after it: it waited for the first
        # attempt's thread, and never started the handler.
        await h.until(lambda: failed_twice(h.outcomes(event_id)), "the retry to time out waiting for the first thread")
        assert started == [1] and running == 1
        gates["first attempt may end"].set()
        await h.settled(event_id)
        outcomes = await h.outcomes(event_id)

    assert most == 1, "two attempts of one event ran the handler at once"
    assert started == [1, 2] and outcomes[-1] == "succeeded" and outcomes[:2] == ["failed", "failed"]
    assert any("its previous attempt's handler is still running" in r.getMessage() for r in caplog.records)


async def failed_twice(outcomes: Awaitable[list[str]]) -> bool:
    return (await outcomes).count("failed") >= 2


def test_threads_of_other_events_do_not_wait() -> None:
    pool = ThreadPerCall()
    release = threading.Event()
    stuck = pool.for_attempt(1).submit(release.wait, 10)
    other = pool.for_attempt(2).submit(lambda: "ran")
    try:
        assert other.result(timeout=5) == "ran" and not stuck.done()
    finally:
        release.set()
    assert stuck.result(timeout=5) is True


def test_a_cancelled_waiting_attempt_never_runs_its_handler() -> None:
    pool = ThreadPerCall()
    release, ran = threading.Event(), []
    first = pool.for_attempt(7).submit(release.wait, 10)
    second = pool.for_attempt(7).submit(ran.append, "second")
    assert second.cancel(), "a waiting attempt's future is still pending, so its timeout can cancel it"
    third = pool.for_attempt(7).submit(ran.append, "third")
    release.set()
    assert first.result(timeout=5) is True
    third.result(timeout=5)
    assert ran == ["third"]
    deadline = time.monotonic() + 5
    while pool._last and time.monotonic() < deadline:  # the third thread forgets the chain as it ends
        time.sleep(0.01)
    assert pool._last == {}
