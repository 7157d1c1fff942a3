"""Several replicas on one PostgreSQL journal, end to end: real processes, real HTTP, a real server.

Two receivers (`python app.py`, one of them receive-only: `WEBHOOK_RUN_HANDLERS=false`) and one
separate worker (`python -m lib.worker`) share a database on
the session's throwaway server (`tests/pg_server.py`). Handlers note each start and end, with the
replica that ran them, in one shared log (O_APPEND keeps lines whole), so order, overlap and takeover
are read from what really ran, never inferred from timing.
"""

from __future__ import annotations

import collections
import json
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from apprunner import SECRET, RunningApp, base_env, make_space, start_app, wait_until
from pg_server import PostgresServer
from test_durability import PREAMBLE, payload, sha

REPLICA_HANDLER = (
    PREAMBLE
    + """
def handle(payload: WebhookPayload, request: Request):
    me, wid = os.environ["WEBHOOK_REPLICA_ID"], request.headers["webhook-id"]
    note("start", me, payload.repo.name, wid)
    if payload.repo.name.startswith("org/held") and me == "receiver-a":
        wait_gate("never")  # held until the test kills this replica
    time.sleep(0.001)
    note("end", me, payload.repo.name, wid)
"""
)
REPOS, PER_REPO = 50, 40
PAIRS = 10


def replica_env(tmp_path: Path, url: str, name: str, **extra: str) -> dict[str, str]:
    return base_env(
        tmp_path / f"data-{name}",
        DATABASE_URL=url,
        WEBHOOK_REPLICA_ID=name,
        WEBHOOK_LEASE_SECONDS="2",
        WEBHOOK_ACK_BUDGET="0",
        WEBHOOK_CONCURRENCY="4",
        WEBHOOK_RETRY_BASE="0.2",
        WEBHOOK_RETRY_MAX="0.5",
        PROBE_DIR=str(tmp_path / "probe"),
        **extra,
    )


def start_worker(folder: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`python -m lib.worker` in the Space's folder; returns once it says it runs."""
    log_path = folder / f"worker-{env['WEBHOOK_REPLICA_ID']}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "lib.worker"], cwd=folder, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT
    )
    wait_until(lambda: "running /webhooks/" in log_path.read_text(errors="replace"), message="the worker to start")
    return process


