"""`launch(share=...)`: the public URL reaches the printed URLs, the landing page and the setup
command; offline, start-up fails over to local serving in one line and stays fast."""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest
from apprunner import fixture_body, free_port
from gradio import networking

from lib import WebhookPayload, WebhooksServer
from lib.core.settings import Settings

TUNNEL_URL = "https://abc123.gradio.live"


def make_server(tmp_path, **overrides) -> WebhooksServer:
    settings = Settings.from_env({}, data_dir=tmp_path / "data", webhook_secrets=("s3cret",), **overrides)
    server = WebhooksServer(settings=settings)

    @server.add_webhook
    def echo(payload: WebhookPayload) -> dict:
        return {"repo": payload.repo.name}

    return server


def config_text(url: str) -> str:
    return json.dumps(httpx.get(url + "/config", timeout=10).json())


@pytest.fixture
def tunnel_stand_in(monkeypatch):
    """Gradio's tunnel function replaced by one that answers at once, recording its arguments."""
    calls = []

    def setup_tunnel(**kwargs):
        calls.append(kwargs)
        return TUNNEL_URL

    monkeypatch.setattr(networking, "setup_tunnel", setup_tunnel)
    monkeypatch.delenv("SPACE_ID", raising=False)
    return calls


def test_share_true_publishes_the_tunnel_url_everywhere(tmp_path, tunnel_stand_in, caplog):
    server = make_server(tmp_path)
    port = free_port()
    caplog.set_level(logging.INFO)
    server.launch(prevent_thread_lock=True, share=True, server_name="127.0.0.1", server_port=port)
    try:
        assert tunnel_stand_in[0]["local_port"] == port
        assert server.share_url == TUNNEL_URL
        assert server.webhook_urls() == {"/webhooks/echo": f"{TUNNEL_URL}/webhooks/echo"}
        assert f"POST {TUNNEL_URL}/webhooks/echo" in caplog.text

        page = config_text(server.local_url)
        assert f"{TUNNEL_URL}/webhooks/echo" in page
        assert "hf webhooks create --url https://abc123.gradio.live/webhooks/echo" in page
        assert "Temporary public URL" in page and "secret is what protects" in page
        assert "s3cret" not in page

        answer = httpx.post(
            server.local_url + "/webhooks/echo",
            content=fixture_body("discussion-create-with-comment.json"),
            headers={"x-webhook-secret": "s3cret"},
            timeout=10,
        )
        assert answer.status_code == 200 and answer.json() == {"repo": "gpt2"}
    finally:
        server.close()


def test_share_false_wins_and_no_tunnel_is_asked_for(tmp_path, tunnel_stand_in):
    server = make_server(tmp_path)
    server.launch(prevent_thread_lock=True, share=False, server_name="127.0.0.1", server_port=free_port())
    try:
        assert tunnel_stand_in == []
        assert server.share_url is None
        assert server.webhook_urls()["/webhooks/echo"] == f"{server.local_url}/webhooks/echo"
        assert "Temporary public URL" not in config_text(server.local_url)
    finally:
        server.close()


def test_never_a_tunnel_inside_a_space(tmp_path, tunnel_stand_in, monkeypatch):
    monkeypatch.setenv("SPACE_ID", "owner/name")
    server = make_server(tmp_path, space_id="owner/name", space_host="owner-name.hf.space")
    server.launch(prevent_thread_lock=True, share=True, server_name="127.0.0.1", server_port=free_port())
    try:
        assert tunnel_stand_in == []
        assert server.webhook_urls()["/webhooks/echo"] == "https://owner-name.hf.space/webhooks/echo"
    finally:
        server.close()


def test_offline_tunnel_fails_fast_in_one_line_and_the_app_serves_locally(tmp_path, caplog, monkeypatch):
    """The real Gradio tunnel code, on this machine without internet."""
    monkeypatch.delenv("SPACE_ID", raising=False)
    server = make_server(tmp_path)
    caplog.set_level(logging.WARNING, logger="lib.receiver.tunnel")
    started = time.monotonic()
    server.launch(prevent_thread_lock=True, share=True, server_name="127.0.0.1", server_port=free_port())
    took = time.monotonic() - started
    try:
        warnings = [r for r in caplog.records if r.name == "lib.receiver.tunnel"]
        assert len(warnings) == 1, caplog.text
        assert "still serves locally at " + server.local_url in warnings[0].getMessage()
        assert server.share_url is None
        # Bounded by the tunnel's own timeout (10 s), never Gradio's 30 s steps.
        assert took < 30
        answer = httpx.post(
            server.local_url + "/webhooks/echo",
            content=fixture_body("repo-content-update-space-new-pr-ref.json"),
            headers={"x-webhook-secret": "s3cret"},
            timeout=10,
        )
        assert answer.status_code == 200
    finally:
        server.close()
