"""Memory of the app before and after strangers send it very large request headers.

Run from the repository root:

    .venv/bin/python bench/big_headers.py                      # this checkout
    .venv/bin/python bench/big_headers.py --baseline cc3bf42   # and, for comparison, that commit

Each app (the real `app.py` with the project's handlers, in a temporary Space folder, journal on)
is started on loopback. Then `--requests` connections, `--concurrency` at a time, each send a
webhook POST without the secret whose one header is `--header-mib` MiB long, as a stranger
would; the app's RSS is read before, at its peak (`VmHWM`) and `--settle` seconds after, and one
real delivery checks that the app still serves. See bench/README.md for results.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_process import baseline_checkout, machine_line, start_app
from run import HOST, ROOT, SECRET, stop

PAYLOAD = ROOT / "tests" / "fixtures" / "discussion-create-with-comment.json"
CHUNK = 256 * 1024


@dataclass
class Row:
    label: str
    answers: Counter[str]
    rss_before: float
    peak: float
    rss_after: float
    delivery: str
    seconds: float


def memory_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


def big_header_request(port: int, size: int) -> str:
    """One stranger's POST with a `size`-byte header; returns the status it got, or what happened."""
    head = f"POST /webhooks/log_events HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Length: 2\r\nX-Big: ".encode()
    filler = b"a" * CHUNK
    try:
        with socket.create_connection((HOST, port), timeout=60) as sock:
            sock.sendall(head)
            sent = 0
            while sent < size:
                piece = filler[: min(CHUNK, size - sent)]
                sock.sendall(piece)
                sent += len(piece)
            sock.sendall(b"\r\n\r\n{}")
            answer = sock.recv(64)
    except (BrokenPipeError, ConnectionResetError):
        return "closed while sending"
    except TimeoutError:
        return "timed out"
    return answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "closed"


def measure(label: str, checkout: Path, args: argparse.Namespace, workdir: Path) -> Row:
    process, port = start_app(checkout, workdir / label.replace(" ", "-"))
    try:
        time.sleep(args.settle)
        before = memory_mib(process.pid, "VmRSS")
        started = time.perf_counter()
        size = int(args.header_mib * 1024 * 1024)
        with ThreadPoolExecutor(args.concurrency) as pool:
            answers = Counter(pool.map(lambda _: big_header_request(port, size), range(args.requests)))
        seconds = time.perf_counter() - started
        time.sleep(args.settle)
        peak = memory_mib(process.pid, "VmHWM")
        after = memory_mib(process.pid, "VmRSS")
        try:
            delivery = httpx.post(
                f"http://{HOST}:{port}/webhooks/log_events",
                content=PAYLOAD.read_bytes(),
                headers={"content-type": "application/json", "x-webhook-secret": SECRET},
                timeout=30,
            ).status_code
            delivery_text = str(delivery)
        except httpx.HTTPError as exc:
            delivery_text = type(exc).__name__
        return Row(label, answers, before, peak, after, delivery_text, seconds)
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=40, help="big-header requests in all (40)")
    parser.add_argument("--concurrency", type=int, default=8, help="sent at once (8)")
    parser.add_argument("--header-mib", type=float, default=8.0, help="size of the one big header, MiB (8)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to wait before reading memory (2)")
    parser.add_argument("--baseline", metavar="REV", help="also measure the app as of this git revision")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="big-headers-"))
    try:
        rows = []
        if args.baseline:
            rows.append(measure(f"{args.baseline}", baseline_checkout(args.baseline, workdir), args, workdir))
        rows.append(measure("this checkout", ROOT, args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(machine_line())
    print(
        f"{args.requests} requests without the secret, {args.concurrency} at a time, "
        f"each with one {args.header_mib:g} MiB header:\n"
    )
    print("| app | answers | RSS before MiB | peak MiB | RSS after MiB | a delivery after |")
    print("|---|---|---:|---:|---:|---|")
    for row in rows:
        answers = ", ".join(f"{count} {answer}" for answer, count in row.answers.most_common())
        memory = f"{row.rss_before:.0f} | {row.peak:.0f} | {row.rss_after:.0f}"
        print(f"| {row.label} | {answers} | {memory} | {row.delivery} |")


if __name__ == "__main__":
    main()
