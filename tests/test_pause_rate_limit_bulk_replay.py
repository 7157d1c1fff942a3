"""Pause, rate limit and bulk replay end to end (issue 14): the real `python app.py` on loopback, driven
like the operator drives it (the console's listeners over Gradio's HTTP API), its journal read from its
file, read-only. Each guarantee is attacked: a SIGKILL while paused, a stranger pausing, a count
confirmed after the filters changed, handler starts counted per window from the journal's own claim
times (never timed against the wall clock).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from apprunner import base_env, make_space, start_app, wait_until
from console_client import ConsoleClient
from test_durability import PREAMBLE, Probe, event_id, payload, sha

THROTTLED = "3/second"
HANDLERS = {
    "paced.py": PREAMBLE
    + f"""
RATE_LIMIT = "{THROTTLED}"


async def handle(payload: WebhookPayload):
    note("paced", payload.repo.name, payload.repo.headSha)
    return {{"sha": payload.repo.headSha}}
""",
    "other.py": PREAMBLE
    + """
async def handle(payload: WebhookPayload):
    note("other", payload.repo.name, payload.repo.headSha)
    return {"sha": payload.repo.headSha}
""",
    "flaky.py": PREAMBLE
    + """
async def handle(payload: WebhookPayload):
    note("flaky", payload.repo.name, payload.repo.headSha)
    if not (PROBE / "gates" / "fixed").exists():
        raise RuntimeError("broken until fixed")
    return "fixed"
""",
}
"""`paced` is throttled, `other` is not, `flaky` fails until the operator fixes it (a gate file)."""


@contextlib.contextmanager
def probe_app(tmp_path: Path, **env: str) -> Iterator[Probe]:
    probe_dir = tmp_path / "probe"
    (probe_dir / "gates").mkdir(parents=True, exist_ok=True)
    folder = make_space(tmp_path / "space", HANDLERS)
    settings = {"PROBE_DIR": str(probe_dir), "WEBHOOK_ACK_BUDGET": "0.2", "WEBHOOK_MAX_ATTEMPTS": "1", **env}
    probe = Probe(start_app(folder, base_env(tmp_path / "data", **settings)), probe_dir)
    try:
        yield probe
    finally:
        probe.app.stop()


def restart(probe: Probe, tmp_path: Path) -> Probe:
    """The same Space and data folder, started again (after a SIGKILL)."""
    folder = tmp_path / "space"
    settings = {"PROBE_DIR": str(probe.folder), "WEBHOOK_ACK_BUDGET": "0.2", "WEBHOOK_MAX_ATTEMPTS": "1"}
    return Probe(start_app(folder, base_env(tmp_path / "data", **settings)), probe.folder)


def runs(probe: Probe, name: str) -> list[tuple[str, str]]:
    return [(line[1], line[2]) for line in probe.log() if line[0] == name]


def states(probe: Probe, endpoint: str) -> dict[int, str]:
    rows = probe.rows("SELECT id, state FROM events WHERE endpoint = ? AND state != 'duplicate'", (endpoint,))
    return {row[0]: row[1] for row in rows}


def start_times(probe: Probe, endpoint: str) -> list[float]:
    """When each handler run of `endpoint` was claimed, as the journal recorded it (its attempts' start times)."""
    rows = probe.rows(
        "SELECT started_at FROM events WHERE endpoint = ?1 AND started_at IS NOT NULL AND state != 'duplicate' "
        "UNION ALL SELECT a.started_at FROM attempts AS a JOIN events AS e ON e.id = a.event_id WHERE e.endpoint = ?1",
        (endpoint,),
    )
    return sorted(row[0] for row in rows)


def assert_within_rate(times: list[float], runs_allowed: int, seconds: float) -> None:
    """No window of `seconds` holds more than `runs_allowed` starts: the (n+runs)th start is a window after the nth."""
    for first, later in zip(times, times[runs_allowed:], strict=False):
        assert later - first >= seconds - 1e-6, (times, first, later)


def post_many(probe: Probe, name: str, bodies: list[dict]) -> list:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda body: probe.post(name, body), bodies))


