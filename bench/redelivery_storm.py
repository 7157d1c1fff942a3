"""How long a redelivery takes to acknowledge after thousands of redeliveries of the same event.

Run from the repository root:

    .venv/bin/python bench/redelivery_storm.py                      # this checkout (~1 min)
    .venv/bin/python bench/redelivery_storm.py --baseline 0b7966d   # and the app as of that commit (repeatable)

Each app (the real `app.py` with the benchmark's `trivial` handler, journal on, in a temporary Space
folder) is started on loopback. One sender on one keep-alive connection, one request at a time:
first `--fresh` deliveries with a `Webhook-Id` each (the usual case), then one event and
`--redeliveries` deliveries repeating its `Webhook-Id` (the Hub retrying, or someone pressing Replay
in a loop), each answered `duplicate`. The time to each answer is measured; the table gives p50 and
p99 of the fresh ones and of the storm's first and last `--window` redeliveries. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = (ROOT / "tests" / "fixtures" / "discussion-create-with-comment.json").read_bytes()
HANDLER = ROOT / "bench" / "servers" / "handlers" / "trivial.py"
SECRET = "bench-secret"
HOST = "127.0.0.1"


@dataclass
class Row:
    label: str
    fresh_ms: list[float]
    storm_ms: list[float]
    statuses: dict[str, int]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start(checkout: Path, folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The real app of `checkout`, laid out as a Space in `folder` with the `trivial` handler only."""
    folder.mkdir(parents=True)
    shutil.copy(checkout / "app.py", folder / "app.py")
    (folder / "lib").symlink_to(checkout / "lib", target_is_directory=True)
    (folder / "handlers").mkdir()
    shutil.copy(HANDLER, folder / "handlers" / "trivial.py")
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WEBHOOK_", "GRADIO_", "SPACE_", "HF_")) and key != "DATA_DIR"
    }
    env.update(
        WEBHOOK_SECRET=SECRET,
        DATA_DIR=str(folder / "data"),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_OFFLINE="1",
        GRADIO_SERVER_NAME=HOST,
        GRADIO_SERVER_PORT=str(port),
        WEBHOOK_LOG_LEVEL="WARNING",  # a line per duplicate would measure the log, not the journal
        PYTHONUNBUFFERED="1",
    )
    log = (folder / "app.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "app.py"], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 90
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
    raise RuntimeError("app did not start within 90 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def deliver(connection: http.client.HTTPConnection, webhook_id: str, statuses: dict[str, int]) -> float:
    """One delivery; the milliseconds to its whole answer. Counts each answer's status (and JSON `status`)."""
    headers = {"content-type": "application/json", "x-webhook-secret": SECRET, "webhook-id": webhook_id}
    started = time.perf_counter()
    connection.request("POST", "/webhooks/trivial", body=PAYLOAD, headers=headers)
    response = connection.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    kind = str(response.status)
    if response.status in (200, 202):
        answer = json.loads(body)
        status = answer.get("status") if isinstance(answer, dict) else None
        kind += " " + (status if status in ("duplicate", "queued", "failed") else "with the result")
    statuses[kind] = statuses.get(kind, 0) + 1
    return elapsed


def measure(label: str, checkout: Path, args: argparse.Namespace, workdir: Path) -> Row:
    process, port = start(checkout, workdir / label.replace(" ", "-"))
    statuses: dict[str, int] = {}
    try:
        connection = http.client.HTTPConnection(HOST, port, timeout=60)
        for n in range(args.warmup):
            deliver(connection, f"warmup-{n}", {})
        fresh = [deliver(connection, f"fresh-{n}", statuses) for n in range(args.fresh)]
        deliver(connection, "storm", statuses)  # the original: runs, succeeds
        storm = [deliver(connection, "storm", statuses) for _ in range(args.redeliveries)]
        connection.close()
        return Row(label, fresh, storm, statuses)
    finally:
        stop(process)


def baseline_checkout(revision: str, workdir: Path) -> Path:
    """The tree of `revision`, exported next to the run."""
    target = workdir / f"checkout-{revision}"
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, round(fraction * len(ordered)))) - 1]


def pair(values: list[float]) -> str:
    return f"{percentile(values, 0.5):.1f} / {percentile(values, 0.99):.1f}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redeliveries", type=int, default=6000, help="redeliveries of the one event (6000)")
    parser.add_argument("--fresh", type=int, default=2000, help="fresh deliveries measured first (2000)")
    parser.add_argument("--warmup", type=int, default=200, help="deliveries not measured, first (200)")
    parser.add_argument("--window", type=int, default=500, help="redeliveries in each of the storm's columns (500)")
    parser.add_argument(
        "--baseline", metavar="REV", action="append", default=[], help="also measure the app as of this git revision"
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="redelivery-storm-"))
    try:
        rows = []
        for revision in args.baseline:
            rows.append(measure(revision, baseline_checkout(revision, workdir), args, workdir))
        rows.append(measure("this checkout", ROOT, args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"{cpu_model()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"Python {platform.python_version()}, {now}, load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"One sender, one request at a time: {args.fresh} fresh deliveries, then one event and "
        f"{args.redeliveries} redeliveries of it. Ack p50 / p99 in ms:\n"
    )
    window = args.window
    print(f"| app | fresh | storm, first {window} | storm, last {window} | answers |")
    print("|---|---:|---:|---:|---|")
    for row in rows:
        answers = ", ".join(f"{count} × {kind}" for kind, count in sorted(row.statuses.items()))
        print(
            f"| {row.label} | {pair(row.fresh_ms)} | {pair(row.storm_ms[:window])} | "
            f"{pair(row.storm_ms[-window:])} | {answers} |"
        )


if __name__ == "__main__":
    main()
