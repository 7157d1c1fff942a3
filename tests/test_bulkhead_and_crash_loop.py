"""A stuck endpoint, threads left behind by timeouts, and a handler that kills the process while the Hub retries.

The real `python app.py` over real HTTP on loopback, its journal read from its file, its threads counted
in /proc, its console called over Gradio's HTTP API as any client can. Handlers note what they do in
`PROBE_DIR/log.txt` and wait on gate files the test creates (`test_durability.py`'s pattern), each wait
bounded, and every gate opened at the end: "only its own events waited" is shown by ordering, never by
timing. Issue "Hardening", points 4 and 5: one endpoint's hung handlers used to take every slot of the
shared pool (and, with a timeout, leave a thread each: 6 threads grew to 142), and a handler that ended
the process ran again at each of the Hub's retries of its delivery (8 runs for 5 attempts in the journal).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from apprunner import RunningApp, base_env, make_space, start_app, wait_until
from console_client import ConsoleClient
from test_durability import HANDLERS, PREAMBLE, Probe, event_id, payload, sha

COMMITTED = '''

def committed(event_id):
    """The event as the journal file holds it now: only what the app has committed (read-only)."""
    journal = sqlite3.connect(f"file:{os.environ['DATA_DIR']}/journal.sqlite3?mode=ro", uri=True)
    try:
        row = journal.execute("SELECT state, attempts, max_attempts FROM events WHERE id = ?", (event_id,)).fetchone()
        return list(row)
    finally:
        journal.close()
'''

OUR_HANDLERS = {
    "fast.py": HANDLERS["fast.py"],
    "stuck.py": PREAMBLE
    + """
def handle(payload: WebhookPayload):
    note("stuck", "start", payload.repo.headSha)
    wait_gate("release")  # as a `time.sleep` for ever would, but bounded, and released at the end
    note("stuck", "end", payload.repo.headSha)
    return {"released": payload.repo.headSha}
""",
    "killer.py": PREAMBLE
    + COMMITTED
    + """
async def handle(payload: WebhookPayload, request: Request):
    note("killer", payload.repo.headSha, committed(request.state.event_id))
    if not (PROBE / "gates" / "fixed").exists():
        os._exit(1)  # a segfault, the OOM killer: the process ends with the handler
    return "fixed"
""",
    "broken.py": PREAMBLE
    + COMMITTED
    + """
async def handle(payload: WebhookPayload, request: Request):
    note("broken", payload.repo.headSha, committed(request.state.event_id))
    if not (PROBE / "gates" / "fixed").exists():
        raise RuntimeError("broken until fixed")
    return "fixed"
""",
}


@contextlib.contextmanager
def probe_app(tmp_path: Path, **env: str) -> Iterator[Probe]:
    """The app with our handlers, and every gate opened at the end so no handler thread stays blocked."""
    probe_dir = tmp_path / "probe"
    (probe_dir / "gates").mkdir(parents=True)
    folder = make_space(tmp_path / "space", OUR_HANDLERS)
    probe = Probe(start_app(folder, base_env(tmp_path / "data", PROBE_DIR=str(probe_dir), **env)), probe_dir)
    try:
        yield probe
    finally:
        for gate in ("release", "fixed"):
            probe.open(gate)
        probe.app.stop()


def starts(probe: Probe, name: str) -> list[list[Any]]:
    return [line for line in probe.log() if line[0] == name and (name != "stuck" or line[1] == "start")]


def states(probe: Probe, endpoint: str) -> list[str]:
    rows = probe.rows("SELECT state FROM events WHERE endpoint = ? AND state != 'duplicate' ORDER BY id", (endpoint,))
    return [row[0] for row in rows]


def threads(app: RunningApp) -> int:
    """How many threads the app's process has now, from the kernel."""
    return len(list(Path(f"/proc/{app.process.pid}/task").iterdir()))


class Console(ConsoleClient):
    """The operator console over Gradio's HTTP API, unlocked with the webhook secret in a session of its own."""

    def handlers_now(self) -> dict[str, list[str]]:
        """The Health tab's "Handlers now" rows: endpoint name -> [running, stuck, share]."""
        kind, text = self.call("console_health", [None])
        assert kind == "complete", text
        table = json.loads(text)[0]
        table = table["value"] if isinstance(table, dict) else table
        rows = table.split("**Handlers now**", 1)[1].split("\n\n")[1].splitlines()[2:]
        cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
        return {cell[0].strip("` "): cell[1:] for cell in cells}


# --- 4. one endpoint starves the others -----------------------------------------------------------------------


