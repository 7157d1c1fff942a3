"""Whether Prometheus scraping `/metrics` slows deliveries down: the same load without and with a scraper.

Run from the repository root:

    .venv/bin/python bench/metrics_scrape.py              # ~2 min
    .venv/bin/python bench/metrics_scrape.py --quick      # ~30 s

One app (the real `app.py` of this checkout, the benchmark's `trivial` handler, journal on) is
started on loopback with `METRICS_TOKEN` set, pinned to CPU 1 while the load runs on CPU 0 (as
`bench/run.py` does). The journal is first filled to `--fill` events (a scrape reads every event
the journal holds, so it costs most on a full journal; 10,000 is the default retention). Then the
same closed-loop load (`loadgen.py`, 32 senders) runs four times: without a scraper, with a
scraper every second, with one every 0.1 s (ten times harder than any Prometheus setup), and
without again (the journal grew meanwhile: the two runs without bracket the others). The scraper
is a thread of this process on its own keep-alive connection; each scrape's time is measured.
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
    parser.add_argument("--requests", type=int, default=5000, help="measured deliveries per phase (5000)")
    parser.add_argument("--fill", type=int, default=10000, help="events in the journal before measuring (10000)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="1,000 requests per phase, 2,000 events first")
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.fill = 1000, 2000
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
        rows, index = [], args.fill
        for label, interval in (("no scraper", None), ("scrape every 1 s", 1.0), ("scrape every 0.1 s", 0.1)):
            rows.append(phase(port, label, interval, args, index))
            index += args.requests
        rows.append(phase(port, "no scraper, again", None, args, index))
    finally:
        stop(process)
        shutil.rmtree(workdir, ignore_errors=True)

    print(machine_line())
    print(
        f"The journal filled with {args.fill:,} events first; each phase {args.requests:,} deliveries from "
        f"{args.concurrency} senders{', generator on CPU 0, app on CPU 1' if pin else ''}.\n"
    )
    print("| phase | req/s | ack p50 ms | ack p99 ms | errors | scrapes | scrape p50 / max ms | scrape size |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        load, scraper = row.load, row.scraper
        scrapes = f"{len(scraper.times_ms)} ({scraper.failures} failed)" if scraper else "-"
        timing = (
            f"{percentile(scraper.times_ms, 0.5):.1f} / {max(scraper.times_ms):.1f}"
            if scraper and scraper.times_ms
            else "-"
        )
        size = f"{scraper.sizes[-1]:,} B" if scraper and scraper.sizes else "-"
        print(
            f"| {row.label} | {load.rate:,.0f} | {load.percentile(0.5):.1f} | {load.percentile(0.99):.1f} | "
            f"{load.errors} | {scrapes} | {timing} | {size} |"
        )


if __name__ == "__main__":
    main()
