"""Mistakes in `EVENTS` caught at start: a scope or action the Hub is not known to send is a warning
naming the nearest known value, and the endpoint is still registered (the Hub adds scopes over time)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from apprunner import running_app

from lib.core.events import Events
from lib.core.registry import Endpoint, endpoint_from_module

TYPO = '''
"""Watches commits, with a typo in the scope."""
from lib import Events

EVENTS = Events(scope="repo.contents", action=["update", "updated"])


def handle(payload):
    return "ran"
'''


def test_the_registry_warns_naming_the_file_and_the_nearest_value(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file = tmp_path / "typo.py"
    file.write_text(TYPO)
    with caplog.at_level(logging.WARNING, logger="lib.core.registry"):
        endpoint = endpoint_from_module(file)
    warnings = [record.getMessage() for record in caplog.records if record.name == "lib.core.registry"]
    assert warnings == [
        f"{file}: in EVENTS, scope 'repo.contents' is not one the Hub is known to send; did you mean "
        "'repo.content'? It is accepted (the Hub adds new ones), but matches nothing yet.",
        f"{file}: in EVENTS, action 'updated' is not one the Hub is known to send; did you mean 'update'? "
        "It is accepted (the Hub adds new ones), but matches nothing yet.",
    ]
    assert endpoint.path == "/webhooks/typo" and endpoint.events.scopes == ("repo.contents",)


def test_known_values_and_narrower_scopes_start_silently(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="lib.core.registry"):
        Endpoint.create("/webhooks/a", lambda payload: None, events=Events(scope=["repo.content", "repo.config.dois"]))
        Endpoint.create("/webhooks/b", lambda payload: None)
    assert caplog.records == []


def test_the_app_starts_and_says_so_in_its_log(tmp_path: Path) -> None:
    with running_app(tmp_path, handlers={"typo.py": TYPO}) as app:
        assert app.post("/webhooks/typo", {"not": "checked"}, secret="wrong").status_code == 403  # it is served
        log = app.logs()
    assert "in EVENTS, scope 'repo.contents' is not one the Hub is known to send; did you mean 'repo.content'?" in log
