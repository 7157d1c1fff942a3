"""What the alerts remember across restarts: open problems, each problem's discussion, messages not delivered yet.

One small JSON file beside the journal (`<DATA_DIR>/alerts.json`), written whole and renamed into
place, so a crash leaves the old file or the new one, never half of one. Not in the journal on
purpose: "the journal is unavailable" is one of the alerts, and must be remembered and sent while
the journal cannot be written. With a shared database journal, each replica keeps its own file;
the discussions stay one per problem because a problem's discussion is also found by its title.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

ALERTS_FILE = "alerts.json"
MAX_OUTBOX = 100
"""Messages kept per target while it fails; past it the oldest go (with a WARNING), never the memory."""
MAX_HISTORY = 50


@dataclass
class OpenProblem:
    """A problem raised and not yet recovered."""

    kind: str
    title: str
    detail: str
    since: float
    level: int = 0
    notified: bool = False
    """Whether its alert went out (False while the hourly limit holds it back)."""
    held: bool = False
    """Whether the hourly limit held its alert back (counted once in `held_back`)."""


@dataclass
class Message:
    """One alert for one target, kept until the target took it."""

    target: str
    action: str
    """`raise`, `update` or `recover`."""
    key: str
    title: str
    text: str
    created: float
    tries: int = 0
    next_try: float = 0.0
    last_error: str | None = None


@dataclass
class TargetStatus:
    """How a target has been doing, for the console and the metrics."""

    last_ok: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None


@dataclass
class AlertState:
    """Everything the alerts remember."""

    open: dict[str, OpenProblem] = field(default_factory=dict)
    discussions: dict[str, int] = field(default_factory=dict)
    """Each problem's discussion number on the Space's repo, kept after it recovers: it is reopened."""
    outbox: list[Message] = field(default_factory=list)
    raised_at: list[float] = field(default_factory=list)
    """When alerts went out in the last hour (the hourly limit)."""
    held_back: int = 0
    """Alerts the hourly limit held back since the last one sent."""
    targets: dict[str, TargetStatus] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    def enqueue(self, message: Message) -> None:
        self.outbox.append(message)
        mine = [m for m in self.outbox if m.target == message.target]
        if len(mine) > MAX_OUTBOX:
            self.outbox.remove(mine[0])
            logger.warning(
                "The alert target %s has failed for long: its oldest waiting alert is dropped.", message.target
            )


class AlertStore:
    """Loads and saves the `AlertState` in one JSON file."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / ALERTS_FILE
        self._saved: str | None = None

    def load(self) -> AlertState:
        try:
            raw = json.loads(self.path.read_text())
            return AlertState(
                open={key: OpenProblem(**value) for key, value in raw.get("open", {}).items()},
                discussions={key: int(num) for key, num in raw.get("discussions", {}).items()},
                outbox=[Message(**value) for value in raw.get("outbox", [])],
                raised_at=[float(t) for t in raw.get("raised_at", [])],
                held_back=int(raw.get("held_back", 0)),
                targets={key: TargetStatus(**value) for key, value in raw.get("targets", {}).items()},
                history=list(raw.get("history", []))[-MAX_HISTORY:],
            )
        except FileNotFoundError:
            return AlertState()
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            logger.warning("%s cannot be read (%s); alerts start from a clean state.", self.path, exc)
            return AlertState()

    def save(self, state: AlertState) -> None:
        """Write the state whole, then rename it into place; a failure is logged, never raised (a full disk)."""
        state.history = state.history[-MAX_HISTORY:]
        text = json.dumps(asdict(state))
        if text == self._saved:  # most checks change nothing: no write
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(text)
            os.replace(temporary, self.path)
            self._saved = text
        except OSError as exc:
            logger.warning("Could not save the alert state to %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                temporary.unlink()
