"""The operator console: is my webhook working, and if not, why? Then fix, and re-run.

A tab of the landing page, locked until the visitor proves to be the operator (`lib.access`).
Once unlocked it shows the deliveries as they arrive (what came in, what each handler did,
each attempt's result or traceback), replays one event or every dead event of an endpoint
after a fix, sends sample events through the real endpoint, summarises health against the
Hub's limits, and registers the Space's webhooks on the Hub.

Two layers. `Console` holds the backend: every public method takes the session's grant first
and raises `ConsoleLocked` without one, because each Gradio event listener is an HTTP API anyone
can call. `build_console` lays out the tab and wires the listeners to those methods. Nothing
here runs on the event loop for long: reads are plain functions (Gradio runs them in its thread
pool), and the async actions push their journal writes to a thread and only notify the worker
from the loop, where it lives.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import gradio as gr
import httpx
import pandas as pd

from . import hub_registration
from .access import NO_SECRET_MESSAGE, AccessControl, AccessDenied, Grant, client_keys, is_granted
from .errors import WebhookError
from .journal import EventRecord, EventState, JournalStats

if TYPE_CHECKING:
    from .server import WebhooksServer

logger = logging.getLogger(__name__)

LOCKED_MESSAGE = "The console is locked: unlock it with the webhook secret first."
HUB_DAILY_LIMIT = 1000
"""Triggers per webhook per 24 h on a free account (the Hub's documented limit)."""
DELIVERIES_LIMIT = 100
"""Rows the deliveries table shows: enough to browse (filters narrow it), bounded so a refresh stays cheap."""
REFRESH_SECONDS = 5.0
HEALTH_REFRESH_SECONDS = 30.0
ALL = "All"
STATE_LABELS = {
    EventState.QUEUED: "⏳ queued",
    EventState.RUNNING: "▶️ running",
    EventState.SUCCEEDED: "✅ succeeded",
    EventState.SKIPPED: "⏭️ skipped",
    EventState.DUPLICATE: "🔂 duplicate",
    EventState.FAILED: "🔁 failed",
    EventState.DEAD: "💀 dead",
}
STATE_COLORS = {
    "succeeded": "#16a34a",
    "skipped": "#94a3b8",
    "duplicate": "#a78bfa",
    "queued": "#60a5fa",
    "running": "#2563eb",
    "failed": "#f59e0b",
    "dead": "#dc2626",
}
DELIVERY_COLUMNS = ["#", "Time (UTC)", "State", "Endpoint", "Event", "Repo", "Tries", "Ack ms", "Run ms", "Test"]
HUB_COLUMNS = ["URL", "Watches", "Domains", "Status", "Secret", "Id"]
SCOPES = ["repo", "repo.content", "repo.config", "discussion", "discussion.comment"]
_REPO_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")

CSS = """
#console-summary { border-radius: 6px; }
.verdict-ok { border-left: 4px solid #16a34a; padding: 0.5em 1em; background: rgba(22,163,74,0.08); }
.verdict-warn { border-left: 4px solid #d97706; padding: 0.5em 1em; background: rgba(217,119,6,0.10); }
.verdict-bad { border-left: 4px solid #dc2626; padding: 0.5em 1em; background: rgba(220,38,38,0.08); }
.verdict-idle { border-left: 4px solid #64748b; padding: 0.5em 1em; background: rgba(100,116,139,0.08); }
#console-lock { max-width: 560px; }
.console-bar { align-items: center; }
.usage p { margin: 0 0 0.5em 0; }
.usage-row { display: grid; grid-template-columns: minmax(6em, max-content) 1fr max-content; gap: 0.75em;
  align-items: center; margin: 0.3em 0; }
.usage-bar { height: 0.8em; border-radius: 0.4em; background: rgba(100,116,139,0.18); overflow: hidden; }
.usage-bar > div { height: 100%; border-radius: 0.4em; }
.usage-ok { background: #16a34a; } .usage-warn { background: #d97706; } .usage-bad { background: #dc2626; }
#health-table table { width: 100%; }
"""


class ConsoleLocked(gr.Error):
    """A console function was called without a valid grant (stranger, expired, forged)."""

    def __init__(self) -> None:
        super().__init__(LOCKED_MESSAGE, print_exception=False)


def require(grant: object) -> Grant:
    """The grant, if it is one and unexpired; else `ConsoleLocked`. First line of every console function."""
    if not is_granted(grant):
        raise ConsoleLocked()
    return grant  # type: ignore[return-value]


# --- formatting -------------------------------------------------------------------------------


def when(timestamp: float | None, *, now: float | None = None) -> str:
    """Compact UTC time: `14:02:11` today, `11-03 14:02` before."""
    if timestamp is None:
        return ""
    moment = datetime.fromtimestamp(timestamp, UTC)
    today = datetime.fromtimestamp(time.time() if now is None else now, UTC).date()
    return moment.strftime("%H:%M:%S" if moment.date() == today else "%m-%d %H:%M")


def ago(timestamp: float, *, now: float | None = None) -> str:
    seconds = max(0.0, (time.time() if now is None else now) - timestamp)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _endpoint_name(path: str) -> str:
    return path.removeprefix("/webhooks/")


def _last_line(error: str | None) -> str:
    lines = [line for line in (error or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _code(text: str) -> str:
    """Inline code that survives backticks in the text."""
    return "`` " + text.replace("`", "ˋ") + " ``"


def _fenced(text: str, language: str = "text") -> str:
    return f"````{language}\n{text.replace('````', 'ˋˋˋˋ')}\n````"


_RUNNER_FRAMES = ("/lib/worker.py", "/lib/invoke.py", "/asyncio/", "/concurrent/futures/", "/anyio/")
_FRAME = re.compile(r'^  File "(?P<file>[^"]+)", line \d+')


def readable_traceback(text: str, *, root: str | None = None) -> str:
    """The traceback without the frames of the machinery that called the handler (worker, asyncio).

    What is left starts at the handler's own code, which is where the fix goes; paths are shown
    relative to the app's folder (`handlers/x.py`, as in the repository).
    """
    kept: list[str] = []
    hidden = 0
    skipping = False
    for line in text.splitlines():
        frame = _FRAME.match(line)
        if frame:
            skipping = any(part in frame.group("file") for part in _RUNNER_FRAMES)
            hidden += skipping
        elif not line.startswith("    "):
            skipping = False
        if not skipping:
            kept.append(line)
    if hidden:
        kept.append(f"({hidden} frame(s) of the webhook runner hidden)")
    prefix = (root if root is not None else os.getcwd()).rstrip("/") + "/"
    return "\n".join(kept).replace(f'File "{prefix}', 'File "')


def deliveries_frame(events: list[EventRecord], *, now: float | None = None) -> pd.DataFrame:
    rows = [
        [
            event.id,
            when(event.received_at, now=now),
            STATE_LABELS.get(event.state, str(event.state)),
            _endpoint_name(event.endpoint),
            f"{event.scope}/{event.action}",
            event.repo_name,
            event.attempts,
            _ms(event.ack_ms),
            _ms(event.handler_ms),
            "🧪 test" if event.is_test else "",
        ]
        for event in events
    ]
    return pd.DataFrame(rows, columns=DELIVERY_COLUMNS)


def pretty_body(body: bytes) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except (ValueError, UnicodeDecodeError):
        return body.decode("utf-8", "replace")


# --- what the console computes ----------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The one-paragraph answer to "is my webhook working?"."""

    markdown: str
    level: str
    """ok, warn, bad or idle: picks the colour."""
    dead: int = 0


@dataclass(frozen=True)
class EventDetail:
    title: str
    payload: str
    headers: dict[str, str]
    attempts: str


@dataclass(frozen=True)
class Health:
    table: str
    states: pd.DataFrame
    usage_html: str


def usage_bars(usage: list[tuple[str, int]]) -> str:
    """One bar per endpoint: its last 24 h against the Hub's daily limit per webhook."""
    if not usage:
        return ""
    rows = []
    for name, number in usage:
        share = min(100.0, 100 * number / HUB_DAILY_LIMIT)
        level = "bad" if share >= 90 else "warn" if share >= 70 else "ok"
        rows.append(
            f'<div class="usage-row"><code>{html.escape(name)}</code>'
            f'<div class="usage-bar"><div class="usage-{level}" style="width:{max(share, 0.5):.1f}%"></div></div>'
            f"<span>{number:,} / {HUB_DAILY_LIMIT:,}</span></div>"
        )
    return (
        '<div class="usage"><p><b>Hub limit, last 24 h:</b> each webhook may trigger 1,000 times a day '
        "(more on paid plans); test events are counted here too.</p>" + "".join(rows) + "</div>"
    )


@dataclass(frozen=True)
class HubView:
    message: str
    table: pd.DataFrame
    disabled_ids: list[str]


def _success_rate(stats: JournalStats) -> str:
    ran = sum(stats.by_state.get(state, 0) for state in ("succeeded", "failed", "dead"))
    if not ran:
        return "–"
    return f"{100 * stats.by_state.get('succeeded', 0) / ran:.0f}%"


class Console:
    """The console's backend for one server; every method checks the grant it is given first."""

    def __init__(self, server: WebhooksServer, access: AccessControl | None = None) -> None:
        self.server = server
        self.access = access or AccessControl(server.settings)

    # --- access ----------------------------------------------------------------------------

    def unlock(self, secret: str | None, *, keys: list[str]) -> Grant:
        """Raises `AccessDenied` (or `TooManyAttempts`) with a message for the visitor."""
        return self.access.unlock_with_secret(secret, keys=keys)

    # --- reads (run in Gradio's thread pool) -----------------------------------------------

    def deliveries(
        self,
        grant: object,
        endpoint: str | None = None,
        state: str | None = None,
        repo: str | None = None,
        scope: str | None = None,
    ) -> pd.DataFrame:
        """The newest deliveries matching the filters (`All` or empty means any)."""
        require(grant)
        events = self.server.journal.list_recent(
            limit=DELIVERIES_LIMIT,
            endpoint=_filter(endpoint),
            state=_filter(state),
            repo=_filter(repo),
            scope=_filter(scope),
        )
        return deliveries_frame(events)

    def verdict(self, grant: object) -> Verdict:
        """Working, failing or silent, with the reason and what to do next."""
        require(grant)
        journal, now = self.server.journal, time.time()
        latest = journal.list_recent(limit=1)
        if not latest:
            urls = ", ".join(_code(url) for url in self.server.webhook_urls().values()) or "(no endpoint)"
            return Verdict(
                "**No delivery has arrived yet.** Check that a Hub webhook points at "
                f"{urls} with this Space's secret (see *Hub registration*), or send one from *Test events*.",
                "idle",
            )
        last = latest[0]
        # Counts come from aggregates; only the newest failure of each kind is read whole.
        everything = journal.stats(since=0)
        day = journal.stats(since=now - 86400)
        dead = everything.by_state.get(EventState.DEAD, 0)
        failing = everything.by_state.get(EventState.FAILED, 0)
        recent = (
            f"Last delivery {ago(last.received_at, now=now)} (#{last.id} on {_code(_endpoint_name(last.endpoint))}, "
            f"{STATE_LABELS.get(last.state, last.state)}). Last 24 h: {day.deliveries} deliveries, "
            f"{_success_rate(day)} of handler runs succeeded."
        )
        if dead:
            where = ", ".join(
                f"{states[EventState.DEAD]} on {_code(_endpoint_name(path))}"
                for path, states in everything.by_endpoint.items()
                if states.get(EventState.DEAD)
            )
            newest = journal.list_recent(limit=1, state=EventState.DEAD)[0]
            return Verdict(
                f"**💀 {dead} dead event(s)**, the handler gave up after every retry: {where}. "
                f"Latest, #{newest.id}: {_code(_last_line(newest.error) or 'no error recorded')}. "
                "Open it below for the traceback, fix the handler and push, then **Re-run dead events**.\n\n" + recent,
                "bad",
                dead=dead,
            )
        if failing:
            newest = journal.list_recent(limit=1, state=EventState.FAILED)[0]
            return Verdict(
                f"**🔁 {failing} event(s) failing and waiting for a retry.** Latest, #{newest.id} on "
                f"{_code(_endpoint_name(newest.endpoint))}: {_code(_last_line(newest.error) or 'no error recorded')}."
                "\n\n" + recent,
                "warn",
            )
        if not day.deliveries:
            return Verdict(
                "**No delivery in the last 24 h.** " + recent + " If events were expected, check that the Hub "
                "webhook is enabled and sends this Space's secret (see *Hub registration*).",
                "idle",
            )
        return Verdict("**✅ Working.** " + recent, "ok")

    def event_detail(self, grant: object, event_id: int | float | str | None) -> EventDetail:
        """One event: its payload, its kept headers (never the secret), and every attempt."""
        require(grant)
        try:
            number = int(event_id)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise gr.Error("Pick a delivery in the table, or type an event number.") from None
        event = self.server.journal.get(number)
        if event is None:
            raise gr.Error(f"There is no event #{number} (it may have been pruned).")
        return EventDetail(
            title=self._event_title(event),
            payload=pretty_body(event.body),
            headers=dict(event.headers),
            attempts=self._attempts_markdown(event),
        )

    def _event_title(self, event: EventRecord) -> str:
        facts = [
            STATE_LABELS.get(event.state, str(event.state)),
            f"received {when(event.received_at)} UTC ({ago(event.received_at)})",
            f"attempt {event.attempts} of {event.max_attempts}",
        ]
        if event.ack_ms is not None:
            facts.append(f"acknowledged in {_ms(event.ack_ms)} ms")
        if event.is_test:
            facts.append("🧪 test event")
        lines = [
            f"### #{event.id} · {_code(event.scope + '/' + event.action)} on {_code(event.repo_name)} "
            f"({event.repo_type}) → {_code(_endpoint_name(event.endpoint))}",
            " · ".join(facts),
        ]
        if event.webhook_id:
            lines.append(f"Webhook-Id {_code(event.webhook_id)}")
        if event.note:
            lines.append(f"**Note:** {event.note}")
        if event.state == EventState.FAILED and event.next_attempt_at:
            lines.append(f"Next retry {when(event.next_attempt_at)} UTC.")
        return "\n\n".join(lines)

    def _attempts_markdown(self, event: EventRecord) -> str:
        attempts = self.server.journal.attempts(event.id)
        if not attempts:
            if event.state == EventState.SKIPPED:
                return "Not run: the endpoint does not want this event. " + (event.note or "")
            if event.state == EventState.DUPLICATE:
                return f"Not run: a repeat of event #{event.original_id}. " + (event.note or "")
            return "Not run yet."
        parts = []
        for attempt in reversed(attempts):
            duration = ""
            if attempt.finished_at is not None:
                duration = f" · {(attempt.finished_at - attempt.started_at) * 1000:.0f} ms"
            icon = {"succeeded": "✅", "failed": "❌", "running": "▶️", "interrupted": "⚠️"}.get(attempt.outcome, "")
            header = f"**Attempt {attempt.number}** {icon} {attempt.outcome} · {when(attempt.started_at)} UTC{duration}"
            if not attempt.detail:
                body = ""
            elif attempt.outcome == "succeeded":
                body = _fenced(attempt.detail, "json")
            else:
                body = _fenced(readable_traceback(attempt.detail), "text")
            parts.append(header + ("\n\n" + body if body else ""))
        return "\n\n".join(parts)

    def health(self, grant: object) -> Health:
        """Counts, success rate and latencies for the last hour and day, and usage of the Hub's limit."""
        require(grant)
        now = time.time()
        hour = self.server.journal.stats(since=now - 3600)
        day = self.server.journal.stats(since=now - 86400)

        def count(stats: JournalStats, *states: EventState) -> int:
            return sum(stats.by_state.get(state, 0) for state in states)

        rows = [
            ("Deliveries", f"{hour.deliveries:,}", f"{day.deliveries:,}"),
            ("Handler runs that succeeded", _success_rate(hour), _success_rate(day)),
            (
                "💀 dead / 🔁 retrying",
                f"{count(hour, EventState.DEAD)} / {count(hour, EventState.FAILED)}",
                f"{count(day, EventState.DEAD)} / {count(day, EventState.FAILED)}",
            ),
            (
                "⏭️ skipped / 🔂 duplicates",
                f"{count(hour, EventState.SKIPPED)} / {count(hour, EventState.DUPLICATE)}",
                f"{count(day, EventState.SKIPPED)} / {count(day, EventState.DUPLICATE)}",
            ),
            (
                "Acknowledged in, p50 / p95",
                _pair(hour.ack_ms_p50, hour.ack_ms_p95),
                _pair(day.ack_ms_p50, day.ack_ms_p95),
            ),
            (
                "Handler time, p50 / p95",
                _pair(hour.handler_ms_p50, hour.handler_ms_p95),
                _pair(day.handler_ms_p50, day.handler_ms_p95),
            ),
        ]
        table = "| | Last hour | Last 24 h |\n|---|---:|---:|\n" + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
        states = pd.DataFrame(
            [
                (period, str(state), number)
                for period, stats in (("Last hour", hour), ("Last 24 h", day))
                for state, number in stats.by_state.items()
                if number
            ],
            columns=["period", "state", "events"],
        )
        usage = [(_endpoint_name(path), sum(day.by_endpoint.get(path, {}).values())) for path in self.server.endpoints]
        return Health(table=table, states=states, usage_html=usage_bars(usage))

    # --- actions (async: journal writes in a thread, the worker notified on its loop) ---------

    async def replay(self, grant: object, event_id: int | float | str | None) -> str:
        """Run one event again now, whatever its state."""
        require(grant)
        try:
            number = int(event_id)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise gr.Error("Pick a delivery to replay first.") from None
        try:
            event = await asyncio.to_thread(
                self.server.journal.replay, number, max_attempts=self.server.settings.max_attempts
            )
        except KeyError:
            raise gr.Error(f"There is no event #{number}.") from None
        except WebhookError as exc:
            raise gr.Error(exc.message) from None
        self._notify_worker()
        if event.state == EventState.RUNNING:
            return f"Event #{event.id} is running right now; it was not queued again."
        target = f"#{event.id}" + (f" (the original of #{number})" if event.id != number else "")
        logger.info("Console: replaying event %s.", event.id)
        return f"Replaying event {target} on {_code(_endpoint_name(event.endpoint))}."

    async def replay_dead(self, grant: object, endpoint: str | None) -> str:
        """Queue every dead event of an endpoint (or of all) again, e.g. after fixing the handler."""
        require(grant)
        paths = list(self.server.endpoints) if _filter(endpoint) is None else [endpoint]
        unknown = [path for path in paths if path not in self.server.endpoints]
        if unknown:
            raise gr.Error(f"No endpoint {unknown[0]}.")
        replayed: dict[str, list[int]] = {}
        for path in paths:
            try:
                ids = await asyncio.to_thread(
                    self.server.journal.replay_dead, path, max_attempts=self.server.settings.max_attempts
                )
            except WebhookError as exc:
                raise gr.Error(exc.message) from None
            if ids:
                replayed[path] = ids
        if not replayed:
            return "No dead event to re-run."
        self._notify_worker()
        total = sum(len(ids) for ids in replayed.values())
        logger.info("Console: re-running %d dead event(s).", total)
        return f"Re-running {total} dead event(s): " + "; ".join(
            f"{_code(_endpoint_name(path))} #" + ", #".join(map(str, ids)) for path, ids in replayed.items()
        )

    def _notify_worker(self) -> None:
        """Wake the worker now instead of at its next poll; we are on the server's loop here."""
        worker = self.server.worker
        if worker is not None:
            worker.notify()

    async def send_test(
        self, grant: object, endpoint: str | None, kind: str | None, repo: str | None, repo_type: str | None = "model"
    ) -> tuple[str, int | None]:
        """POST a sample event to the real endpoint (secret and `X-Webhook-Test: 1` set); (message, event id)."""
        require(grant)
        from .sample_events import SAMPLE_KINDS, sample_payload

        if endpoint not in self.server.endpoints:
            raise gr.Error("Pick an endpoint to send the test event to.")
        if kind not in SAMPLE_KINDS:
            raise gr.Error("Pick the kind of event to send.")
        repo = (repo or "").strip() or "my-user/my-model"
        if not _REPO_NAME.match(repo):
            raise gr.Error(f"{repo!r} is not a repo name: use owner/name, e.g. my-user/my-model.")
        if repo_type not in ("model", "dataset", "space"):
            repo_type = "model"
        if not self.server.local_url:
            raise gr.Error("The server is not running, so there is nothing to send the event to.")
        payload = sample_payload(kind, repo=repo, repo_type=repo_type)
        headers = {
            "content-type": "application/json",
            "x-webhook-test": "1",
            # A new id per click: a second test is a new event, not a duplicate of the first.
            "webhook-id": f"console-test-{uuid.uuid4().hex}",
            "user-agent": "webhooks-console",
        }
        if self.server.settings.webhook_secrets:
            headers["x-webhook-secret"] = self.server.settings.webhook_secrets[0]
        timeout = self.server.settings.ack_budget_seconds + 10
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=timeout) as client:
                response = await client.post(
                    self.server.local_url + endpoint, content=json.dumps(payload).encode(), headers=headers
                )
        except httpx.HTTPError as exc:
            raise gr.Error(f"Could not reach {endpoint} on this server: {exc}") from None
        event_header = response.headers.get("x-webhook-event-id")
        event_id = int(event_header) if event_header and event_header.isdigit() else None
        answer = response.text if len(response.text) <= 600 else response.text[:600] + "…"
        logger.info("Console: test event %s sent to %s: HTTP %d.", kind, endpoint, response.status_code)
        message = (
            f"**Sent {_code(kind)} on {_code(repo)} to {_code(_endpoint_name(endpoint))}:** "
            f"HTTP {response.status_code}" + (f", event #{event_id} (marked 🧪 test)." if event_id else ".")
        )
        return message + "\n\n" + _fenced(answer, "json"), event_id

    # --- Hub registration (sync: network calls in Gradio's thread pool) ------------------------

    def hub_view(self, grant: object, message: str = "") -> HubView:
        """The token owner's webhooks pointing at this Space, and which endpoints have none."""
        require(grant)
        token = hub_registration.hub_token()
        if not token:
            return HubView(
                "**No Hugging Face token here**, so webhooks cannot be listed or created from the console. "
                "Add `HF_TOKEN` (a write token, or fine-grained with webhook rights) to the Space's secrets, "
                "or follow the manual steps below.",
                _empty_hub_table(),
                [],
            )
        base = self.server.public_url()
        try:
            hooks = hub_registration.list_space_webhooks(
                token, base_url=base, secrets=self.server.settings.webhook_secrets
            )
        except hub_registration.HubRegistrationError as exc:
            return HubView(f"**⚠️ {exc.message}**", _empty_hub_table(), [])
        urls = {hook.url.split("?")[0] for hook in hooks}
        lines = [message] if message else []
        missing = [path for path, url in self.server.webhook_urls().items() if url not in urls]
        if missing:
            lines.append(
                "**⚠️ No Hub webhook points at** "
                + ", ".join(_code(_endpoint_name(path)) for path in missing)
                + " yet: **Create / update webhooks** registers them."
            )
        for hook in hooks:
            if hook.disabled:
                lines.append(f"**⚠️ Webhook {_code(hook.id)} is disabled** (the Hub suspends failing webhooks).")
            if self.server.settings.secret_configured and hook.secret != "matches":
                lines.append(
                    f"**❌ Webhook {_code(hook.id)} sends "
                    f"{'no secret' if hook.secret == 'none' else 'another secret'}**: "
                    "its deliveries are refused. **Create / update webhooks** sets the Space's secret on it."
                )
        if hooks and not missing and len(lines) == (1 if message else 0):
            lines.append(f"**✅ Every endpoint has a Hub webhook pointing at it** ({len(hooks)} found).")
        table = pd.DataFrame(
            [
                [
                    hook.url,
                    ", ".join(hook.watched),
                    ", ".join(hook.domains),
                    "⛔ disabled" if hook.disabled else "✅ enabled",
                    {"matches": "✅ the Space's", "differs": "❌ another one", "none": "⚠️ none"}[hook.secret],
                    hook.id,
                ]
                for hook in hooks
            ],
            columns=HUB_COLUMNS,
        )
        return HubView("\n\n".join(lines), table, [hook.id for hook in hooks if hook.disabled])

    def hub_sync(self, grant: object) -> HubView:
        """Create or update one Hub webhook per endpoint with this Space's URL and secret."""
        require(grant)
        token = hub_registration.hub_token()
        if not token:
            return self.hub_view(grant)
        settings = self.server.settings
        if not settings.secret_configured:
            raise gr.Error(
                "Set WEBHOOK_SECRET first: a webhook without a secret lets anyone who finds the URL post events."
            )
        try:
            results = hub_registration.sync_webhooks(
                token,
                list(self.server.endpoints.values()),
                base_url=self.server.public_url(),
                owner=self.access.owner,
                secret=settings.webhook_secrets[0],
                secrets=settings.webhook_secrets,
            )
        except hub_registration.HubRegistrationError as exc:
            raise gr.Error(exc.message) from None
        done = "; ".join(f"{_code(_endpoint_name(r.path))} {r.action}" for r in results) or "no endpoint"
        return self.hub_view(grant, message=f"**Done:** {done}.")

    def hub_enable(self, grant: object, webhook_id: str | None) -> HubView:
        require(grant)
        token = hub_registration.hub_token()
        if not token or not webhook_id:
            raise gr.Error("Pick a disabled webhook to enable.")
        try:
            hub_registration.enable_webhook(token, webhook_id, secrets=self.server.settings.webhook_secrets)
        except hub_registration.HubRegistrationError as exc:
            raise gr.Error(exc.message) from None
        return self.hub_view(grant, message=f"**Enabled** {_code(webhook_id)}.")


def _filter(value: str | None) -> str | None:
    value = (value or "").strip()
    return None if not value or value == ALL else value


def _pair(p50: float | None, p95: float | None) -> str:
    if p50 is None:
        return "–"
    return f"{_ms(p50)} / {_ms(p95)} ms"


def _empty_hub_table() -> pd.DataFrame:
    return pd.DataFrame([], columns=HUB_COLUMNS)


# --- the tab ----------------------------------------------------------------------------------


def _keys(request: gr.Request | None) -> list[str]:
    if request is None:
        return ["ip:unknown"]
    host = request.client.host if request.client else None
    return client_keys(dict(request.headers), host, request.session_hash)


def build_console(server: WebhooksServer, page: gr.Blocks, *, access: AccessControl | None = None) -> Console:
    """Lay out the console inside the current Blocks context and wire it to a `Console`.

    Everything below the lock panel starts hidden and empty; only listeners holding a grant fill it.
    """
    from .landing import setup_markdown

    console = Console(server, access)
    settings = server.settings
    endpoint_paths = list(server.endpoints)
    endpoint_choices = [("All endpoints", ALL)] + [(_endpoint_name(path), path) for path in endpoint_paths]
    private: dict[str, Any] = {"api_visibility": "private"}

    gr.HTML(f"<style>{CSS}</style>", padding=False)
    grant = gr.State(None, time_to_live=24 * 3600)
    ticker = gr.Timer(REFRESH_SECONDS, active=False)
    health_ticker = gr.Timer(HEALTH_REFRESH_SECONDS, active=False)

    with gr.Column(elem_id="console-lock") as lock_panel:
        gr.Markdown(
            "### 🔒 Operator console\n"
            "Every delivery this Space received, what each handler did with it, failures with their "
            "tracebacks, replays and test events. Only for whoever runs this Space."
        )
        if settings.secret_configured:
            secret_box = gr.Textbox(
                label="Webhook secret",
                type="password",
                placeholder="the value of WEBHOOK_SECRET",
                elem_id="console-secret",
                max_lines=1,
            )
            unlock_button = gr.Button("Unlock", variant="primary", elem_id="console-unlock")
        else:
            secret_box = gr.Textbox(visible=False)
            unlock_button = None
            gr.Markdown(NO_SECRET_MESSAGE, elem_classes=["status-warn"], elem_id="console-no-secret")
        if console.access.oauth_enabled:
            gr.Markdown(f"or sign in as **{console.access.owner}** (or a member of it):")
            gr.LoginButton(elem_id="console-login")
        lock_message = gr.Markdown("", elem_id="console-lock-message")

    with gr.Column(visible=False, elem_id="console") as console_panel:
        with gr.Row(elem_classes=["console-bar"]):
            who = gr.Markdown("", elem_id="console-who")
            lock_button = gr.Button("Lock", size="sm", variant="secondary", scale=0, min_width=80)
        summary = gr.Markdown("", elem_id="console-summary")
        with gr.Row(visible=False, elem_classes=["console-bar"]) as dead_row:
            dead_button = gr.Button(
                "Re-run dead events", variant="stop", size="md", scale=0, min_width=200, elem_id="rerun-dead"
            )
            dead_endpoint = gr.Dropdown(
                endpoint_choices,
                value=ALL,
                label="of endpoint",
                show_label=False,
                container=False,
                scale=0,
                min_width=220,
            )
        action_message = gr.Markdown("", elem_id="console-action")

        with gr.Tabs():
            with gr.Tab("Deliveries", id="deliveries"):
                with gr.Row():
                    f_endpoint = gr.Dropdown(endpoint_choices, value=ALL, label="Endpoint", min_width=120)
                    f_state = gr.Dropdown(
                        [(ALL, ALL)] + [(STATE_LABELS[s], str(s)) for s in EventState],
                        value=ALL,
                        label="State",
                        min_width=120,
                    )
                    f_scope = gr.Dropdown(
                        [ALL, *SCOPES], value=ALL, label="Scope", allow_custom_value=True, min_width=120
                    )
                    f_repo = gr.Textbox(label="Repo", placeholder="owner/name", min_width=120, max_lines=1)
                table = gr.Dataframe(
                    deliveries_frame([]),
                    interactive=False,
                    max_height=420,
                    elem_id="deliveries",
                    label="Newest first; click a row for its payload and attempts",
                )
                with gr.Row(elem_classes=["console-bar"]):
                    event_number = gr.Number(
                        None,
                        label="Event #",
                        show_label=False,
                        container=False,
                        placeholder="event #",
                        precision=0,
                        scale=1,
                        min_width=90,
                        elem_id="event-number",
                    )
                    show_button = gr.Button("Show", size="md", scale=0, min_width=80)
                    replay_button = gr.Button(
                        "Replay this event",
                        variant="primary",
                        size="md",
                        scale=0,
                        min_width=170,
                        elem_id="replay-event",
                    )
                detail_title = gr.Markdown("", elem_id="event-title")
                with gr.Tabs():
                    with gr.Tab("Attempts"):
                        detail_attempts = gr.Markdown("", elem_id="event-attempts")
                    with gr.Tab("Payload"):
                        detail_payload = gr.Code(
                            "", language="json", interactive=False, lines=12, max_lines=40, elem_id="event-payload"
                        )
                    with gr.Tab("Headers"):
                        detail_headers = gr.JSON({}, elem_id="event-headers")

            with gr.Tab("Health", id="health"):
                with gr.Row():
                    with gr.Column(min_width=280):
                        health_table = gr.Markdown("", elem_id="health-table")
                    states_plot = gr.BarPlot(
                        pd.DataFrame([], columns=["period", "state", "events"]),
                        x="period",
                        y="events",
                        color="state",
                        color_map=STATE_COLORS,
                        sort=["Last hour", "Last 24 h"],
                        title="Events by state",
                        x_title="",
                        height=240,
                        min_width=280,
                        elem_id="states-plot",
                    )
                usage_html = gr.HTML("", elem_id="hub-usage")

            with gr.Tab("Test events", id="test"):
                gr.Markdown(
                    "Sends a sample Hub event through the real endpoint (with the secret, marked as a test), "
                    "so the whole path runs: authentication, journal, handler."
                )
                from .sample_events import SAMPLE_KINDS

                with gr.Row():
                    t_endpoint = gr.Dropdown(
                        [(_endpoint_name(p), p) for p in endpoint_paths],
                        value=endpoint_paths[0] if endpoint_paths else None,
                        label="Endpoint",
                        elem_id="test-endpoint",
                    )
                    t_kind = gr.Dropdown(
                        [(f"{kind}: {description}", kind) for kind, description in SAMPLE_KINDS.items()],
                        value=next(iter(SAMPLE_KINDS), None),
                        label="Event",
                        elem_id="test-kind",
                    )
                with gr.Row():
                    t_repo = gr.Textbox(
                        value=f"{console.access.owner or 'my-user'}/my-model",
                        label="Repo",
                        max_lines=1,
                        elem_id="test-repo",
                    )
                    t_repo_type = gr.Dropdown(["model", "dataset", "space"], value="model", label="Repo type")
                send_button = gr.Button("Send test event", variant="primary", elem_id="test-send")
                test_result = gr.Markdown("", elem_id="test-result")

            with gr.Tab("Hub registration", id="hub"):
                has_token = bool(hub_registration.hub_token())
                hub_message = gr.Markdown("", elem_id="hub-message")
                with gr.Column(visible=has_token):
                    hub_table = gr.Dataframe(
                        _empty_hub_table(),
                        interactive=False,
                        wrap=True,
                        label="Webhooks on the Hub",
                        elem_id="hub-table",
                    )
                    with gr.Row():
                        hub_refresh = gr.Button("Refresh", min_width=100, scale=0)
                        hub_sync = gr.Button(
                            "Create / update webhooks", variant="primary", min_width=200, scale=0, elem_id="hub-sync"
                        )
                    with gr.Row(visible=False, elem_classes=["console-bar"]) as hub_enable_row:
                        hub_disabled = gr.Dropdown([], show_label=False, container=False, min_width=160)
                        hub_enable = gr.Button("Enable", min_width=100, scale=0)
                with gr.Accordion("Set it up by hand", open=not has_token):
                    gr.Markdown(setup_markdown(server))

    # --- wiring -----------------------------------------------------------------------------

    panels = [grant, lock_panel, console_panel, lock_message, secret_box, ticker, health_ticker, who]

    def opened(new_grant: Grant) -> tuple:
        label = (
            f"🔓 **Console unlocked** with the {new_grant.who}"
            if new_grant.method == "secret"
            else (f"🔓 **Console unlocked**: signed in as {new_grant.who}")
        )
        return (
            new_grant,
            gr.Column(visible=False),
            gr.Column(visible=True),
            "",
            gr.Textbox(value=""),
            gr.Timer(active=True),
            gr.Timer(active=True),
            label,
        )

    def closed(message: str = "") -> tuple:
        return (
            None,
            gr.Column(visible=True),
            gr.Column(visible=False),
            message,
            gr.Textbox(value=""),
            gr.Timer(active=False),
            gr.Timer(active=False),
            "",
        )

    def unlock(secret: str, current: Any, request: gr.Request) -> tuple:
        if is_granted(current):
            return opened(current)
        try:
            return opened(console.unlock(secret, keys=_keys(request)))
        except AccessDenied as exc:
            return closed(f"**{exc.message}**")

    def lock(current: Any) -> tuple:
        return closed("Locked.")

    def refresh(current: Any, endpoint: str, state: str, repo: str, scope: str) -> tuple:
        if not is_granted(current):
            if isinstance(current, Grant):  # it expired while the page was open: lock the page too
                return (*closed("The console locked itself (the session expired): unlock it again."), *_blank_refresh())
            return (*_unchanged(len(panels)), *_blank_refresh())  # leave the lock panel's message alone
        verdict = console.verdict(current)
        return (
            *_unchanged(len(panels)),
            gr.Markdown(verdict.markdown, elem_classes=[f"verdict-{verdict.level}"]),
            gr.Row(visible=verdict.dead > 0),
            console.deliveries(current, endpoint, state, repo, scope),
        )

    def _blank_refresh() -> tuple:
        return gr.Markdown("", elem_classes=[]), gr.Row(visible=False), deliveries_frame([])

    def refresh_health(current: Any) -> tuple:
        if not is_granted(current):
            return "", None, ""
        health = console.health(current)
        return health.table, health.states, health.usage_html

    def show(current: Any, number: Any) -> tuple:
        detail = console.event_detail(current, number)
        return detail.title, detail.attempts, detail.payload, detail.headers

    def show_sent(current: Any, number: Any) -> tuple:
        """After a test event: its details, or nothing when the endpoint refused it (no event id)."""
        if number is None:
            return _unchanged(len(detail_outputs))
        return show(current, number)

    def pick(current: Any, evt: gr.SelectData) -> Any:
        require(current)
        row = evt.row_value or []
        return row[0] if row else None

    async def replay(current: Any, number: Any) -> str:
        return await console.replay(current, number)

    async def replay_dead(current: Any, endpoint: str) -> str:
        return await console.replay_dead(current, endpoint)

    async def send(current: Any, endpoint: str, kind: str, repo: str, repo_type: str) -> tuple:
        message, event_id = await console.send_test(current, endpoint, kind, repo, repo_type)
        return message, event_id if event_id is not None else gr.Number()

    def hub_outputs(view: HubView) -> tuple:
        return (
            view.message,
            view.table,
            gr.Dropdown(choices=view.disabled_ids, value=view.disabled_ids[0] if view.disabled_ids else None),
            gr.Row(visible=bool(view.disabled_ids)),
        )

    def hub_list(current: Any) -> tuple:
        return hub_outputs(console.hub_view(current))

    def hub_list_if_open(current: Any) -> tuple:
        """After an unlock attempt: fill the Hub tab, or stay silent when the attempt failed."""
        if not is_granted(current):
            return _unchanged(len(hub_outputs_list))
        return hub_list(current)

    def hub_apply(current: Any) -> tuple:
        return hub_outputs(console.hub_sync(current))

    def hub_turn_on(current: Any, webhook_id: str) -> tuple:
        return hub_outputs(console.hub_enable(current, webhook_id))

    filters = [f_endpoint, f_state, f_repo, f_scope]
    refresh_outputs = [*panels, summary, dead_row, table]
    detail_outputs = [detail_title, detail_attempts, detail_payload, detail_headers]
    health_outputs = [health_table, states_plot, usage_html]
    hub_outputs_list = [hub_message, hub_table, hub_disabled, hub_enable_row]
    quiet: dict[str, Any] = {**private, "show_progress": "hidden"}

    def after_open(event: Any) -> None:
        event.then(refresh, [grant, *filters], refresh_outputs, api_name="console_refresh_after_unlock", **quiet).then(
            refresh_health, [grant], health_outputs, api_name="console_health_after_unlock", **quiet
        ).then(hub_list_if_open, [grant], hub_outputs_list, api_name="console_hub_after_unlock", **quiet)

    if unlock_button is not None:
        for trigger in (unlock_button.click, secret_box.submit):
            after_open(trigger(unlock, [secret_box, grant], panels, api_name="console_unlock", **private))
    if console.access.oauth_enabled:

        def oauth_unlock(current: Any, profile: gr.OAuthProfile | None, token: gr.OAuthToken | None) -> tuple:
            if is_granted(current):
                return opened(current)
            if profile is None:
                return closed("")
            try:
                new_grant = console.access.unlock_with_oauth(
                    username=profile.username,
                    profile_orgs=profile.get("orgs") or (),
                    token=token.token if token else None,
                )
            except AccessDenied as exc:
                return closed(f"**{exc.message}**")
            return opened(new_grant)

        after_open(page.load(oauth_unlock, [grant], panels, api_name="console_oauth", **private))

    lock_button.click(lock, [grant], panels, api_name="console_lock", **private)
    ticker.tick(refresh, [grant, *filters], refresh_outputs, api_name="console_refresh", **quiet)
    health_ticker.tick(refresh_health, [grant], health_outputs, api_name="console_health", **quiet)
    for component in (f_endpoint, f_state, f_scope):
        component.change(refresh, [grant, *filters], refresh_outputs, api_name="console_filter", **quiet)
    f_repo.submit(refresh, [grant, *filters], refresh_outputs, api_name="console_filter_repo", **quiet)

    table.select(pick, [grant], [event_number], api_name="console_pick", **private).then(
        show, [grant, event_number], detail_outputs, api_name="console_show_picked", **private
    )
    for trigger in (show_button.click, event_number.submit):
        trigger(show, [grant, event_number], detail_outputs, api_name="console_show", **private)
    replay_button.click(
        replay, [grant, event_number], [action_message], api_name="console_replay", concurrency_limit=None, **private
    ).then(refresh, [grant, *filters], refresh_outputs, api_name="console_refresh_after_replay", **quiet)
    dead_button.click(
        replay_dead,
        [grant, dead_endpoint],
        [action_message],
        api_name="console_replay_dead",
        concurrency_limit=None,
        **private,
    ).then(refresh, [grant, *filters], refresh_outputs, api_name="console_refresh_after_replay_dead", **quiet)
    send_button.click(
        send,
        [grant, t_endpoint, t_kind, t_repo, t_repo_type],
        [test_result, event_number],
        api_name="console_send_test",
        concurrency_limit=None,
        **private,
    ).then(refresh, [grant, *filters], refresh_outputs, api_name="console_refresh_after_test", **quiet).then(
        show_sent, [grant, event_number], detail_outputs, api_name="console_show_test", **quiet
    )
    hub_refresh.click(hub_list, [grant], hub_outputs_list, api_name="console_hub_list", **private)
    hub_sync.click(hub_apply, [grant], hub_outputs_list, api_name="console_hub_sync", **private)
    hub_enable.click(hub_turn_on, [grant, hub_disabled], hub_outputs_list, api_name="console_hub_enable", **private)
    return console


def _unchanged(count: int) -> tuple:
    return tuple(gr.skip() for _ in range(count))
