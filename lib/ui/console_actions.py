"""What the operator console can do, each action refusing anyone without the operator's grant.

Every Gradio event listener is an HTTP API anyone can call, so the access check cannot live in the
layout: each public method of `Console` takes the session's grant first and raises `ConsoleLocked`
without a valid one. The tab (`lib.ui.console`) only wires its components to these methods, and the
tests call them directly, as the operator and as a stranger.

Everything that touches the journal is async: Gradio runs it on the server's event loop, where the
journal is called (see `lib/journal/protocol.py`) and the worker lives. Hub registration calls the
network with a blocking client, so those actions are sync and run in Gradio's thread pool.
User mistakes (no such event, no endpoint picked) raise `ConsoleRefusal`, a `gr.Error` that Gradio
shows as a toast without logging a traceback: they are expected, and so are strangers' calls.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import asdict, dataclass

import gradio as gr
import httpx
import pandas as pd

from ..core.errors import EventNotFound, HubWebhooksError, WebhookError
from ..core.jobs import REPORT_SUFFIX
from ..core.sample_events import SAMPLE_KINDS, sample_payload
from ..hub import registration as hub_registration
from ..journal import EventState
from .access import AccessControl, AccessDenied, Grant, is_granted
from .alerts_panel import alerts_html
from .console_filters import ALL as ALL
from .console_filters import event_filter, filter_value, normalized
from .console_format import (
    STATE_LABELS,
    ago,
    attempts_markdown,
    damage_markdown,
    deliveries_frame,
    endpoint_name,
    event_title,
    fenced,
    health_table,
    hub_webhooks_frame,
    inline_code,
    last_line,
    pretty_body,
    states_frame,
    success_rate,
    usage_bars,
    worker_load_table,
)
from .time_range import BadTimeRange
from .view import ServerView

logger = logging.getLogger(__name__)

LOCKED_MESSAGE = "The console is locked: unlock it with the webhook secret first."
INVALID_CALL_MESSAGE = "That call does not fit the console (it is not what the page sends): nothing was done."
DELIVERIES_LIMIT = 100
"""Rows the deliveries table shows: enough to browse (filters narrow it), bounded so a refresh stays cheap."""
REPO_TYPES = ("model", "dataset", "space")
_REPO_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


class ConsoleLocked(AccessDenied, gr.Error):
    """A console function was called without a valid grant (stranger, expired, forged).

    Both of ours (an `AccessDenied`, under the project's one root) and Gradio's (`gr.Error`, which
    the page shows as a toast): a stranger's call is expected, so no traceback is logged for it.
    """

    def __init__(self) -> None:
        super().__init__(LOCKED_MESSAGE)
        self.print_exception = False


class ConsoleRefusal(HubWebhooksError, gr.Error):
    """An action cannot be done as asked (no such event, no endpoint picked): a toast, and no traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.print_exception = False


class InvalidCall(ConsoleRefusal):
    """A console listener was called with inputs the page never sends: too few, of the wrong kind, no event.

    Refused before the listener runs (`lib.ui.console.listeners.refuse_malformed_calls`); anyone can
    send such a call through Gradio's API, so it is answered plainly and costs one log line.
    """

    def __init__(self) -> None:
        super().__init__(INVALID_CALL_MESSAGE)


def require(grant: object) -> Grant:
    """The grant, if it is one and unexpired; else `ConsoleLocked`. First line of every console function."""
    if not is_granted(grant):
        raise ConsoleLocked()
    return grant  # type: ignore[return-value]


@dataclass(frozen=True)
class Verdict:
    """The one-paragraph answer to "is my webhook working?"."""

    markdown: str
    level: str
    """ok, warn, bad or idle: picks the colour."""
    dead: int = 0
    damaged: bool = False
    """The journal lost acknowledged events (said first): the dismiss button shows."""


@dataclass(frozen=True)
class EventDetail:
    """One event as the console shows it: heading, payload, kept headers and attempts."""

    title: str
    payload: str
    headers: dict[str, str]
    attempts: str


@dataclass(frozen=True)
class Health:
    """The health tab's content: the tables (the last hour and day, each endpoint's handlers now), the
    events-by-state plot data and the Hub usage bars."""

    table: str
    states: pd.DataFrame
    usage_html: str


@dataclass(frozen=True)
class HubView:
    """The Hub registration tab's content: findings, the webhooks table, and which ones are disabled."""

    message: str
    table: pd.DataFrame
    disabled_ids: list[str]


class Console:
    """The console's backend for one server; every method checks the grant it is given first."""

    def __init__(self, server: ServerView, access: AccessControl | None = None) -> None:
        self.server = server
        self.access = access or AccessControl(server.settings)

    # --- access ----------------------------------------------------------------------------

    def unlock(self, secret: str | None, *, keys: list[str]) -> Grant:
        """Raises `AccessDenied` (or `TooManyAttempts`) with a message for the visitor."""
        return self.access.unlock_with_secret(secret, keys=keys)

    # --- reads (async: on the server's loop, like the journal) ----------------------------

    async def deliveries(
        self,
        grant: object,
        endpoint: str | None = None,
        state: str | None = None,
        repo: str | None = None,
        scope: str | None = None,
        received: str | None = None,
    ) -> pd.DataFrame:
        """The newest deliveries matching the filters (`All` or empty means any; `received` is a time range)."""
        require(grant)
        try:
            where = event_filter(normalized(endpoint, state, repo, scope, received), now=time.time())
        except BadTimeRange as exc:
            raise ConsoleRefusal(str(exc)) from None
        if await self.server.journal.health() is not None:  # its database is away: the verdict says so, the table waits
            return deliveries_frame([])
        events = await self.server.journal.list_recent(limit=DELIVERIES_LIMIT, **asdict(where))
        return deliveries_frame(events)

    async def verdict(self, grant: object) -> Verdict:
        """Working, failing or silent, with the reason and what to do next; acknowledged events lost, first."""
        require(grant)
        problem = await self.server.journal.health()
        if problem is not None:  # its database cannot be reached: nothing else can be read, say why
            return Verdict(f"**⚠️ {problem}**", "bad")
        verdict = await self._deliveries_verdict()
        if paused := await self.server.journal.paused():  # said above all else but losses: runs are held
            names = ", ".join(inline_code(endpoint_name(path)) for path in paused)
            note = f"**⏸️ Paused: {names}.** Its deliveries are recorded and wait; resume in *Pause & limits*."
            verdict = Verdict(note + "\n\n" + verdict.markdown, verdict.level, dead=verdict.dead)
        losses = await self.server.journal.damage()
        if not losses:
            return verdict
        return Verdict(damage_markdown(losses) + "\n\n" + verdict.markdown, "bad", dead=verdict.dead, damaged=True)

    async def _deliveries_verdict(self) -> Verdict:
        journal, now = self.server.journal, time.time()
        latest = await journal.list_recent(limit=1)
        if not latest:
            urls = ", ".join(inline_code(url) for url in self.server.webhook_urls().values()) or "(no endpoint)"
            return Verdict(
                "**No delivery has arrived yet.** Check that a Hub webhook points at "
                f"{urls} with this Space's secret (see *Hub registration*), or send one from *Test events*.",
                "idle",
            )
        last = latest[0]
        # Counts come from aggregates; only the newest failure of each kind is read whole.
        everything = await journal.stats(since=0)
        day = await journal.stats(since=now - 86400)
        dead = everything.by_state.get(EventState.DEAD, 0)
        failing = everything.by_state.get(EventState.FAILED, 0)
        recent = (
            f"Last delivery {ago(last.received_at, now=now)} "
            f"(#{last.id} on {inline_code(endpoint_name(last.endpoint))}, "
            f"{STATE_LABELS.get(last.state, last.state)}). Last 24 h: {day.deliveries} deliveries, "
            f"{success_rate(day)} of handler runs succeeded."
        )
        if dead:
            where = ", ".join(
                f"{states[EventState.DEAD]} on {inline_code(endpoint_name(path))}"
                for path, states in everything.by_endpoint.items()
                if states.get(EventState.DEAD)
            )
            newest = (await journal.list_recent(limit=1, state=EventState.DEAD))[0]
            return Verdict(
                f"**💀 {dead} dead event(s)**, the handler gave up after every retry: {where}. "
                f"Latest, #{newest.id}: {inline_code(last_line(newest.error) or 'no error recorded')}. "
                "Open it below for the traceback, fix the handler and push, then **Re-run dead events**.\n\n" + recent,
                "bad",
                dead=dead,
            )
        if failing:
            newest = (await journal.list_recent(limit=1, state=EventState.FAILED))[0]
            return Verdict(
                f"**🔁 {failing} event(s) failing and waiting for a retry.** Latest, #{newest.id} on "
                f"{inline_code(endpoint_name(newest.endpoint))}: "
                f"{inline_code(last_line(newest.error) or 'no error recorded')}."
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

    async def dismiss_damage(self, grant: object) -> str:
        """Stop reporting the acknowledged events the journal lost: the operator has had them replayed."""
        require(grant)
        try:
            dismissed = await self.server.journal.dismiss_damage()
        except WebhookError as exc:
            raise gr.Error(exc.message) from None
        logger.info("The operator dismissed %d report(s) of lost events.", dismissed)
        return f"Dismissed {dismissed} report(s) of lost events." if dismissed else "There was nothing to dismiss."

    async def event_detail(self, grant: object, event_id: int | float | str | None) -> EventDetail:
        """One event: its payload, its kept headers (never the secret), and every attempt."""
        require(grant)
        number = event_number(event_id, missing="Pick a delivery in the table, or type an event number.")
        event = await self.server.journal.get(number)
        if event is None:
            raise ConsoleRefusal(f"There is no event #{number} (it may have been pruned).")
        return EventDetail(
            title=event_title(event),
            payload=pretty_body(event.body),
            headers=dict(event.headers),
            attempts=attempts_markdown(event, await self.server.journal.attempts(event.id)),
        )

    async def health(self, grant: object) -> Health:
        """Counts, success rate and latencies for the last hour and day, each endpoint's handlers now
        (running, and stuck past their timeout), and usage of the Hub's limit."""
        require(grant)
        now = time.time()
        hour = await self.server.journal.stats(since=now - 3600)
        day = await self.server.journal.stats(since=now - 86400)
        usage = [(endpoint_name(path), sum(day.by_endpoint.get(path, {}).values())) for path in self.server.endpoints]
        table = "\n\n".join(
            part for part in (health_table(hour, day), worker_load_table(self.server.worker_load())) if part
        )
        alerts = alerts_html(self.server.monitoring.alerts_view())
        return Health(table=table, states=states_frame(hour, day), usage_html=usage_bars(usage) + alerts)

    # --- actions (async: the journal written and the worker notified on the server's loop) ---

    async def replay(self, grant: object, event_id: int | float | str | None) -> str:
        """Run one event again now, whatever its state."""
        require(grant)
        number = event_number(event_id, missing="Pick a delivery to replay first.")
        try:
            event = await self.server.journal.replay(number, max_attempts=self.server.settings.max_attempts)
        except EventNotFound:
            raise ConsoleRefusal(f"There is no event #{number}.") from None
        except WebhookError as exc:
            raise ConsoleRefusal(exc.message) from None
        self.server.wake_worker()
        if event.state == EventState.RUNNING:
            return f"Event #{event.id} is running right now; it was not queued again."
        target = f"#{event.id}" + (f" (the original of #{number})" if event.id != number else "")
        logger.info("Console: replaying event %s.", event.id)
        return f"Replaying event {target} on {inline_code(endpoint_name(event.endpoint))}."

    async def replay_dead(self, grant: object, endpoint: str | None) -> str:
        """Queue every dead event of an endpoint (or of all) again, e.g. after fixing the handler; its dead
        reports of Hub Jobs (`on_job_end`, recorded on `<path>#on_job_end`) too."""
        require(grant)
        paths = list(self.server.endpoints) if filter_value(endpoint) is None else [endpoint]
        unknown = [path for path in paths if path not in self.server.endpoints]
        if unknown:
            raise ConsoleRefusal(f"No endpoint {unknown[0]}.")
        replayed: dict[str, list[int]] = {}
        for path in [target for endpoint_path in paths for target in (endpoint_path, endpoint_path + REPORT_SUFFIX)]:
            try:
                ids = await self.server.journal.replay_dead(path, max_attempts=self.server.settings.max_attempts)
            except WebhookError as exc:
                raise ConsoleRefusal(exc.message) from None
            if ids:
                replayed[path] = ids
        if not replayed:
            return "No dead event to re-run."
        self.server.wake_worker()
        total = sum(len(ids) for ids in replayed.values())
        logger.info("Console: re-running %d dead event(s).", total)
        return f"Re-running {total} dead event(s): " + "; ".join(
            f"{inline_code(endpoint_name(path))} #" + ", #".join(map(str, ids)) for path, ids in replayed.items()
        )

    async def send_test(
        self, grant: object, endpoint: str | None, kind: str | None, repo: str | None, repo_type: str | None = "model"
    ) -> tuple[str, int | None]:
        """POST a sample event to the real endpoint (secret and `X-Webhook-Test: 1` set); (message, event id)."""
        require(grant)
        if endpoint not in self.server.endpoints:
            raise ConsoleRefusal("Pick an endpoint to send the test event to.")
        if kind not in SAMPLE_KINDS:
            raise ConsoleRefusal("Pick the kind of event to send.")
        repo = (repo or "").strip() or "my-user/my-model"
        if not _REPO_NAME.match(repo):
            raise ConsoleRefusal(f"{repo!r} is not a repo name: use owner/name, e.g. my-user/my-model.")
        if repo_type not in REPO_TYPES:
            repo_type = "model"
        if not self.server.local_url:
            raise ConsoleRefusal("The server is not running, so there is nothing to send the event to.")
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
            raise ConsoleRefusal(f"Could not reach {endpoint} on this server: {exc}") from None
        event_header = response.headers.get("x-webhook-event-id")
        event_id = int(event_header) if event_header and event_header.isdigit() else None
        answer = response.text if len(response.text) <= 600 else response.text[:600] + "…"
        logger.info("Console: test event %s sent to %s: HTTP %d.", kind, endpoint, response.status_code)
        message = (
            f"**Sent {inline_code(kind)} on {inline_code(repo)} to {inline_code(endpoint_name(endpoint))}:** "
            f"HTTP {response.status_code}" + (f", event #{event_id} (marked 🧪 test)." if event_id else ".")
        )
        return message + "\n\n" + fenced(answer, "json"), event_id

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
                hub_webhooks_frame([]),
                [],
            )
        base = self.server.public_url()
        try:
            hooks = hub_registration.list_space_webhooks(
                token, base_url=base, secrets=self.server.settings.webhook_secrets
            )
        except hub_registration.HubRegistrationError as exc:
            return HubView(f"**⚠️ {exc.message}**", hub_webhooks_frame([]), [])
        urls = {hook.url.split("?")[0] for hook in hooks}
        lines = [message] if message else []
        missing = [path for path, url in self.server.webhook_urls().items() if url not in urls]
        if missing:
            lines.append(
                "**⚠️ No Hub webhook points at** "
                + ", ".join(inline_code(endpoint_name(path)) for path in missing)
                + " yet: **Create / update webhooks** registers them."
            )
        for hook in hooks:
            if hook.disabled:
                lines.append(f"**⚠️ Webhook {inline_code(hook.id)} is disabled** (the Hub suspends failing webhooks).")
            if self.server.settings.secret_configured and hook.secret != "matches":
                lines.append(
                    f"**❌ Webhook {inline_code(hook.id)} sends "
                    f"{'no secret' if hook.secret == 'none' else 'another secret'}**: "
                    "its deliveries are refused. **Create / update webhooks** sets the Space's secret on it."
                )
        if hooks and not missing and len(lines) == (1 if message else 0):
            lines.append(f"**✅ Every endpoint has a Hub webhook pointing at it** ({len(hooks)} found).")
        return HubView("\n\n".join(lines), hub_webhooks_frame(hooks), [hook.id for hook in hooks if hook.disabled])

    def hub_sync(self, grant: object) -> HubView:
        """Create or update one Hub webhook per endpoint with this Space's URL and secret."""
        require(grant)
        token = hub_registration.hub_token()
        if not token:
            return self.hub_view(grant)
        settings = self.server.settings
        if not settings.secret_configured:
            raise ConsoleRefusal(
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
            raise ConsoleRefusal(exc.message) from None
        done = "; ".join(f"{inline_code(endpoint_name(r.path))} {r.action}" for r in results) or "no endpoint"
        return self.hub_view(grant, message=f"**Done:** {done}.")

    def hub_enable(self, grant: object, webhook_id: str | None) -> HubView:
        """Turn a webhook the Hub suspended back on."""
        require(grant)
        token = hub_registration.hub_token()
        if not token or not webhook_id:
            raise ConsoleRefusal("Pick a disabled webhook to enable.")
        try:
            hub_registration.enable_webhook(token, webhook_id, secrets=self.server.settings.webhook_secrets)
        except hub_registration.HubRegistrationError as exc:
            raise ConsoleRefusal(exc.message) from None
        return self.hub_view(grant, message=f"**Enabled** {inline_code(webhook_id)}.")


MAX_EVENT_NUMBER = 2**63 - 1
"""The largest id SQLite stores; a larger number would be an error of the database, not "no such event"."""


def event_number(value: object, *, missing: str) -> int:
    """An event number typed or picked; `ConsoleRefusal` with `missing` when there is none."""
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):  # None, text, NaN, infinity
        raise ConsoleRefusal(missing) from None
    if not 0 < number <= MAX_EVENT_NUMBER:
        raise ConsoleRefusal(f"There is no event #{number}.")
    return number
