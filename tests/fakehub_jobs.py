"""The Jobs API of the fake Hub (`tests/fakehub.py`): state, test controls and routes.

Shapes follow what `huggingface_hub` 2.4 sends and parses (`hf_api.py` `run_job`, `list_jobs`,
`inspect_job`, `cancel_job`, `update_job_labels`, `list_jobs_hardware`, `fetch_job_logs` and its
`_stream_sse_events`; `_jobs_api.py` `JobInfo`, `_create_job_spec`). Every `FakeHub` has one `FakeJobs`
at `hub.jobs`; tests drive it from the test process (the fake runs in a thread of that process):

    job = hub.jobs.wait_for_launches(1)[0]          # what the code under test launched
    hub.jobs.add_logs(job.id, "epoch 1", "loss 0.3")
    hub.jobs.set_stage(job.id, "ERROR", message="OOM")

Behaviour, as on the Hub:

- Every route needs a token (401 without). The namespace in the path must be the token's user or one of
  its orgs (403 otherwise); launching, canceling and relabelling also need a token that may write (403
  for a "read" token). A job id unknown in that namespace answers 404.
- A job starts in SCHEDULING; nothing moves it by itself (no clock, no timeout enforcement): tests move
  it with `set_stage`. Timestamps (`createdAt`, `startedAt`, `finishedAt`) and `durations` follow the
  stages. Cancel moves a non-final job to CANCELED and is a no-op on a final one.
- Secrets are stored (see `Job.secrets`) but answered with their values replaced by `SECRET_MARK`.
- Labels: keys and values of 1-100 characters among `[A-Za-z0-9_-]` (the client's documented rule); a
  bad label is a 400. The job's `name` travels as `labels["name"]`.
- List: newest first, `stage=` and `label=key=value` filters (repeatable; a job must match one of the
  stages and carry every label), `page_size` jobs per page with a `Link: <...>; rel="next"` header.
- Logs: server-sent events `data: {"data": ..., "timestamp": ...}`, `tail=N` starts N lines from the end.
  For a final job the stream sends the lines and ends. For a job still SCHEDULING or RUNNING it stays
  open like the Hub's, sending new lines as `add_logs` adds them, and ends once the job is final (after
  its last lines) or after `log_stream_seconds` (default 2 s; the Hub keeps it open, with keep-alives).
  The client: `follow=False` reads until the stream ends (or 5 s without a line), so it takes up to
  `log_stream_seconds` on a running job. `follow=True` checks the job's stage whenever the stream ends and,
  while it is not final, sleeps (2 s, doubling up to 10 s) and reconnects, replaying the log and skipping
  the lines it already yielded. Lines logged during that sleep by a job that ENDS during it are never
  read: the client's own behaviour, which the bounded stream makes more likely than the Hub does.

Not faked: scheduled jobs, metrics, `duplicate`, `expose`, buckets. `run_uv_job` with a LOCAL script path
uploads the script to a `jobs-artifacts` bucket first (`create_bucket` + Xet uploads): the bucket routes
answer 501. A script given as a URL or as a command needs no upload and works.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fakehub import HubError, User, _Call, _object_id, _route
from starlette.responses import JSONResponse, Response, StreamingResponse

if TYPE_CHECKING:
    from fakehub import FakeHub

__all__ = ["FINAL_STAGES", "HARDWARE", "SECRET_MARK", "STAGES", "FakeJobs", "Job"]

STAGES = ("SCHEDULING", "RUNNING", "COMPLETED", "CANCELED", "ERROR", "DELETED")
FINAL_STAGES = frozenset({"COMPLETED", "CANCELED", "ERROR", "DELETED"})
SECRET_MARK = "<encrypted>"
_LABEL_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_NS = r"/api/jobs/(?P<ns>[^/]+)"
_ID = r"(?P<job_id>[^/]+)"


def _hardware(name: str, pretty: str, cpu: str, ram: str, micro_usd: int, gpu: str | None = None) -> dict[str, Any]:
    accelerator = None
    if gpu is not None:
        model, vram = gpu.split(":")
        accelerator = {"type": "gpu", "model": model, "quantity": "1", "vram": vram, "manufacturer": "Nvidia"}
    return {
        "name": name,
        "prettyName": pretty,
        "cpu": cpu,
        "ram": ram,
        "ephemeralStorage": "50 GB",
        "accelerator": accelerator,
        "unitCostMicroUSD": micro_usd,
        "unitCostUSD": micro_usd / 1_000_000,
        "unitLabel": "minute",
    }


HARDWARE: tuple[dict[str, Any], ...] = (
    _hardware("cpu-basic", "CPU Basic", "2 vCPU", "16 GB", 167),
    _hardware("cpu-upgrade", "CPU Upgrade", "8 vCPU", "32 GB", 500),
    _hardware("t4-small", "Nvidia T4 - small", "4 vCPU", "15 GB", 6667, gpu="T4:16 GB"),
    _hardware("a10g-small", "Nvidia A10G - small", "4 vCPU", "15 GB", 16667, gpu="A10G:24 GB"),
    _hardware("a100-large", "Nvidia A100 - large", "12 vCPU", "142 GB", 41667, gpu="A100:80 GB"),
)
_FLAVORS = frozenset(h["name"] for h in HARDWARE)


def _iso(moment: datetime | None) -> str | None:
    """The Hub's timestamp format, '2024-05-01T12:00:00.123Z'."""
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _seconds(start: datetime | None, end: datetime) -> int | None:
    return None if start is None else max(0, int((end - start).total_seconds()))


