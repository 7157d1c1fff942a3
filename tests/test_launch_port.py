"""`launch()` on a port that is taken: an error that names the port, never a silent dead server; with
no port asked for, the next free one (as Gradio does), and the URL printed is the one really used."""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from apprunner import base_env, free_port, make_space, start_app

from lib import ConfigurationError, WebhookPayload, WebhooksServer
from lib.core.errors import PortUnavailable
from lib.core.settings import Settings
from lib.receiver.listen import DEFAULT_PORT, bind_listening_socket


def make_server(tmp_path: Path, **overrides: object) -> WebhooksServer:
    settings = Settings.from_env({}, data_dir=tmp_path / "data", webhook_secrets=("s3cret",), **overrides)
    server = WebhooksServer(None, settings=settings)

    @server.add_webhook
    def echo(payload: WebhookPayload) -> dict:
        return {"repo": payload.repo.name}

    return server


@contextlib.contextmanager
def port_taken(port: int, host: str = "127.0.0.1") -> Iterator[None]:
    """Another program listening on `port` (or someone already is: taken either way)."""
    sock = socket.socket()
    try:
        sock.bind((host, port))
        sock.listen()
    except OSError as exc:
        assert exc.errno == errno.EADDRINUSE, exc
    try:
        yield
    finally:
        sock.close()


def test_a_port_asked_for_that_is_taken_raises_instead_of_returning_a_dead_server(tmp_path: Path) -> None:
    port = free_port()
    server = make_server(tmp_path)
    with port_taken(port), pytest.raises(PortUnavailable) as raised:
        server.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port)
    message = str(raised.value)
    assert f"127.0.0.1:{port}" in message and "already in use" in message and "GRADIO_SERVER_PORT" in message
    assert isinstance(raised.value, OSError) and isinstance(raised.value, ConfigurationError)  # as Gradio raises
    assert server._thread is None and not server.launched  # nothing half-started
    with pytest.raises(httpx.ConnectError):  # nothing of ours listens there (the stand-in never answers HTTP)
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


def test_gradio_server_port_is_a_port_asked_for(tmp_path: Path) -> None:
    port = free_port()
    server = make_server(tmp_path, server_port=port, server_name="127.0.0.1")
    with port_taken(port), pytest.raises(PortUnavailable, match=f":{port}: the port is already in use"):
        server.launch(prevent_thread_lock=True)


def test_with_no_port_asked_for_the_next_free_one_is_used_and_printed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server(tmp_path, server_name="127.0.0.1")
    caplog.set_level(logging.INFO, logger="lib")
    with port_taken(DEFAULT_PORT):
        server.launch(prevent_thread_lock=True)
        try:
            port = int(server.local_url.rsplit(":", 1)[1])
            assert DEFAULT_PORT < port < DEFAULT_PORT + 100
            response = httpx.post(
                f"{server.local_url}/webhooks/echo",
                content=(Path(__file__).parent / "fixtures" / "discussion-create-pr-opened.json").read_bytes(),
                headers={"x-webhook-secret": "s3cret"},
                timeout=30,
            )
            assert response.status_code == 200, response.text
        finally:
            server.close()
    assert f"POST http://127.0.0.1:{port}/webhooks/echo" in caplog.text
    assert f"Port {DEFAULT_PORT} is in use (another app?): listening on {port} instead." in caplog.text


def test_in_a_space_the_port_is_7860_or_an_error(tmp_path: Path) -> None:
    """The Space's proxy sends to 7860 only: serving on another port would look up and receive nothing."""
    with port_taken(DEFAULT_PORT, "0.0.0.0"), pytest.raises(PortUnavailable, match="port 7860 is in use"):
        bind_listening_socket("0.0.0.0", None, search=False)


def test_an_address_that_is_not_ours_is_named_not_called_busy() -> None:
    with pytest.raises(PortUnavailable, match=r"192\.0\.2\.1:7860: the port cannot be used"):
        bind_listening_socket("192.0.2.1", None)  # TEST-NET-1: never this machine's


def test_the_app_on_a_taken_port_stops_with_one_clear_line(tmp_path: Path) -> None:
    port = free_port()
    folder = make_space(tmp_path / "space", handlers={})
    with port_taken(port), pytest.raises(RuntimeError) as raised:
        start_app(folder, base_env(tmp_path / "data"), port=port, wait=30)
    log = str(raised.value)
    assert f"Cannot start: Cannot listen on 127.0.0.1:{port}: the port is already in use" in log
    assert "Traceback" not in log