def test_a_stuck_endpoint_delays_only_its_own_events(tmp_path: Path) -> None:
    """Six deliveries to an endpoint whose handlers block: it takes its share of the 4 slots (3), and the
    other endpoint's deliveries are still handled, each answered with its handler's result."""
    with probe_app(tmp_path, WEBHOOK_CONCURRENCY="4", WEBHOOK_ACK_BUDGET="0.3") as probe:
        stuck = [sha(f"stuck {n}") for n in range(6)]
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(lambda s: probe.post("stuck", payload(repo=f"org/{s[:8]}", sha=s)), stuck))
        assert [answer.status_code for answer in answers] == [202] * 6
        wait_until(lambda: len(starts(probe, "stuck")) >= 3, message="the stuck endpoint to fill its share")

        for n in range(5):  # before the fix none of these ran while the stuck handlers held every slot
            s = sha(f"fast {n}")
            answer = probe.post("fast", payload(repo=f"org/fast{n}", sha=s))
            assert answer.status_code == 200 and answer.json() == {"sha": s}, answer.text

        assert len(starts(probe, "stuck")) == 3  # its other events wait for its own handlers
        assert sorted(states(probe, "/webhooks/stuck")) == ["queued"] * 3 + ["running"] * 3
        now = Console(probe.app).handlers_now()
        assert now["stuck"] == ["3", "0", "3 (full)"] and now["fast"] == ["0", "0", "3"], now

        probe.open("release")
        for answer in answers:
            probe.settled(event_id(answer))
    running = peak = 0
    for line in probe.log():
        if line[0] == "stuck":
            running += 1 if line[1] == "start" else -1
            peak = max(peak, running)
    assert peak == 3


def test_threads_left_running_by_timed_out_handlers_are_bounded_by_the_endpoints_share(tmp_path: Path) -> None:
    """A plain `def` handler past its timeout cannot be stopped. Each such thread keeps counting against
    its endpoint's share until it ends, so eight deliveries that all time out leave 3 threads, not 8, and
    the other five wait; the console's health and the log say so. Once the threads end, the rest run."""
    env = {"WEBHOOK_CONCURRENCY": "4", "WEBHOOK_HANDLER_TIMEOUT": "0.5", "WEBHOOK_MAX_ATTEMPTS": "1"}
    with probe_app(tmp_path, WEBHOOK_ACK_BUDGET="0.2", **env) as probe:
        console = Console(probe.app)  # Gradio's own threads, started before counting
        assert probe.post("fast", payload(repo="org/warm", sha=sha("warm"))).status_code == 200
        before = threads(probe.app)

        stuck = [sha(f"timed out {n}") for n in range(8)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda s: probe.post("stuck", payload(repo=f"org/{s[:8]}", sha=s)), stuck))
        wait_until(lambda: states(probe, "/webhooks/stuck").count("dead") == 3, message="three handlers to time out")
        wait_until(lambda: "is at its share of 3 handler(s): 3 thread(s)" in probe.app.logs(), message="the warning")
        answer = probe.post("fast", payload(repo="org/other", sha=sha("other")))  # other endpoints still run
        assert answer.status_code == 200 and answer.json() == {"sha": sha("other")}

        assert len(starts(probe, "stuck")) == 3
        assert sorted(states(probe, "/webhooks/stuck")) == ["dead"] * 3 + ["queued"] * 5
        assert threads(probe.app) - before <= 3  # before the fix: one more thread for every event that timed out
        assert console.handlers_now()["stuck"] == ["0", "3 ⚠️", "3 (full)"]
        assert "WARNING" in next(line for line in probe.app.logs().splitlines() if "is at its share" in line)

        probe.open("release")
        wait_until(lambda: sorted(states(probe, "/webhooks/stuck")) == ["dead"] * 3 + ["succeeded"] * 5, message="5")
        wait_until(lambda: console.handlers_now()["stuck"] == ["0", "0", "3"], message="the stuck threads to end")
        assert len(starts(probe, "stuck")) == 8
        assert probe.app.logs().count("left running past its timeout has ended") == 3


# --- 5. a handler that kills the process, and the Hub's retries ---------------------------------------------------


def hub_retry(app: RunningApp, body: dict[str, Any], webhook_id: str) -> httpx.Response | None:
    """The Hub sends the delivery again with the same Webhook-Id; None if the app did not answer (it died)."""
    with contextlib.suppress(httpx.TransportError):
        return app.post("/webhooks/killer", body, headers={"webhook-id": webhook_id})
    return None