@dataclass
class Job:
    """One launched job, as the fake stores it. `secrets` holds the PLAIN values that were sent."""

    id: str
    namespace: str
    owner: dict[str, str]
    initiator: dict[str, str]
    docker_image: str | None
    space_id: str | None
    command: list[str]
    arguments: list[str]
    environment: dict[str, str]
    secrets: dict[str, str]
    flavor: str
    timeout_seconds: int | None
    attempts: int | None
    labels: dict[str, str]
    volumes: list[dict[str, Any]]
    spec: dict[str, Any]  # the whole request body, for assertions on anything else
    stage: str = "SCHEDULING"
    message: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_at: datetime | None = None
    finished_at: datetime | None = None
    logs: list[tuple[str, str]] = field(default_factory=list)  # (timestamp, line), oldest first

    @property
    def is_final(self) -> bool:
        return self.stage in FINAL_STAGES

    @property
    def log_lines(self) -> list[str]:
        return [line for _, line in self.logs]

    def to_api(self) -> dict[str, Any]:
        """The JobInfo JSON the Hub answers (camelCase)."""
        now = self.finished_at or datetime.now(UTC)
        data: dict[str, Any] = {
            "id": self.id,
            "createdAt": _iso(self.created_at),
            "startedAt": _iso(self.started_at),
            "finishedAt": _iso(self.finished_at),
            "command": list(self.command),
            "arguments": list(self.arguments),
            "environment": dict(self.environment),
            "secrets": dict.fromkeys(self.secrets, SECRET_MARK),
            "flavor": self.flavor,
            "labels": dict(self.labels),
            "volumes": copy.deepcopy(self.volumes) or None,
            "status": {"stage": self.stage, "message": self.message},
            "durations": {
                "schedulingSecs": _seconds(self.created_at, self.started_at) if self.started_at else None,
                "runningSecs": _seconds(self.started_at, now),
                "totalSecs": _seconds(self.created_at, now),
            },
            "owner": dict(self.owner),
            "initiator": dict(self.initiator),
        }
        if self.timeout_seconds is not None:
            data["timeoutSeconds"] = self.timeout_seconds
        if self.attempts is not None:
            data["retry"] = self.attempts - 1
        data["spaceId" if self.space_id else "dockerImage"] = self.space_id or self.docker_image
        return data