def answer(kind_and_text: tuple[str, str]) -> str:
    kind, text = kind_and_text
    assert kind == "complete", text
    value = json.loads(text)[0]
    return value["value"] if isinstance(value, dict) else value


# --- pause and resume -------------------------------------------------------------------------------------


def test_a_paused_endpoint_acknowledges_and_holds_through_a_sigkill_then_resumes_in_order_within_its_rate(
    tmp_path: Path,
) -> None:
    with probe_app(tmp_path) as probe:
        stranger = ConsoleClient(probe.app, unlock=False)
        kind, text = stranger.call("console_pause", [None, "/webhooks/paced"])
        assert kind == "error" and "locked" in text, text  # only the operator pauses
        console = ConsoleClient(probe.app)
        assert "Paused" in answer(console.call("console_pause", [None, "/webhooks/paced"]))

        shas = [sha(f"paused {n}") for n in range(6)]
        bodies = [payload(repo="org/a" if n % 2 == 0 else "org/b", sha=s) for n, s in enumerate(shas)]
        answers = [probe.post("paced", body) for body in bodies]  # one by one: arrival order is their order
        assert [a.status_code for a in answers] == [202] * 6
        assert {a.json()["status"] for a in answers} == {"paused"}
        again = probe.post("paced", bodies[0])  # the Hub's retry of a held event: it will run once, on resume
        assert again.status_code == 200 and again.json()["status"] == "duplicate", again.text
        other = probe.post("other", payload(repo="org/a", sha=sha("other")))
        assert other.status_code == 200  # the other endpoint runs: the worker is alive
        assert runs(probe, "paced") == []
        assert set(states(probe, "/webhooks/paced").values()) == {"paused"}
        assert "paused since" in answer(console.call("console_pauses", [None]))

        probe.app.kill()  # SIGKILL while paused: the pause is in the journal
        probe = restart(probe, tmp_path)
        late = probe.post("paced", payload(repo="org/a", sha=sha("after the restart")))
        assert late.status_code == 202 and late.json()["status"] == "paused"
        shas.append(sha("after the restart"))
        probe.post("other", payload(repo="org/c", sha=sha("other after")))
        wait_until(lambda: len(runs(probe, "other")) == 2, message="the other endpoint to run after the restart")
        assert runs(probe, "paced") == []

        console = ConsoleClient(probe.app)
        assert "Resumed" in answer(console.call("console_resume", [None, "/webhooks/paced"]))
        wait_until(lambda: len(runs(probe, "paced")) == 7, message="every held event to run")
        ran = runs(probe, "paced")
        assert [s for repo, s in ran if repo == "org/a"] == [shas[0], shas[2], shas[4], shas[6]]  # arrival order
        assert [s for repo, s in ran if repo == "org/b"] == [shas[1], shas[3], shas[5]]
        wait_until(lambda: set(states(probe, "/webhooks/paced").values()) == {"succeeded"}, message="all committed")
        assert_within_rate(start_times(probe, "/webhooks/paced"), 3, 1.0)
        probe.app.stop()


# --- rate limit --------------------------------------------------------------------------------------------


