"""Two apps started from one checkout keep their events apart: the template's `app.py` journals in
`./data`, a script written for the reference (`python my_bot.py`) in `./data/my_bot`, unless
`DATA_DIR` says otherwise."""

from __future__ import annotations

import contextlib
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from apprunner import ROOT, base_env, fixture_body, make_space, start_app

from lib.core import settings as settings_module
from lib.core.settings import default_data_dir

BOT_SCRIPT = """\
from lib import WebhookPayload, WebhooksServer

app = WebhooksServer()


@app.add_webhook
def bot(payload: WebhookPayload):
    return {"bot saw": payload.repo.name}


app.launch()
"""


def endpoints_in(journal: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as db:
        return {row[0] for row in db.execute("SELECT endpoint FROM events")}


@pytest.fixture
def no_persistent_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "PERSISTENT_STORAGE", tmp_path / "not-mounted")


@pytest.mark.usefixtures("no_persistent_storage")
def test_a_script_other_than_app_py_gets_a_folder_of_its_own() -> None:
    assert default_data_dir({}, script=Path("/somewhere/my_bot.py")) == Path("data/my_bot")
    assert default_data_dir({}, script=Path("/somewhere/app.py")) == Path("data")
    assert default_data_dir({}, script=None) == Path("data")  # python -m ..., a REPL, a notebook
    assert default_data_dir({"DATA_DIR": "/srv/shared"}, script=Path("my_bot.py")) == Path("/srv/shared")


def test_in_a_space_with_persistent_storage_the_script_uses_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(settings_module, "PERSISTENT_STORAGE", tmp_path)
    assert default_data_dir({}, script=Path("my_bot.py")) == tmp_path  # one app per Space: nothing to share


def test_the_template_and_a_reference_script_in_one_checkout_see_only_their_own_events(tmp_path: Path) -> None:
    folder = make_space(tmp_path / "checkout", {"log_events.py": (ROOT / "handlers" / "log_events.py").read_text()})
    (folder / "my_bot.py").write_text(BOT_SCRIPT)
    env = base_env(tmp_path / "unused", DATA_DIR=None)
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(start_app, folder, env, wait=120),
            pool.submit(start_app, folder, env, script="my_bot.py", wait=120),
        ]
    started = [future.result() for future in futures if future.exception() is None]
    try:
        template, bot = (future.result() for future in futures)
        body = fixture_body("discussion-create-pr-opened.json")
        assert template.post("/webhooks/log_events", body).status_code == 200
        assert bot.post("/webhooks/bot", body).json() == {"bot saw": "openai-community/gpt2"}
    finally:
        for app in started:
            app.stop()
    assert endpoints_in(folder / "data" / "journal.sqlite3") == {"/webhooks/log_events"}
    assert endpoints_in(folder / "data" / "my_bot" / "journal.sqlite3") == {"/webhooks/bot"}
    assert "Events are journaled in data/my_bot/journal.sqlite3 (DATA_DIR to choose another folder)." in bot.logs()
    assert "Events are journaled in data/journal.sqlite3" in template.logs()