class FakeJobs:
    """Jobs state of one FakeHub, and the controls a test uses (thread-safe; accessors return copies)."""

    def __init__(self, hub: FakeHub, *, page_size: int = 50, log_stream_seconds: float = 2.0) -> None:
        self.page_size = page_size  # jobs per page of the list route
        self.log_stream_seconds = log_stream_seconds  # how long a log stream of a non-final job stays open
        self._lock = hub._lock  # the routes run under it too
        self._jobs: dict[str, Job] = {}
        self._refusal: tuple[int, str] | None = None
        self._after_accept: str | None = None  # None, "hold" or "fail"
        self._fail_status = 504
        self._release = threading.Event()

    # ---- inspecting what was launched --------------------------------------------------------------

    def all(self) -> list[Job]:
        """Every job launched, oldest first (snapshots)."""
        with self._lock:
            return copy.deepcopy(list(self._jobs.values()))

    def __iter__(self) -> Iterator[Job]:
        return iter(self.all())

    def __len__(self) -> int:
        """How many jobs were launched (accepted by the run route) so far."""
        with self._lock:
            return len(self._jobs)

    def get(self, job_id: str) -> Job:
        with self._lock:
            return copy.deepcopy(self._job(job_id))

    def with_labels(self, **labels: str) -> list[Job]:
        """Jobs carrying every given label, oldest first."""
        return [j for j in self.all() if all(j.labels.get(k) == v for k, v in labels.items())]

    def wait_for_launches(self, count: int = 1, *, timeout: float = 10.0) -> list[Job]:
        """Block until at least `count` jobs were launched; returns all jobs. Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while len(self) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self)} job(s) launched within {timeout}s, expected {count}")
            time.sleep(0.02)
        return self.all()

    # ---- moving jobs -------------------------------------------------------------------------------

    def set_stage(self, job_id: str, stage: str, *, message: str | None = None, at: datetime | None = None) -> Job:
        """Move a job to `stage` (any of STAGES, in any order), at `at` (default now).

        RUNNING sets `startedAt`; a final stage sets `finishedAt` (and `startedAt` if the job never
        ran is left None, so its `durations.runningSecs` is None). Returns the job's new state.
        """
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        moment = at or datetime.now(UTC)
        with self._lock:
            job = self._job(job_id)
            job.stage, job.message = stage, message
            if stage == "RUNNING":
                job.started_at, job.finished_at = job.started_at or moment, None
            elif stage in FINAL_STAGES:
                job.finished_at = moment
            else:
                job.started_at = job.finished_at = None
            return copy.deepcopy(job)

    def add_logs(self, job_id: str, *lines: str) -> None:
        """Append log lines, each stamped (to the microsecond) later than the previous line: the client
        drops a replayed line whose timestamp is not after the last one it yielded."""
        with self._lock:
            job = self._job(job_id)
            for line in lines:
                moment = datetime.now(UTC)
                if job.logs:
                    last = datetime.strptime(job.logs[-1][0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
                    moment = max(moment, last + timedelta(microseconds=1))
                job.logs.append((moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), line))

    # ---- making the run route misbehave ------------------------------------------------------------

    def refuse_runs(self, status: int = 402, message: str = "You need credits to run Jobs") -> None:
        """From now on the run route stores nothing and answers `status` (e.g. 402 no credits, 429, 503)."""
        with self._lock:
            self._refusal = (status, message)

    def hold_run_responses(self) -> None:
        """From now on the run route STORES the job and then does not answer until `allow_runs()` (or the
        server stops): a caller that is killed meanwhile never heard that the Hub accepted its job."""
        with self._lock:
            self._after_accept = "hold"
            self._release.clear()

    def fail_run_responses(self, status: int = 504) -> None:
        """From now on the run route STORES the job and then answers `status` as if the answer was lost."""
        with self._lock:
            self._after_accept, self._fail_status = "fail", status

    def allow_runs(self) -> None:
        """Back to normal: runs are accepted and answered; responses being held are sent now."""
        with self._lock:
            self._refusal = self._after_accept = None
            self._release.set()

    # ---- internals (call with the lock held) -------------------------------------------------------

    def _job(self, job_id: str) -> Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise KeyError(f"no job {job_id!r} in the FakeHub") from None

    def _launch(self, call: _Call, namespace: str, user: User) -> Response:
        if self._refusal is not None:
            raise HubError(self._refusal[0], self._refusal[1])
        body = call.json()
        if not isinstance(body, dict):
            raise HubError(400, "The job spec must be a JSON object")
        job = _job_from_spec(body, namespace, user)
        self._jobs[job.id] = job
        response = JSONResponse(job.to_api())
        if self._after_accept == "fail":
            return HubError(self._fail_status, "Gateway Timeout").response()
        if self._after_accept == "hold":
            return _HeldResponse(response, self._release.is_set)
        return response


class _HeldResponse(Response):
    """Sends `inner` once `released()` is true, or nothing if the caller hangs up first (e.g. it was
    killed). Waits without blocking the server's event loop."""

    def __init__(self, inner: Response, released: Callable[[], bool]) -> None:
        super().__init__(status_code=inner.status_code)
        self._inner, self._released = inner, released

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # The body was read already: the next message is the disconnect, whenever it comes.
        disconnected = asyncio.ensure_future(receive())
        try:
            while not self._released():
                if disconnected.done():
                    return
                await asyncio.sleep(0.02)
        finally:
            disconnected.cancel()
        await self._inner(scope, receive, send)


