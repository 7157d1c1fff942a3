"""The console's view of the alerts (Health tab): open problems, and each target, failing ones first."""

from __future__ import annotations

import html
import time

from ..ops import AlertsView, TargetView


def _clock(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))


def _target_line(target: TargetView) -> str:
    name = html.escape(target.name)
    if target.waiting and target.last_error:
        since = _clock(target.last_error_at or 0)
        return (
            f'<li class="alert-target-failing">⚠️ <b>{name}</b> is failing: {html.escape(target.last_error)} '
            f"({target.waiting} alert(s) waiting, retried with backoff; last failure {since})</li>"
        )
    if target.last_ok is not None:
        return f"<li>✅ <b>{name}</b>: last alert taken {_clock(target.last_ok)}</li>"
    return f"<li>✅ <b>{name}</b>: no alert sent yet</li>"


def alerts_html(view: AlertsView) -> str:
    """The Alerts block: what is going on, and whether each target takes what it is sent."""
    parts = ['<div class="alerts" id="alerts-panel"><p><b>Alerts</b></p>']
    if view.open:
        parts.append(
            "<ul>"
            + "".join(f"<li>🔴 {html.escape(title)} (since {_clock(since)})</li>" for title, since in view.open)
            + "</ul>"
        )
    else:
        parts.append("<p>No problem going on.</p>")
    if view.held_back:
        parts.append(f"<p>{view.held_back} alert(s) held back by WEBHOOK_ALERT_MAX_PER_HOUR.</p>")
    if view.targets:
        ordered = sorted(view.targets, key=lambda target: not (target.waiting and target.last_error))
        parts.append("<ul>" + "".join(_target_line(target) for target in ordered) + "</ul>")
    else:
        parts.append(
            "<p>No alert target: set WEBHOOK_ALERT_URL (a Slack or Discord incoming webhook), or SPACE_ID and "
            "HF_TOKEN for a discussion on this Space per problem.</p>"
        )
    return "".join(parts) + "</div>"
