"""Starting the real app (`python app.py`) as a process, for end-to-end tests.

Each app gets its own folder laid out like a duplicated Space: a copy of `app.py`, `lib/` linked
from the checkout, and a `handlers/` folder the test chooses (by default the project's own). So
tests exercise the real entry point with the handlers they need, over real HTTP.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SECRET = "test-secret"


def fixture_body(name: str) -> bytes:
    """A recorded Hub payload from tests/fixtures, as the bytes the Hub would send."""
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> dict:
    return json.loads(fixture_body(name))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_space(folder: Path, handlers: Mapping[str, str] | None = None) -> Path:
    """Lay out a Space in `folder`: app.py, lib/ (linked), and handlers (given as name -> source).

    Without `handlers`, the project's own handlers are copied and its `jobs/` scripts linked, as a
    duplicated Space has them.
    """
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "app.py", folder / "app.py")
    if not (folder / "lib").exists():
        (folder / "lib").symlink_to(ROOT / "lib", target_is_directory=True)
    handlers_dir = folder / "handlers"
    if handlers is None:
        if not handlers_dir.exists():
            shutil.copytree(ROOT / "handlers", handlers_dir, ignore=shutil.ignore_patterns("__pycache__"))
        if not (folder / "jobs").exists():  # the scripts the example handlers launch on Hub Jobs
            (folder / "jobs").symlink_to(ROOT / "jobs", target_is_directory=True)
    else:
        handlers_dir.mkdir(exist_ok=True)
        for name, source in handlers.items():
            (handlers_dir / name).write_text(source)
    return folder


@dataclass
class RunningApp:
    """A started app: its URL, its process, its data folder and its log."""

    url: str
    process: subprocess.Popen[bytes]
    folder: Path
    data_dir: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def post(
        self,
        path: str,
        body: bytes | dict,
        *,
        secret: str | None = SECRET,
        headers: Mapping[str, str] = (),
        timeout: float = 30.0,
        **kwargs: object,
    ) -> httpx.Response:
        """POST to an endpoint the way the Hub does (secret in the header unless `secret=None`)."""
        content = json.dumps(body).encode() if isinstance(body, dict) else body
        all_headers = {"content-type": "application/json", **dict(headers)}
        if secret is not None:
            all_headers["x-webhook-secret"] = secret
        return httpx.post(self.url + path, content=content, headers=all_headers, timeout=timeout, **kwargs)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, as when a Space's container is torn down."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WEBHOOK_", "GRADIO_", "SPACE_", "HF_")) and key != "DATA_DIR"
    }
    env.update(
        DATA_DIR=str(data_dir),
        WEBHOOK_SECRET=SECRET,
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_DISABLE_TELEMETRY="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return {key: value for key, value in env.items() if value is not None}


def start_app(
    folder: Path,
    env: Mapping[str, str],
    *,
    port: int | None = None,
    wait: float = 60.0,
    open_files: int | None = None,
    script: str = "app.py",
) -> RunningApp:
    """Run `python app.py` (or `script`) in `folder` and wait until it answers; raise with its log if it dies.

    `open_files` sets the process's open-files limit, soft and hard (as a small container would).
    Without `DATA_DIR` in `env`, the app chooses its own folder, under `folder`.
    """
    port = port or free_port()
    full_env = {**env, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    log_path = folder / f"app-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, script],
            cwd=folder,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=None if open_files is None else lambda: _limit_open_files(open_files),
        )
    data_dir = Path(full_env.get("DATA_DIR") or folder / "data")
    app = RunningApp(f"http://127.0.0.1:{port}", process, folder, data_dir, log_path, full_env)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app exited with {process.returncode}:\n{app.logs()}")
        try:
            if httpx.get(app.url + "/", timeout=1.0).status_code == 200:
                return app
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    app.kill()
    raise RuntimeError(f"app did not answer within {wait} s:\n{app.logs()}")


def _limit_open_files(count: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))


@contextmanager
def running_app(tmp_path: Path, *, handlers: Mapping[str, str] | None = None, **env: str) -> Iterator[RunningApp]:
    """A Space laid out in `tmp_path`, started, and stopped at the end."""
    folder = make_space(tmp_path / "space", handlers)
    app = start_app(folder, base_env(tmp_path / "data", **env))
    try:
        yield app
    finally:
        app.stop()


def wait_until(predicate, *, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):
    """Poll until `predicate()` is truthy; return its value or fail with `message`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")
