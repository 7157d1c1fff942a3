"""`from lib import log`: each handler's lines carry its own logger name, on the server as in tests.

One `log` object is shared by every handler module; the name comes from the handler that is
running (a context variable set around each call), so two handlers running at once, one on a
thread and one on the event loop, never take each other's name.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from test_worker import Gates, gates, payload, serving  # noqa: F401  (gates is a fixture)

from lib import WebhookPayload, log
from lib.core.logs import handler_logger_name
from lib.testing import run_handler

pytestmark = pytest.mark.anyio


async def test_lines_carry_the_running_handlers_name_on_the_server(
    tmp_path: Path,
    gates: Gates,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="handlers")

    def on_a_thread(payload: WebhookPayload) -> str:
        log.info("thread starts")
        gates.wait("thread may end")  # the async handler logs meanwhile
        log.info("thread ends")
        return "ok"

    async def on_the_loop(payload: WebhookPayload) -> str:
        log.info("loop logs")
        gates["thread may end"].set()
        return "ok"

    async with serving(tmp_path, {"on_a_thread": on_a_thread, "on_the_loop": on_the_loop}) as h:
        first = await h.post("on_a_thread", payload(repo="org/a"))
        await h.until(lambda: any(r.getMessage() == "thread starts" for r in caplog.records), "the thread to log")
        await h.post("on_the_loop", payload(repo="org/b"))
        await h.settled(first.json()["event_id"])

    lines = [(r.name, r.getMessage()) for r in caplog.records if r.name.startswith("handlers")]
    assert sorted(lines) == [
        ("handlers.on_a_thread", "thread ends"),
        ("handlers.on_a_thread", "thread starts"),
        ("handlers.on_the_loop", "loop logs"),
    ]


def test_a_module_handler_logs_under_its_module_name(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="handlers")
    file = tmp_path / "handlers" / "greeter.py"
    file.parent.mkdir()
    file.write_text("from lib import log\n\ndef handle(payload):\n    log.info('hello %s', payload.repo.name)\n")
    run_handler(file, "commit", repo="a/b")
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("handlers.greeter", "hello a/b")]
    assert (caplog.records[0].pathname, caplog.records[0].funcName) == (str(file), "handle")  # where it was logged


def test_outside_a_handler_log_is_the_handlers_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="handlers")
    log.info("at import")
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("handlers", "at import")]


def test_the_name_of_each_kind_of_handler() -> None:
    def my_hook() -> None: ...

    module_handler = type("F", (), {"__module__": "handlers.discussion_bot", "__name__": "handle"})
    assert handler_logger_name(module_handler) == "handlers.discussion_bot"
    assert handler_logger_name(my_hook) == "handlers.my_hook"


def test_log_still_offers_what_a_logger_has() -> None:
    handler = logging.NullHandler()
    log.addHandler(handler)
    try:
        assert handler in logging.getLogger("handlers").handlers and handler in log.handlers
    finally:
        log.removeHandler(handler)
    assert log.name == "handlers" and log.propagate is True
