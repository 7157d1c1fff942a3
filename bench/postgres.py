"""Benchmark: the receiver with its journal in SQLite and in PostgreSQL, one receiver and two, side by side.

Run from the repository root (needs Debian's `postgresql` binaries, which `bin/test` installs):

    .venv/bin/python bench/postgres.py            # 4,000 deliveries per row
    .venv/bin/python bench/postgres.py --quick    # 600 per row

The same real `app.py` and trivial handler as `bench/run.py`; PostgreSQL is a throwaway local cluster
(`tests/pg_server.py`) with its durability settings as shipped (fsync and synchronous commit on),
so each acknowledgement waits for a flushed commit, as it would on a managed database. Two receivers
share one database, each taking half the senders. Unpinned: the servers, the database and the load
generator share the machine's CPUs. The table goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import platform
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import uvloop

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent / "tests")]
from loadgen import LoadResult, run_load  # noqa: E402
from pg_server import postgres_server  # noqa: E402
from run import (  # noqa: E402
    HOST,
    PAYLOAD,
    SECRET,
    Running,
    Server,
    build_request,
    cpu_model,
    free_port,
    load_average,
    started,
)


def measure(receivers: list[Running], *, requests: int, concurrency: int) -> LoadResult:
    """Warm up, then send `requests` deliveries spread over the receivers; one merged result."""

    async def phases() -> LoadResult:
        share = concurrency // len(receivers)

        async def on(index: int, running: Running, count: int, first: int) -> LoadResult:
            request = build_request(
                "/webhooks/trivial", f"{HOST}:{running.port}", PAYLOAD.read_bytes(), {"X-Webhook-Secret": SECRET}
            )
            return await run_load(
                HOST, running.port, request, requests=count, concurrency=share, max_seconds=300, first_index=first
            )

        per = requests // len(receivers)
        await asyncio.gather(*(on(i, r, per // 5, 10**7 * (i + 1)) for i, r in enumerate(receivers)))
        parts = await asyncio.gather(*(on(i, r, per, 10**8 * (i + 1)) for i, r in enumerate(receivers)))
        merged = LoadResult()
        for part in parts:
            merged.sent += part.sent
            merged.latencies_ms += part.latencies_ms
            merged.errors += part.errors
            for status, count in part.statuses.items():
                merged.statuses[status] = merged.statuses.get(status, 0) + count
            merged.elapsed_s = max(merged.elapsed_s, part.elapsed_s)
        return merged

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(phases())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    requests = 600 if args.quick else 4000
    load_before = load_average()
    rows: list[tuple[str, LoadResult]] = []
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as workdir, postgres_server(free_port(), durable=True) as pg:
        layouts = [
            ("SQLite, one receiver", [{}]),
            ("PostgreSQL, one receiver", [{"DATABASE_URL": ""}]),
            ("PostgreSQL, two receivers", [{"DATABASE_URL": ""}, {"DATABASE_URL": ""}]),
        ]
        for label, envs in layouts:
            url = pg.create_database()
            with ExitStack() as stack:
                receivers = [
                    stack.enter_context(
                        started(
                            Server(label, "ours", {**env, "WEBHOOK_REPLICA_ID": f"r{index}"} | _url(env, url)),
                            Path(workdir),
                            pin=False,
                            slow_seconds=1,
                        )
                    )
                    for index, env in enumerate(envs)
                ]
                rows.append((label, measure(receivers, requests=requests, concurrency=args.concurrency)))
    print(f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC · {cpu_model()} · {platform.python_version()}")
    print(f"load average before: {load_before}; {requests} deliveries per row, {args.concurrency} senders\n")
    print("| journal | deliveries/s | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|")
    for label, result in rows:
        p50, p99 = result.percentile(0.5), result.percentile(0.99)
        print(f"| {label} | {result.rate:.0f} | {p50:.1f} | {p99:.1f} | {result.errors} |")
    return 0


def _url(env: dict[str, str], url: str) -> dict[str, str]:
    return {"DATABASE_URL": url} if "DATABASE_URL" in env else {}


if __name__ == "__main__":
    raise SystemExit(main())
