"""A handler that kills the process: the real `python app.py`, started again and again in the same folder.

The crash-loop protection: every start a handler takes down counts as an attempt, so an event whose
handler crashes the process ends dead instead of crashing every restart of the Space. It reuses the
handler-file pattern of `test_durability.py`: handlers note what they do in `PROBE_DIR/log.txt`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from apprunner import base_env, make_space, start_app, wait_until
from test_durability import HANDLERS, PREAMBLE, Probe, payload, sha


def run_until_killed(folder: Path, env: dict[str, str], started: Callable[[], bool]) -> None:
    """Start the app in `folder` and wait for a handler to take the process down (perhaps before it answers)."""
    try:
        app = start_app(folder, env)
    except RuntimeError as exc:  # the handler ran at start, before the landing page answered
        assert "app exited with 1" in str(exc), exc
        assert started(), str(exc)
        return
    try:
        wait_until(started, message="the handler to run again")
        exit_code = app.process.wait(timeout=30)
    finally:
        app.stop()
    assert exit_code == 1, app.logs()


@pytest.mark.parametrize("kind", ["def", "async def"])
def test_a_handler_that_kills_the_process_uses_up_its_attempts_then_stays_dead(tmp_path: Path, kind: str) -> None:
    """An event whose handler kills the process (`os._exit`, a segfault, the OOM killer) would otherwise run
    again at every start and take the Space down with it, for ever. Each start it kills counts as an attempt,
    even when the claim that started it had not reached the disk yet; once they are used up the event is
    left dead for an operator to replay, and the app serves again."""
    probe_dir = tmp_path / "probe"
    (probe_dir / "gates").mkdir(parents=True)
    killer = f"""
{kind} handle(payload: WebhookPayload):
    note("killer", payload.repo.headSha)
    os._exit(1)
"""
    folder = make_space(tmp_path / "space", {"killer.py": PREAMBLE + killer, "fast.py": HANDLERS["fast.py"]})
    env = base_env(tmp_path / "data", PROBE_DIR=str(probe_dir), WEBHOOK_MAX_ATTEMPTS="2")
    probe = Probe(start_app(folder, env), probe_dir)
    poison = sha("poison")

    def starts() -> int:
        return probe.log().count(["killer", poison])

    try:
        with contextlib.suppress(httpx.TransportError):  # the process dies before it can answer
            probe.app.post("/webhooks/killer", payload(repo="org/poison", sha=poison), headers={"webhook-id": "kill"})
        assert probe.app.process.wait(timeout=30) == 1
        assert starts() == 1
        journaled = probe.rows("SELECT id FROM events WHERE webhook_id = 'kill'")
        assert len(journaled) == 1, "the handler ran before its delivery was committed to the journal"
        poison_id = journaled[0]["id"]

        run_until_killed(folder, env, lambda: starts() == 2)  # resumed at start as attempt 2: killed again

        try:
            probe.app = start_app(folder, env)
        except RuntimeError as exc:
            pytest.fail(f"the handler took the third start down too ({starts()} starts in all): {exc}")
        event = probe.settled(poison_id, "dead")
        assert event["attempts"] == 2 and "stopped during the last allowed attempt" in event["error"]
        assert probe.outcomes(poison_id) == ["interrupted", "interrupted"]
        other = probe.app.post("/webhooks/fast", payload(repo="org/other", sha=sha("other")))
        assert other.status_code == 200 and other.json() == {"sha": sha("other")}
        assert starts() == 2 and probe.app.process.poll() is None
    finally:
        probe.app.stop()
