"""How the operator console shows journal data: times, tables, tracebacks, Markdown and HTML snippets.

Pure functions from journal records and statistics to text or DataFrames, with no Gradio and no
access checks, so the actions (`lib.ui.console_actions`) and the tab (`lib.ui.console`) share one
vocabulary and each formatting rule can be tested on its own.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import pandas as pd

from ..hub.registration import HubWebhook
from ..journal import Attempt, EventRecord, EventState, JournalDamage, JournalStats
from ..worker import EndpointLoad

HUB_DAILY_LIMIT = 1000
"""Triggers per webhook per 24 h on a free account (the Hub's documented limit)."""
STATE_LABELS = {
    EventState.QUEUED: "⏳ queued",
    EventState.RUNNING: "▶️ running",
    EventState.JOB_RUNNING: "🏗️ job running",
    EventState.SUCCEEDED: "✅ succeeded",
    EventState.SKIPPED: "⏭️ skipped",
    EventState.DUPLICATE: "🔂 duplicate",
    EventState.FAILED: "🔁 failed",
    EventState.DEAD: "💀 dead",
    EventState.PAUSED: "⏸️ paused",
}
STATE_COLORS = {
    "succeeded": "#16a34a",
    "skipped": "#94a3b8",
    "duplicate": "#a78bfa",
    "queued": "#60a5fa",
    "running": "#2563eb",
    "job_running": "#7c3aed",
    "failed": "#f59e0b",
    "dead": "#dc2626",
    "paused": "#64748b",
}
DELIVERY_COLUMNS = ["#", "Time (UTC)", "State", "Endpoint", "Event", "Repo", "Tries", "Ack ms", "Run ms", "Test"]
HUB_COLUMNS = ["URL", "Watches", "Domains", "Status", "Secret", "Id"]
STATES_COLUMNS = ["period", "state", "events"]


# --- small pieces -------------------------------------------------------------------------------


def when(timestamp: float | None, *, now: float | None = None) -> str:
    """Compact UTC time: `14:02:11` today, `11-03 14:02` before."""
    if timestamp is None:
        return ""
    moment = datetime.fromtimestamp(timestamp, UTC)
    today = datetime.fromtimestamp(time.time() if now is None else now, UTC).date()
    return moment.strftime("%H:%M:%S" if moment.date() == today else "%m-%d %H:%M")


def ago(timestamp: float, *, now: float | None = None) -> str:
    """How long ago, in the largest whole unit: `3 min ago`."""
    seconds = max(0.0, (time.time() if now is None else now) - timestamp)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def milliseconds(value: float | None) -> str:
    """A duration in ms with the precision that matters: `12`, `3.4`, or `–` when unknown."""
    if value is None:
        return "–"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def latency_pair(p50: float | None, p95: float | None) -> str:
    """`p50 / p95 ms`, or `–` before any measurement."""
    if p50 is None:
        return "–"
    return f"{milliseconds(p50)} / {milliseconds(p95)} ms"


def endpoint_name(path: str) -> str:
    """`/webhooks/name` → `name`, as the operator named the handler file."""
    return path.removeprefix("/webhooks/")


def last_line(error: str | None) -> str:
    """The last non-blank line of an error: the exception and its message."""
    lines = [line for line in (error or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def inline_code(text: str) -> str:
    """Inline code that survives backticks in the text."""
    return "`` " + text.replace("`", "ˋ") + " ``"


def fenced(text: str, language: str = "text") -> str:
    """A fenced block that the text's own fences cannot close early."""
    return f"````{language}\n{text.replace('````', 'ˋˋˋˋ')}\n````"


def pretty_body(body: bytes) -> str:
    """The payload indented when it is JSON, else the raw text."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except (ValueError, UnicodeDecodeError):
        return body.decode("utf-8", "replace")


def success_rate(stats: JournalStats) -> str:
    """The share of finished handler runs that succeeded, or `–` when none ran."""
    ran = sum(stats.by_state.get(state, 0) for state in ("succeeded", "failed", "dead"))
    if not ran:
        return "–"
    return f"{100 * stats.by_state.get('succeeded', 0) / ran:.0f}%"


# --- tracebacks ---------------------------------------------------------------------------------

_RUNNER_FRAMES = ("/lib/worker/", "/asyncio/", "/concurrent/futures/", "/anyio/")
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


# --- deliveries and one event -------------------------------------------------------------------


def deliveries_frame(events: list[EventRecord], *, now: float | None = None) -> pd.DataFrame:
    """The deliveries table: one row per event, newest first as given."""
    rows = [
        [
            event.id,
            when(event.received_at, now=now),
            STATE_LABELS.get(event.state, str(event.state)),
            endpoint_name(event.endpoint),
            f"{event.scope}/{event.action}",
            event.repo_name,
            event.attempts,
            milliseconds(event.ack_ms),
            milliseconds(event.handler_ms),
            "🧪 test" if event.is_test else "",
        ]
        for event in events
    ]
    return pd.DataFrame(rows, columns=DELIVERY_COLUMNS)


def event_title(event: EventRecord) -> str:
    """The heading of one event: what, where, its state, timing and any note."""
    facts = [
        STATE_LABELS.get(event.state, str(event.state)),
        f"received {when(event.received_at)} UTC ({ago(event.received_at)})",
        f"attempt {event.attempts} of {event.max_attempts}",
    ]
    if event.ack_ms is not None:
        facts.append(f"acknowledged in {milliseconds(event.ack_ms)} ms")
    if event.is_test:
        facts.append("🧪 test event")
    if event.replica:
        facts.append(f"run by replica {inline_code(event.replica)}")
    what = (
        "a raw POST (its body is not a Hub payload)"
        if event.is_raw
        else f"{inline_code(event.scope + '/' + event.action)} on {inline_code(event.repo_name)} ({event.repo_type})"
    )
    lines = [
        f"### #{event.id} · {what} → {inline_code(endpoint_name(event.endpoint))}",
        " · ".join(facts),
    ]
    if event.webhook_id:
        lines.append(f"Webhook-Id {inline_code(event.webhook_id)}")
    if event.note:
        lines.append(f"**Note:** {event.note}")
    if event.state == EventState.FAILED and event.next_attempt_at:
        lines.append(f"Next retry {when(event.next_attempt_at)} UTC.")
    return "\n\n".join(lines)


def attempts_markdown(event: EventRecord, attempts: list[Attempt]) -> str:
    """Every attempt, newest first, with its result or its traceback; or why the event never ran."""
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
        icon = {"succeeded": "✅", "failed": "❌", "running": "▶️", "interrupted": "⚠️", "job_running": "🏗️"}.get(
            attempt.outcome, ""
        )
        header = f"**Attempt {attempt.number}** {icon} {attempt.outcome} · {when(attempt.started_at)} UTC{duration}"
        if not attempt.detail:
            body = ""
        elif attempt.outcome in ("succeeded", "job_running"):  # the handler's result (a job: its id and link)
            body = fenced(attempt.detail, "json")
        else:
            body = fenced(readable_traceback(attempt.detail), "text")
        parts.append(header + ("\n\n" + body if body else ""))
    return "\n\n".join(parts)


# --- health -------------------------------------------------------------------------------------


def health_table(hour: JournalStats, day: JournalStats) -> str:
    """Counts, success rate and latencies for the last hour and day, as a Markdown table."""

    def count(stats: JournalStats, *states: EventState) -> int:
        return sum(stats.by_state.get(state, 0) for state in states)

    rows = [
        ("Deliveries", f"{hour.deliveries:,}", f"{day.deliveries:,}"),
        ("Handler runs that succeeded", success_rate(hour), success_rate(day)),
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
            latency_pair(hour.ack_ms_p50, hour.ack_ms_p95),
            latency_pair(day.ack_ms_p50, day.ack_ms_p95),
        ),
        (
            "Handler time, p50 / p95",
            latency_pair(hour.handler_ms_p50, hour.handler_ms_p95),
            latency_pair(day.handler_ms_p50, day.handler_ms_p95),
        ),
    ]
    return "| | Last hour | Last 24 h |\n|---|---:|---:|\n" + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)


def worker_load_table(load: Mapping[str, EndpointLoad]) -> str:
    """Each endpoint's handlers now, against its share of the worker: running, and stuck past their timeout."""
    if not load:
        return ""
    rows = [
        f"| {inline_code(endpoint_name(path))} | {item.running} | {item.stuck}{' ⚠️' if item.stuck else ''} "
        f"| {item.share}{' (full)' if item.full else ''} |"
        for path, item in load.items()
    ]
    stuck = [(path, item) for path, item in load.items() if item.stuck]
    notes = "".join(
        f"\n\n⚠️ {inline_code(endpoint_name(path))}: {item.stuck} handler thread(s) still running past "
        "`WEBHOOK_HANDLER_TIMEOUT` (Python cannot stop them). They count in its share until they end"
        + (", so its events wait; other endpoints are not held up." if item.full else ".")
        for path, item in stuck
    )
    return (
        "**Handlers now**\n\n| Endpoint | Running | Stuck past their timeout | Share |\n|---|---:|---:|---:|\n"
        + "\n".join(rows)
        + notes
    )


def states_frame(hour: JournalStats, day: JournalStats) -> pd.DataFrame:
    """Events per state for the last hour and day, the data of the states bar plot."""
    return pd.DataFrame(
        [
            (period, str(state), number)
            for period, stats in (("Last hour", hour), ("Last 24 h", day))
            for state, number in stats.by_state.items()
            if number
        ],
        columns=STATES_COLUMNS,
    )


def usage_bars(usage: list[tuple[str, int]]) -> str:
    """One bar per endpoint: its last 24 h against the Hub's daily limit per webhook.

    The rows share one grid, so every bar starts where the longest endpoint name ends; an endpoint
    with no trigger shows an empty bar (a sliver only for one with a few).
    """
    if not usage:
        return ""
    cells = []
    for name, number in usage:
        share = min(100.0, 100 * number / HUB_DAILY_LIMIT)
        level = "bad" if share >= 90 else "warn" if share >= 70 else "ok"
        width = max(share, 0.5) if number else 0.0
        cells.append(
            f'<code class="usage-name">{html.escape(name)}</code>'
            f'<div class="usage-bar"><div class="usage-{level}" style="width:{width:.1f}%"></div></div>'
            f'<span class="usage-count">{number:,} / {HUB_DAILY_LIMIT:,}</span>'
        )
    return (
        '<div class="usage"><p><b>Hub limit, last 24 h:</b> each webhook may trigger 1,000 times a day '
        '(more on paid plans); test events are counted here too.</p><div class="usage-grid">'
        + "".join(cells)
        + "</div></div>"
    )


# --- Hub registration ---------------------------------------------------------------------------


def hub_webhooks_frame(hooks: list[HubWebhook]) -> pd.DataFrame:
    """The Hub webhooks pointing at this Space: URL, what they watch, status and secret."""
    return pd.DataFrame(
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


def utc(timestamp: float | None) -> str:
    """A full UTC date and time, as the Hub's webhook activity lists deliveries; `an unknown time` for None."""
    if timestamp is None:
        return "an unknown time"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def damage_markdown(losses: list[JournalDamage]) -> str:
    """For the operator: each loss of acknowledged events, why, and how to get them run after all."""
    lines = []
    for loss in losses:
        made = (
            f"between {utc(loss.kept_until)} and {utc(loss.acknowledged_until)}"
            if loss.kept_until is not None
            else f"up to {utc(loss.acknowledged_until)}"
        )
        lines.append(
            f"**⚠️ The journal lost up to {loss.count} acknowledged event(s)**, #{loss.first_id} to "
            f"#{loss.last_id} (found {utc(loss.found_at)}): {html.escape(loss.cause, quote=False)}. Their handlers "
            "did not run, and the Hub will not send them again by itself. In "
            "[your webhook settings](https://huggingface.co/settings/webhooks), open each webhook's activity and "
            f"replay the deliveries it made {made}; then **Dismiss** this report."
        )
    return "\n\n".join(lines)
