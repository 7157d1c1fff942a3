"""The fixtures in tests/fixtures: listed exactly by their README, all parsed by our payload model,
and covering every event kind the Hub sends."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lib.core.events import KNOWN_ACTIONS_BY_SCOPE
from lib.core.payload import WebhookPayload

FIXTURES = Path(__file__).parent / "fixtures"
PAYLOADS = sorted(path for path in FIXTURES.rglob("*.json") if path.parent.name != "fragments")


def named_in_readme() -> set[str]:
    """Every `file.json` the README lists, with the folder of its section (`fragments/x.json` is a reference)."""
    named: set[str] = set()
    folder = ""
    for line in (FIXTURES / "README.md").read_text().splitlines():
        heading = re.match(r"## (\w+)/", line)
        if line.startswith("## "):
            folder = heading.group(1) + "/" if heading else ""
        named.update(folder + name for name in re.findall(r"`([\w.-]+\.json)`", line))
    return named


def test_the_readme_names_exactly_the_files_that_exist() -> None:
    on_disk = {str(path.relative_to(FIXTURES)) for path in FIXTURES.rglob("*.json")}
    assert named_in_readme() == on_disk


@pytest.mark.parametrize("path", PAYLOADS, ids=lambda path: str(path.relative_to(FIXTURES)))
def test_every_payload_parses_with_our_model(path: Path) -> None:
    payload = WebhookPayload.model_validate_json(path.read_bytes())
    assert payload.repo.name and payload.webhook.version == 3
    raw = json.loads(path.read_bytes())
    assert payload.event.scope == raw["event"]["scope"] and payload.event.action == raw["event"]["action"]


def test_every_event_kind_the_hub_sends_has_a_payload() -> None:
    kinds = {(scope, action) for scope, actions in KNOWN_ACTIONS_BY_SCOPE.items() for action in actions}
    covered = {(event["scope"], event["action"]) for event in (json.loads(p.read_bytes())["event"] for p in PAYLOADS)}
    assert kinds - covered == set()
    assert len(kinds) == 11
