"""Alerts that reach the owner: problems found in the journal, sent once each, retried until taken.

A task of its own checks the conditions (`alert_rules.py`) every `WEBHOOK_ALERT_CHECK_SECONDS`,
and at once when an event goes dead. A problem is sent when it starts (`raise`), when it grows
(`update`: more dead events) and when it ends (`recover`), to every target (`alert_targets.py`);
never again while it simply goes on. At most `WEBHOOK_ALERT_MAX_PER_HOUR` problems are raised or
updated per hour: the others wait, counted, and are sent once the hour allows (a recovery always
follows the alert it ends). A message a target does not take is kept (`alert_store.py`, across
restarts) and tried again with backoff; the console and `/metrics` show a failing target.

Nothing here runs on a delivery's path: the worker and the request path only call `poke` and
`journal_refused`, which note something and return.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric

from ..core.errors import AlertTargetError, JournalUnavailable
from ..core.settings import Settings
from ..journal import Journal, JournalSnapshot, JournalStats
from .alert_rules import Problem, find_problems
from .alert_store import AlertState, AlertStore, Message, OpenProblem, TargetStatus

logger = logging.getLogger(__name__)

HOUR = 3600.0
DAY = 86400.0
SNAPSHOT_KINDS = frozenset({"dead", "queue_age", "hub_budget"})
"""Problems read from the journal's snapshot: while it cannot be read, they are neither raised nor recovered."""


class AlertTarget(Protocol):
    name: str

    async def send(self, message: Message, discussions: dict[str, int]) -> None: ...


@dataclass(frozen=True)
class TargetView:
    """One target as the console shows it."""

    name: str
    waiting: int
    last_ok: float | None
    last_error: str | None
    last_error_at: float | None


@dataclass(frozen=True)
class AlertsView:
    """The alerts as the console shows them: open problems, each target, what the hourly limit holds back."""

    open: list[tuple[str, float]]
    targets: list[TargetView]
    held_back: int


