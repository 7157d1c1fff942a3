"""The console's time-range filter: a preset ("last hour") or a range typed in UTC, as Unix seconds.

The deliveries table and a bulk replay read the same filter, so an operator who narrows the table
to the hour of an outage replays exactly the events the table shows for it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ..core.errors import HubWebhooksError

RECENT = {"1h": 3600.0, "6h": 6 * 3600.0, "24h": 86400.0, "7d": 7 * 86400.0}
"""The presets: received within that long before now."""
RECEIVED_CHOICES = [
    ("Last hour", "1h"),
    ("Last 6 hours", "6h"),
    ("Last 24 hours", "24h"),
    ("Last 7 days", "7d"),
]
"""The filter's choices after "Any time"; a range may also be typed: `2026-11-30 14:00 to 2026-11-30 15:30`."""
RANGE_HELP = (
    "Type a range in UTC as `2026-11-30 14:00 to 2026-11-30 15:30` (either end may be left out: "
    "`2026-11-30 14:00 to`), or pick a preset."
)


class BadTimeRange(HubWebhooksError, ValueError):
    """A typed range the console cannot read; the message says the form it takes."""


def received_range(value: str | None, *, now: float) -> tuple[float | None, float | None]:
    """The filter as (received from, received until), Unix seconds; (None, None) for no filter.

    Raises:
        BadTimeRange: the text is neither a preset nor a range.
    """
    text = (value or "").strip()
    if not text:
        return None, None
    if text in RECENT:
        return now - RECENT[text], None
    start, separator, end = f" {text} ".partition(" to ")
    if not separator:
        raise BadTimeRange(f"{text!r} is not a time range. {RANGE_HELP}")
    received_from, received_until = _moment(start), _moment(end)
    if received_from is None and received_until is None:
        raise BadTimeRange(f"{text!r} has neither a start nor an end. {RANGE_HELP}")
    if received_from is not None and received_until is not None and received_until <= received_from:
        raise BadTimeRange(f"{text!r} ends before it starts. {RANGE_HELP}")
    return received_from, received_until


def _moment(text: str) -> float | None:
    """One end of a typed range (UTC unless it says otherwise); None when left out."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadTimeRange(f"{text!r} is not a date and time. {RANGE_HELP}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
