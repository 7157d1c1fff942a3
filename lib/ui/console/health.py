"""The console's Health tab: the last hour and day against the Hub's limits, each endpoint's handlers
now (running, and stuck past their timeout, against its share of the worker), and the Hub Jobs the
handlers launched (by outcome, job-hours per day), refreshed every 30 s.

Its own timer, slower than the deliveries', because the counts change slowly and cost aggregate
queries; it also fills once right after an unlock (`fill_step`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd
from gradio.blocks import Block

from ..access import is_granted
from ..console_actions import Console
from ..console_format import STATE_COLORS, STATES_COLUMNS
from ..console_jobs import ConsoleJobs
from . import jobs
from .listeners import QUIET, Step, call
from .lock import Session


@dataclass(frozen=True)
class HealthTab:
    """Counts, success rate and latencies; handlers now; events by state; each endpoint's use of the Hub's
    limit; Hub Jobs."""

    table: gr.Markdown
    states_plot: gr.BarPlot
    usage_html: gr.HTML
    jobs: jobs.JobsHealth

    @property
    def outputs(self) -> list[Block]:
        return [self.table, self.states_plot, self.usage_html, self.jobs.table, self.jobs.hours_plot]


def build_health_tab() -> HealthTab:
    """The tab's content, empty until the first fill."""
    with gr.Row():
        with gr.Column(min_width=280):
            table = gr.Markdown("", elem_id="health-table")
        states_plot = gr.BarPlot(
            pd.DataFrame([], columns=STATES_COLUMNS),
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
    return HealthTab(table, states_plot, usage_html, jobs.build_jobs_health())


def fill_step(console: Console, console_jobs: ConsoleJobs, grant: gr.State, tab: HealthTab) -> Step:
    """The tab's content for a grant; blank (and no error) without one."""

    async def refresh_health(current: Any) -> tuple:
        if not is_granted(current):
            return "", None, "", "", gr.BarPlot(visible=False)
        health = await call(console.health, current)
        return health.table, health.states, health.usage_html, *await jobs.health_updates(console_jobs, current)

    return Step(refresh_health, [grant], tab.outputs)


def wire_health(session: Session, fill: Step) -> None:
    """Fill again on the health timer, which an unlock starts and a lock stops."""
    fill.on(session.health_ticker.tick, "console_health", **QUIET)
