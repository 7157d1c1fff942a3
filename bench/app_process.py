"""The real app of a checkout, started as a Space runs it, for the benchmarks that measure one app process.

`bench/big_headers.py` and `bench/redelivery_storm.py` each start the app of this checkout and, with
`--baseline REV`, of an earlier revision exported next to the run, so both are measured in one run;
they stop it with `run.stop`, as `bench/run.py` stops every server.
"""

from __future__ import annotations

import datetime
import http.client
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import HOST, ROOT, SECRET, cpu_model, free_port

START_TIMEOUT_SECONDS = 90.0


def start_app(
    checkout: Path, folder: Path, *, handlers: Iterable[Path] | None = None, env: Mapping[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """The app of `checkout` laid out as a Space in `folder` (its `handlers/`, or only `handlers`), serving.

    Returns the process and its port once the landing page answers. `env` adds to the settings every
    run uses (the secret, a `DATA_DIR` inside `folder`, no network, loopback only).
    """
    folder.mkdir(parents=True)
    shutil.copy(checkout / "app.py", folder / "app.py")
    (folder / "lib").symlink_to(checkout / "lib", target_is_directory=True)
    if handlers is None:
        shutil.copytree(checkout / "handlers", folder / "handlers", ignore=shutil.ignore_patterns("__pycache__"))
    else:
        (folder / "handlers").mkdir()
        for handler in handlers:
            shutil.copy(handler, folder / "handlers" / handler.name)
    port = free_port()
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WEBHOOK_", "GRADIO_", "SPACE_", "HF_")) and key != "DATA_DIR"
    }
    environment.update(
        WEBHOOK_SECRET=SECRET,
        DATA_DIR=str(folder / "data"),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_OFFLINE="1",
        GRADIO_SERVER_NAME=HOST,
        GRADIO_SERVER_PORT=str(port),
        PYTHONUNBUFFERED="1",
        **(env or {}),
    )
    log = (folder / "app.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=folder,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app exited:\n{(folder / 'app.log').read_text()}")
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=2)
            connection.request("GET", "/")
            if connection.getresponse().status == 200:
                return process, port
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"app did not start within {START_TIMEOUT_SECONDS:g} s")


def machine_line() -> str:
    """The line a single-app benchmark's report starts with: the machine, the time, the load."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{cpu_model()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"Python {platform.python_version()}, {now}, load average {os.getloadavg()[0]:.2f}"
    )


def baseline_checkout(revision: str, workdir: Path) -> Path:
    """The tree of `revision`, exported next to the run, to measure it beside this checkout."""
    target = workdir / f"checkout-{revision}"
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target
