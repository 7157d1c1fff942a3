"""A script written for `huggingface_hub`'s `WebhooksServer` runs on ours by changing its import line.

The scripts below follow the reference's own docstring examples. Each is run as a real process
with only its import line changed, and answered over HTTP. The in-process tests then check the
registration API where ours deliberately differs (the decorator returns the function).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import sqlite3
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import huggingface_hub
import pytest
from apprunner import RunningApp, base_env, fixture_body, fixture_json, free_port, make_space, start_app, wait_until
from test_bulkhead_and_crash_loop import Console

import lib
from lib import WebhookPayload, WebhooksServer

SECRET = "my_secret_key"
CONTENT_FIXTURE = "repo-content-update-space-new-pr-ref.json"

REFERENCE_SERVER_SCRIPT = """\
import os
from pathlib import Path

import gradio as gr
from fastapi import BackgroundTasks, Request
from huggingface_hub import WebhooksServer, WebhookPayload

with gr.Blocks() as ui:
    gr.Markdown("My own landing page, kept by the server")

app = WebhooksServer(ui=ui, webhook_secret="my_secret_key")


@app.add_webhook("/say_hello")
async def hello(payload: WebhookPayload):
    return {"message": "hello"}


@app.add_webhook
async def trigger_training(payload: WebhookPayload):
    if payload.repo.type == "dataset" and payload.event.action == "update":
        return {"training": "started"}
    return {"repo": payload.repo.name, "type": payload.repo.type, "head_sha": payload.repo.head_sha}


@app.add_webhook(path="/inspect_request")
async def inspect_request(payload: WebhookPayload, request: Request):
    body = await request.body()
    return {
        "headers": dict(request.headers),
        "method": request.method,
        "body_length": len(body),
        "scope": payload.event.scope,
    }


def write_marker(text: str) -> None:
    Path(os.environ["MARKER_FILE"]).write_text(text)


@app.add_webhook(path="later")
def with_background_task(payload: WebhookPayload, background_tasks: BackgroundTasks):
    background_tasks.add_task(write_marker, "background task ran for " + payload.repo.name)
    return {"status": "accepted"}


# Handlers without a payload, as the reference's own test suite declares them: called for any POST.
@app.add_webhook
async def async_with_request(request: Request) -> None:
    return {"success": True}


@app.add_webhook
def sync_with_request(request: Request) -> None:
    return {"success": True}


@app.add_webhook
async def async_no_request() -> None:
    return {"success": True}


@app.add_webhook
def sync_no_request() -> None:
    return {"success": True}


@app.add_webhook(path="/explicit_path")
async def with_explicit_path() -> None:
    return {"success": True}


app.launch()
"""

REFERENCE_DECORATOR_SCRIPT = """\
import os
from pathlib import Path

from fastapi import Request
from huggingface_hub import webhook_endpoint, WebhookPayload


@webhook_endpoint
async def trigger_training(payload: WebhookPayload):
    if payload.repo.type == "dataset" and payload.event.action == "update":
        return {"training": "started"}
    return {"training": "not needed", "repo": payload.repo.name}


@webhook_endpoint("team/notify")
def notify(payload: WebhookPayload):
    return {"scope": payload.event.scope, "action": payload.event.action}


@webhook_endpoint
async def flaky_ping(request: Request):
    runs = Path(os.environ["PINGS_FILE"])
    count = int(runs.read_text()) + 1 if runs.exists() else 1
    runs.write_text(str(count))
    if count == 1:
        raise RuntimeError("the first ping fails")
    return {"runs": count, "body": (await request.body()).decode()}

# No launch(): the reference starts the server when the script ends (atexit).
"""


def ported(script: str) -> str:
    """The one change a user makes: import from `lib` instead of `huggingface_hub`."""
    lines = script.splitlines(keepends=True)
    changed = [line.replace("from huggingface_hub import", "from lib import", 1) for line in lines]
    assert sum(a != b for a, b in zip(lines, changed, strict=True)) == 1, "exactly one line must change"
    return "".join(changed)


def prepare_script(folder: Path, script: str, **env: str | None) -> tuple[Path, dict[str, str]]:
    """Lay out `script` as a Space's app.py, with `lib` next to it and the data in `folder`."""
    space = make_space(folder / "space", handlers={})
    (space / "app.py").write_text(ported(script))
    return space, base_env(folder / "data", **env)


