"""Whether Prometheus scraping `/metrics` slows deliveries down: the same load without and with a scraper.

Run from the repository root:

    .venv/bin/python bench/metrics_scrape.py              # ~2 min
    .venv/bin/python bench/metrics_scrape.py --quick      # ~30 s

One app (the real `app.py` of this checkout, the benchmark's `trivial` handler, journal on) is
started on loopback with `METRICS_TOKEN` set, pinned to CPU 1 while the load runs on CPU 0 (as
`bench/run.py` does). The journal is first filled to `--fill` events (a scrape reads every event
the journal holds, so it costs most on a full journal; 10,000 is the default retention). Then the
same closed-loop load (`loadgen.py`, 32 senders) runs under three conditions: without a scraper,
with a scraper every second, with one every 0.1 s (ten times harder than any Prometheus setup).
The journal grows with every delivery, so the conditions are interleaved, `--rounds` times in a
rotating order, and each row sums its rounds. The scraper is a thread of this process on its own
keep-alive connection; each scrape's time is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_process import machine_line, start_app
from loadgen import LoadResult, build_request, run_load
from run import GENERATOR_CPU, HOST, ROOT, SECRET, SERVER_CPU, stop

TOKEN = "bench-metrics-token"
PAYLOAD = (ROOT / "tests" / "fixtures" / "discussion-create-with-comment.json").read_bytes()
HANDLER = ROOT / "bench" / "servers" / "handlers" / "trivial.py"
ENV = {"WEBHOOK_LOG_LEVEL": "WARNING", "METRICS_TOKEN": TOKEN}


@dataclass
class Scraper:
    """Scrapes `/metrics` every `interval` seconds on one keep-alive connection until stopped."""

    port: int
    interval: float
    times_ms: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                connection.request("GET", "/metrics", headers={"authorization": f"Bearer {TOKEN}"})
                response = connection.getresponse()
                body = response.read()
                if response.status != 200:
                    self.failures += 1
                else:
                    self.times_ms.append((time.perf_counter() - started) * 1000)
                    self.sizes.append(len(body))
            except OSError:
                self.failures += 1
                connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
            self._stop.wait(max(0.0, self.interval - (time.perf_counter() - started)))
        connection.close()

    def stop(self) -> None:
        self._stop.set()


@dataclass
class Row:
    label: str
    load: LoadResult
    scraper: Scraper | None


def phase(port: int, label: str, interval: float | None, args: argparse.Namespace, first_index: int) -> Row:
    request = build_request("/webhooks/trivial", HOST, PAYLOAD, {"X-Webhook-Secret": SECRET})
    scraper = Scraper(port, interval) if interval is not None else None
    thread = threading.Thread(target=scraper.run, daemon=True) if scraper else None
    if thread:
        thread.start()
    try:
        load = asyncio.run(
            run_load(
                HOST,
                port,
                request,
                requests=args.requests,
                concurrency=args.concurrency,
                max_seconds=args.max_seconds,
                first_index=first_index,
            )
        )
    finally:
        if scraper and thread:
            scraper.stop()
            thread.join()
    return Row(label, load, scraper)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, round(fraction * len(ordered)))) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=8000, help="deliveries per condition and round (8000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three conditions (3)")
    parser.add_argument("--fill", type=int, default=10000, help="events in the journal before measuring (10000)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="1,000 requests per phase, 2,000 events first, 1 round")
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.fill, args.rounds = 1000, 2000, 1
    pin = not args.no_pin and len(os.sched_getaffinity(0)) > 1

    workdir = Path(tempfile.mkdtemp(prefix="metrics-scrape-"))
    if pin:
        os.sched_setaffinity(0, {GENERATOR_CPU})
    process, port = start_app(ROOT, workdir / "app", handlers=[HANDLER], env=ENV)
    try:
        if pin:
            os.sched_setaffinity(process.pid, {SERVER_CPU})
        request = build_request("/webhooks/trivial", HOST, PAYLOAD, {"X-Webhook-Secret": SECRET})
        asyncio.run(run_load(HOST, port, request, requests=args.fill, concurrency=32, max_seconds=300))
        conditions = [("no scraper", None), ("scrape every 1 s", 1.0), ("scrape every 0.1 s", 0.1)]
        rows: dict[str, list[Row]] = {label: [] for label, _ in conditions}
        index = args.fill
        for round_number in range(args.rounds):
            shift = round_number % len(conditions)
            for label, interval in conditions[shift:] + conditions[:shift]:
                rows[label].append(phase(port, label, interval, args, index))
                index += args.requests
    finally:
        stop(process)
        shutil.rmtree(workdir, ignore_errors=True)

    print(machine_line())
    print(
        f"The journal filled with {args.fill:,} events first; then {args.rounds} rounds of the three conditions "
        f"in rotating order, {args.requests:,} deliveries each, from {args.concurrency} senders"
        f"{', generator on CPU 0, app on CPU 1' if pin else ''}; each row sums its rounds.\n"
    )
    print("| condition | req/s | ack p50 ms | ack p99 ms | errors | scrapes | scrape p50 / max ms | scrape size |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, runs in rows.items():
        total = LoadResult(
            latencies_ms=[ms for run in runs for ms in run.load.latencies_ms],
            errors=sum(run.load.errors for run in runs),
            elapsed_s=sum(run.load.elapsed_s for run in runs),
        )
        scrapes = [ms for run in runs if run.scraper for ms in run.scraper.times_ms]
        failed = sum(run.scraper.failures for run in runs if run.scraper)
        sizes = [size for run in runs if run.scraper for size in run.scraper.sizes]
        timing = f"{percentile(scrapes, 0.5):.1f} / {max(scrapes):.1f}" if scrapes else "-"
        print(
            f"| {label} | {total.rate:,.0f} | {total.percentile(0.5):.1f} | {total.percentile(0.99):.1f} | "
            f"{total.errors} | {f'{len(scrapes)} ({failed} failed)' if scrapes or failed else '-'} | {timing} | "
            f"{f'{sizes[-1]:,} B' if sizes else '-'} |"
        )


if __name__ == "__main__":
    main()