class Log:
    """The handlers' shared log: ("start"|"end", replica, repo, webhook id) per line."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "log.txt"

    def lines(self) -> list[list[str]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


_clients = threading.local()


def post(app: RunningApp, repo: str, wid: str) -> httpx.Response:
    """A delivery as the Hub sends it, on a client kept per thread (a new one per call costs ~40 ms of CPU)."""
    client = getattr(_clients, "client", None)
    if client is None:
        client = _clients.client = httpx.Client(timeout=30)
    return client.post(
        app.url + "/webhooks/replica",
        content=json.dumps(payload(repo=repo, sha=sha(wid))).encode(),
        headers={"content-type": "application/json", "x-webhook-secret": SECRET, "webhook-id": wid},
    )


@pytest.mark.timeout(240)
def test_two_receivers_and_a_worker_share_one_journal_and_survive_a_receiver_killed_mid_load(
    tmp_path: Path, pg_server: PostgresServer
) -> None:
    url = pg_server.create_database()
    (tmp_path / "probe" / "gates").mkdir(parents=True)
    folder = make_space(tmp_path / "space", {"replica.py": REPLICA_HANDLER})
    a = start_app(folder, replica_env(tmp_path, url, "receiver-a"))
    b = start_app(folder, replica_env(tmp_path, url, "receiver-b", WEBHOOK_RUN_HANDLERS="false"))  # receives only
    worker: subprocess.Popen[bytes] | None = None
    log = Log(tmp_path / "probe")
    try:
        # 1. Events receiver-a holds when it is killed: sent to it until it runs one itself.
        held: list[str] = []
        for index in range(20):
            wid = f"held-{index}"
            assert post(a, f"org/held-{index}", wid).status_code == 202
            wait_until(lambda w=wid: any(line[3] == w for line in log.lines() if line[0] == "start"))
            if any(line[:2] == ["start", "receiver-a"] and line[3] == wid for line in log.lines()):
                held.append(wid)
            if len(held) >= 2:
                break
        assert held, "receiver-a never ran a held event itself"

        # 2. The same delivery sent to both receivers at the same moment.
        answers: dict[str, list[str]] = collections.defaultdict(list)
        for index in range(PAIRS):
            wid, barrier = f"pair-{index}", threading.Barrier(2)

            def both(app: RunningApp, wid: str = wid, barrier: threading.Barrier = barrier, index: int = index) -> str:
                barrier.wait()
                return post(app, f"org/pair-{index}", wid).json()["status"]

            with ThreadPoolExecutor(2) as pool:
                answers[wid] = sorted(pool.map(both, (a, b)))
        assert all(statuses == ["duplicate", "queued"] for statuses in answers.values()), answers

        # 3. The load: each repository's deliveries in order, alternating between the receivers, and
        # receiver-a killed with SIGKILL half-way; the Hub's retry of what it did not answer goes to b.
        worker = start_worker(folder, replica_env(tmp_path, url, "worker-c"))
        acknowledged: set[str] = set()
        lock, half = threading.Lock(), threading.Event()

        def send_repo(repo_index: int) -> None:
            for seq in range(PER_REPO):
                wid = f"r{repo_index}-{seq:03d}"
                target = a if (seq + repo_index) % 2 == 0 and a.process.poll() is None else b
                try:
                    response = post(target, f"org/repo-{repo_index}", wid)
                except httpx.TransportError:  # a died with this request: the Hub sends it again
                    response = post(b, f"org/repo-{repo_index}", wid)
                if response.status_code == 503 and target is a:
                    response = post(b, f"org/repo-{repo_index}", wid)
                assert response.status_code in (200, 202), (wid, response.status_code, response.text)
                with lock:
                    acknowledged.add(wid)
                    if len(acknowledged) >= REPOS * PER_REPO // 2:
                        half.set()

        def kill_a() -> None:
            half.wait(timeout=120)
            a.kill()

        started = time.monotonic()
        killer = threading.Thread(target=kill_a)
        killer.start()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(send_repo, range(REPOS)))
        killer.join()
        load_seconds = time.monotonic() - started
        assert a.process.poll() is not None

        # 4. Everything acknowledged runs to its end, the dead replica's held events included.
        with psycopg.connect(url) as connection:

            def unfinished() -> int:
                query = "SELECT COUNT(*) FROM events WHERE state IN ('queued', 'running', 'failed')"
                return connection.execute(query).fetchone()[0]

            wait_until(lambda: unfinished() == 0, timeout=60, message="every event to end")
            states = dict(connection.execute("SELECT state, COUNT(*) FROM events GROUP BY state").fetchall())
            for wid in held:
                rows = connection.execute(
                    "SELECT e.state, e.replica, a.outcome, a.replica, a.detail FROM events AS e "
                    "JOIN attempts AS a ON a.event_id = e.id WHERE e.webhook_id = %s AND e.state != 'duplicate'",
                    (wid,),
                ).fetchall()
                assert [(row[0], row[2], row[3]) for row in rows] == [("succeeded", "interrupted", "receiver-a")], rows
                assert rows[0][1] == "worker-c"
                assert "receiver-a stopped renewing its lease" in rows[0][4]
        assert "dead" not in states and "failed" not in states, states

        lines = log.lines()
        ended = collections.Counter(line[3] for line in lines if line[0] == "end")
        assert not acknowledged - set(ended), sorted(acknowledged - set(ended))[:10]
        for wid in answers:
            assert ended[wid] == 1, (wid, ended[wid])  # two copies at two replicas at once: handled once
        assert all(ended[wid] == 1 for wid in held)  # run again once elsewhere, never ended in receiver-a
        assert {line[1] for line in lines} == {"receiver-a", "worker-c"}  # receiver-b runs no handler

        # 5. Per repository: in arrival order and never two at once, across the three processes. A start
        # may only follow an unfinished start when that one was cut short by the kill (and then runs again).
        by_repo: dict[str, list[list[str]]] = collections.defaultdict(list)
        for line in lines:
            by_repo[line[2]].append(line)
        for repo, steps in by_repo.items():
            open_start: list[str] | None = None
            order: list[str] = []
            for step in steps:
                if step[0] == "start":
                    if open_start is not None:
                        assert open_start[1] == "receiver-a", (repo, open_start, step)  # only the killed one
                    open_start = step
                    if not order or order[-1] != step[3]:
                        order.append(step[3])
                else:
                    assert open_start is not None and open_start[3] == step[3], (repo, open_start, step)
                    open_start = None
            assert order == sorted(order), (repo, order)
        replicas = collections.Counter(line[1] for line in lines if line[0] == "end" and line[2].startswith("org/repo"))
        print(f"\n{REPOS * PER_REPO} deliveries in {load_seconds:.1f} s; handled by {dict(replicas)}")
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            worker.wait(timeout=20)
        for app in (a, b):
            app.stop()


GATED_HANDLER = (
    PREAMBLE
    + """
def handle(payload: WebhookPayload, request: Request):
    me = os.environ["WEBHOOK_REPLICA_ID"]
    note("start", me, payload.repo.name, request.headers["webhook-id"])
    if request.headers["webhook-id"] == "first":
        wait_gate("open")
    return {"ran_on": me, "webhook_id": request.headers["webhook-id"]}
