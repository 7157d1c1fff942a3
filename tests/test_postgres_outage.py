"""The PostgreSQL journal's database stopped mid-load, and away when the app starts: the real app as a process.

Deliveries get 503 (the Hub retries) and never another 5xx; nothing acknowledged is lost; the landing
page and the console say the database cannot be reached; the app keeps serving its page and carries on
by itself when the database is back. The URL's password never appears in an answer, a page or a log.
Each test has a server of its own (`tests/pg_server.py`), since it stops it.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from apprunner import free_port, make_space, start_app, wait_until
from pg_server import PostgresServer, postgres_server
from test_journal_damage import console_summary, landing_damage
from test_postgres_replicas import REPLICA_HANDLER, Log, post, replica_env

PASSWORD = "pw-Zq81-never-shown"


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    with postgres_server(free_port()) as server:
        yield server


def test_the_database_stopped_mid_load_answers_503_and_the_app_recovers_when_it_returns(
    tmp_path: Path, own_server: PostgresServer
) -> None:
    url = own_server.create_database(password=PASSWORD)
    (tmp_path / "probe" / "gates").mkdir(parents=True)
    folder = make_space(tmp_path / "space", {"replica.py": REPLICA_HANDLER})
    app = start_app(folder, replica_env(tmp_path, url, "receiver-a"))
    log = Log(tmp_path / "probe")
    statuses: collections.Counter[int] = collections.Counter()
    acknowledged: list[str] = []
    answers_503: list[str] = []
    stop_load, sent = threading.Event(), iter(range(10**6))
    landing_damage_seen: list[str] = []

    def load() -> None:
        while not stop_load.is_set():
            wid = f"w-{next(sent):05d}"
            response = post(app, f"org/repo-{len(acknowledged) % 5}", wid)
            statuses[response.status_code] += 1
            if response.status_code in (200, 202):
                acknowledged.append(wid)
            elif response.status_code == 503:
                answers_503.append(response.text)

    try:
        with ThreadPoolExecutor(4) as pool:
            loaders = [pool.submit(load) for _ in range(4)]
            wait_until(lambda: len(acknowledged) >= 100, message="deliveries before the stop")
            own_server.stop("immediate")  # as a lost machine: no goodbye to the connections
            wait_until(lambda: len(answers_503) >= 8, timeout=60, message="503s while the database is away")
            landing_damage_seen.append(landing_damage(app) + console_summary(app))
            assert landing_damage_seen[0].count("cannot be reached") == 2, landing_damage_seen
            assert httpx.get(app.url + "/", timeout=10).status_code == 200  # the page is still served
            acknowledged_while_down = len(acknowledged)
            own_server.start()
            wait_until(lambda: len(acknowledged) >= acknowledged_while_down + 100, timeout=90, message="recovery")
            stop_load.set()
            for loader in loaders:
                loader.result()
        assert set(statuses) <= {200, 202, 503}, statuses

        def unhandled() -> set[str]:
            return set(acknowledged) - {line[3] for line in log.lines() if line[0] == "end"}

        try:
            wait_until(lambda: not unhandled(), timeout=60, message="every acknowledged delivery handled")
        except AssertionError:
            with psycopg.connect(url) as connection:
                rows = connection.execute(
                    "SELECT id, webhook_id, state, attempts, replica FROM events WHERE webhook_id = ANY(%s)",
                    (sorted(unhandled()),),
                ).fetchall()
            raise AssertionError(f"not handled: {rows}\n{app.logs()[-4000:]}") from None
        wait_until(lambda: "cannot be reached" not in landing_damage(app), message="the page to say all is well")
    finally:
        stop_load.set()
        app.stop()
    body = " ".join(answers_503)
    assert f"The event journal's database (127.0.0.1:{own_server.port}/journal_" in body  # host and database only
    assert PASSWORD not in body + landing_damage_seen[0] + app.logs()
    assert "answers again" in app.logs()


def test_an_app_started_while_its_database_is_down_serves_503_then_records_once_it_is_up(
    tmp_path: Path, own_server: PostgresServer
) -> None:
    url = own_server.create_database(password=PASSWORD)
    (tmp_path / "probe" / "gates").mkdir(parents=True)
    folder = make_space(tmp_path / "space", {"replica.py": REPLICA_HANDLER})
    own_server.stop()
    app = start_app(folder, replica_env(tmp_path, url, "receiver-a"))  # it starts: the page answers 200
    try:
        refused = post(app, "org/a", "early")
        assert refused.status_code == 503, refused.text
        assert PASSWORD not in refused.text
        assert "cannot be reached" in landing_damage(app)
        own_server.start()
        wait_until(lambda: post(app, "org/a", "later").status_code in (200, 202), timeout=60, message="records again")
        log = Log(tmp_path / "probe")
        wait_until(lambda: any(line[0] == "end" and line[3] == "later" for line in log.lines()), message="handled")
    finally:
        app.stop()
    assert PASSWORD not in app.logs()
