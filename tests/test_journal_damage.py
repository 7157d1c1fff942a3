"""The journal's damage, a full disk, its size cap and a redelivery storm, end to end.

The real app (`python app.py`) as a process, real HTTP on loopback, the journal's files damaged or its
disk filled between or during runs, as an operator or a crash would:

- a journal truncated to 0 bytes, a WAL deleted or garbled after SIGKILL: the app starts, and the loss
  is reported in an ERROR line, on the landing page and in the console until dismissed; new events are
  numbered above the lost ones;
- a disk full at start (after a clean stop, and after SIGKILL) or during load: the app starts, answers
  503 (never a refused connection, never another 5xx) until there is room, then carries on without a
  restart, and every event it acknowledged runs;
- the size cap counts the WAL: past it, the files stay within the cap and deliveries get 503;
- a redelivery storm is answered `duplicate`, the handler running once (its cost is measured in
  `bench/redelivery_storm.py`, not asserted here).

The full-disk tests mount a small tmpfs and are skipped, saying why, when not run as root.
In-process tests of the same guards, with more edge cases, are in `test_journal_guards.py`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from apprunner import SECRET, RunningApp, base_env, fixture_json, make_space, start_app, wait_until
from tmpfs import fill, small_disk

HANDLER = '''
"""Runs once PROBE_DIR/open exists, noting each event's sha in PROBE_DIR/ran.txt."""
import asyncio, os
from pathlib import Path

from lib import WebhookPayload

PROBE = Path(os.environ["PROBE_DIR"])


async def handle(payload: WebhookPayload):
    while not (PROBE / "open").exists():
        await asyncio.sleep(0.02)
    with open(PROBE / "ran.txt", "a") as ran:
        ran.write(payload.repo.headSha + "\\n")
    return {"sha": payload.repo.headSha}
