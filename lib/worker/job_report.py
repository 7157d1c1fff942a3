"""Reporting a job's end back to its handler module's `on_job_end`, as an event of its own.

When a job ends, the follower records a report event: the original event's body and headers, plus
the job's end (`JobEnd`, as JSON in one more header), on the endpoint `<path>#on_job_end`, which
the Hub can never post to. The worker runs it like any delivery, so a report is recorded before it
runs, retried with backoff when `on_job_end` raises, left dead and replayable from the console, and
never launches a job (`run_uv_job` refuses inside it). It runs at least once: an `on_job_end` that
comments on the Hub checks for its own earlier comment.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from typing import Any

from fastapi import Request

from ..core.jobs import REPORT_SUFFIX, JobEnd
from ..core.payload import WebhookPayload
from ..core.registry import Endpoint
from ..journal import Delivery, EventRecord, JobRecord

JOB_END_HEADER = "x-hub-webhooks-job-end"


def job_end(job: JobRecord) -> JobEnd:
    """What `on_job_end` is given about a job that ended."""
    return JobEnd(
        id=job.job_id,
        namespace=job.namespace,
        url=job.url,
        flavor=job.flavor,
        stage=job.stage,
        message=job.message,
        started_at=job.started_at,
        finished_at=job.finished_at,
        duration_seconds=job.duration_seconds,
        logs_tail=job.logs_tail or "",
        event_id=job.event_id,
    )


def report_delivery(job: JobRecord, event: EventRecord, *, now: float) -> Delivery:
    """The report of `job`'s end, to record as a delivery to `<endpoint>#on_job_end` (one per job: its key)."""
    return Delivery(
        endpoint=event.endpoint + REPORT_SUFFIX,
        delivery_key=f"job-end:{job.label}",
        webhook_id=None,
        received_at=now,
        headers={**event.headers, JOB_END_HEADER: job_end(job).to_json()},
        query=event.query,
        body=event.body,
        scope=event.scope,
        action=event.action,
        repo_name=event.repo_name,
        repo_type=event.repo_type,
        order_key=None,  # not behind the repository's next events: it reports on one that has ended
        is_test=event.is_test,
    )


def _report_handler(on_job_end: Callable[..., Any]) -> Callable[..., Any]:
    """A handler the worker can run for a report event: `on_job_end` with the arguments it names."""
    wanted = inspect.signature(on_job_end).parameters

    def report(payload: WebhookPayload, request: Request) -> Any:
        given = {"job": JobEnd.from_json(request.headers[JOB_END_HEADER]), "payload": payload}
        return on_job_end(**{name: value for name, value in given.items() if name in wanted})

    report.__qualname__ = getattr(on_job_end, "__qualname__", "on_job_end")
    return report


@cache
def _report_endpoint(endpoint: Endpoint) -> Endpoint:
    return Endpoint.create(
        endpoint.path + REPORT_SUFFIX,
        _report_handler(endpoint.jobs.on_job_end),  # type: ignore[arg-type]
        description=f"on_job_end of {endpoint.path}: how its Hub Jobs ended, reported back",
        source=endpoint.source,
    )


class WithReports(Mapping[str, Endpoint]):
    """The endpoints, and for each whose module has `on_job_end`, its report endpoint: what the worker runs.

    A live view, so an endpoint registered later is seen too; the receiver keeps the plain mapping,
    so a report endpoint is never reachable over HTTP.
    """

    def __init__(self, endpoints: Mapping[str, Endpoint]) -> None:
        self.endpoints = endpoints

    def __getitem__(self, path: str) -> Endpoint:
        if path.endswith(REPORT_SUFFIX):
            base = self.endpoints[path.removesuffix(REPORT_SUFFIX)]
            if base.jobs.on_job_end is None:
                raise KeyError(path)
            return _report_endpoint(base)
        return self.endpoints[path]

    def __iter__(self) -> Iterator[str]:
        for path, endpoint in list(self.endpoints.items()):
            yield path
            if endpoint.jobs.on_job_end is not None:
                yield path + REPORT_SUFFIX

    def __len__(self) -> int:
        return sum(1 for _ in self)
