"""`ORDER` in a handler module: per-repository order (the default) or none, end to end.

With `ORDER = "repo"` a failing event holds back the later events of its repository through all of
its retries; with `ORDER = None` they run as slots allow. The real app, over HTTP, with handler
modules that fail the first event of a repository until the second one has run: ordered, that can
never happen (the first event dies, then the second runs); unordered, the second runs at once and
the first then succeeds.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from apprunner import RunningApp, fixture_json, running_app, wait_until

from lib.core.errors import HandlerModuleError
from lib.core.registry import endpoint_from_module

HANDLER = '''
"""Fails event 1 of a repository until event 2 of it has run."""
import os
from pathlib import Path
{order}
LOG = Path(os.environ["DATA_DIR"]) / (Path(__file__).stem + ".log")


def handle(payload):
    sha = payload.repo.headSha[0]
    seen = LOG.read_text().split() if LOG.exists() else []
    if sha == "1" and "2-ok" not in seen:
        LOG.open("a").write("1-failed\\n")
        raise RuntimeError("event 2 has not run yet")
    LOG.open("a").write(sha + "-ok\\n")
    return sha
'''


def event(sha: str) -> dict:
    body = fixture_json("repo-content-update-space-new-pr-ref.json")
    body["repo"]["headSha"] = sha * 40
    body["updatedRefs"][0]["newSha"] = sha * 40
    return body


def lines(app: RunningApp, name: str) -> list[str]:
    log = app.data_dir / f"{name}.log"
    return log.read_text().split() if log.exists() else []


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    handlers = {
        "ordered.py": HANDLER.format(order=""),  # the default
        "declared.py": HANDLER.format(order='ORDER = "repo"'),
        "unordered.py": HANDLER.format(order="ORDER = None"),
    }
    # Retries 0.5-1.5 s apart: event 2 arrives long before event 1 runs out of attempts, even on a busy machine.
    settings = {"WEBHOOK_MAX_ATTEMPTS": "4", "WEBHOOK_RETRY_BASE": "1", "WEBHOOK_RETRY_MAX": "1.5"}
    with running_app(tmp_path_factory.mktemp("order"), handlers=handlers, **settings) as running:
        yield running


def send_both(app: RunningApp, name: str) -> None:
    assert app.post(f"/webhooks/{name}", event("1")).is_success
    wait_until(lambda: "1-failed" in lines(app, name), message="event 1 to fail once")
    assert app.post(f"/webhooks/{name}", event("2")).is_success


@pytest.mark.parametrize("name", ["ordered", "declared"])
def test_by_repo_a_failing_event_holds_back_the_next_through_all_its_retries(app: RunningApp, name: str) -> None:
    send_both(app, name)
    wait_until(lambda: "2-ok" in lines(app, name), message="event 2 to run")
    assert lines(app, name) == ["1-failed"] * 4 + ["2-ok"]  # event 1 died before event 2 could start


def test_with_order_none_the_next_event_runs_while_the_first_waits_to_retry(app: RunningApp) -> None:
    send_both(app, "unordered")
    wait_until(lambda: "1-ok" in lines(app, "unordered"), message="event 1 to succeed on a retry")
    seen = lines(app, "unordered")
    assert seen.index("2-ok") < seen.index("1-ok") and seen.count("1-failed") < 4, seen  # 2 ran while 1 could retry


@pytest.mark.parametrize("declared", ["'repos'", "False", "'Repo '", "['repo']"])
def test_a_bad_order_stops_the_start_naming_the_choices(tmp_path: Path, declared: str) -> None:
    file = tmp_path / "h.py"
    file.write_text(textwrap.dedent(f"ORDER = {declared}\ndef handle(payload):\n    pass\n"))
    with pytest.raises(HandlerModuleError) as caught:
        endpoint_from_module(file)
    assert f"ORDER = {declared} is not a choice" in str(caught.value)
    assert "ORDER = 'repo' runs the events of one repository one at a time" in str(caught.value)


@pytest.mark.parametrize("declared, ordered", [("'repo'", True), ("'REPO'", True), ("None", False), ("'none'", False)])
def test_order_choices(tmp_path: Path, declared: str, ordered: bool) -> None:
    file = tmp_path / "h.py"
    file.write_text(f"ORDER = {declared}\ndef handle(payload):\n    pass\n")
    endpoint = endpoint_from_module(file)
    assert endpoint.orders_by_repo(True) is ordered and endpoint.orders_by_repo(False) is ordered


def test_without_order_the_setting_decides(tmp_path: Path) -> None:
    file = tmp_path / "h.py"
    file.write_text("def handle(payload):\n    pass\n")
    endpoint = endpoint_from_module(file)
    assert endpoint.orders_by_repo(True) is True and endpoint.orders_by_repo(False) is False
