"""The vocabulary of Hub Jobs for handler authors: what a handler module declares, what a launch returns,
and what `on_job_end` receives.

A handler module may say, beside `handle`:

    JOB_POLICY = "supersede"   # or "wait" (the default): a new event of a repo whose job still runs
    JOBS_PER_DAY = 5           # the most jobs its handler launches in 24 hours (default WEBHOOK_JOBS_PER_DAY)

    def on_job_end(job: JobEnd, payload: WebhookPayload): ...   # optional, run when the job ends

These are read and checked once, when the module is registered (`job_options_from_module`), so a
typo stops the start with the file named, not the first event an hour later.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .errors import HandlerModuleError, HubWebhooksError

JobPolicy = Literal["wait", "supersede"]
JOB_POLICIES: tuple[JobPolicy, ...] = ("wait", "supersede")
REPORT_SUFFIX = "#on_job_end"
"""A report event's endpoint is its handler's path plus this: never a path the Hub can post to."""


class JobNotLaunched(HubWebhooksError):
    """A handler asked for a job that must not be launched now (the endpoint's daily cap is reached).

    The event ends skipped with this message as its reason, never failed: nothing is wrong, and
    retrying would only be refused again.
    """


class JobLaunchError(HubWebhooksError):
    """The Hub refused to launch (or cancel) a job, or `run_uv_job` was called where no job can be launched."""


class JobNotRunning(HubWebhooksError):
    """An operator asked to cancel the job of an event that launched none, or whose job has ended."""


@dataclass(frozen=True)
class JobOptions:
    """What a handler module says about the jobs its handler launches."""

    policy: JobPolicy = "wait"
    per_day: int | None = None
    """None: the server's `WEBHOOK_JOBS_PER_DAY`."""
    on_job_end: Callable[..., Any] | None = None


@dataclass(frozen=True)
class LaunchedJob:
    """What `run_uv_job` / `run_job` return: the job launched for this event (or found again)."""

    id: str
    namespace: str
    url: str
    flavor: str
    reused: bool = False
    """True when an earlier attempt of this event had launched it already (found by its label)."""


@dataclass(frozen=True, kw_only=True)
class JobEnd:
    """How a job ended, for `on_job_end(job: JobEnd, payload: WebhookPayload)`."""

    id: str
    namespace: str
    url: str
    flavor: str
    stage: str
    """COMPLETED, ERROR, CANCELED, DELETED, or TIMED_OUT (we gave up following it and cancelled it)."""
    message: str | None
    started_at: float | None
    finished_at: float | None
    duration_seconds: float | None
    logs_tail: str
    event_id: int
    """The event whose handler launched it."""

    @property
    def succeeded(self) -> bool:
        return self.stage == "COMPLETED"

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=True)

    @classmethod
    def from_json(cls, text: str) -> JobEnd:
        return cls(**json.loads(text))


def job_options_from_module(module: Any, file: object) -> JobOptions:
    """Read `JOB_POLICY`, `JOBS_PER_DAY` and `on_job_end` from a handler module.

    Raises:
        HandlerModuleError: one of them is not what it must be; the message names the file and the fix.
    """
    policy = getattr(module, "JOB_POLICY", "wait")
    if policy not in JOB_POLICIES:
        raise HandlerModuleError(
            f"{file}: JOB_POLICY must be 'wait' (a new event of a repo waits for its running job) or 'supersede' "
            f"(the running job is cancelled for it); got {policy!r}."
        )
    per_day = getattr(module, "JOBS_PER_DAY", None)
    if per_day is not None and (type(per_day) is not int or per_day < 0):
        raise HandlerModuleError(
            f"{file}: JOBS_PER_DAY must be a whole number >= 0 (the most jobs launched in 24 hours), got {per_day!r}."
        )
    on_job_end = getattr(module, "on_job_end", None)
    if on_job_end is not None:
        if not callable(on_job_end):
            raise HandlerModuleError(f"{file}: on_job_end must be a function, got {type(on_job_end).__name__}.")
        unknown = [
            name
            for name, parameter in inspect.signature(on_job_end).parameters.items()
            if name not in ("job", "payload") and parameter.default is inspect.Parameter.empty
        ]
        if unknown:
            raise HandlerModuleError(
                f"{file}: on_job_end cannot be given {', '.join(map(repr, unknown))}: it may ask for "
                "`job: JobEnd` and `payload: WebhookPayload`; give other parameters a default."
            )
    return JobOptions(policy=policy, per_day=per_day, on_job_end=on_job_end)
