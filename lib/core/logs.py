"""Logging with the event id on every line of the request path and of the handler that runs it.

The id travels in a context variable, set by the receiver and by the worker, so a handler's own
`log.info(...)` lines carry it without being passed anything.

Two more filters guard the log against what strangers send (`configure_logging` installs all three):

- `SafeLogFilter`: payload data can neither forge a log line nor make one huge. A log call's
  format string is ours; its arguments are data. So every argument that is not a number has its
  control characters escaped (a newline shows as `\\n`, ESC as `\\x1b`, NUL as `\\x00`) and is cut
  at `VALUE_LIMIT` characters, with a marker saying how many were cut. The one exception is an
  argument the format places at the start of a line of its own (`"failed:\\n%s"`, how the worker
  logs a traceback): it keeps its lines, cut at `BLOCK_LIMIT`. Then, for the whole message
  (and a traceback logged with `exc_info`), the remaining control characters are escaped, every
  line after the first is indented, so nothing inside a record can start a line that looks like
  a record of its own, and the message is cut at `MESSAGE_LIMIT`.
  Why one filter rather than a `safe(value)` helper at each call: it covers every line, including
  those of `lib/ui`, the worker and the journal, and a handler author's `log.info("%s", value)`,
  without anyone having to remember it. A handler author's own message text (an f-string) is not
  an argument, so it keeps its text, but still gets the escaping, indenting and the message cut:
  it can be long or multi-line, never a forged line.
- `RepeatFilter`: a line that repeats (the same message from the same place, e.g. one per refused
  request while the disk is full) is written at most `REPEAT_BURST` times per `REPEAT_INTERVAL`
  seconds; the next one written after that says how many were left out, as journald does.
"""

from __future__ import annotations

import functools
import logging
import numbers
import re
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

current_event_id: ContextVar[int | None] = ContextVar("current_event_id", default=None)

HANDLERS_LOGGER = "handlers"
current_handler_logger: ContextVar[str | None] = ContextVar("current_handler_logger", default=None)
"""The logger name of the handler running in this context; set around each call (`lib.worker.invoke`)."""


def handler_logger_name(func: Callable[..., Any]) -> str:
    """The logger a handler's lines go to: its module's (`handlers.discussion_bot`) for a file in
    handlers/, else `handlers.<function name>` (a function registered with `add_webhook`)."""
    module = getattr(func, "__module__", None) or ""
    if module.startswith(HANDLERS_LOGGER + "."):
        return module
    return f"{HANDLERS_LOGGER}.{getattr(func, '__name__', 'handler')}"


class HandlerLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """`from lib import log`: writes to the logger of the handler that is running.

    One object that every handler module imports, yet each line carries the name of the handler
    that logged it (`handlers.discussion_bot`), so the Logs tab and a log filter can tell them
    apart, and `logging.getLogger("handlers.discussion_bot").setLevel(...)` quiets one of them.
    Outside of a handler call (at import, in a helper thread of its own) it writes to `handlers`.
    """

    def __init__(self) -> None:
        self.extra = None

    @property
    def logger(self) -> logging.Logger:  # type: ignore[override]
        return logging.getLogger(current_handler_logger.get() or HANDLERS_LOGGER)

    def __getattr__(self, name: str) -> Any:
        """What else a `logging.Logger` has (`addHandler`, `handlers`, `propagate` ...), from the current one."""
        return getattr(self.logger, name)


log = HandlerLog()
"""The logger for handler modules: `from lib import log; log.info("...")`."""

FORMAT = "%(asctime)s %(levelname)-7s %(name)s%(event)s: %(message)s"

VALUE_LIMIT = 500
"""Characters kept of one argument (a repo name, a scope, an error message); a Hub repo name is under 100."""
BLOCK_LIMIT = 8000
"""Characters kept of an argument on lines of its own (a traceback): its start and, mostly, its end."""
MESSAGE_LIMIT = 16000
"""Characters kept of a whole message, whatever made it long."""
CONTINUATION = "    "
"""What starts every line of a record after its first."""
REPEAT_INTERVAL = 10.0
REPEAT_BURST = 5

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""Control characters (C0, DEL, C1), the Unicode line and paragraph separators, and the bidi overrides."""
_UNSAFE_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class EventIdFilter(logging.Filter):
    """Adds ` [event N]` to records made while an event is being received or handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        event_id = current_event_id.get()
        record.event = f" [event {event_id}]" if event_id is not None else ""
        return True


# --- escaping and cutting ----------------------------------------------------------------------


