"""Hub Job mode, as a Job runs it: `python -m lib.job <handler>` in a subprocess, the event in
WEBHOOK_PAYLOAD, the outcome in the exit code, stdout and stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from apprunner import ROOT, fixture_body
from fakehub import FakeHub, fake_hub  # noqa: F401  (pytest fixture)

from lib.core.sample_events import sample_payload
from lib.hub.client import LEDGER_FILE

PR_OPENED = fixture_body("discussion-create-pr-opened.json").decode()


def run_job(
    handler: str, payload: str | dict | None, tmp_path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "WEBHOOK_")) and k != "DATA_DIR"}
    base.update(HF_HOME=str(tmp_path / "hf_home"), DATA_DIR=str(tmp_path / "data"), HF_HUB_DISABLE_TELEMETRY="1")
    if payload is not None:
        base["WEBHOOK_PAYLOAD"] = payload if isinstance(payload, str) else json.dumps(payload)
    base.update(env)
    return subprocess.run(
        [sys.executable, "-m", "lib.job", handler, *args],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_handler_runs_and_its_result_is_printed_as_json(tmp_path: Path) -> None:
    done = run_job("log_events", PR_OPENED, tmp_path, WEBHOOK_ID="6390e855e30d9209411de93b", WEBHOOK_SECRET="x")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "summary": "discussion/create on openai-community/gpt2 (model), discussion #19 (open), "
        "comment by 61d2f90c3c2083e1c08af22d"
    }
    assert "Job for webhook 6390e855e30d9209411de93b: discussion/create on openai-community/gpt2" in done.stderr


def test_a_missing_payload_is_exit_2_with_how_to_set_it(tmp_path: Path) -> None:
    done = run_job("log_events", None, tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("error: WEBHOOK_PAYLOAD is not set: a Hub webhook that targets a Job sets it")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("  ", "error: WEBHOOK_PAYLOAD is not set"),
        ("not json", "error: WEBHOOK_PAYLOAD is unusable: The body is not valid JSON"),
        ('{"event": {}}', "error: WEBHOOK_PAYLOAD is unusable: The body is JSON but not a Hub webhook payload"),
    ],
)
def test_a_bad_payload_is_exit_2_with_what_is_wrong(tmp_path: Path, payload: str, message: str) -> None:
    done = run_job("log_events", payload, tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(message), done.stderr


def test_an_unknown_handler_lists_the_available_ones(tmp_path: Path) -> None:
    done = run_job("nope", PR_OPENED, tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: No handler 'nope': handlers/nope.py does not exist. "
        "Available in handlers/: changelog, discussion_bot, evaluate_pr, log_events, model_card_check, "
        "train_on_new_data."
    )


def test_an_event_the_handler_does_not_want_is_skipped(tmp_path: Path) -> None:
    done = run_job("model_card_check", sample_payload("commit", repo_type="dataset"), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "skipped: repo type 'dataset' is not one of ['model']\n"


def test_the_loop_guard_applies_with_the_ledger_in_data_dir(tmp_path: Path) -> None:
    payload = sample_payload("commit")
    ours = payload["updatedRefs"][0]["newSha"]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / LEDGER_FILE).write_text(ours + "\n")
    done = run_job("changelog", payload, tmp_path)  # no token needed: it does not run
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"skipped: loop guard: commit {ours[:7]} was made by this Space")


CUSTOM = {
    "crash.py": 'def handle(payload):\n    raise RuntimeError("boom")\n',
    "async_request.py": (
        "from fastapi import Request\n\n"
        "async def handle(payload: dict, request: Request):\n"
        "    return {'scope': payload['event']['scope'], 'body_bytes': len(await request.body())}\n"
    ),
    "broken.py": "def handle(payload)\n    pass\n",
}


@pytest.fixture
def handlers_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "custom_handlers"
    folder.mkdir()
    for name, source in CUSTOM.items():
        (folder / name).write_text(source)
    return folder


def test_a_failing_handler_is_exit_1_with_its_traceback(tmp_path: Path, handlers_dir: Path) -> None:
    done = run_job("crash", PR_OPENED, tmp_path, "--handlers", str(handlers_dir))
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Traceback (most recent call last)" in done.stderr and 'raise RuntimeError("boom")' in done.stderr
    assert done.stderr.strip().splitlines()[-1] == "error: the crash handler failed: RuntimeError: boom"


def test_an_async_handler_gets_the_arguments_the_server_gives(tmp_path: Path, handlers_dir: Path) -> None:
    done = run_job("async_request", PR_OPENED, tmp_path, "--handlers", str(handlers_dir))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"scope": "discussion", "body_bytes": len(PR_OPENED.encode())}


def test_a_broken_handler_module_is_exit_2_naming_the_file(tmp_path: Path, handlers_dir: Path) -> None:
    done = run_job("broken", PR_OPENED, tmp_path, "--handlers", str(handlers_dir))
    assert done.returncode == 2
    assert f"{handlers_dir / 'broken.py'}, line 1: syntax error" in done.stderr


def test_a_real_handler_works_against_the_hub(tmp_path: Path, fake_hub: FakeHub) -> None:  # noqa: F811
    token = fake_hub.add_user("bot")
    sha = fake_hub.add_repo("bot/model", files={"README.md": "---\nlanguage: en\n---\n"})
    payload = sample_payload(
        "commit", repo="bot/model", updatedRefs=[{"ref": "refs/heads/main", "oldSha": None, "newSha": sha}]
    )
    done = run_job(
        "model_card_check", payload, tmp_path, HF_ENDPOINT=fake_hub.url, HF_TOKEN=token, NO_PROXY="127.0.0.1"
    )
    assert done.returncode == 0, done.stderr
    [discussion] = fake_hub.discussions("bot/model")
    assert json.loads(done.stdout) == {
        "checked": True,
        "missing": ["license"],
        "discussion": discussion.num,
        "opened": True,
    }
    assert discussion.title == "Model card: add license to the metadata"


def test_without_a_token_the_job_fails_with_the_fix(tmp_path: Path) -> None:
    done = run_job("discussion_bot", sample_payload("comment", comment={"content": "/ping"}), tmp_path)
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: the discussion_bot handler failed: MissingToken: HF_TOKEN is not set: add it as a Space secret"
        )
    )
