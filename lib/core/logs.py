"""Logging with the event id on every line of the request path and of the handler that runs it.

The id travels in a context variable, set by the receiver and by the worker, so a handler's own
`log.info(...)` lines carry it without being passed anything.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

current_event_id: ContextVar[int | None] = ContextVar("current_event_id", default=None)

log = logging.getLogger("handlers")
"""The logger for handler modules: `from lib import log; log.info("...")`."""

FORMAT = "%(asctime)s %(levelname)-7s %(name)s%(event)s: %(message)s"


class EventIdFilter(logging.Filter):
    """Adds ` [event N]` to records made while an event is being received or handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        event_id = current_event_id.get()
        record.event = f" [event {event_id}]" if event_id is not None else ""
        return True


def configure_logging(level: int | str = logging.INFO) -> None:
    """Log to stderr (what a Space shows in its Logs tab) unless the script configured logging."""
    root = logging.getLogger()
    if root.handlers:
        for handler in root.handlers:
            if not any(isinstance(f, EventIdFilter) for f in handler.filters):
                handler.addFilter(EventIdFilter())
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(EventIdFilter())
    root.addHandler(handler)
    root.setLevel(level)