def post(app: RunningApp, path: str, body: bytes, *, secret: str | None = SECRET, **headers: str) -> httpx.Response:
    return app.post(path, body, secret=secret, headers={"webhook-id": uuid.uuid4().hex, **headers})


# --- the two scripts, started side by side (a start is mostly waiting on imports) ------------------------


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    server_folder = tmp_path_factory.mktemp("compat-server")
    marker = server_folder / "marker.txt"
    server = prepare_script(server_folder, REFERENCE_SERVER_SCRIPT, WEBHOOK_SECRET=None, MARKER_FILE=str(marker))
    decorator_folder = tmp_path_factory.mktemp("compat-decorator")
    decorator = prepare_script(
        decorator_folder,
        REFERENCE_DECORATOR_SCRIPT,
        WEBHOOK_SECRET=SECRET,
        PINGS_FILE=str(decorator_folder / "pings.txt"),
        WEBHOOK_RETRY_BASE="0.05",
    )
    with ThreadPoolExecutor(2) as pool:
        futures = {  # two starts at once on a loaded machine: 70 s each was seen
            "server": pool.submit(start_app, *server, wait=120),
            "decorator": pool.submit(start_app, *decorator, wait=120),
        }
    started = {name: future.result() for name, future in futures.items() if future.exception() is None}
    try:
        for future in futures.values():
            future.result()  # re-raise a failed start, after the finally below stops the others
        yield {**started, "marker": marker}
    finally:
        for app in started.values():
            app.stop()


@pytest.fixture(scope="module")
def server_script(scripts: dict[str, Any]) -> tuple[RunningApp, Path]:
    return scripts["server"], scripts["marker"]


# --- a WebhooksServer script -------------------------------------------------------------------------


def test_a_path_given_with_a_slash(server_script: tuple[RunningApp, Path]) -> None:
    app, _ = server_script
    response = post(app, "/webhooks/say_hello", fixture_body(CONTENT_FIXTURE))
    assert response.status_code == 200
    assert response.json() == {"message": "hello"}


def test_the_function_name_as_path_and_head_sha_kept(server_script: tuple[RunningApp, Path]) -> None:
    app, _ = server_script
    response = post(app, "/webhooks/trigger_training", fixture_body(CONTENT_FIXTURE))
    assert response.status_code == 200
    expected = fixture_json(CONTENT_FIXTURE)["repo"]
    assert response.json() == {"repo": expected["name"], "type": "space", "head_sha": expected["headSha"]}


def test_the_handler_gets_the_request_without_the_secret(server_script: tuple[RunningApp, Path]) -> None:
    app, _ = server_script
    body = fixture_body("discussion-create-with-comment.json")
    response = post(app, "/webhooks/inspect_request", body, **{"user-agent": "HF-webhooks"})

    assert response.status_code == 200
    seen = response.json()
    assert (seen["method"], seen["body_length"], seen["scope"]) == ("POST", len(body), "discussion")
    assert seen["headers"]["user-agent"] == "HF-webhooks"
    assert "webhook-id" in seen["headers"]
    assert "x-webhook-secret" not in seen["headers"]
    assert SECRET not in response.text


def test_background_tasks_run(server_script: tuple[RunningApp, Path]) -> None:
    app, marker = server_script
    response = post(app, "/webhooks/later", fixture_body("discussion-create-pr-opened.json"))
    assert response.status_code == 200
    assert response.json() == {"status": "accepted"}
    text = wait_until(lambda: marker.exists() and marker.read_text(), message="the background task")
    assert text == "background task ran for openai-community/gpt2"


