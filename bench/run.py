"""Benchmark: our receiver against huggingface_hub's WebhooksServer and bare FastAPI, on loopback.

Run from the repository root:

    .venv/bin/python bench/run.py            # full run, about 3 minutes
    .venv/bin/python bench/run.py --quick    # smoke run, about a minute

Needs requirements-dev.txt (uvloop comes with uvicorn[standard]) and, for the PostgreSQL rows, Debian's
`postgresql` binaries (which `bin/test` installs; `--only raw,bare,reference,ours` leaves them out).
Each server runs as its own process, one at a time, pinned to CPU 1 while this process (the load
generator) runs on CPU 0 (`--no-pin` to let the kernel place them); the PostgreSQL server, a throwaway
local cluster (`tests/pg_server.py`) with its durability settings as shipped, is not pinned. See
bench/README.md for what is measured and why; the table is printed and written to bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import psycopg
import uvloop

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent / "tests")]
from loadgen import LoadResult, build_request, run_load  # noqa: E402
from pg_server import postgres_server  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SERVERS = BENCH / "servers"
PAYLOAD = ROOT / "tests" / "fixtures" / "discussion-create-with-comment.json"
RESULTS = BENCH / "results" / "latest.md"
QUICK_RESULTS = BENCH / "results" / "quick.md"
"""A smoke run writes here, so it never replaces the numbers of the last full run."""
SECRET = "bench-secret"
HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 90.0
SLOW_CLIENT_TIMEOUT_SECONDS = 45.0
_ALLOWED_CPUS = sorted(os.sched_getaffinity(0))
GENERATOR_CPU, SERVER_CPU = _ALLOWED_CPUS[0], _ALLOWED_CPUS[-1]
"""The first and last CPU this process may use; pinning needs two distinct ones."""


@dataclass
class Server:
    """A server to start: how, and what it is called in the tables."""

    label: str
    kind: str
    """ours | ours-pg | reference | bare | raw (`ours-pg`: ours with its journal on PostgreSQL)"""
    env: dict[str, str] = field(default_factory=dict)
    slow: bool = True
    """Whether it has the slow endpoint (for the 40 s handler table)."""
    receivers: int = 1
    """How many processes of it share the load (and, for `ours-pg`, one database)."""


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    data_dir: Path | None
    database_url: str | None = None

    def rss_mib(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process, all its threads."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class LoadRow:
    server: Server
    result: LoadResult
    rss_mib: float | None
    server_cpu_s: float
    generator_cpu_s: float
    journal: dict[str, int] | None = None


@dataclass
class SlowRow:
    label: str
    budget: str
    status: str
    seconds: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def lay_out_space(folder: Path) -> None:
    """A Space as a user would duplicate it: the real app.py, lib/, and the benchmark's handlers."""
    shutil.copy(ROOT / "app.py", folder / "app.py")
    (folder / "lib").symlink_to(ROOT / "lib", target_is_directory=True)
    (folder / "handlers").mkdir()
    for handler in (SERVERS / "handlers").glob("*.py"):
        shutil.copy(handler, folder / "handlers" / handler.name)


def command_for(kind: str, folder: Path) -> list[str]:
    if kind.startswith("ours"):
        return [sys.executable, "app.py"]
    return [sys.executable, str(SERVERS / f"{kind}.py")]


def wait_until_ready(running: Running) -> None:
    """Ready once the webhook route answers anything but 404 (the reference adds its routes late)."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"server exited with {running.process.returncode}:\n{running.log_path.read_text()}")
        try:
            answer = httpx.post(
                f"http://{HOST}:{running.port}/webhooks/trivial",
                content=b"{}",
                headers={"x-webhook-secret": "not-the-secret"},
                timeout=2.0,
            )
            if answer.status_code != 404:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server did not answer within {START_TIMEOUT_SECONDS:g} s:\n{running.log_path.read_text()}")


@contextmanager
def started(server: Server, workdir: Path, *, pin: bool, slow_seconds: float) -> Iterator[Running]:
    folder = Path(tempfile.mkdtemp(prefix=f"{server.kind}-", dir=workdir))
    data_dir = None
    if server.kind.startswith("ours"):
        lay_out_space(folder)
        data_dir = folder / "data"
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WEBHOOK_", "GRADIO_", "SPACE_", "HF_")) and key != "DATA_DIR"
    }
    env.update(
        WEBHOOK_SECRET=SECRET,
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_OFFLINE="1",
        GRADIO_SERVER_NAME=HOST,
        GRADIO_SERVER_PORT=str(port),
        BENCH_PORT=str(port),
        BENCH_SLOW_SECONDS=f"{slow_seconds:g}",
        PYTHONUNBUFFERED="1",
        **({"DATA_DIR": str(data_dir)} if data_dir else {}),
        **server.env,
    )
    log_path = folder / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command_for(server.kind, folder),
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, {SERVER_CPU})) if pin else None,
        )
    running = Running(process, port, log_path, data_dir, server.env.get("DATABASE_URL"))
    try:
        wait_until_ready(running)
        yield running
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT the server's process group (its own session), then SIGKILL it if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def journal_counts(running: Running) -> dict[str, int] | None:
    """The journal's events by state after the load (its SQLite file, or its PostgreSQL database)."""
    query = "SELECT state, COUNT(*) FROM events GROUP BY state"
    if running.database_url is not None:
        with psycopg.connect(running.database_url) as connection:
            return dict(connection.execute(query).fetchall())  # type: ignore[arg-type]
    path = running.data_dir / "journal.sqlite3" if running.data_dir else None
    if path is None or not path.exists():
        return None
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        return dict(connection.execute(query).fetchall())


