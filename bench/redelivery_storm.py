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
import http.client
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_process import baseline_checkout, machine_line, start_app
from run import HOST, ROOT, SECRET, stop

QUIET_LOG = {"WEBHOOK_LOG_LEVEL": "WARNING"}
"""A line per duplicate would measure the log, not the journal."""

PAYLOAD = (ROOT / "tests" / "fixtures" / "discussion-create-with-comment.json").read_bytes()
HANDLER = ROOT / "bench" / "servers" / "handlers" / "trivial.py"


@dataclass
class Row:
    label: str
    fresh_ms: list[float]
    storm_ms: list[float]
    statuses: dict[str, int]


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
    process, port = start_app(checkout, workdir / label.replace(" ", "-"), handlers=[HANDLER], env=QUIET_LOG)
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


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, round(fraction * len(ordered)))) - 1]


def pair(values: list[float]) -> str:
    return f"{percentile(values, 0.5):.1f} / {percentile(values, 0.99):.1f}"


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

    print(machine_line())
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