def test_the_secret_given_to_the_constructor_is_enforced(server_script: tuple[RunningApp, Path]) -> None:
    app, _ = server_script
    body = fixture_body(CONTENT_FIXTURE)
    assert post(app, "/webhooks/say_hello", body, secret=None).status_code == 401
    assert post(app, "/webhooks/say_hello", body, secret="not-it").status_code == 403


def test_the_script_ui_is_the_landing_page_and_urls_are_printed(server_script: tuple[RunningApp, Path]) -> None:
    app, _ = server_script
    assert "My own landing page, kept by the server" in httpx.get(app.url + "/config").text
    logs = app.logs()
    assert "Webhooks are correctly setup and ready to use:" in logs
    for path in ("say_hello", "trigger_training", "inspect_request", "later"):
        assert f"POST {app.url}/webhooks/{path}" in logs
    assert SECRET not in logs


# --- handlers without a payload, to the letter of the reference's own tests ---------------------------------

NO_PAYLOAD_PATHS = ["async_with_request", "sync_with_request", "async_no_request", "sync_no_request", "explicit_path"]


def journal_rows(app: RunningApp, path: str) -> list[sqlite3.Row]:
    """The journal's rows for one endpoint, read from its file as another process would."""
    with contextlib.closing(sqlite3.connect(f"file:{app.data_dir / 'journal.sqlite3'}?mode=ro", uri=True)) as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM event_rows WHERE endpoint = ? ORDER BY id", (path,)).fetchall()


def test_a_handler_without_a_payload_is_called_for_an_empty_post(server_script: tuple[RunningApp, Path]) -> None:
    """The reference's tests post no body and no content type to these handlers, and expect 200."""
    app, _ = server_script
    for path in NO_PAYLOAD_PATHS:
        for _ in range(2):  # each POST runs the handler: no Webhook-Id, so nothing makes it a repeat
            response = httpx.post(f"{app.url}/webhooks/{path}", headers={"x-webhook-secret": SECRET}, timeout=30)
            assert (path, response.status_code, response.json()) == (path, 200, {"success": True})
        assert httpx.post(f"{app.url}/webhooks/{path}", timeout=30).status_code == 401
        wrong = httpx.post(f"{app.url}/webhooks/{path}", headers={"x-webhook-secret": "wrong"}, timeout=30)
        assert wrong.status_code == 403
        rows = journal_rows(app, f"/webhooks/{path}")
        assert [(row["scope"], row["state"], row["body"], row["repo_name"]) for row in rows] == [
            ("raw", "succeeded", b"", ""),
            ("raw", "succeeded", b"", ""),
        ]


def test_a_hub_event_to_a_handler_without_a_payload_is_recorded_as_one(
    server_script: tuple[RunningApp, Path],
) -> None:
    app, _ = server_script
    body = fixture_body(CONTENT_FIXTURE)
    webhook_id = uuid.uuid4().hex
    first = post(app, "/webhooks/sync_no_request", body, **{"webhook-id": webhook_id})
    again = post(app, "/webhooks/sync_no_request", body, **{"webhook-id": webhook_id})
    assert (first.status_code, first.json()) == (200, {"success": True})
    assert again.json()["status"] == "duplicate"  # a Hub event: its redelivery is recognised
    row = journal_rows(app, "/webhooks/sync_no_request")[-2]
    assert (row["scope"], row["repo_name"], row["webhook_id"]) == (
        "repo.content",
        fixture_json(CONTENT_FIXTURE)["repo"]["name"],
        webhook_id,
    )


@pytest.mark.parametrize("body", [b"", b"   ", b"not json", b"{}"])
def test_a_handler_that_takes_the_payload_still_refuses_a_body_that_is_none(
    server_script: tuple[RunningApp, Path], body: bytes
) -> None:
    app, _ = server_script
    recorded_before = len(journal_rows(app, "/webhooks/say_hello"))
    response = post(app, "/webhooks/say_hello", body)
    assert response.status_code == (422 if body == b"{}" else 400)
    assert ("The body is empty" in response.text) == (not body.strip())
    assert len(journal_rows(app, "/webhooks/say_hello")) == recorded_before  # refused: nothing recorded


