"""The ui's narrow view of the server (`lib.ui.view.ServerView`) against the real `WebhooksServer`.

The ui is typed against the protocol, not the class, so nothing but these tests notices when the
server renames or drops a member the landing page or the console use: they keep the two in step,
and keep `lib.ui` from importing the receiver again.
"""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from unittest import mock

from lib import WebhooksServer
from lib.core.settings import Settings
from lib.ui.view import ServerView

UI = Path(__file__).resolve().parent.parent / "lib" / "ui"
ALLOWED_RECEIVER_IMPORTS: set[tuple[str, str]] = set()
"""None: the console's unlock compares secrets with `lib.core.secrets`, as the receiver does."""


def view_members() -> list[str]:
    return [name for name in vars(ServerView) if not name.startswith("_")]


def test_a_webhooks_server_has_every_member_of_the_view(tmp_path: Path) -> None:
    server = WebhooksServer(settings=Settings(data_dir=tmp_path))
    members = view_members()
    assert {"settings", "endpoints", "journal", "public_url", "webhook_urls", "wake_worker"} <= set(members)
    assert [name for name in members if not hasattr(server, name)] == []
    methods = [name for name in members if callable(vars(ServerView)[name])]
    assert [name for name in methods if not callable(getattr(server, name))] == []
    assert isinstance(server, ServerView)
    asyncio.run(server.journal.close())


def test_waking_the_worker_notifies_it_and_is_harmless_without_one(tmp_path: Path) -> None:
    server = WebhooksServer(settings=Settings(data_dir=tmp_path))
    server.wake_worker()  # not launched: no worker yet
    server.worker = mock.Mock()
    server.wake_worker()
    server.worker.notify.assert_called_once_with()


def test_the_ui_does_not_import_the_receiver() -> None:
    found = set()
    for path in UI.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and "receiver" in (node.module or ""):
                found.add((str(path.relative_to(UI)), node.module))
            elif isinstance(node, ast.Import) and any("receiver" in alias.name for alias in node.names):
                found.add((str(path.relative_to(UI)), ",".join(alias.name for alias in node.names)))
    assert found <= ALLOWED_RECEIVER_IMPORTS, found - ALLOWED_RECEIVER_IMPORTS