def generator_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load(
    receivers: list[Running], *, requests: int, warmup: int, concurrency: int, max_seconds: float
) -> tuple[LoadResult, float, float]:
    """Warm up, then measure, the senders and requests shared evenly among the receivers; returns (the
    merged result, the receivers' CPU s, the generator's CPU s) of the measured phase."""
    body = PAYLOAD.read_bytes()
    requests_for = [
        build_request("/webhooks/trivial", f"{HOST}:{running.port}", body, {"X-Webhook-Secret": SECRET})
        for running in receivers
    ]
    share = max(1, concurrency // len(receivers))

    async def phase(count: int, first_index: int) -> LoadResult:
        parts = await asyncio.gather(
            *(
                run_load(
                    HOST,
                    running.port,
                    request,
                    requests=count // len(receivers),
                    concurrency=share,
                    max_seconds=max_seconds,
                    first_index=first_index + index * 10**8,
                )
                for index, (running, request) in enumerate(zip(receivers, requests_for, strict=True))
            )
        )
        return merged(parts)

    async def phases() -> tuple[LoadResult, float, float]:
        if warmup:
            await phase(warmup, 0)
        server_cpu, generator_cpu = sum(r.cpu_seconds() for r in receivers), generator_cpu_seconds()
        result = await phase(requests, warmup)
        return result, sum(r.cpu_seconds() for r in receivers) - server_cpu, generator_cpu_seconds() - generator_cpu

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(phases())


def merged(parts: list[LoadResult]) -> LoadResult:
    """One result from the parts of a phase run side by side (its wall time is the longest part's)."""
    if len(parts) == 1:
        return parts[0]
    total = LoadResult()
    for part in parts:
        total.sent += part.sent
        total.latencies_ms += part.latencies_ms
        total.errors += part.errors
        total.error_samples += part.error_samples[: 5 - len(total.error_samples)]
        total.timed_out = total.timed_out or part.timed_out
        for status, count in part.statuses.items():
            total.statuses[status] = total.statuses.get(status, 0) + count
        total.elapsed_s = max(total.elapsed_s, part.elapsed_s)
    return total


def slow_request(running: Running) -> tuple[str, float]:
    """One delivery to the slow handler, as the Hub would send it, with a 45 s client timeout."""
    started_at = time.perf_counter()
    try:
        answer = httpx.post(
            f"http://{HOST}:{running.port}/webhooks/slow",
            content=PAYLOAD.read_bytes(),
            headers={"content-type": "application/json", "x-webhook-secret": SECRET, "webhook-id": "bench-slow"},
            timeout=SLOW_CLIENT_TIMEOUT_SECONDS,
        )
        status = str(answer.status_code)
    except httpx.TimeoutException:
        status = f"no answer in {SLOW_CLIENT_TIMEOUT_SECONDS:g} s"
    return status, time.perf_counter() - started_at


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def render(args: argparse.Namespace, rows: list[LoadRow], slow_rows: list[SlowRow], load_before: str) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    pinning = f"generator on CPU {GENERATOR_CPU}, each server on CPU {SERVER_CPU}" if args.pin else "not pinned"
    lines = [
        f"## Webhook receiver benchmark ({'quick smoke run' if args.quick else 'full run'})",
        "",
        f"- Date: {now}",
        f"- Machine: {os.cpu_count()} CPUs ({cpu_model()}), Linux {platform.release()}, "
        f"Python {platform.python_version()}; load average (1, 5, 15 min) before the run: {load_before}, "
        f"after: {load_average()} (other work on the machine shows here)",
        f"- Load: {args.requests} measured requests after {args.warmup} warm-up ones, {args.concurrency} concurrent "
        f"keep-alive senders, body {PAYLOAD.relative_to(ROOT)} ({PAYLOAD.stat().st_size} bytes) with "
        f"X-Webhook-Secret and a distinct Webhook-Id each; {pinning}",
        "",
        "| server | req/s | p50 ms | p99 ms | RSS MiB | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        result = row.result
        errors = str(result.errors) + (" (stopped at time bound)" if result.timed_out else "")
        lines.append(
            f"| {row.server.label} | {result.rate:.0f} | {fmt(result.percentile(0.5))} | "
            f"{fmt(result.percentile(0.99))} | {fmt(row.rss_mib, '.0f')} | {errors} |"
        )
    if any(row.server.kind == "ours-pg" for row in rows):
        lines += [
            "",
            "PostgreSQL rows: a throwaway local server with fsync and synchronous commit on (a delivery's commit "
            "waits for its flush), not pinned; with two receivers each gets half the senders and the requests. "
            "RSS and CPU are the receivers' (summed), never the database server's.",
        ]
    lines += [
        "",
        "Where the CPU went during the measured phase (a server at ~100% of its one core is the bottleneck):",
        "",
        "| server | server CPU % | server CPU ms/request | generator CPU % | statuses | journal |",
        "|---|---:|---:|---:|---|---|",
    ]
    for row in rows:
        result = row.result
        per_request = row.server_cpu_s * 1000 / result.ok if result.ok else None
        statuses = ", ".join(f"{code}: {count}" for code, count in sorted(result.statuses.items()))
        journal = ", ".join(f"{k}: {v}" for k, v in sorted(row.journal.items())) if row.journal else "-"
        lines.append(
            f"| {row.server.label} | {100 * row.server_cpu_s / result.elapsed_s:.0f} | {fmt(per_request, '.2f')} | "
            f"{100 * row.generator_cpu_s / result.elapsed_s:.0f} | {statuses} | {journal} |"
        )
    if slow_rows:
        lines += [
            "",
            f"Answer time with a handler that takes {args.slow_seconds:g} s (one delivery each, client timeout "
            f"{SLOW_CLIENT_TIMEOUT_SECONDS:g} s; the Hub gives up at 30 s):",
            "",
            "| server | ack budget | status | answer after s |",
            "|---|---|---|---:|",
        ]
        lines += [f"| {r.label} | {r.budget} | {r.status} | {r.seconds:.2f} |" for r in slow_rows]
    lines += ["", *aim_lines(rows)]
    samples = [f"- {row.server.label}: {'; '.join(row.result.error_samples)}" for row in rows if row.result.errors]
    if samples:
        lines += ["", "Error samples:", *samples]
    return "\n".join(lines) + "\n"


def aim_lines(rows: list[LoadRow]) -> list[str]:
    """The issue's targets: >= 1.4x the reference, p99 no worse, within 15% of bare FastAPI."""
    by_kind = {row.server.kind: row.result for row in rows if not row.server.env}  # diagnostic rows do not count
    ours, reference, bare = by_kind.get("ours"), by_kind.get("reference"), by_kind.get("bare")
    lines = []
    for row in rows:  # the PostgreSQL issue's aim: at least the reference's throughput, p99 no worse
        if row.server.kind == "ours-pg" and reference and reference.rate and row.result.ok:
            ratio = row.result.rate / reference.rate
            p99, p99_ref = row.result.percentile(0.99), reference.percentile(0.99)
            verdict = "met" if ratio >= 1 and p99 is not None and p99_ref is not None and p99 <= p99_ref else "NOT met"
            lines.append(
                f"- {row.server.label} vs reference: {ratio:.2f}x the throughput, p99 {fmt(p99)} ms vs "
                f"{fmt(p99_ref)} ms (aim: >= 1x, p99 no worse): {verdict}"
            )
    if ours and reference and reference.rate:
        ratio = ours.rate / reference.rate
        lines.append(f"- Throughput vs reference: {ratio:.2f}x (aim >= 1.4x): {'met' if ratio >= 1.4 else 'NOT met'}")
        p99_ours, p99_ref = ours.percentile(0.99), reference.percentile(0.99)
        if p99_ours is not None and p99_ref is not None:
            verdict = "met" if p99_ours <= p99_ref else "NOT met"
            lines.append(f"- p99 vs reference: {p99_ours:.1f} ms vs {p99_ref:.1f} ms (aim: no worse): {verdict}")
    if ours and bare and bare.rate:
        gap = 1 - ours.rate / bare.rate
        lines.append(
            f"- Throughput vs bare FastAPI: {100 * gap:.0f}% below (aim <= 15%): {'met' if gap <= 0.15 else 'NOT met'}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=None, help="measured requests per server (default 5000)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up requests per server (default 500)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent senders (default 32)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time bound of each load phase (default 60)")
    parser.add_argument("--slow-seconds", type=float, default=None, help="the slow handler's duration (default 40)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (< 60 s)")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin generator and servers to CPUs")
    parser.add_argument(
        "--extra", action="store_true", help="add diagnostic rows for ours (202 at once; per-repo ordering off)"
    )
    parser.add_argument(
        "--only", default="raw,bare,reference,ours,ours-pg", help="comma-separated subset of servers (kinds)"
    )
    args = parser.parse_args(argv)
    args.requests = args.requests or (300 if args.quick else 5000)
    args.warmup = args.warmup if args.warmup is not None else (100 if args.quick else 500)
    args.slow_seconds = args.slow_seconds or (2.0 if args.quick else 40.0)
    args.pin = args.pin and GENERATOR_CPU != SERVER_CPU
    if args.pin:
        os.sched_setaffinity(0, {GENERATOR_CPU})

    wanted = set(args.only.split(","))
    servers = [
        Server("raw asyncio (generator ceiling)", "raw", slow=False),
        Server("bare FastAPI + hf WebhookPayload", "bare", slow=False),
        Server("huggingface_hub WebhooksServer", "reference"),
        Server("ours (journal on)", "ours"),
        Server("ours, journal on PostgreSQL", "ours-pg", slow=False),
        Server("ours, journal on PostgreSQL, two receivers", "ours-pg", slow=False, receivers=2),
    ]
    if args.extra:
        servers += [
            Server("ours, WEBHOOK_ACK_BUDGET=0 (202 at once)", "ours", {"WEBHOOK_ACK_BUDGET": "0"}, slow=False),
            Server("ours, WEBHOOK_ORDER_PER_REPO=false", "ours", {"WEBHOOK_ORDER_PER_REPO": "false"}, slow=False),
        ]
    servers = [server for server in servers if server.kind in wanted]
    load_before = load_average()
    rows: list[LoadRow] = []
    slow_rows: list[SlowRow] = []
    started_at = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="webhooks-bench-") as tmp, ExitStack() as databases:
        workdir = Path(tmp)
        database = None
        for server in servers:
            print(f"[{time.monotonic() - started_at:5.0f} s] {server.label}: starting", file=sys.stderr, flush=True)
            if server.kind == "ours-pg":
                database = database or databases.enter_context(postgres_server(free_port(), durable=True))
                server = replace(server, env={**server.env, "DATABASE_URL": database.create_database()})
            with ExitStack() as processes:
                receivers = [
                    processes.enter_context(
                        started(
                            replace(server, env={**server.env, "WEBHOOK_REPLICA_ID": f"receiver-{index}"}),
                            workdir,
                            pin=args.pin,
                            slow_seconds=args.slow_seconds,
                        )
                    )
                    for index in range(server.receivers)
                ]
                running = receivers[0]
                result, server_cpu, generator_cpu = load(
                    receivers,
                    requests=args.requests,
                    warmup=args.warmup,
                    concurrency=args.concurrency,
                    max_seconds=args.max_seconds,
                )
                rss = sum(r.rss_mib() or 0.0 for r in receivers) or None
                rows.append(LoadRow(server, result, rss, server_cpu, generator_cpu, journal_counts(running)))
                print(
                    f"[{time.monotonic() - started_at:5.0f} s] {server.label}: {result.rate:.0f} req/s, "
                    f"{result.errors} errors",
                    file=sys.stderr,
                    flush=True,
                )
                if server.slow:
                    status, seconds = slow_request(running)
                    budget = "n/a (answers when the handler returns)" if server.kind == "reference" else "5 s (default)"
                    slow_rows.append(SlowRow(server.label, budget, status, seconds))
        if "ours" in wanted:
            budget_server = Server("ours (journal on)", "ours", {"WEBHOOK_ACK_BUDGET": "0.5"}, True)
            print(f"[{time.monotonic() - started_at:5.0f} s] ours with a 0.5 s budget", file=sys.stderr, flush=True)
            with started(budget_server, workdir, pin=args.pin, slow_seconds=args.slow_seconds) as running:
                status, seconds = slow_request(running)
                slow_rows.append(SlowRow(budget_server.label, "0.5 s (WEBHOOK_ACK_BUDGET=0.5)", status, seconds))
    report = render(args, rows, slow_rows, load_before)
    print(report)
    destination = QUICK_RESULTS if args.quick else RESULTS
    destination.parent.mkdir(exist_ok=True)
    destination.write_text(report)
    print(f"[{time.monotonic() - started_at:5.0f} s] written to {destination.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