class Alerts:
    """Checks the alert conditions and sends what changed to the targets.

    Args:
        settings: the thresholds (`settings.ops`) and the Space's id, named in each alert.
        store: where the state is kept across restarts.
        targets: where alerts go; none is allowed (problems are still tracked, and shown).
    """

    def __init__(self, settings: Settings, store: AlertStore, targets: list[AlertTarget]) -> None:
        self.settings = settings
        self.ops = settings.ops
        self.store = store
        self.targets = targets
        self.state: AlertState = store.load()
        names = {target.name for target in targets}
        self.state.outbox = [message for message in self.state.outbox if message.target in names]  # unset since
        self._journal: Callable[[], Journal] | None = None
        self._endpoints: Callable[[], Iterable[str]] = list
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._refused: str | None = None
        """Why the journal refused a delivery (a 503) if none was recorded since: the Hub retries, and a
        problem that ended with every quiet check would be raised again with each retry."""

    # --- the hooks (never wait) ------------------------------------------------------------------

    def poke(self) -> None:
        """Check now rather than at the next interval (an event just went dead)."""
        self._wake.set()

    def journal_refused(self, message: str) -> None:
        """A delivery was answered 503: the journal could not record it. A problem until one is recorded."""
        if self._refused is None:
            self._refused = message
            self._wake.set()

    def journal_recorded(self) -> None:
        """A delivery was recorded: the journal takes deliveries again."""
        self._refused = None

    # --- running ---------------------------------------------------------------------------------

    async def start(self, journal: Callable[[], Journal], endpoints: Callable[[], Iterable[str]]) -> None:
        self._journal, self._endpoints = journal, endpoints
        self._task = asyncio.create_task(self._run(), name="alerts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.store.save(self.state)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                if await self._leads():
                    await self.check()
                    await self.deliver()
            except Exception:  # a bug here must never stop the alerts for good
                logger.exception("The alert check failed; trying again at the next one.")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._seconds_to_wait())

    async def _leads(self) -> bool:
        """Whether this replica sends the alerts: the one its journal elects, so that replicas sharing a
        journal do not each send the same ones."""
        journal = self._journal() if self._journal is not None else None
        return journal is None or await journal.leads()

    def _seconds_to_wait(self) -> float:
        """Until the next check, or sooner if a target's first waiting message is due before it."""
        heads = {}
        for message in self.state.outbox:
            heads.setdefault(message.target, message.next_try)  # the rest of a target's queue waits behind it
        until_retry = min(heads.values()) - time.time() if heads else self.ops.check_seconds
        return max(0.05, min(self.ops.check_seconds, until_retry))

    # --- checking --------------------------------------------------------------------------------

    async def check(self, now: float | None = None) -> None:
        """Find the problems going on and queue a message for each change."""
        now = time.time() if now is None else now
        snapshot, window, error = await self._read_journal(now)
        error = error or self._refused
        problems = find_problems(
            snapshot=snapshot, window=window, journal_error=error, endpoints=list(self._endpoints()), settings=self.ops
        )
        for key, problem in problems.items():
            self._going_on(key, problem, now)
        for key, known in list(self.state.open.items()):
            readable = (known.kind not in SNAPSHOT_KINDS or snapshot is not None) and (
                known.kind != "failure_rate" or window is not None
            )
            if key not in problems and readable:
                del self.state.open[key]
                if known.notified:
                    self._queue("recover", key, known.title, _recovery_text(known, now), now)
        self.store.save(self.state)

    async def _read_journal(self, now: float) -> tuple[JournalSnapshot | None, JournalStats | None, str | None]:
        journal = self._journal() if self._journal is not None else None
        if journal is None:
            return None, None, None
        try:
            snapshot = await journal.snapshot(since=now - DAY)
            window = await journal.stats(since=now - self.ops.failure_window_seconds)
        except JournalUnavailable as exc:
            return None, None, exc.message
        return snapshot, window, None

    def _going_on(self, key: str, problem: Problem, now: float) -> None:
        known = self.state.open.get(key)
        if known is None:
            known = OpenProblem(problem.kind, problem.title, problem.detail, since=now, level=problem.level)
            self.state.open[key] = known
        known.detail = problem.detail
        if not known.notified:
            if self._may_send(now, known, key):
                known.notified, known.level = True, problem.level
                self._queue("raise", key, problem.title, self._text("🔴", problem), now)
        elif problem.level > known.level:
            if self._may_send(now, known, key):
                known.level = problem.level
                self._queue("update", key, problem.title, self._text("🔴", problem, update=True), now)
        else:
            known.level = problem.level  # fewer dead events (some replayed): a later rise is news again

    def _may_send(self, now: float, known: OpenProblem, key: str) -> bool:
        """The hourly limit: whether one more problem may be raised or updated now."""
        self.state.raised_at = [at for at in self.state.raised_at if now - at < HOUR]
        if len(self.state.raised_at) >= self.ops.max_per_hour:
            if known.held:
                return False
            known.held = True
            self.state.held_back += 1
            logger.warning(
                "Alert held back by WEBHOOK_ALERT_MAX_PER_HOUR=%d: %s",
                self.ops.max_per_hour,
                key,
                extra={"repeat_key": ("alert held back",)},
            )
            return False
        self.state.raised_at.append(now)
        known.held = False
        return True

    def _text(self, mark: str, problem: Problem, *, update: bool = False) -> str:
        where = f" on the Space {self.settings.space_id}" if self.settings.space_id else ""
        text = f"{mark} {problem.title}{' (still going on, worse)' if update else ''}{where}\n{problem.detail}"
        if self.state.held_back:
            text += (
                f"\n({self.state.held_back} other alert(s) were held back by WEBHOOK_ALERT_MAX_PER_HOUR="
                f"{self.ops.max_per_hour}; the console's Health tab lists the open problems.)"
            )
            self.state.held_back = 0
        return text

    def _queue(self, action: str, key: str, title: str, text: str, now: float) -> None:
        logger.log(logging.INFO if action == "recover" else logging.WARNING, "Alert (%s): %s", action, title)
        self.state.history.append({"at": now, "action": action, "key": key, "title": title})
        for target in self.targets:
            self.state.enqueue(Message(target=target.name, action=action, key=key, title=title, text=text, created=now))

    # --- delivering ------------------------------------------------------------------------------

    async def deliver(self, now: float | None = None) -> None:
        """Send what waits, in order per target; a target that fails keeps the rest for its next try."""
        now = time.time() if now is None else now
        for target in self.targets:
            status = self.state.targets.setdefault(target.name, TargetStatus())
            for message in [m for m in self.state.outbox if m.target == target.name]:
                if message.next_try > now:
                    break
                try:
                    await target.send(message, self.state.discussions)
                except AlertTargetError as exc:
                    self._failed(message, status, exc.message, now)
                    break
                except Exception as exc:  # an unexpected error of a client library: kept and retried as well
                    self._failed(message, status, f"{type(exc).__name__}: {exc}", now)
                    break
                self.state.outbox.remove(message)
                status.last_ok = now
                self.store.save(self.state)  # at once: a crash now must not send it a second time
        self.store.save(self.state)

    def _failed(self, message: Message, status: TargetStatus, error: str, now: float) -> None:
        message.tries += 1
        message.last_error = error
        message.next_try = now + min(self.ops.retry_max_seconds, self.ops.check_seconds * 2 ** (message.tries - 1))
        status.last_error, status.last_error_at = error, now
        logger.warning(
            "The alert target %s did not take an alert (try %d; retried in %.0f s): %s",
            message.target,
            message.tries,
            message.next_try - now,
            error,
            extra={"repeat_key": ("alert target failed", message.target)},
        )

    # --- what the console and /metrics show ------------------------------------------------------

    def view(self) -> AlertsView:
        state = self.state
        targets = []
        for target in self.targets:
            status = state.targets.get(target.name, TargetStatus())
            waiting = sum(1 for message in state.outbox if message.target == target.name)
            targets.append(TargetView(target.name, waiting, status.last_ok, status.last_error, status.last_error_at))
        return AlertsView(
            open=[(problem.title, problem.since) for problem in state.open.values()],
            targets=targets,
            held_back=state.held_back,
        )

    def metrics(self) -> Iterator[Metric]:
        problems = GaugeMetricFamily(
            "hub_webhooks_alerts_open", "Problems alerted and not yet recovered.", labels=["kind"]
        )
        kinds: dict[str, int] = {}
        for problem in self.state.open.values():
            kinds[problem.kind] = kinds.get(problem.kind, 0) + 1
        for kind, count in sorted(kinds.items()):
            problems.add_metric([kind], count)
        yield problems
        waiting = GaugeMetricFamily(
            "hub_webhooks_alert_messages_waiting",
            "Alert messages a target has not taken yet (retried with backoff).",
            labels=["target"],
        )
        for view in self.view().targets:
            waiting.add_metric([view.name], view.waiting)
        yield waiting


def _recovery_text(known: OpenProblem, now: float) -> str:
    minutes = (now - known.since) / 60
    return f"✅ Recovered: {known.title}\nIt went on for {minutes:.0f} min."
