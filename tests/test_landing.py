"""The landing page's content over HTTP (Gradio's `/config`), and lib.hub.setup_guide behind it.

Two real apps: one as on a Space (SPACE_HOST, SPACE_ID, a secret) and one local without a
secret. The page is checked as data; how it looks in a browser is tested elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from apprunner import ROOT, RunningApp, base_env, fixture_body, make_space, start_app

from lib.core.events import Events
from lib.core.registry import Endpoint
from lib.hub.setup_guide import PLACEHOLDER_OWNER, EndpointSetup, endpoint_setups, hub_can_reach, watched_items

SECRET = "landing-Secret-Value-42"
SPACE_HOST = "owner-name.hf.space"
LOG_EVENTS = (ROOT / "handlers" / "log_events.py").read_text()
DATASETS = '''\
"""Rebuilds when a dataset of my-org changes."""
from lib import Events

EVENTS = Events(scope="repo.content", repo_type="dataset", repo="my-org/*")


def handle(payload):
    return {"ok": True}
'''
NESTED = '''\
"""Answers on a nested path."""
PATH = "team/deploy"


def handle(payload):
    return "deployed"
'''


def page_text(app: RunningApp) -> str:
    """The text of every component in the page's Gradio config (markdown as the visitor's browser gets it)."""
    response = httpx.get(app.url + "/config", timeout=30)
    assert response.status_code == 200
    values = [component.get("props", {}).get("value") for component in response.json()["components"]]
    return "\n".join(value for value in values if isinstance(value, str))


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningApp]]:
    """Both apps, started side by side (a start is mostly waiting on imports)."""
    space = make_space(
        tmp_path_factory.mktemp("landing-space") / "space",
        {"log_events.py": LOG_EVENTS, "datasets.py": DATASETS, "nested.py": NESTED},
    )
    local = make_space(tmp_path_factory.mktemp("landing-local") / "space", {"log_events.py": LOG_EVENTS})
    space_env = base_env(space.parent / "data", WEBHOOK_SECRET=SECRET, SPACE_HOST=SPACE_HOST, SPACE_ID="owner/name")
    local_env = base_env(local.parent / "data", WEBHOOK_SECRET=None)
    with ThreadPoolExecutor(2) as pool:
        futures = {"space": pool.submit(start_app, space, space_env), "local": pool.submit(start_app, local, local_env)}
    started = {name: future.result() for name, future in futures.items() if future.exception() is None}
    try:
        for future in futures.values():
            future.result()  # re-raise a failed start, after the finally below stops the others
        yield started
    finally:
        for app in started.values():
            app.stop()


@pytest.fixture(scope="module")
def space_app(apps: dict[str, RunningApp]) -> RunningApp:
    return apps["space"]


@pytest.fixture(scope="module")
def local_app(apps: dict[str, RunningApp]) -> RunningApp:
    return apps["local"]


# --- on a Space, with a secret -------------------------------------------------------------------------


def test_each_endpoint_shows_its_public_url(space_app: RunningApp) -> None:
    text = page_text(space_app)
    for name in ("log_events", "datasets", "team/deploy"):
        assert f"https://{SPACE_HOST}/webhooks/{name}" in text
    assert "127.0.0.1" not in text


def test_each_endpoint_shows_its_docstring_and_filter(space_app: RunningApp) -> None:
    text = page_text(space_app)
    assert "Rebuilds when a dataset of my-org changes." in text
    assert "scope repo.content, repo type dataset, repo my-org/*" in text
    assert "Answers on a nested path." in text
    assert "every event" in text


def test_the_secret_status_says_configured(space_app: RunningApp) -> None:
    text = page_text(space_app)
    assert "Webhook secret: configured." in text
    assert "No webhook secret is configured" not in text


def test_the_commands_watch_the_space_owner_or_the_filtered_org(space_app: RunningApp) -> None:
    text = page_text(space_app)
    base = f"https://{SPACE_HOST}/webhooks"
    assert (
        f"hf webhooks create --url {base}/log_events --watch user:owner --domain repo --domain discussion "
        '--secret "$WEBHOOK_SECRET"'
    ) in text
    assert (
        f'hf webhooks create --url {base}/datasets --watch user:my-org --domain repo --secret "$WEBHOOK_SECRET"' in text
    )
    assert f"hf webhooks create --url {base}/team/deploy --watch user:owner" in text
    assert PLACEHOLDER_OWNER not in text


def test_the_secret_value_never_appears(space_app: RunningApp) -> None:
    assert SECRET not in httpx.get(space_app.url + "/config", timeout=30).text
    assert SECRET not in httpx.get(space_app.url + "/", timeout=30).text
    assert SECRET not in space_app.logs()


def test_the_start_log_lists_the_public_urls(space_app: RunningApp) -> None:
    logs = space_app.logs()
    assert f"POST https://{SPACE_HOST}/webhooks/log_events" in logs
    assert "Go to https://huggingface.co/settings/webhooks to set up your webhooks." in logs
    assert "No webhook secret is set" not in logs


# --- locally, without a secret --------------------------------------------------------------------------


def test_without_a_secret_the_page_warns(local_app: RunningApp) -> None:
    text = page_text(local_app)
    assert "No webhook secret is configured" in text
    assert "WEBHOOK_SECRET" in text
    assert "Webhook secret: configured" not in text


def test_without_a_secret_a_warning_is_logged_at_start(local_app: RunningApp) -> None:
    assert "No webhook secret is set: anyone who finds the URL can post events." in local_app.logs()


def test_without_a_secret_the_endpoints_are_open(local_app: RunningApp) -> None:
    response = local_app.post("/webhooks/log_events", fixture_body("discussion-create-pr-opened.json"), secret=None)
    assert response.status_code == 200
    assert "summary" in response.json()
    anyone = local_app.post("/webhooks/log_events", fixture_body("discussion-create-with-comment.json"), secret="x")
    assert anyone.status_code == 200


def test_locally_the_page_never_asks_for_the_local_url_to_be_given_to_the_hub(local_app: RunningApp) -> None:
    text = page_text(local_app)
    url = f"{local_app.url}/webhooks/log_events"
    assert f"**Local URL** (for `python -m lib.send`; not for the Hub): `{url}`" in text
    assert f"This app's URL, `{local_app.url}`, only works on this machine: the Hub cannot reach it" in text
    assert "`GRADIO_SHARE=true bin/run`" in text and "**Deploy** as a Space" in text
    # None of the steps or commands that would put it into the Hub:
    assert "Webhook URL:" not in text and "hf webhooks create" not in text and "**URL:**" not in text


def test_locally_the_start_log_says_the_hub_cannot_reach_the_urls(local_app: RunningApp) -> None:
    logs = local_app.logs()
    assert "These URLs only work on this machine: the Hub cannot reach them. Two ways out:" in logs
    assert "GRADIO_SHARE=true bin/run" in logs
    assert "to set up your webhooks" not in logs


def test_on_a_space_the_page_has_no_local_warning(space_app: RunningApp) -> None:
    text = page_text(space_app)
    assert "only works on this machine" not in text and "Local URL" not in text
    assert "Webhook URL:" in text and "from the *Endpoints* tab" in text
    assert "only work on this machine" not in space_app.logs()


@pytest.mark.parametrize(
    "url, reachable",
    [
        ("http://127.0.0.1:7860", False),
        ("http://localhost:7860", False),
        ("http://[::1]:7860", False),
        ("http://0.0.0.0:7860", False),
        ("http://192.168.1.20:7860", False),
        ("http://10.0.0.5", False),
        ("http://my-laptop:7860", False),
        ("http://my-laptop.local:7860", False),
        ("https://abc123.gradio.live", True),
        ("https://owner-name.hf.space", True),
        ("http://8.8.8.8:7860", True),
    ],
)
def test_which_urls_the_hub_can_reach(url: str, reachable: bool) -> None:
    assert hub_can_reach(url) is reachable


# --- setup_guide, unit -----------------------------------------------------------------------------------


def endpoint(**events: Any) -> Endpoint:
    return Endpoint.create("/webhooks/x", lambda payload: None, events=Events(**events) if events else None)


@pytest.mark.parametrize(
    "events, owner, watch",
    [
        ({}, "owner", ("user:owner",)),
        ({}, None, (f"user:{PLACEHOLDER_OWNER}",)),
        ({"repo": "my-org/*"}, "owner", ("user:my-org",)),
        ({"repo": "my-org/bert-*"}, "owner", ("user:my-org",)),
        ({"repo": ["my-org/*", "my-org/x?"]}, "owner", ("user:my-org",)),
        ({"repo": "someone/exact"}, "owner", ("model:someone/exact",)),
        (
            {"repo": "someone/exact", "repo_type": ["dataset", "space"]},
            None,
            ("dataset:someone/exact", "space:someone/exact"),
        ),
        ({"repo": ["a/*", "b/exact"], "repo_type": "dataset"}, "owner", ("user:a", "dataset:b/exact")),
        ({"repo": "*/bert-*"}, "owner", ("user:owner",)),
        ({"scope": "discussion"}, "owner", ("user:owner",)),
    ],
)
def test_watched_items(events: dict[str, Any], owner: str | None, watch: tuple[str, ...]) -> None:
    assert watched_items(endpoint(**events), owner=owner) == watch


def test_the_command_reads_the_secret_from_the_shell() -> None:
    setup = EndpointSetup(path="/webhooks/x", url="https://h/webhooks/x", watch=("user:o",), domains=("repo",))
    with_secret = setup.command(secret_configured=True)
    assert (
        with_secret
        == 'hf webhooks create --url https://h/webhooks/x --watch user:o --domain repo --secret "$WEBHOOK_SECRET"'
    )
    assert (
        setup.command(secret_configured=False)
        == "hf webhooks create --url https://h/webhooks/x --watch user:o --domain repo"
    )


def test_a_url_with_shell_characters_is_quoted() -> None:
    setup = EndpointSetup(path="/webhooks/x", url="https://h/webhooks/x?a=1&b=2", watch=("user:o",), domains=())
    assert "--url 'https://h/webhooks/x?a=1&b=2'" in setup.command(secret_configured=False)


def test_endpoint_setups_build_full_urls_and_domains() -> None:
    endpoints = [
        Endpoint.create("/webhooks/a", lambda payload: None, events=Events(scope="discussion.comment")),
        Endpoint.create("/webhooks/team/b", lambda payload: None),
    ]
    setups = endpoint_setups(endpoints, base_url="https://owner-name.hf.space/", owner="owner")
    assert [(s.url, s.watch, s.domains) for s in setups] == [
        ("https://owner-name.hf.space/webhooks/a", ("user:owner",), ("discussion",)),
        ("https://owner-name.hf.space/webhooks/team/b", ("user:owner",), ("repo", "discussion")),
    ]
    for setup in setups:
        assert "secret" not in setup.command(secret_configured=False).lower()


def test_the_page_says_whether_handlers_can_call_the_hub_without_showing_the_token() -> None:
    from lib.ui.landing import token_status

    text, css = token_status(False)
    assert "HF_TOKEN" in text and "replay" in text and css == "status-warn"
    text, css = token_status(True)
    assert "set" in text and css == "status-ok"


def test_docstrings_keep_their_placeholders_and_line_breaks_on_the_page() -> None:
    from lib.ui.landing import docstring_markdown

    shown = docstring_markdown("Try it: send --repo <you>/<repo>\nSettings: `@<bot's user name>` works")
    assert "&lt;you&gt;/&lt;repo&gt;" in shown  # not an HTML tag that the page would swallow
    assert "`@<bot's user name>`" in shown  # code spans are shown verbatim by Markdown already
    assert "  \n" in shown


# --- the placeholder secret from .env.example -------------------------------------------------------------


def test_the_placeholder_secret_is_a_loud_warning_on_the_page() -> None:
    from lib.core.settings import Settings
    from lib.ui.landing import secret_status

    text, css = secret_status(Settings.from_env({"WEBHOOK_SECRET": "change-me"}))
    assert css == "status-bad"
    assert "The webhook secret is `change-me`, the placeholder from `.env.example`" in text
    assert "protects nothing" in text and "WEBHOOK_SECRET" in text
    text, css = secret_status(Settings.from_env({"WEBHOOK_SECRET": "mine,change-me"}))  # rotation: still public
    assert css == "status-bad"
    assert secret_status(Settings.from_env({"WEBHOOK_SECRET": "change-me-please"}))[1] == "status-ok"


def test_the_placeholder_secret_is_a_warning_in_the_log(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    from lib import WebhooksServer
    from lib.core.settings import Settings

    WebhooksServer(settings=Settings.from_env({"WEBHOOK_SECRET": "change-me", "DATA_DIR": str(tmp_path)}))
    (record,) = [r for r in caplog.records if "placeholder" in r.getMessage()]
    assert record.levelname == "WARNING"
    assert "WEBHOOK_SECRET is 'change-me', the placeholder from .env.example" in record.getMessage()
    assert "No webhook secret is set" not in caplog.text


def test_a_space_refuses_to_start_with_the_placeholder_secret(tmp_path) -> None:
    folder = make_space(tmp_path / "space", {"log_events.py": LOG_EVENTS})
    env = base_env(tmp_path / "data", WEBHOOK_SECRET="change-me", SPACE_ID="owner/name", SPACE_HOST=SPACE_HOST)
    with pytest.raises(RuntimeError) as raised:
        start_app(folder, env, wait=30)
    log = str(raised.value)
    assert "Cannot start: WEBHOOK_SECRET is 'change-me', the placeholder from .env.example" in log
    assert "in the Space's settings (Settings → Variables and secrets)" in log
    assert "Traceback" not in log
