"""`python -m lib.send` against the real app: what arrives, and what the user reads when it fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from apprunner import ROOT, SECRET, RunningApp, fixture_body, free_port, running_app

from lib.core.sample_events import SAMPLE_KINDS
from lib.tools import send

ECHO = '''\
"""Answers with what it received, so the sender's output proves it."""
from fastapi import Request

from lib import WebhookPayload


def handle(payload: WebhookPayload, request: Request):
    return {
        "scope": payload.event.scope,
        "action": payload.event.action,
        "repo": payload.repo.name,
        "repo_type": payload.repo.type,
        "comment": payload.comment.content if payload.comment else None,
        "discussion": payload.discussion.num if payload.discussion else None,
        "commit_sha": payload.commit_sha,
        "test_flag": request.headers.get("x-webhook-test"),
        "webhook_id_header": request.headers.get("webhook-id"),
    }
'''


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    handlers = {"echo.py": ECHO, "log_events.py": (ROOT / "handlers" / "log_events.py").read_text()}
    with running_app(tmp_path_factory.mktemp("send"), handlers=handlers) as running:
        yield running


def run(capsys: pytest.CaptureFixture[str], *argv: str, secret: str | None = SECRET) -> tuple[int, str, dict | None]:
    """`main(argv)` with WEBHOOK_SECRET in its environment; the exit code, stdout and the JSON answer."""
    code = send.main(list(argv), environ={} if secret is None else {"WEBHOOK_SECRET": secret})
    out = capsys.readouterr()
    body = out.out.partition("\n")[2]
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    return code, out.out + out.err, answer


def test_a_sample_reaches_the_handler_marked_as_a_test(app: RunningApp, capsys: pytest.CaptureFixture[str]) -> None:
    code, output, answer = run(capsys, "commit", "--url", f"{app.url}/webhooks/echo")
    assert code == 0
    assert output.startswith("HTTP 200 OK (event ")
    assert answer == {
        "scope": "repo.content",
        "action": "update",
        "repo": "my-user/my-model",
        "repo_type": "model",
        "comment": None,
        "discussion": None,
        "commit_sha": answer["commit_sha"],
        "test_flag": "1",
        "webhook_id_header": None,
    }


def test_repo_comment_and_handler_shortcut(app: RunningApp, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, answer = run(
        capsys,
        "comment",
        "--url",
        app.url,
        "--to",
        "echo",
        "--repo",
        "acme/data",
        "--repo-type",
        "dataset",
        "--comment",
        "/ping",
        "--no-test-flag",
    )
    assert code == 0
    assert answer["scope"] == "discussion.comment" and answer["comment"] == "/ping"
    assert (answer["repo"], answer["repo_type"]) == ("acme/data", "dataset")
    assert answer["test_flag"] is None


def test_a_real_discussion_or_commit_can_be_named(app: RunningApp, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"{app.url}/webhooks/echo"
    code, _, answer = run(capsys, "comment", "--url", url, "--discussion", "7", "--comment", "/ping")
    assert code == 0 and (answer["discussion"], answer["comment"]) == (7, "/ping")
    code, _, answer = run(capsys, "commit", "--url", url, "--sha", "c" * 40)
    assert code == 0 and answer["commit_sha"] == "c" * 40


def test_a_json_file_is_sent_as_is(app: RunningApp, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    file = tmp_path / "event.json"
    file.write_bytes(fixture_body("discussion-update-pr-closed-space.json"))
    code, _, answer = run(capsys, "--file", str(file), "--url", f"{app.url}/webhooks/echo")
    assert code == 0
    assert (answer["scope"], answer["action"], answer["repo"]) == ("discussion", "update", "Wauplin/leaderboard")


def test_the_same_webhook_id_twice_is_a_duplicate(app: RunningApp, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"{app.url}/webhooks/echo"
    first = run(capsys, "pr-opened", "--url", url, "--webhook-id", "delivery-42")
    assert first[0] == 0 and first[2]["webhook_id_header"] == "delivery-42"
    code, _, answer = run(capsys, "pr-opened", "--url", url, "--webhook-id", "delivery-42")
    assert code == 0
    assert answer["status"] == "duplicate"


def test_the_default_target_is_log_events(app: RunningApp, capsys: pytest.CaptureFixture[str]) -> None:
    assert send.DEFAULT_URL.endswith("/webhooks/log_events")
    code, _, answer = run(capsys, "tag", "--url", app.url, "--to", "log_events")
    assert code == 0
    assert answer["summary"].startswith("repo.content/update on my-user/my-model (model) at ")
    assert answer["summary"].endswith(" by refs/tags/v1.0")


def test_a_wrong_secret_says_to_set_it(app: RunningApp, capsys: pytest.CaptureFixture[str]) -> None:
    code, output, _ = run(capsys, "commit", "--url", f"{app.url}/webhooks/echo", secret="wrong")
    assert code == 1
    assert output.startswith("HTTP 403 Forbidden")
    assert "hint: the secret sent is not the app's: pass --secret, or set WEBHOOK_SECRET" in output


def test_no_secret_says_to_set_it(
    app: RunningApp, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    code, output, _ = run(capsys, "commit", "--url", f"{app.url}/webhooks/echo", secret=None)
    assert code == 1
    assert output.startswith("HTTP 401 Unauthorized")
    assert "hint: the app requires a webhook secret and none was sent: pass --secret" in output


def test_the_secret_comes_from_dotenv_or_the_option(
    app: RunningApp, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"WEBHOOK_SECRET={SECRET},an-older-one\n")
    assert run(capsys, "commit", "--url", f"{app.url}/webhooks/echo", secret=None)[0] == 0
    (tmp_path / ".env").write_text("WEBHOOK_SECRET=stale\n")
    assert run(capsys, "commit", "--url", f"{app.url}/webhooks/echo", "--secret", SECRET, secret=None)[0] == 0


def test_an_unknown_endpoint_says_where_endpoints_are(app: RunningApp, capsys: pytest.CaptureFixture[str]) -> None:
    code, output, _ = run(capsys, "commit", "--url", app.url, "--to", "nope")
    assert code == 1
    assert output.startswith("HTTP 404")
    assert "hint: no endpoint at that path: endpoints are /webhooks/<handler name>" in output


def test_nothing_listening_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}/webhooks/log_events"
    code, output, _ = run(capsys, "commit", "--url", url)
    assert code == 1
    assert output == (
        f"error: nothing answers at {url}: is the app running? Start it with `python app.py`, or pass --url.\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "say what to send: a KIND"),
        (["push"], "invalid choice: 'push'"),
        (["commit", "--comment", "hi"], "--comment applies to pr-opened, discussion-opened, comment, not commit"),
        (["commit", "--file", "x.json"], "give either a KIND or --file, not both"),
        (["commit", "--discussion", "3"], "--discussion applies to pr-opened, discussion-opened, comment, pr-merged"),
        (["comment", "--sha", "c" * 40], "--sha applies to commit, new-branch, tag, not comment"),
        (["commit", "--sha", "main"], "--sha must be a full commit sha (40 lowercase hex characters), got 'main'"),
        (["--file", "/nonexistent/x.json"], "cannot read /nonexistent/x.json"),
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exited:
        send.main(argv, environ={})
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_python_m_lib_send_runs_and_its_help_lists_every_kind(app: RunningApp) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WEBHOOK_")}, "WEBHOOK_SECRET": SECRET}
    shown = subprocess.run(
        [sys.executable, "-m", "lib.send", "--help"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0
    for kind, description in SAMPLE_KINDS.items():
        assert f"  {kind:<18} {description}" in shown.stdout
    sent = subprocess.run(
        [sys.executable, "-m", "lib.send", "visibility", "--url", f"{app.url}/webhooks/echo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert sent.stdout.startswith("HTTP 200 OK")
    assert json.loads(sent.stdout.partition("\n")[2])["scope"] == "repo.config"