"""
)


@pytest.mark.timeout(180)
def test_a_delivery_whose_repository_runs_at_another_replica_is_answered_with_its_outcome(
    tmp_path: Path, pg_server: PostgresServer
) -> None:
    """Receiver b records an event of a repository receiver a is running: a runs it next, in order, and
    b's request answers 200 with its handler's result (as the reference would), not 202 at its budget."""
    url = pg_server.create_database()
    (tmp_path / "probe" / "gates").mkdir(parents=True)
    folder = make_space(tmp_path / "space", {"replica.py": GATED_HANDLER})
    budget = {"WEBHOOK_ACK_BUDGET": "20"}
    a = start_app(folder, replica_env(tmp_path, url, "receiver-a") | budget)
    b = start_app(folder, replica_env(tmp_path, url, "receiver-b") | budget)
    log = Log(tmp_path / "probe")
    try:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(post, a, "org/shared", "first")
            wait_until(lambda: any(line[3] == "first" for line in log.lines()), message="a to run the first event")
            second = pool.submit(post, b, "org/shared", "second")
            with psycopg.connect(url) as connection:  # b recorded it, and it waits behind the first
                wait_until(
                    lambda: (
                        connection.execute("SELECT state FROM events WHERE webhook_id = 'second'").fetchone()
                        == ("queued",)
                    ),
                    message="b to record the second event",
                )
            time.sleep(0.5)  # b's claim was refused meanwhile: a runs the repository
            (tmp_path / "probe" / "gates" / "open").touch()
            answers = first.result(timeout=60), second.result(timeout=60)
        assert [answer.status_code for answer in answers] == [200, 200], [answer.text for answer in answers]
        assert answers[1].json() == {"ran_on": "receiver-a", "webhook_id": "second"}  # the handler's own answer
        assert [line[3] for line in log.lines()] == ["first", "second"]
    finally:
        for app in (a, b):
            app.stop()


WAITING_HANDLER = (
    PREAMBLE
    + """
def handle(payload: WebhookPayload, request: Request):
    me, wid = os.environ["WEBHOOK_REPLICA_ID"], request.headers["webhook-id"]
    note("start", me, payload.repo.name, wid)
    wait_gate("open")  # nothing ends before the rebuild
    note("end", me, payload.repo.name, wid)
"""
)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("stop", ["SIGKILL", "SIGINT"])
def test_a_rebuild_with_a_fresh_disk_loses_no_queued_or_running_event(
    tmp_path: Path, pg_server: PostgresServer, stop: str
) -> None:
    """A free Space's rebuild: the container is stopped (or killed), its disk wiped, and a new one starts
    under another name. Every event acknowledged before runs after, in order, the interrupted ones again."""
    url = pg_server.create_database()
    (tmp_path / "probe" / "gates").mkdir(parents=True)
    folder = make_space(tmp_path / "space", {"replica.py": WAITING_HANDLER})
    old = start_app(folder, replica_env(tmp_path, url, "space-before"))
    log = Log(tmp_path / "probe")
    sent = [f"{repo}-{seq}" for seq in range(5) for repo in ("x", "y", "z")]
    try:
        for wid in sent:
            assert post(old, f"org/{wid.split('-')[0]}", wid).status_code == 202
        wait_until(lambda: len(log.lines()) == 3, message="one event of each repository to start")
    finally:
        old.kill() if stop == "SIGKILL" else old.stop()
    shutil.rmtree(old.data_dir, ignore_errors=True)  # the disk goes with the container (if it held anything)
    (tmp_path / "probe" / "gates" / "open").touch()
    new = start_app(folder, replica_env(tmp_path, url, "space-after"))  # a new host name: a new replica
    try:
        with psycopg.connect(url) as connection:
            wait_until(
                lambda: (
                    connection.execute("SELECT COUNT(*) FROM events WHERE state = 'succeeded'").fetchone()[0]
                    == len(sent)
                ),
                timeout=60,
                message="every event to succeed after the rebuild",
            )
        ended = [line for line in log.lines() if line[0] == "end"]
        assert sorted(line[3] for line in ended) == sorted(sent)  # each once
        assert {line[1] for line in ended} == {"space-after"}
        for repo in ("x", "y", "z"):  # still in arrival order
            assert [line[3] for line in ended if line[2] == f"org/{repo}"] == [f"{repo}-{seq}" for seq in range(5)]
    finally:
        new.stop()


def test_a_worker_without_a_database_url_refuses_to_start(tmp_path: Path) -> None:
    folder = make_space(tmp_path / "space", {"replica.py": REPLICA_HANDLER})
    env = base_env(tmp_path / "data")
    done = subprocess.run([sys.executable, "-m", "lib.worker"], cwd=folder, env=env, capture_output=True, timeout=60)
    assert done.returncode == 1
    assert b"Cannot start: python -m lib.worker runs handlers for receivers elsewhere: set DATABASE_URL" in done.stderr