def start_or_die(probe: Probe) -> bool:
    """Start the app again in its folder: True once it serves, False if a handler took it down at start."""
    try:
        probe.app = start_app(probe.app.folder, probe.app.env)
    except RuntimeError as exc:  # the worker resumed the event at start, before the page answered
        assert "app exited with 1" in str(exc), exc
        return False
    return True


def test_a_handler_that_kills_the_process_stays_dead_through_the_hubs_retries(tmp_path: Path) -> None:
    """With 2 attempts: the delivery kills the process, the restart resumes it and is killed again, and at
    the next start it is dead. The Hub retries the delivery after each restart, as it does when a request
    fails; those retries used to requeue it with a fresh allowance, each run killing the app again. Now the
    journal shows exactly 2 attempts for the 2 runs, every retry is answered 200 `duplicate` saying why, and
    only a replay from the console runs it again."""
    with probe_app(tmp_path, WEBHOOK_MAX_ATTEMPTS="2") as probe:
        body, webhook_id = payload(repo="org/poison", sha=sha("poison")), "hub-delivery-1"
        assert hub_retry(probe.app, body, webhook_id) is None  # the first delivery: the handler ends the process
        assert probe.app.process.wait(timeout=30) == 1
        [poison] = [row["id"] for row in probe.rows("SELECT id FROM events WHERE webhook_id = ?", (webhook_id,))]

        for _ in range(3):  # bounded: two starts at most are taken down
            if start_or_die(probe):
                answer = hub_retry(probe.app, body, webhook_id)
                if answer is not None and probe.event(poison)["state"] == "dead":
                    break
                wait_until(lambda: probe.app.process.poll() is not None, message="the resumed handler to kill it")
        runs = starts(probe, "killer")
        assert len(runs) == 2, runs
        event = probe.event(poison)
        assert (event["state"], event["attempts"], event["max_attempts"]) == ("dead", 2, 2)
        assert "stopped during the last allowed attempt" in event["error"]
        assert probe.outcomes(poison) == ["interrupted", "interrupted"]

        for _ in range(3):  # the Hub keeps retrying: each is answered, none runs the handler
            answer = hub_retry(probe.app, body, webhook_id)
            assert answer is not None and answer.status_code == 200, answer
            detail = answer.json()
            assert (detail["status"], detail["original_event_id"], detail["original_state"]) == (
                "duplicate",
                poison,
                "dead",
            )
            assert "ended the process on its last attempt" in detail["detail"]
            assert "replay it from the console" in detail["detail"]
        assert len(starts(probe, "killer")) == 2 and probe.app.process.poll() is None
        assert probe.event(poison)["attempts"] == 2

        probe.open("fixed")  # the operator fixed the handler, and replays the event from the console
        kind, text = Console(probe.app).call("console_replay", [None, poison])
        assert kind == "complete" and f"Replaying event #{poison}" in text, text
        assert json.loads(probe.settled(poison)["result"]) == "fixed"
        assert len(starts(probe, "killer")) == 3
    # Each run found its claim on disk when it started (the delivery's, the restart's scan, the replay's):
    # never queued, never dead, and the attempt counted before the handler could end the process.
    assert [run[2] for run in starts(probe, "killer")] == [["running", 1, 2], ["running", 2, 2], ["running", 3, 4]]


def test_a_requeued_event_never_runs_before_its_requeue_is_on_disk(tmp_path: Path) -> None:
    """A redelivery of a dead event (its handler raised) requeues it; the handler, reading the journal file
    when it starts, must find its requeue and its claim there: running, with its new allowance, never
    still dead or queued. (Before, a console replay's run found the file still saying dead, and a scan's
    claim was not on disk yet: only the starts file counted that attempt.)"""
    with probe_app(tmp_path, WEBHOOK_MAX_ATTEMPTS="1") as probe:
        body = payload(repo="org/broken", sha=sha("broken"))
        first = probe.post("broken", body, headers={"webhook-id": "broken-1"})
        assert first.status_code == 202 and first.json()["status"] == "dead"
        original = event_id(first)
        for attempt in (2, 3):
            again = probe.post("broken", body, headers={"webhook-id": "broken-1"})
            assert again.status_code == 202 and again.json()["status"] == "dead", again.text  # ran, failed again
            assert probe.event(original)["attempts"] == attempt
        probe.open("fixed")
        fixed = probe.post("broken", body, headers={"webhook-id": "broken-1"})
        assert fixed.status_code == 200 and fixed.json() == "fixed"
        runs = starts(probe, "broken")
    # Each run saw the requeue that gave it one more attempt, and its own claim, committed: never dead.
    assert [run[2] for run in runs] == [["running", n, n] for n in (1, 2, 3, 4)]
