"""Unit tests of lib.core.logs: payload data cannot forge or bloat a log line, and repeats are limited.

Each test logs through a handler of its own with the filters `configure_logging` installs, so
what is checked is the text a Space's log would show. The end-to-end counterparts (a real app
process fed hostile payloads, a full journal) are in test_hardening.py.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator

import pytest

from lib.core.logs import (
    CONTINUATION,
    FORMAT,
    MESSAGE_LIMIT,
    VALUE_LIMIT,
    RepeatFilter,
    RepeatLimiter,
    _add_filters,
    current_event_id,
    safe_value,
)

FORGED = "my-org/model\n2026-11-30 12:00:00,000 ERROR   lib.receiver.server: forged"


class Log:
    """A `lib.*` logger writing to a string through the filters `configure_logging` installs."""

    def __init__(self, clock: list[float] | None = None) -> None:
        self.stream = io.StringIO()
        handler = logging.StreamHandler(self.stream)
        handler.setFormatter(logging.Formatter(FORMAT))
        if clock is not None:
            handler.addFilter(RepeatFilter(RepeatLimiter(interval=10, burst=2, clock=lambda: clock[0])))
        _add_filters(handler)
        self.logger = logging.getLogger(f"lib.tests.{uuid.uuid4().hex}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(handler)

    @property
    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()


@pytest.fixture
def log() -> Iterator[Log]:
    yield Log()


# --- escaping ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\r\\nb"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("nul\x00", "nul\\x00"),
        ("tab\there", "tab\\there"),
        ("del\x7f c1\x85", "del\\x7f c1\\x85"),
        ("line\u2028separator", "line\\u2028separator"),
        ("bidi\u202eoverride", "bidi\\u202eoverride"),
        ("plain ascii, émoji 🪝 and ü", "plain ascii, émoji 🪝 and ü"),
    ],
)
def test_control_characters_are_escaped(raw: str, shown: str) -> None:
    assert safe_value(raw) == shown


def test_a_long_value_is_cut_with_a_marker_saying_how_much() -> None:
    assert safe_value("x" * 900_000) == "x" * VALUE_LIMIT + f"...[{900_000 - VALUE_LIMIT:,} more characters cut]"


def test_escapes_count_towards_the_limit_and_are_never_split() -> None:
    shown = safe_value("\x00" * 1000, limit=10)
    assert shown == "\\x00\\x00...[998 more characters cut]"


def test_a_payload_argument_stays_on_one_line(log: Log) -> None:
    log.logger.info("%s on %s: %s", "repo.content/update", FORGED, "new")

    assert len(log.lines) == 1
    assert "my-org/model\\n2026-11-30 12:00:00,000 ERROR   lib.receiver.server: forged: new" in log.lines[0]


def test_ansi_escapes_and_nul_are_never_written_raw(log: Log) -> None:
    log.logger.warning("repo %r scope %s", "\x1b[31mred", "repo\x00.content")

    text = log.stream.getvalue()
    assert "\x1b" not in text and "\x00" not in text
    assert "repo '\\x1b[31mred' scope repo\\x00.content" in text


def test_a_900_kb_value_makes_a_short_line(log: Log) -> None:
    log.logger.info("Skipped: %s.", "evil/" + "x" * 900_000)

    (line,) = log.lines
    assert len(line) < VALUE_LIMIT + 200
    assert "more characters cut]" in line


def test_numbers_keep_their_formats(log: Log) -> None:
    log.logger.info("%d events in %.1f ms (%s)", 3, 1.234, None)
    assert log.lines[0].endswith(": 3 events in 1.2 ms (None)")


def test_mapping_arguments_are_escaped_too(log: Log) -> None:
    log.logger.info("%(repo)s at %(n)d", {"repo": FORGED, "n": 7})
    assert len(log.lines) == 1 and log.lines[0].endswith("forged at 7")


def test_an_argument_on_lines_of_its_own_keeps_them_indented(log: Log) -> None:
    """How the worker logs a handler's traceback: the lines stay, none can pass for a record."""
    traceback = "Traceback (most recent call last):\n  File 'x.py'\nValueError: bad repo " + FORGED
    log.logger.warning("Attempt %d/%d failed:\n%s", 1, 5, traceback)

    first, *rest = log.lines
    assert first.endswith("Attempt 1/5 failed:")
    assert rest == [
        CONTINUATION + "Traceback (most recent call last):",
        CONTINUATION + "  File 'x.py'",
        CONTINUATION + "ValueError: bad repo my-org/model",
        CONTINUATION + "2026-11-30 12:00:00,000 ERROR   lib.receiver.server: forged",
    ]


def test_a_message_written_by_hand_keeps_its_text_but_cannot_forge_a_line(log: Log) -> None:
    """A handler author's f-string is not an argument: escaped and indented, not cut at VALUE_LIMIT."""
    log.logger.info(f"rebuilding {FORGED} \x1b[2J {'y' * 1000}")

    first, second = log.lines
    assert first.endswith("rebuilding my-org/model")
    assert second.startswith(CONTINUATION + "2026-11-30") and "\\x1b[2J " + "y" * 1000 in second