def test_a_raw_delivery_is_retried_and_replayable(scripts: dict[str, Any]) -> None:
    app = scripts["decorator"]
    first = post(app, "/webhooks/flaky_ping", b"ping from cron")
    assert first.status_code == 202 and first.json()["status"] == "failed", first.text  # retried, not lost
    event_id = first.json()["event_id"]
    pings = Path(app.env["PINGS_FILE"])
    wait_until(lambda: pings.exists() and pings.read_text() == "2", message="the retry of the raw delivery")
    wait_until(lambda: journal_rows(app, "/webhooks/flaky_ping")[0]["state"] == "succeeded", message="success")
    (row,) = journal_rows(app, "/webhooks/flaky_ping")
    assert (row["id"], row["scope"], row["body"], row["attempts"]) == (event_id, "raw", b"ping from cron", 2)
    assert json.loads(row["result"]) == {"runs": 2, "body": "ping from cron"}

    kind, text = Console(app, secret=SECRET).call("console_replay", [None, event_id])
    assert kind == "complete" and "Replaying event #" in text, text
    wait_until(lambda: pings.read_text() == "3", message="the replay of the raw delivery")


# --- a webhook_endpoint script launched at exit ---------------------------------------------------------


def test_a_webhook_endpoint_script_starts_at_exit(scripts: dict[str, Any]) -> None:
    app = scripts["decorator"]
    response = post(app, "/webhooks/trigger_training", fixture_body(CONTENT_FIXTURE))
    assert response.status_code == 200
    assert response.json() == {"training": "not needed", "repo": fixture_json(CONTENT_FIXTURE)["repo"]["name"]}

    response = post(app, "/webhooks/team/notify", fixture_body("discussion-create-pr-opened.json"))
    assert response.status_code == 200
    assert response.json() == {"scope": "discussion", "action": "create"}

    assert post(app, "/webhooks/team/notify", b"{}", secret=None).status_code == 401


