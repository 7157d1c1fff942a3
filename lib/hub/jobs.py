"""Hub Jobs through `huggingface_hub`'s own client: launch once per label, inspect, cancel, read the log tail.

Every call here blocks on HTTP (the client is synchronous); the worker runs them on a thread. Nothing
here knows about events: the caller gives the label that makes a launch happen at most once, and
`launch` looks for a job carrying it before launching one (see `lib/worker/launch.py`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from huggingface_hub import JobInfo
from huggingface_hub._jobs_api import DEFAULT_UV_IMAGE  # the image `run_uv_job` itself uses

from ..core.jobs import JobLaunchError
from .client import HubClient

logger = logging.getLogger(__name__)

LABEL_KEY = "hub-webhooks-event"
"""The job label holding the exactly-once key of the event that launched it."""
INLINE_SCRIPT_VARIABLE = "HUB_WEBHOOKS_UV_SCRIPT"
MAX_INLINE_SCRIPT_BYTES = 64 * 1024
_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """A job as a handler describes it: a Docker image and command, or a uv script (`script` set)."""

    image: str | None = None
    command: list[str] = field(default_factory=list)
    script: str | None = None
    script_args: list[str] = field(default_factory=list)
    dependencies: list[str] = field(default_factory=list)
    python: str | None = None
    env: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Any] = field(default_factory=dict)
    flavor: str = "cpu-basic"
    timeout_seconds: int = 3600


def timeout_seconds(timeout: int | float | str | None, *, default: int) -> int:
    """A timeout as `huggingface_hub` takes it (`300`, `"5m"`, `"1.5h"`, `"2d"`) in whole seconds.

    Raises:
        JobLaunchError: it is not such a value.
    """
    if timeout is None:
        return default
    try:
        if isinstance(timeout, str):
            text = timeout.strip()
            factor = _TIME_UNITS.get(text[-1:])
            seconds = float(text[:-1]) * factor if factor else float(text)
        else:
            seconds = float(timeout)
    except (ValueError, TypeError):
        seconds = -1.0
    if not seconds > 0:
        raise JobLaunchError(f"timeout must be seconds or a duration like '30m', '2h', '1d'; got {timeout!r}.")
    return max(1, int(seconds))


class HubJobs:
    """Jobs in the token's namespace, on the Hub `api` points at (HF_ENDPOINT)."""

    def __init__(self, api: HubClient) -> None:
        self.api = api
        self.token = api.token

    @property
    def namespace(self) -> str:
        """The token's user (`whoami`, asked once per client): where our jobs run."""
        return self.api.me["name"]

    def find(self, label: str, namespace: str) -> JobInfo | None:
        """The job carrying `label` (the oldest, should there be several), or None."""
        jobs = list(self.api.list_jobs(labels={LABEL_KEY: label}, namespace=namespace, token=self.token))
        return min(jobs, key=lambda job: (job.created_at is None, job.created_at)) if jobs else None

    def run(self, spec: JobSpec, *, namespace: str, label: str, cwd: Path) -> JobInfo:
        """Launch `spec` carrying `label`; `HF_TOKEN` goes to the job as a secret, never in its plain environment.

        A `script` that is a file under `cwd` (the Space's files) is shipped inside the job (see `_inline_uv`).
        """
        env = dict(spec.env)
        secrets = {"HF_TOKEN": self.token, **spec.secrets}
        if "HF_TOKEN" in env:  # a token in plain env would show on the job's page: it goes with the secrets
            secrets["HF_TOKEN"] = env.pop("HF_TOKEN")
        common: dict[str, Any] = {
            "env": env,
            "secrets": secrets,
            "flavor": spec.flavor,
            "timeout": spec.timeout_seconds,
            "labels": {LABEL_KEY: label},
            "namespace": namespace,
            "token": self.token,
        }
        if spec.script is None:
            return self.api.run_job(image=spec.image or "", command=spec.command, **common)
        local = cwd / spec.script
        if not local.is_file():  # a URL, or a command uv runs: the client sends it as it is
            return self.api.run_uv_job(
                spec.script,
                script_args=spec.script_args,
                dependencies=spec.dependencies or None,
                python=spec.python,
                image=spec.image,
                **common,
            )
        return self.api.run_job(image=spec.image or DEFAULT_UV_IMAGE, **_inline_uv(spec, local, env), **common)

    def inspect(self, job_id: str, namespace: str) -> JobInfo:
        return self.api.inspect_job(job_id=job_id, namespace=namespace, token=self.token)

    def cancel(self, job_id: str, namespace: str) -> None:
        self.api.cancel_job(job_id=job_id, namespace=namespace, token=self.token)

    def logs_tail(self, job_id: str, namespace: str, *, lines: int) -> str:
        """The last `lines` lines of the job's logs (what exists now; never waits for more)."""
        logs = self.api.fetch_job_logs(job_id=job_id, namespace=namespace, follow=False, tail=lines, token=self.token)
        return "\n".join(line.rstrip("\n") for line in islice(logs, lines))


def _inline_uv(spec: JobSpec, local: Path, env: dict[str, Any]) -> dict[str, Any]:
    """A uv script from the Space's files, shipped in the job's environment and run by uv from there.

    `huggingface_hub` would upload it to a bucket of the namespace (a new folder per launch); a
    script of a Space is small, and carrying it in the job itself needs nothing else on the Hub.
    The uv inline metadata (`# /// script`) still applies: uv reads the file it runs.
    """
    source = local.read_text(encoding="utf-8")
    if len(source.encode()) > MAX_INLINE_SCRIPT_BYTES:
        raise JobLaunchError(
            f"{spec.script} is over {MAX_INLINE_SCRIPT_BYTES // 1024} KiB: ship it in a repo or at a URL and pass "
            "that to run_uv_job instead."
        )
    env[INLINE_SCRIPT_VARIABLE] = source
    uv_args = [arg for dependency in spec.dependencies for arg in ("--with", dependency)]
    if spec.python:
        uv_args += ["--python", spec.python]
    target = f"/tmp/{local.name}"
    shell = f'printf "%s" "${INLINE_SCRIPT_VARIABLE}" > {target} && exec uv run "$@"'
    return {"command": ["sh", "-c", shell, "sh", *uv_args, target, *spec.script_args]}