def test_a_huge_message_written_by_hand_is_cut(log: Log) -> None:
    log.logger.info("x" * 900_000)
    (line,) = log.lines
    assert MESSAGE_LIMIT < len(line) < MESSAGE_LIMIT + 200
    assert line.endswith("...[cut: the message had 900,000 characters]")


def test_a_logged_exception_is_escaped_and_indented(log: Log) -> None:
    try:
        raise ValueError(FORGED + "\x1b[31m")
    except ValueError:
        log.logger.exception("The handler failed")

    assert log.lines[0].endswith("The handler failed")
    assert all(line.startswith(CONTINUATION) for line in log.lines[1:])
    assert "\x1b" not in log.stream.getvalue()


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")

    __repr__ = __str__


@pytest.mark.parametrize(
    ("msg", "args", "error"),
    [("%s and %s", (FORGED,), "TypeError"), ("%s", (Unprintable(),), "RuntimeError"), ("%d", ("x",), "TypeError")],
)
def test_a_call_that_cannot_be_formatted_is_logged_not_raised(log: Log, msg: str, args: tuple, error: str) -> None:
    log.logger.info(msg, *args)
    (line,) = log.lines
    assert line.endswith(f": {msg} (could not be formatted with its arguments: {error})")


def test_an_unhashable_repeat_key_is_not_limited_and_does_not_raise(log: Log) -> None:
    log.logger.info("x", extra={"repeat_key": ["a", "list"]})
    assert len(log.lines) == 1


def test_the_event_id_is_still_added(log: Log) -> None:
    token = current_event_id.set(42)
    try:
        log.logger.info("hello %s", "world")
    finally:
        current_event_id.reset(token)
    assert "[event 42]: hello world" in log.lines[0]


# --- repeated lines ----------------------------------------------------------------------------


def test_the_limiter_lets_a_burst_through_then_counts() -> None:
    now = [100.0]
    limiter = RepeatLimiter(interval=10, burst=3, clock=lambda: now[0])

    assert [limiter.admit("503") for _ in range(10)] == [0, 0, 0, None, None, None, None, None, None, None]
    now[0] = 109.9
    assert limiter.admit("503") is None
    now[0] = 110.0
    assert limiter.admit("503") == 8  # the first line of the next window reports what was left out
    assert limiter.admit("503") == 0


def test_keys_are_limited_apart() -> None:
    now = [0.0]
    limiter = RepeatLimiter(interval=10, burst=1, clock=lambda: now[0])
    assert limiter.admit(("answered", 503)) == 0
    assert limiter.admit(("answered", 503)) is None
    assert limiter.admit(("answered", 401)) == 0


def test_a_quiet_key_reports_its_count_whenever_it_comes_back() -> None:
    now = [0.0]
    limiter = RepeatLimiter(interval=10, burst=1, clock=lambda: now[0])
    limiter.admit("k")
    limiter.admit("k")
    now[0] = 3600.0
    assert limiter.admit("k") == 1


def test_the_limiter_forgets_the_oldest_keys_beyond_its_size() -> None:
    limiter = RepeatLimiter(interval=10, burst=1, clock=lambda: 0.0, max_keys=3)
    for key in "abcd":
        limiter.admit(key)
    assert limiter.admit("a") == 0  # forgotten, so new again
    assert limiter.admit("d") is None


@pytest.mark.parametrize("arguments", [{"interval": 0}, {"burst": 0}, {"max_keys": 0}])
def test_the_limiter_refuses_settings_that_cannot_work(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RepeatLimiter(**arguments)  # type: ignore[arg-type]


def test_repeated_lines_are_left_out_and_counted_on_the_next_one() -> None:
    clock = [0.0]
    log = Log(clock)
    for number in range(50):
        log.logger.info("POST /webhooks/x answered %d: full (%d)", 503, number)
    clock[0] = 10.0
    log.logger.info("POST /webhooks/x answered %d: full (%d)", 503, 50)

    assert [line.split(": ", 1)[1] for line in log.lines] == [
        "POST /webhooks/x answered 503: full (0)",
        "POST /webhooks/x answered 503: full (1)",
        "POST /webhooks/x answered 503: full (50) [48 similar lines left out before this one]",
    ]


def test_a_repeat_key_keeps_kinds_apart_under_one_format() -> None:
    log = Log([0.0])
    for status in [401] * 20 + [503]:
        log.logger.info("answered %d", status, extra={"repeat_key": ("answered", status)})
    assert [line.rsplit(" ", 1)[1] for line in log.lines] == ["401", "401", "503"]


def test_debug_lines_and_handler_lines_are_never_left_out() -> None:
    log = Log([0.0])
    handlers = logging.getLogger("handlers")
    level = handlers.level
    handlers.addHandler(log.logger.handlers[0])
    handlers.setLevel(logging.INFO)
    try:
        for number in range(10):
            log.logger.debug("acknowledged %d", number)
            handlers.info("handled %d", number)
    finally:
        handlers.removeHandler(log.logger.handlers[0])
        handlers.setLevel(level)
    assert len(log.lines) == 20
