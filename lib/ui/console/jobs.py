"""The console's Hub Jobs parts: an event's job panel with its Cancel button, the confirmations a replay
of an event that launched a job waits for, and the jobs' rows and job-hours plot in the Health tab.

Laid out where they belong by the sections that own the place (`deliveries` puts the panel under the
event's title and the confirmations under the action message, `health` the jobs' part under its
tables) and wired here, so the deliveries' and health's own wiring stays as it was. What each button
does, grant first, is `lib.ui.console_jobs.ConsoleJobs`; how a job reads is `lib.ui.job_format`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from ..console_jobs import ConsoleJobs
from ..job_format import JOB_HOURS_COLUMNS
from .listeners import PRIVATE, QUIET, Step, call


@dataclass(frozen=True)
class JobPanel:
    """Under the event's title: its job (id and link, flavor, stage, durations, log tail) and Cancel."""

    markdown: gr.Markdown
    cancel_row: gr.Row
    cancel_button: gr.Button
    logs_button: gr.Button


def build_job_panel() -> JobPanel:
    markdown = gr.Markdown("", elem_id="event-job")
    with gr.Row(visible=False, elem_classes=["console-bar"]) as cancel_row:
        logs_button = gr.Button("Latest logs", size="md", scale=0, min_width=140, elem_id="job-logs")
        cancel_button = gr.Button(
            "Cancel this job", variant="stop", size="md", scale=0, min_width=170, elem_id="cancel-job"
        )
    return JobPanel(markdown, cancel_row, cancel_button, logs_button)


async def panel_updates(jobs: ConsoleJobs, current: Any, number: Any, *, latest: bool = False) -> tuple:
    """The job panel of an event as (markdown, buttons row) updates: for the deliveries' show step, and with
    the logs read from the Hub now (`latest`) for the Latest logs button."""
    panel = await call(jobs.latest_logs if latest else jobs.job_panel, current, number)
    return gr.Markdown(panel.markdown, visible=bool(panel.markdown)), gr.Row(visible=panel.cancellable)


@dataclass(frozen=True)
class Confirmations:
    """Under the action message: the buttons that go ahead with a replay that launches new jobs, and what
    they would replay (kept from the warning, so picking another event meanwhile cannot change it)."""

    replay_row: gr.Row
    replay_button: gr.Button
    replay_pending: gr.State
    dead_row: gr.Row
    dead_button: gr.Button
    dead_pending: gr.State


def build_confirmations() -> Confirmations:
    with gr.Row(visible=False, elem_classes=["console-bar"]) as replay_row:
        replay_button = gr.Button(
            "Replay and launch a new job", variant="stop", size="md", scale=0, min_width=240, elem_id="confirm-replay"
        )
    with gr.Row(visible=False, elem_classes=["console-bar"]) as dead_row:
        dead_button = gr.Button(
            "Re-run and launch new jobs",
            variant="stop",
            size="md",
            scale=0,
            min_width=240,
            elem_id="confirm-rerun-dead",
        )
    return Confirmations(replay_row, replay_button, gr.State(None), dead_row, dead_button, gr.State(None))


@dataclass(frozen=True)
class JobsHealth:
    """In the Health tab: jobs by outcome, durations and job-hours; job-hours per day."""

    table: gr.Markdown
    hours_plot: gr.BarPlot


def build_jobs_health() -> JobsHealth:
    table = gr.Markdown("", elem_id="job-health")
    hours_plot = gr.BarPlot(
        pd.DataFrame([], columns=JOB_HOURS_COLUMNS),
        x="day",
        y="job-hours",
        title="Hub Job hours per day (UTC)",
        x_title="",
        height=220,
        visible=False,
        elem_id="job-hours-plot",
    )
    return JobsHealth(table, hours_plot)


async def health_updates(console_jobs: ConsoleJobs, current: Any) -> tuple:
    """The jobs' part of the Health tab as (table, plot) updates; the plot hidden while no job ended this week."""
    health = await call(console_jobs.health, current)
    return health.table, gr.BarPlot(health.hours, visible=not health.hours.empty)


def wire_replays(
    jobs: ConsoleJobs,
    grant: gr.State,
    confirm: Confirmations,
    *,
    message: gr.Markdown,
    replay_button: gr.Button,
    event_number: gr.Number,
    dead_button: gr.Button,
    dead_endpoint: gr.Dropdown,
    refresh: Step,
) -> None:
    """Replay and re-run go through `ConsoleJobs`, which asks first when new jobs would be launched."""

    async def run(action: Any, current: Any, target: Any) -> tuple:
        """The answer, the confirm button shown or hidden, and what it would go ahead with."""
        replied = await call(action, current, target)
        return replied.message, gr.Row(visible=replied.confirm), target if replied.confirm else None

    async def replay(current: Any, number: Any) -> tuple:
        return await run(jobs.replay, current, number)

    async def replay_confirmed(current: Any, pending: Any) -> tuple:
        return await run(jobs.replay_new_job, current, pending)

    async def rerun(current: Any, endpoint: Any) -> tuple:
        return await run(jobs.replay_dead, current, endpoint)

    async def rerun_confirmed(current: Any, pending: Any) -> tuple:
        return await run(jobs.replay_dead_new_jobs, current, pending)

    replay_outputs = [message, confirm.replay_row, confirm.replay_pending]
    dead_outputs = [message, confirm.dead_row, confirm.dead_pending]
    for trigger, fn, inputs, outputs, api_name in (
        (replay_button.click, replay, [grant, event_number], replay_outputs, "console_replay"),
        (
            confirm.replay_button.click,
            replay_confirmed,
            [grant, confirm.replay_pending],
            replay_outputs,
            "console_replay_new_job",
        ),
        (dead_button.click, rerun, [grant, dead_endpoint], dead_outputs, "console_replay_dead"),
        (
            confirm.dead_button.click,
            rerun_confirmed,
            [grant, confirm.dead_pending],
            dead_outputs,
            "console_replay_dead_new_jobs",
        ),
    ):
        done = trigger(fn, inputs, outputs, api_name=api_name, concurrency_limit=None, **PRIVATE)
        refresh.on(done.then, api_name.replace("console_", "console_refresh_after_"), **QUIET)


def wire_job_panel(
    jobs: ConsoleJobs,
    grant: gr.State,
    panel: JobPanel,
    *,
    message: gr.Markdown,
    event_number: gr.Number,
    refresh: Step,
    show: Step,
) -> None:
    """Cancel the shown event's job, then show the event and the table as they are now; read its latest logs."""
    cancelled = panel.cancel_button.click(
        jobs.cancel_job,
        [grant, event_number],
        [message],
        api_name="console_cancel_job",
        concurrency_limit=None,
        **PRIVATE,
    )
    show.on(cancelled.then, "console_show_after_cancel", **QUIET)
    refresh.on(cancelled.then, "console_refresh_after_cancel", **QUIET)

    async def latest_logs(current: Any, number: Any) -> tuple:
        return await panel_updates(jobs, current, number, latest=True)

    panel.logs_button.click(
        latest_logs,
        [grant, event_number],
        [panel.markdown, panel.cancel_row],
        api_name="console_job_logs",
        concurrency_limit=None,
        **PRIVATE,
    )