'''
ENV = {"WEBHOOK_ACK_BUDGET": "0.2", "WEBHOOK_RETRY_BASE": "0.1", "WEBHOOK_RETRY_MAX": "0.5"}


# --- the app, its deliveries, its page and its console ------------------------------------------------------


class Space:
    """A Space folder, its data folder and its probe folder; started and restarted in place."""

    def __init__(self, tmp_path: Path, data_dir: Path | None = None, **env: str) -> None:
        self.probe = tmp_path / "probe"
        self.probe.mkdir()
        self.folder = make_space(tmp_path / "space", {"gated.py": HANDLER})
        self.data_dir = data_dir or tmp_path / "data"
        self.env = base_env(self.data_dir, PROBE_DIR=str(self.probe), **{**ENV, **env})
        self.app: RunningApp | None = None

    @property
    def journal(self) -> Path:
        return self.data_dir / "journal.sqlite3"

    def start(self) -> RunningApp:
        self.app = start_app(self.folder, self.env)
        return self.app

    def stop(self) -> None:
        if self.app is not None:
            self.app.stop()

    def open_gate(self) -> None:
        (self.probe / "open").touch()

    def ran(self) -> list[str]:
        path = self.probe / "ran.txt"
        return path.read_text().split() if path.exists() else []


@contextlib.contextmanager
def space(tmp_path: Path, data_dir: Path | None = None, **env: str) -> Iterator[Space]:
    made = Space(tmp_path, data_dir, **env)
    try:
        yield made
    finally:
        made.open_gate()  # lets a waiting handler end, so the app stops at once
        made.stop()


def sha(label: str) -> str:
    return hashlib.sha1(label.encode()).hexdigest()


def payload(label: str, **extra: Any) -> dict[str, Any]:
    body = fixture_json("repo-content-update-space-new-pr-ref.json")
    body["repo"].update(name=f"org/{label.split()[0]}", headSha=sha(label))
    body.update(extra)
    return body


def deliver(app: RunningApp, label: str, *, webhook_id: str | None = None, **extra: Any) -> httpx.Response:
    """A delivery as the Hub makes it; a refused connection or a timeout fails the test (never a 503's stand-in)."""
    headers = {"webhook-id": webhook_id or uuid.uuid4().hex}
    return app.post("/webhooks/gated", payload(label, **extra), headers=headers)


def event_id(response: httpx.Response) -> int:
    return int(response.headers["x-webhook-event-id"])


def gradio_call(app: RunningApp, api_name: str, data: list, *, session: str) -> Any:
    """Call a listener of the page as a browser does (POST /gradio_api/call/..., then its event stream)."""
    started = httpx.post(
        f"{app.url}/gradio_api/call/{api_name}", json={"data": data, "session_hash": session}, timeout=30
    )
    assert started.status_code == 200, started.text
    kind = None
    url = f"{app.url}/gradio_api/call/{api_name}/{started.json()['event_id']}"
    with httpx.stream("GET", url, timeout=60) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                kind = line.removeprefix("event:").strip()
            elif line.startswith("data:") and kind in ("complete", "error"):
                assert kind == "complete", line
                return json.loads(line.removeprefix("data:").strip())
    raise AssertionError(f"{api_name} gave no answer")


def landing_damage(app: RunningApp) -> str:
    """The landing page's journal-damage block as a visitor's page load fills it: its text, "" when hidden."""
    [block] = gradio_call(app, "journal_damage", [], session=uuid.uuid4().hex)
    return block["value"] if block.get("visible") else ""


def console_summary(app: RunningApp) -> str:
    """The console's verdict, unlocked with the secret in a session of its own."""
    session = uuid.uuid4().hex
    assert "Console unlocked" in json.dumps(gradio_call(app, "console_unlock", [SECRET, None], session=session))
    outputs = gradio_call(app, "console_refresh", [None, "All", "All", "", "All"], session=session)
    return outputs[-3]["value"]


def console_dismiss(app: RunningApp) -> str:
    session = uuid.uuid4().hex
    gradio_call(app, "console_unlock", [SECRET, None], session=session)
    return gradio_call(app, "console_dismiss_damage", [None], session=session)[0]


def errors(app: RunningApp) -> list[str]:
    return [line for line in app.logs().splitlines() if " ERROR " in line or line.startswith("ERROR")]


def journal_ids(path: Path) -> list[int]:
    """The ids the journal file holds, read from outside the app (read-only)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return [row[0] for row in db.execute("SELECT id FROM events ORDER BY id")]


def queued_deliveries(app: RunningApp, count: int, tag: str) -> list[int]:
    """`count` deliveries acknowledged (202) while the handler waits: queued or running when the app stops."""
    answers = [deliver(app, f"{tag} {n}") for n in range(count)]
    assert [(a.status_code, a.json()["status"]) for a in answers] == [(202, "queued")] * count
    return [event_id(a) for a in answers]


def assert_reported(app: RunningApp, first: int, last: int, cause: str) -> None:
    """The loss is in an ERROR line, on the landing page and in the console, with what to do."""
    lost = f"lost up to {last - first + 1} acknowledged event(s)"
    [line] = [line for line in errors(app) if lost in line]
    assert f"#{first} to #{last}" in line and cause in line
    assert "replay the deliveries" in line and f"New events are numbered from #{last + 1}" in line
    assert lost in landing_damage(app)
    summary = console_summary(app)
    assert f"{lost}**, #{first} to #{last}" in summary and "Dismiss" in summary


# --- 2. journal damage: reported, never silent -------------------------------------------------------------


def test_a_journal_truncated_to_0_bytes_is_reported_until_dismissed_and_ids_go_on(tmp_path: Path) -> None:
    with space(tmp_path) as made:
        app = made.start()
        ids = queued_deliveries(app, 4, "truncated")
        made.stop()
        made.journal.write_bytes(b"")  # the WAL went with the clean stop: only the file held them

        app = made.start()
        assert_reported(app, ids[0], ids[-1], "truncated to 0 bytes")
        made.open_gate()
        after = deliver(app, "after truncation")
        assert after.status_code == 200 and event_id(after) == ids[-1] + 1

        assert "Dismissed 1 report(s)" in console_dismiss(app)
        assert landing_damage(app) == ""
        assert "lost up to" not in console_summary(app)
        made.stop()
        app = made.start()  # dismissed: not reported again
        assert errors(app) == [] and landing_damage(app) == ""


@pytest.mark.parametrize("damage", ["deleted", "garbled"])
def test_a_write_ahead_log_lost_after_sigkill_is_reported_and_ids_go_on(tmp_path: Path, damage: str) -> None:
    with space(tmp_path) as made:
        app = made.start()
        ids = queued_deliveries(app, 6, damage)
        app.kill()  # the newest commits are in journal.sqlite3-wal only
        wal = made.journal.with_name(made.journal.name + "-wal")
        if damage == "deleted":
            wal.unlink()
        else:  # from the third delivery's frames on: SQLite stops reading at the first bad checksum
            data = bytearray(wal.read_bytes())
            start = len(data) // 3
            data[start:] = os.urandom(len(data) - start)
            wal.write_bytes(bytes(data))

        app = made.start()
        kept = [i for i in journal_ids(made.journal) if i in ids]
        assert len(kept) < len(ids)
        first = (kept[-1] if kept else ids[0] - 1) + 1
        assert_reported(app, first, ids[-1], "write-ahead log")
        made.open_gate()
        after = deliver(app, f"after {damage}")
        assert after.status_code == 200 and event_id(after) == ids[-1] + 1
        wait_until(lambda: all(sha(f"{damage} {ids.index(i)}") in made.ran() for i in kept), message="kept events")


# --- 3. a full disk: 503 until there is room, then on without a restart ------------------------------------


@pytest.mark.parametrize("stop", ["stopped", "killed"])
def test_restarting_on_a_full_disk_answers_503_and_carries_on_when_there_is_room(tmp_path: Path, stop: str) -> None:
    """Stopped cleanly, SQLite has no `-shm` to open the journal with; killed, the start used to write the
    schema version, fail, and blame a healthy journal. Either way the app refused to start, and the Hub's
    deliveries met a refused connection."""
    with small_disk(tmp_path / "disk") as disk, space(tmp_path, disk / "data") as made:
        app = made.start()
        ids = queued_deliveries(app, 3, stop)
        if stop == "stopped":
            made.stop()
        else:
            app.kill()
        filler = fill(disk)

        app = made.start()  # it starts: start_app waits for the page to answer 200
        refused = [deliver(app, f"{stop} while full {n}") for n in range(5)]
        assert [answer.status_code for answer in refused] == [503] * 5
        assert all("is full" in answer.json()["error"] for answer in refused)
        assert any("The disk holding the event journal" in line for line in errors(app))

        filler.unlink()
        made.open_gate()

        def delivered() -> httpx.Response | None:
            answer = deliver(app, f"{stop} after room")
            assert answer.status_code in (200, 503), answer.text
            return answer if answer.status_code == 200 else None

        wait_until(delivered, timeout=30, interval=0.2, message="a delivery to be recorded once there is room")
        wanted = {sha(f"{stop} {n}") for n in range(len(ids))}
        wait_until(lambda: wanted <= set(made.ran()), message="every event acknowledged before the disk filled")
        assert made.app is app and app.process.poll() is None  # no restart


def test_a_disk_that_fills_during_load_gives_503s_then_recovers_and_loses_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    with small_disk(tmp_path / "disk") as disk, space(tmp_path, disk / "data") as made:
        made.open_gate()
        app = made.start()
        answers: list[tuple[int, int | None]] = []

        def send(n: int) -> None:
            response = deliver(app, f"load {n}")
            answers.append((response.status_code, event_id(response) if response.status_code < 300 else None))

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(send, range(40)))
            filler = fill(disk)
            n = 40
            while not any(status == 503 for status, _ in answers) and n < 3000:
                list(pool.map(send, range(n, n + 40)))
                n += 40
            assert any(status == 503 for status, _ in answers), "the full disk never refused a delivery"
            filler.unlink()
            wait_until(
                lambda: send(-1) or answers[-1][0] == 200, timeout=30, interval=0.2, message="a 200 once there is room"
            )
            list(pool.map(send, range(n, n + 40)))
        assert {status for status, _ in answers} <= {200, 503}
        acknowledged = {i for status, i in answers if status == 200}
        made.stop()
        assert acknowledged <= set(journal_ids(made.journal))
        with contextlib.closing(sqlite3.connect(f"file:{made.journal}?mode=ro", uri=True)) as db:
            marks = ",".join("?" * len(acknowledged))
            states = db.execute(f"SELECT state FROM events WHERE id IN ({marks})", tuple(acknowledged)).fetchall()
        assert {state for (state,) in states} == {"succeeded"}


# --- 3. the size cap counts the WAL ---------------------------------------------------------------------------

CAP = 256 * 1024


def test_past_the_cap_the_journal_and_its_wal_stay_within_it_and_deliveries_get_503(tmp_path: Path) -> None:
    """Before, the cap bounded the file only: its WAL grew to 4 MiB beside it before the first checkpoint."""
    with space(tmp_path, WEBHOOK_JOURNAL_MAX_BYTES=str(CAP)) as made:
        made.open_gate()
        app = made.start()
        statuses: list[int] = []
        largest = 0

        def on_disk() -> int:
            files = (made.journal, made.journal.with_name(made.journal.name + "-wal"))
            return sum(path.stat().st_size for path in files if path.exists())

        def send(n: int) -> None:
            statuses.append(deliver(app, f"cap {n}", padding="x" * 1500).status_code)

        with ThreadPoolExecutor(8) as pool:
            for batch in range(12):
                list(pool.map(send, range(batch * 40, batch * 40 + 40)))
                largest = max(largest, on_disk())
        # 202 only for a delivery recorded just under the cap whose outcome then no longer fits (at most one per
        # sender of the batch that reached it): acknowledged and durable, answered "queued" rather than a result.
        assert set(statuses) <= {200, 202, 503} and statuses.count(202) <= 8
        assert statuses.count(200) > 20 and statuses.count(503) > 100
        assert largest <= CAP, f"the journal and its WAL took {largest} bytes, over the cap of {CAP}"
        answer = deliver(app, "cap over", padding="x" * 1500)
        assert answer.status_code == 503 and "WEBHOOK_JOURNAL_MAX_BYTES" in answer.json()["error"]


# --- 6. a redelivery storm ------------------------------------------------------------------------------------


def test_a_redelivery_storm_is_answered_duplicate_and_runs_the_handler_once(tmp_path: Path) -> None:
    with space(tmp_path) as made:
        made.open_gate()
        app = made.start()
        original = deliver(app, "storm", webhook_id="wh-storm")
        assert original.status_code == 200
        for _ in range(300):
            again = deliver(app, "storm", webhook_id="wh-storm")
            assert again.status_code == 200 and again.json()["status"] == "duplicate"
            assert again.json()["original_event_id"] == event_id(original)
        assert made.ran().count(sha("storm")) == 1