def test_a_rate_limit_shapes_handler_starts_and_never_the_acknowledgements(tmp_path: Path) -> None:
    """12 deliveries at once for 12 repositories (nothing orders them) to an endpoint limited to 3/second:
    every one is answered at once, and no second of the journal's claim times holds more than 3 starts."""
    with probe_app(tmp_path, WEBHOOK_CONCURRENCY="8") as probe:
        bodies = [payload(repo=f"org/r{n}", sha=sha(f"burst {n}")) for n in range(12)]
        answers = post_many(probe, "paced", bodies)
        assert {a.status_code for a in answers} <= {200, 202}
        acknowledged = {event_id(a) for a in answers}
        assert len(acknowledged) == 12  # all recorded and answered, whatever the limit
        still_waiting = [i for i, state in states(probe, "/webhooks/paced").items() if state == "queued"]
        assert still_waiting, "every delivery was answered before the limit let the last of them start"
        wait_until(lambda: len(runs(probe, "paced")) == 12, message="every event to run", timeout=30)
        times = start_times(probe, "/webhooks/paced")
        assert len(times) == 12
        assert_within_rate(times, 3, 1.0)
        other = probe.post("other", payload(repo="org/r0", sha=sha("not throttled")))
        assert other.status_code == 200  # another endpoint is never held up by this one's limit


# --- bulk replay --------------------------------------------------------------------------------------------


def test_a_bulk_replay_runs_exactly_the_counted_events_the_filters_match(tmp_path: Path) -> None:
    """Six events die on `flaky` (three of org/a, three of org/b); the handler is fixed; the operator filters
    on org/a's dead events, counts 3, confirms: those three run again, org/b's stay dead. A count is bound to
    its filters, to its session, and to the events it counted (one arriving after the count is not replayed)."""
    with probe_app(tmp_path) as probe:
        for n in range(6):
            answer_ = probe.post("flaky", payload(repo="org/a" if n < 3 else "org/b", sha=sha(f"flaky {n}")))
            assert answer_.status_code == 202
        wait_until(lambda: sorted(states(probe, "/webhooks/flaky").values()) == ["dead"] * 6, message="six dead")
        dead = states(probe, "/webhooks/flaky")
        org_a = sorted(i for i in dead if probe.event(i)["repo_name"] == "org/a")
        probe.open("fixed")

        console = ConsoleClient(probe.app)
        filters = ["/webhooks/flaky", "dead", "org/a", "All", "All"]
        kind, text = console.call("console_bulk_replay", [None, None, *filters])
        assert kind == "error" and "Count the matching events first" in text  # no count, no replay
        counted = json.loads(console.call("console_bulk_count", [None, *filters])[1])[0]
        assert "3 event(s) will run again" in counted and f"#{org_a[0]} to #{org_a[-1]}" in counted, counted

        late = probe.post("flaky", payload(repo="org/a", sha=sha("after the count")))  # runs (fixed) and succeeds
        assert late.status_code == 200
        stranger = ConsoleClient(probe.app, unlock=False)
        kind, text = stranger.call("console_bulk_replay", [None, None, *filters])
        assert kind == "error" and "locked" in text
        other_session = ConsoleClient(probe.app)  # the operator in another tab: no count there
        kind, text = other_session.call("console_bulk_replay", [None, None, *filters])
        assert kind == "error" and "Count the matching events first" in text
        kind, text = console.call("console_bulk_replay", [None, None, "/webhooks/flaky", "dead", "All", "All", "All"])
        assert kind == "error" and "filters changed" in text  # every dead event would be more than was counted
        assert sorted(states(probe, "/webhooks/flaky").values()).count("dead") == 6

        done = json.loads(console.call("console_bulk_replay", [None, None, *filters])[1])[0]
        assert f"Replaying 3 event(s)**: #{org_a[0]} to #{org_a[-1]}" in done, done
        wait_until(
            lambda: [states(probe, "/webhooks/flaky")[i] for i in org_a] == ["succeeded"] * 3,
            message="org/a's dead events to run again",
        )
        after = states(probe, "/webhooks/flaky")
        assert sorted(state for i, state in after.items() if i not in org_a) == ["dead", "dead", "dead", "succeeded"]
        assert len([r for r in runs(probe, "flaky") if r[0] == "org/a"]) == 3 + 1 + 3  # died, late one, replays
        again = json.loads(console.call("console_bulk_count", [None, *filters])[1])[0]
        assert "No event to replay" in again  # none of org/a is dead any more