def _escape_char(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _escape(text: str, unsafe: re.Pattern[str]) -> str:
    return unsafe.sub(lambda match: _escape_char(match.group()), text)


def _cut_marker(count: int) -> str:
    return f"...[{count:,} more characters cut]"


def safe_value(value: object, *, limit: int = VALUE_LIMIT) -> str:
    """`value` as one line of at most `limit` characters (plus the cut marker): control characters escaped.

    Example:
        >>> safe_value("my-org/model\\n2026-01-01 ERROR forged\\x1b[31m")
        'my-org/model\\\\n2026-01-01 ERROR forged\\\\x1b[31m'
        >>> safe_value("x" * 1000, limit=5)
        'xxxxx...[995 more characters cut]'
    """
    text = value if isinstance(value, str) else str(value)
    head = text[:limit]
    escaped = _escape(head, _UNSAFE)
    if len(escaped) > limit:  # the escapes made it longer: keep whole escapes, up to the limit
        kept: list[str] = []
        used = 0
        for index, char in enumerate(head):
            piece = _escape_char(char) if _UNSAFE.match(char) else char
            if used + len(piece) > limit:
                return "".join(kept) + _cut_marker(len(text) - index)
            kept.append(piece)
            used += len(piece)
    if len(text) > limit:
        return escaped + _cut_marker(len(text) - limit)
    return escaped


def safe_block(text: str, *, limit: int = BLOCK_LIMIT) -> str:
    """Text that may span lines (a traceback): control characters but the newline escaped, its middle cut.

    The end is kept rather than the start alone: the end of a traceback says what went wrong.
    """
    if len(text) > limit:
        head = limit // 4
        text = text[:head] + "\n" + _cut_marker(len(text) - limit) + "\n" + text[-(limit - head) :]
    return _escape(text, _UNSAFE_BUT_NEWLINE)


def safe_text(text: str, *, limit: int = MESSAGE_LIMIT) -> str:
    """A whole message: control characters but the newline escaped, every line after the first
    indented (so none can pass for a record of its own), at most `limit` characters plus a marker."""
    made = _indent(_escape(text[:limit], _UNSAFE_BUT_NEWLINE))
    if len(made) > limit or len(text) > limit:
        return made[:limit] + f"...[cut: the message had {len(text):,} characters]"
    return made


def _indent(text: str) -> str:
    return text.replace("\n", "\n" + CONTINUATION) if "\n" in text else text


class _SafeArgument:
    """An argument that formats escaped and cut, with `%s` as with `%r`."""

    __slots__ = ("block", "value")

    def __init__(self, value: object, *, block: bool) -> None:
        self.value = value
        self.block = block

    def _safe(self, text: str) -> str:
        return safe_block(text) if self.block else safe_value(text)

    def __str__(self) -> str:
        return self._safe(str(self.value))

    def __repr__(self) -> str:
        return self._safe(repr(self.value))


_PLACEHOLDER = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[#0\- +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d+))?[hlL]?"
    r"(?P<type>[diouxXeEfFgGcrsa%])"
)
"""A %-format placeholder, as `str % args` reads them."""


@functools.lru_cache(maxsize=512)
def _block_arguments(msg: str) -> frozenset[int | str]:
    """Which arguments of a format string start a line of their own (index, or key for `%(key)s`)."""
    blocks: set[int | str] = set()
    index = 0
    for match in _PLACEHOLDER.finditer(msg):
        if match["type"] == "%":
            continue
        if match["key"] is not None:
            position: int | str = match["key"]
        else:
            index += (match["width"] == "*") + (match["precision"] == "*")
            position = index
            index += 1
        if match.start() > 0 and msg[match.start() - 1] == "\n":
            blocks.add(position)
    return frozenset(blocks)


def _safe_argument(value: object, *, block: bool) -> object:
    if value is None or isinstance(value, numbers.Number):  # `%d` and `%.1f` need the number itself
        return value
    return _SafeArgument(value, block=block)


def safe_message(record: logging.LogRecord) -> str:
    """The record's message with its arguments escaped and cut, then the whole escaped, indented and cut.

    Never raises (a filter's exception would reach the code that logged): a call whose arguments
    do not fit its format, or cannot be shown, is written with its format and the error.
    """
    template = record.msg if isinstance(record.msg, str) else None
    try:
        msg = template if template is not None else str(record.msg)
        args = record.args
        if args:
            blocks = _block_arguments(msg)
            if isinstance(args, Mapping):
                msg = msg % {key: _safe_argument(value, block=key in blocks) for key, value in args.items()}
            else:
                msg = msg % tuple(_safe_argument(value, block=i in blocks) for i, value in enumerate(args))
    except Exception as exc:
        shown = template if template is not None else f"<{type(record.msg).__name__}>"
        msg = f"{shown} (could not be formatted with its arguments: {type(exc).__name__})"
    return safe_text(msg)


class SafeLogFilter(logging.Filter):
    """Makes each record safe to write: see this module's docstring. The record itself is rewritten
    (its message formatted, its arguments dropped), so every handler after this one writes the safe text."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_made_safe", False):
            return True
        record.msg = safe_message(record)
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = safe_text(CONTINUATION + safe_block(self._formatter.formatException(record.exc_info)))
        if record.stack_info:
            record.stack_info = safe_text(CONTINUATION + safe_block(record.stack_info))
        record._made_safe = True
        return True


# --- repeated lines ----------------------------------------------------------------------------


@dataclass
class _Window:
    started: float
    written: int = 1
    left_out: int = 0


class RepeatLimiter:
    """At most `burst` lines per key in each window of `interval` seconds; counts the lines left out.

    Args:
        interval: the length of a window, in seconds.
        burst: how many lines of one key a window lets through.
        clock: where the time comes from (`time.monotonic`; tests pass their own).
        max_keys: how many keys to remember; the oldest are forgotten first.

    Example:
        >>> now = [0.0]
        >>> limiter = RepeatLimiter(interval=10, burst=1, clock=lambda: now[0])
        >>> limiter.admit("503"), limiter.admit("503"), limiter.admit("503")
        (0, None, None)
        >>> now[0] = 10.0
        >>> limiter.admit("503")  # written, and says 2 lines were left out before it
        2
    """

    def __init__(
        self,
        *,
        interval: float = REPEAT_INTERVAL,
        burst: int = REPEAT_BURST,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 1000,
    ) -> None:
        if interval <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("RepeatLimiter needs interval > 0, burst >= 1 and max_keys >= 1.")
        self.interval = interval
        self.burst = burst
        self.clock = clock
        self.max_keys = max_keys
        self._windows: dict[Hashable, _Window] = {}
        self._lock = threading.Lock()  # logging filters run on whichever thread logs

    def admit(self, key: Hashable) -> int | None:
        """None if this line must be left out; else how many lines of `key` were left out before it."""
        now = self.clock()
        with self._lock:
            window = self._windows.get(key)
            if window is None or now - window.started >= self.interval:
                left_out = window.left_out if window is not None else 0
                self._windows.pop(key, None)
                self._windows[key] = _Window(now)
                if len(self._windows) > self.max_keys:
                    del self._windows[next(iter(self._windows))]
                return left_out
            if window.written < self.burst:
                window.written += 1
                return 0
            window.left_out += 1
            return None

    def left_out_note(self, count: int) -> str:
        """What the line written after some were left out adds to its message."""
        return f" [{count:,} similar line{'s' if count != 1 else ''} left out before this one]"


class RepeatFilter(logging.Filter):
    """Leaves out the lines of `lib` that repeat too often (see `RepeatLimiter`).

    A line's key is `record.repeat_key` when the call gave one (`extra={"repeat_key": ...}`), else
    its logger, level and format string, whatever the arguments and the event: a line that repeats
    once per request while the disk is full is one key. DEBUG lines (asked for, one per delivery)
    and handler authors' lines (the `handlers` logger) are never left out.
    """

    def __init__(self, limiter: RepeatLimiter | None = None) -> None:
        super().__init__()
        self.limiter = limiter or RepeatLimiter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_made_safe", False):  # already let through by another handler's filter
            return True
        if record.levelno < logging.INFO or not (record.name == "lib" or record.name.startswith("lib.")):
            return True
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        key: Any = getattr(record, "repeat_key", None) or (record.name, record.levelno, template)
        try:
            left_out = self.limiter.admit(key)
        except TypeError:  # an unhashable repeat_key: never limited, rather than raising where it was logged
            return True
        if left_out is None:
            return False
        if left_out:
            record.msg = f"{record.msg}{self.limiter.left_out_note(left_out)}"  # the note has no %
        return True


def configure_logging(level: int | str = logging.INFO) -> None:
    """Log to stderr (what a Space shows in its Logs tab) unless the script configured logging.

    Either way, every handler of the root logger gets the event id, `SafeLogFilter` and `RepeatFilter`.
    """
    root = logging.getLogger()
    if root.handlers:
        for handler in root.handlers:
            _add_filters(handler)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    _add_filters(handler)
    root.addHandler(handler)
    root.setLevel(level)


def _add_filters(handler: logging.Handler) -> None:
    # In this order: a line left out costs no escaping, and the repeat key is the format string, before formatting.
    for kind in (EventIdFilter, RepeatFilter, SafeLogFilter):
        if not any(isinstance(existing, kind) for existing in handler.filters):
            handler.addFilter(kind())
