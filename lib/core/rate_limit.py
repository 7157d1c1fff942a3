"""`RATE_LIMIT` in a handler module: at most so many handler runs per second, minute, hour or day.

An operator throttles a handler whose work costs something per run (the Hub API rate-limits the
token, a paid service bills per call) without touching the handler itself:

    RATE_LIMIT = "30/minute"              # or "30 per minute", "5/s", "1000/day"
    RATE_LIMIT = RateLimit(30, per="minute")

It shapes when handlers *start*, never the acknowledgements: deliveries are still recorded and
answered at once, and the worker starts at most `runs` of them in any sliding `seconds` window
(`lib/worker/throttle.py`). A value that cannot mean a rate stops the app at start with the file
named and the forms it accepts: a typo must not quietly leave a handler unthrottled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError

PERIODS = {
    **dict.fromkeys(("second", "seconds", "sec", "secs", "s"), 1.0),
    **dict.fromkeys(("minute", "minutes", "min", "mins", "m"), 60.0),
    **dict.fromkeys(("hour", "hours", "h"), 3600.0),
    **dict.fromkeys(("day", "days", "d"), 86400.0),
}
"""The units a rate may be given in, and their length in seconds."""
_RATE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d+)?\s*([a-z]+)\s*$", re.IGNORECASE)
FORMS = '"30/minute", "30 per minute", "5/second", "1000/day", "10/5 minutes" or RateLimit(30, per="minute")'
"""What the start-up error offers."""


@dataclass(frozen=True)
class RateLimit:
    """At most `runs` handler starts in any window of `seconds`.

    Example:
        ```python
        from lib import RateLimit

        RATE_LIMIT = RateLimit(30, per="minute")  # the same as RATE_LIMIT = "30/minute"
        ```
    """

    runs: int
    per: str | float = "minute"
    """A unit (`"second"`, `"minute"`, `"hour"`, `"day"`) or a number of seconds."""

    def __post_init__(self) -> None:
        if isinstance(self.runs, bool) or not isinstance(self.runs, int) or self.runs < 1:
            raise ConfigurationError(f"RateLimit: runs must be a whole number of at least 1, got {self.runs!r}.")
        if self.seconds <= 0:
            raise ConfigurationError(f"RateLimit: the period must be longer than 0 s, got {self.per!r}.")

    @property
    def seconds(self) -> float:
        """The window's length in seconds."""
        if isinstance(self.per, bool):
            raise ConfigurationError(f"RateLimit: per must be a unit or a number of seconds, got {self.per!r}.")
        if isinstance(self.per, int | float):
            return float(self.per)
        unit = PERIODS.get(str(self.per).strip().lower())
        if unit is None:
            raise ConfigurationError(
                f"RateLimit: per={self.per!r} is not a unit; use second, minute, hour or day (or seconds as a number)."
            )
        return unit

    def __str__(self) -> str:
        for name in ("second", "minute", "hour", "day"):
            if self.seconds == PERIODS[name]:
                return f"{self.runs}/{name}"
        return f"{self.runs} per {self.seconds:g} s"


def parse_rate_limit(value: Any, *, where: str) -> RateLimit:
    """A module's `RATE_LIMIT` (text or `RateLimit`) as a `RateLimit`.

    Raises:
        ConfigurationError: the value is not a rate; the message names `where` and the accepted forms.
    """
    if isinstance(value, RateLimit):
        return value
    if isinstance(value, str):
        match = _RATE.match(value)
        if match:
            runs, count, unit = int(match[1]), int(match[2] or 1), match[3].lower()
            period = PERIODS.get(unit)
            if period is not None and runs >= 1 and count >= 1:
                return RateLimit(runs, per=period * count)
    raise ConfigurationError(f"{where}: RATE_LIMIT = {value!r} is not a rate. Write it as {FORMS}.")


def declared_rate_limit(module: Any, where: str) -> RateLimit | None:
    """The module's `RATE_LIMIT`, or None when it declares none (its handler runs as fast as slots allow)."""
    value = getattr(module, "RATE_LIMIT", None)
    return None if value is None else parse_rate_limit(value, where=where)