def _strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise HubError(400, f"{what} must be an object of strings")
    return dict(value)


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        if not (_LABEL_RE.match(key) and _LABEL_RE.match(value)):
            rule = "keys and values must be 1-100 characters among letters, digits, '-' and '_'"
            raise HubError(400, f"Invalid label {key}={value}: {rule}")
    return labels


def _job_from_spec(body: dict[str, Any], namespace: str, user: User) -> Job:
    """Validate a run request the way the Hub does for what matters to us, and build the Job."""
    image, space = body.get("dockerImage"), body.get("spaceId")
    if bool(image) == bool(space):
        raise HubError(400, "Exactly one of dockerImage or spaceId is required")
    command, arguments = body.get("command"), body.get("arguments") or []
    for name, value in (("command", command), ("arguments", arguments)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise HubError(400, f"{name} must be a list of strings")
    if not command:
        raise HubError(400, "command must not be empty")
    flavor = body.get("flavor") or "cpu-basic"
    if flavor not in _FLAVORS:
        raise HubError(400, f"Invalid flavor {flavor!r}: must be one of {sorted(_FLAVORS)}")
    timeout = body.get("timeoutSeconds")
    if timeout is not None and (not isinstance(timeout, int) or timeout <= 0):
        raise HubError(400, "timeoutSeconds must be a positive integer")
    attempts = body.get("attempts")
    if attempts is not None and (not isinstance(attempts, int) or attempts < 1):
        raise HubError(400, "attempts must be a positive integer")
    owner_type = "user" if namespace == user.name else "org"
    return Job(
        id=_object_id(),
        namespace=namespace,
        owner={"id": user.id if owner_type == "user" else _object_id(), "name": namespace, "type": owner_type},
        initiator={"type": "user", "id": user.id, "name": user.name},
        docker_image=image,
        space_id=space,
        command=list(command),
        arguments=list(arguments),
        environment=_strings(body.get("environment"), "environment"),
        secrets=_strings(body.get("secrets"), "secrets"),
        flavor=flavor,
        timeout_seconds=timeout,
        attempts=attempts,
        labels=_check_labels(_strings(body.get("labels"), "labels")),
        volumes=list(body.get("volumes") or []),
        spec=copy.deepcopy(body),
    )


# ------------------------------------------------------------------------------------------------------
# Routes (registered on FakeHub's router; each runs with the hub's lock held)
# ------------------------------------------------------------------------------------------------------


def _member(call: _Call, namespace: str, *, write: bool = False) -> User:
    """The caller, who must be `namespace` or one of its orgs (and may write, if `write`)."""
    user = call.user
    if user is None:
        raise HubError(401, "You must be authenticated to use Jobs")
    if not user.owns(namespace):
        raise HubError(403, f"You don't have the rights to use Jobs in the namespace {namespace}")
    if write and user.role == "read":
        raise HubError(403, "You don't have the rights to perform this action with a read token")
    return user


def _found(hub: FakeHub, namespace: str, job_id: str) -> Job:
    job = hub.jobs._jobs.get(job_id)
    if job is None or job.namespace != namespace:
        raise HubError(404, f"Job {job_id} not found")
    return job


@_route("GET", r"/api/jobs/hardware")
def _list_hardware(hub: FakeHub, call: _Call) -> Response:
    if call.user is None:
        raise HubError(401, "You must be authenticated to use Jobs")
    return JSONResponse(copy.deepcopy(list(HARDWARE)))


@_route("POST", _NS)
def _run_job(hub: FakeHub, call: _Call, ns: str) -> Response:
    return hub.jobs._launch(call, ns, _member(call, ns, write=True))


@_route("GET", _NS)
def _list_jobs(hub: FakeHub, call: _Call, ns: str) -> Response:
    _member(call, ns)
    stages = call.query.get("stage") or []
    if unknown := [s for s in stages if s not in STAGES]:
        raise HubError(400, f"Invalid stage {unknown[0]!r}: must be one of {list(STAGES)}")
    wanted = [label.partition("=") for label in call.query.get("label") or []]
    jobs = [
        j
        for j in reversed(hub.jobs._jobs.values())
        if j.namespace == ns
        and (not stages or j.stage in stages)
        and all(j.labels.get(key) == value for key, _, value in wanted)
    ]
    try:
        start = int(call.param("cursor") or 0)
    except ValueError as err:
        raise HubError(400, "cursor must be an integer") from err
    size = hub.jobs.page_size
    response = JSONResponse([j.to_api() for j in jobs[start : start + size]])
    if start + size < len(jobs):
        params = [(k, v) for k, values in call.query.items() if k != "cursor" for v in values]
        next_url = f"{call.base_url}/api/jobs/{ns}?{urlencode([*params, ('cursor', start + size)])}"
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return response


@_route("GET", rf"{_NS}/{_ID}")
def _inspect_job(hub: FakeHub, call: _Call, ns: str, job_id: str) -> Response:
    _member(call, ns)
    return JSONResponse(_found(hub, ns, job_id).to_api())


@_route("POST", rf"{_NS}/{_ID}/cancel")
def _cancel_job(hub: FakeHub, call: _Call, ns: str, job_id: str) -> Response:
    _member(call, ns, write=True)
    job = _found(hub, ns, job_id)
    if not job.is_final:
        hub.jobs.set_stage(job.id, "CANCELED", message="Job canceled by user")
    return JSONResponse(job.to_api())


@_route("PUT", rf"{_NS}/{_ID}/labels")
def _update_labels(hub: FakeHub, call: _Call, ns: str, job_id: str) -> Response:
    _member(call, ns, write=True)
    job = _found(hub, ns, job_id)
    body = call.json()
    if not isinstance(body, dict) or not isinstance(body.get("labels"), dict):
        raise HubError(400, 'The body must be {"labels": {...}}')
    job.labels = _check_labels(_strings(body["labels"], "labels"))
    return JSONResponse(job.to_api())


@_route("GET", rf"{_NS}/{_ID}/logs")
def _job_logs(hub: FakeHub, call: _Call, ns: str, job_id: str) -> Response:
    _member(call, ns)
    job = _found(hub, ns, job_id)
    tail = call.param("tail")
    if tail is not None and not tail.isdigit():
        raise HubError(400, "tail must be a non-negative integer")
    start = max(0, len(job.logs) - int(tail)) if tail is not None else 0
    headers = {"Cache-Control": "no-cache"}
    if job.is_final:
        return Response(_events(job.logs[start:]), media_type="text/event-stream", headers=headers)
    return StreamingResponse(
        _follow(hub.jobs, job, start, hub.jobs.log_stream_seconds), media_type="text/event-stream", headers=headers
    )


def _events(logs: list[tuple[str, str]]) -> str:
    return "".join(f"data: {json.dumps({'data': line, 'timestamp': ts})}\n\n" for ts, line in logs)


async def _follow(jobs: FakeJobs, job: Job, sent: int, seconds: float) -> AsyncIterator[str]:
    """The lines from `sent` on, then new ones as they come, until the job is final or `seconds` passed."""
    deadline = time.monotonic() + seconds
    while True:
        with jobs._lock:
            new, final = job.logs[sent:], job.is_final
        sent += len(new)
        if new:
            yield _events(new)
        if final or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.02)