# --- in process: the registration API ----------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhooksServer]:
    for name in ("WEBHOOK_SECRET", "SPACE_ID", "SPACE_HOST", "GRADIO_SHARE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    server = WebhooksServer(None, "in-process-secret")
    yield server
    server.close()


def test_the_public_names_of_the_reference_exist() -> None:
    modules = {"huggingface_hub._webhooks_payload", "huggingface_hub._webhooks_server"}
    names = [
        name
        for name in huggingface_hub.__all__
        if getattr(getattr(huggingface_hub, name), "__module__", None) in modules
    ]
    assert {"WebhooksServer", "webhook_endpoint", "WebhookPayload"} <= set(names)
    assert [name for name in names if not hasattr(lib, name)] == []


def test_the_call_shapes_match_the_reference() -> None:
    reference = huggingface_hub.WebhooksServer
    ours_init = list(inspect.signature(WebhooksServer.__init__).parameters)
    assert ours_init[:3] == list(inspect.signature(reference.__init__).parameters)  # self, ui, webhook_secret
    assert list(inspect.signature(WebhooksServer.add_webhook).parameters)[:2] == ["self", "path"]
    assert list(inspect.signature(WebhooksServer.launch).parameters) == ["self", "prevent_thread_lock", "launch_kwargs"]


def test_add_webhook_returns_the_function(server: WebhooksServer) -> None:
    async def plain(payload: WebhookPayload) -> dict[str, str]:
        return {}

    def named(payload: WebhookPayload) -> None:
        pass

    def keyword(payload: WebhookPayload) -> None:
        pass

    assert server.add_webhook(plain) is plain
    assert server.add_webhook("/custom/")(named) is named
    assert server.add_webhook(path="kw")(keyword) is keyword
    assert server.registered_webhooks == {
        "/webhooks/plain": plain,
        "/webhooks/custom": named,
        "/webhooks/kw": keyword,
    }


@pytest.mark.parametrize("second", ["same", "/same", "/same/", "webhooks/same", "/webhooks/same"])
def test_registering_a_path_twice_raises_value_error(server: WebhooksServer, second: str) -> None:
    server.add_webhook("same")(lambda payload: None)
    with pytest.raises(ValueError, match="/webhooks/same already exists"):
        server.add_webhook(second)(lambda payload: None)


def test_the_function_name_and_an_explicit_path_collide_too(server: WebhooksServer) -> None:
    def deploy(payload: WebhookPayload) -> None:
        pass

    server.add_webhook(deploy)
    with pytest.raises(ValueError, match="already exists"):
        server.add_webhook("deploy")(lambda payload: None)


def test_a_handler_with_a_parameter_nobody_can_fill_fails_at_registration(server: WebhooksServer) -> None:
    def needs_token(payload: WebhookPayload, token: str) -> None:
        pass

    with pytest.raises(lib.ConfigurationError, match="'token'"):
        server.add_webhook(needs_token)


def test_adding_after_launch_raises_runtime_error_and_serves_what_was_registered(server: WebhooksServer) -> None:
    @server.add_webhook
    async def before(payload: WebhookPayload) -> dict[str, Any]:
        return {"repo": payload.repo.name, "head_sha": payload.repo.head_sha}

    port = free_port()
    server.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port)

    def after(payload: WebhookPayload) -> None:
        pass

    with pytest.raises(RuntimeError, match="already running"):
        server.add_webhook(after)
    assert list(server.registered_webhooks) == ["/webhooks/before"]
    assert server.webhook_urls() == {"/webhooks/before": f"http://127.0.0.1:{port}/webhooks/before"}

    response = httpx.post(
        f"http://127.0.0.1:{port}/webhooks/before",
        content=fixture_body(CONTENT_FIXTURE),
        headers={"x-webhook-secret": "in-process-secret"},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.json()["head_sha"] == json.loads(fixture_body(CONTENT_FIXTURE))["repo"]["headSha"]


RAW_CRASH_SCRIPT = """\
import os, time
from pathlib import Path

from huggingface_hub import WebhooksServer

app = WebhooksServer()


@app.add_webhook
def nightly(request):
    runs = Path(os.environ["RUNS_FILE"])
    with runs.open("a") as out:
        out.write("run\\n")
    while not Path(os.environ["GATE_FILE"]).exists():
        time.sleep(0.01)
    return {"ran": True}


app.launch()
"""


def test_a_raw_delivery_survives_a_sigkill_mid_run(tmp_path: Path) -> None:
    """Acknowledged (202) while its handler runs, the app killed: the next start runs it again."""
    runs, gate = tmp_path / "runs.txt", tmp_path / "gate"
    space, env = prepare_script(
        tmp_path,
        RAW_CRASH_SCRIPT,
        WEBHOOK_SECRET=SECRET,
        RUNS_FILE=str(runs),
        GATE_FILE=str(gate),
        WEBHOOK_ACK_BUDGET="0.2",
    )
    app = start_app(space, env, wait=120)  # two starts under a loaded machine
    try:
        answer = httpx.post(f"{app.url}/webhooks/nightly", headers={"x-webhook-secret": SECRET}, timeout=30)
        assert answer.status_code == 202 and answer.json()["status"] == "queued", answer.text
        wait_until(lambda: runs.exists() and runs.read_text() == "run\n", message="the handler to start")
        app.kill()
    finally:
        app.stop()
    app = start_app(space, env, wait=120)  # two starts under a loaded machine
    try:
        wait_until(lambda: runs.read_text() == "run\nrun\n", message="the raw delivery to run again after the crash")
        gate.touch()
        wait_until(lambda: journal_rows(app, "/webhooks/nightly")[0]["state"] == "succeeded", message="success")
        (row,) = journal_rows(app, "/webhooks/nightly")
        assert (row["id"], row["scope"], row["body"], row["attempts"]) == (answer.json()["event_id"], "raw", b"", 2)
    finally:
        app.stop()
