"""The share-tunnel decision and `open_share_tunnel`'s promises: a URL, or one warning, in time.

Gradio's `setup_tunnel` is replaced by stand-ins everywhere except `test_real_offline_failure`,
which lets Gradio try for real on this machine (no internet) and checks it fails fast and cleanly.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from lib.receiver import tunnel as tunnel_module
from lib.receiver.tunnel import DEFAULT_SHARE, ShareTunnel, open_share_tunnel, should_share

HOST = "127.0.0.1"
PORT = 7861
LOCAL_URL = f"http://{HOST}:{PORT}"
PUBLIC_URL = "https://abc123.gradio.live"


@pytest.fixture(scope="module")
def gradio_modules() -> tuple[ModuleType, ModuleType]:
    """Import Gradio's tunnel modules once (a few seconds), with its analytics calls off."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        from gradio import networking, tunneling
    return networking, tunneling


@pytest.fixture
def networking(gradio_modules: tuple[ModuleType, ModuleType], monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """`gradio.networking`, with a fresh `CURRENT_TUNNELS` so tests cannot see each other's tunnels."""
    networking, tunneling = gradio_modules
    monkeypatch.setattr(tunneling, "CURRENT_TUNNELS", [])
    return networking


@pytest.fixture
def tunneling(gradio_modules: tuple[ModuleType, ModuleType], networking: ModuleType) -> ModuleType:
    return gradio_modules[1]


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Lets a blocking stand-in finish at teardown, so no test leaves a thread sleeping."""
    event = threading.Event()
    yield event
    event.set()


def warnings_from_module(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == tunnel_module.__name__ and r.levelno >= logging.WARNING]


def start_fake_frpc(tunneling: ModuleType, url: str, kwargs: dict[str, Any]) -> subprocess.Popen[bytes]:
    """Register a Gradio `Tunnel` the way `setup_tunnel` does, with `sleep` standing in for frpc."""
    tunnel = tunneling.Tunnel(
        "share.example", 7000, kwargs["local_host"], kwargs["local_port"], kwargs["share_token"], None
    )
    tunnel.proc = subprocess.Popen(["sleep", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tunnel.url = url
    tunneling.CURRENT_TUNNELS.append(tunnel)
    return tunnel.proc


def tunnel_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("share-tunnel-")]


# --- should_share -------------------------------------------------------------------------------


def decide(share: bool | None, environ: dict[str, str]) -> bool:
    """`should_share` with the two variables it is given from `Settings`, read from `environ`."""
    return should_share(share, gradio_share=environ.get("GRADIO_SHARE"), space_id=environ.get("SPACE_ID"))


@pytest.mark.parametrize(
    ("share", "environ", "expected"),
    [
        # Inside a Space: never, whatever is asked.
        (True, {"SPACE_ID": "user/space"}, False),
        (None, {"SPACE_ID": "user/space"}, False),
        (None, {"SPACE_ID": "user/space", "GRADIO_SHARE": "true"}, False),
        (False, {"SPACE_ID": "user/space"}, False),
        # share=False wins over the environment.
        (False, {}, False),
        (False, {"GRADIO_SHARE": "true"}, False),
        # share=True outside a Space.
        (True, {}, True),
        (True, {"GRADIO_SHARE": "false"}, True),
        # share=None: GRADIO_SHARE, then the default.
        (None, {}, DEFAULT_SHARE),
        (None, {"GRADIO_SHARE": "true"}, True),
        (None, {"GRADIO_SHARE": "True"}, True),
        (None, {"GRADIO_SHARE": " TRUE "}, True),
        (None, {"GRADIO_SHARE": "false"}, False),
        (None, {"GRADIO_SHARE": "False"}, False),
        (None, {"GRADIO_SHARE": ""}, DEFAULT_SHARE),
    ],
)
def test_should_share_truth_table(share: bool | None, environ: dict[str, str], expected: bool) -> None:
    assert decide(share, environ) is expected


def test_default_is_opt_in() -> None:
    assert DEFAULT_SHARE is False
    assert decide(None, {}) is False


@pytest.mark.parametrize(
    ("share", "environ", "asked_by"),
    [(True, {}, "share=True"), (None, {"GRADIO_SHARE": "true"}, "GRADIO_SHARE=true")],
)
def test_a_request_inside_a_space_is_logged_as_ignored(
    share: bool | None, environ: dict[str, str], asked_by: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert decide(share, {**environ, "SPACE_ID": "user/space"}) is False
    [record] = warnings_from_module(caplog)
    assert asked_by in record.getMessage()
    assert "user/space" in record.getMessage()


def test_no_request_inside_a_space_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    assert decide(None, {"SPACE_ID": "user/space"}) is False
    assert decide(False, {"SPACE_ID": "user/space"}) is False
    assert warnings_from_module(caplog) == []


def test_an_unknown_gradio_share_value_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    assert decide(None, {"GRADIO_SHARE": "1"}) is DEFAULT_SHARE
    [record] = warnings_from_module(caplog)
    assert "GRADIO_SHARE='1'" in record.getMessage()


# --- open_share_tunnel with stand-ins ------------------------------------------------------------


def test_success_returns_the_public_url_and_passes_the_local_address(
    networking: ModuleType, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_setup_tunnel(**kwargs: Any) -> str:
        calls.append(kwargs)
        return PUBLIC_URL

    monkeypatch.setattr(networking, "setup_tunnel", fake_setup_tunnel)
    caplog.set_level(logging.INFO, logger=tunnel_module.__name__)

    tunnel = open_share_tunnel(HOST, PORT, timeout=5)

    assert isinstance(tunnel, ShareTunnel)
    assert tunnel.url == PUBLIC_URL
    [call] = calls
    assert call["local_host"] == HOST
    assert call["local_port"] == PORT
    assert len(call["share_token"]) >= 32
    assert call["share_server_address"] is None  # Gradio's server, or GRADIO_SHARE_SERVER_ADDRESS
    assert warnings_from_module(caplog) == []
    assert any(PUBLIC_URL in r.getMessage() and LOCAL_URL in r.getMessage() for r in caplog.records)
    tunnel.close()  # nothing registered: a no-op


def test_each_attempt_gets_its_own_share_token(networking: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens: list[str] = []

    def fake_setup_tunnel(**kwargs: Any) -> str:
        tokens.append(kwargs["share_token"])
        return PUBLIC_URL

    monkeypatch.setattr(networking, "setup_tunnel", fake_setup_tunnel)
    open_share_tunnel(HOST, PORT)
    open_share_tunnel(HOST, PORT)
    assert len(set(tokens)) == 2


def test_the_url_is_rewritten_to_https_like_blocks_launch(
    networking: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(networking, "setup_tunnel", lambda **_: "http://abc123.gradio.live")
    tunnel = open_share_tunnel(HOST, PORT)
    assert tunnel is not None
    assert tunnel.url == PUBLIC_URL


def test_close_stops_the_frpc_process_quietly_and_is_idempotent(
    networking: ModuleType,
    tunneling: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    procs: list[subprocess.Popen[bytes]] = []

    def fake_setup_tunnel(**kwargs: Any) -> str:
        procs.append(start_fake_frpc(tunneling, PUBLIC_URL, kwargs))
        return PUBLIC_URL

    monkeypatch.setattr(networking, "setup_tunnel", fake_setup_tunnel)
    tunnel = open_share_tunnel(HOST, PORT)
    assert tunnel is not None
    [proc] = procs
    assert proc.poll() is None

    tunnel.close()
    tunnel.close()

    assert proc.poll() is not None
    assert tunneling.CURRENT_TUNNELS == []
    assert capsys.readouterr() == ("", "")  # Gradio's Tunnel.kill() would have printed


def test_a_hanging_attempt_returns_none_within_the_timeout(
    networking: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    release: threading.Event,
) -> None:
    def hanging_setup_tunnel(**_: Any) -> str:
        release.wait(30)  # a stalled DNS lookup or a silent frpc
        return PUBLIC_URL

    monkeypatch.setattr(networking, "setup_tunnel", hanging_setup_tunnel)

    started = time.monotonic()
    assert open_share_tunnel(HOST, PORT, timeout=0.5) is None
    elapsed = time.monotonic() - started

    assert 0.5 <= elapsed < 1.5
    [record] = warnings_from_module(caplog)
    message = record.getMessage()
    assert "0.5 s" in message
    assert LOCAL_URL in message
    assert "\n" not in message
    # The stuck attempt cannot keep the interpreter alive.
    assert tunnel_threads()
    assert all(t.daemon for t in tunnel_threads())


def test_a_tunnel_that_comes_up_after_the_timeout_is_closed(
    networking: ModuleType, tunneling: ModuleType, monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    procs: list[subprocess.Popen[bytes]] = []
    finished = threading.Event()

    def slow_setup_tunnel(**kwargs: Any) -> str:
        release.wait(30)
        procs.append(start_fake_frpc(tunneling, PUBLIC_URL, kwargs))
        finished.set()
        return PUBLIC_URL

    monkeypatch.setattr(networking, "setup_tunnel", slow_setup_tunnel)
    assert open_share_tunnel(HOST, PORT, timeout=0.2) is None

    release.set()
    assert finished.wait(5)
    for thread in tunnel_threads():
        thread.join(5)
    [proc] = procs
    assert proc.poll() is not None, "a public URL nobody was told about is still open"
    assert tunneling.CURRENT_TUNNELS == []


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("Could not create share URL.\nfrpc: login to server failed: EOF"),
        OSError("Cannot set up a share link as this platform is incompatible."),
        SystemExit(3),
    ],
)
def test_an_exception_becomes_one_warning_line(
    error: BaseException,
    networking: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def failing_setup_tunnel(**_: Any) -> str:
        raise error

    monkeypatch.setattr(networking, "setup_tunnel", failing_setup_tunnel)

    assert open_share_tunnel(HOST, PORT) is None

    [record] = warnings_from_module(caplog)
    message = record.getMessage()
    assert type(error).__name__ in message
    assert LOCAL_URL in message
    assert "\n" not in message
    assert capsys.readouterr() == ("", "")


def test_the_cause_of_an_error_is_named(
    networking: ModuleType, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def failing_setup_tunnel(**_: Any) -> str:
        try:
            raise ConnectionError("[Errno -2] Name or service not known")
        except ConnectionError as exc:
            raise RuntimeError("Could not get share link from Gradio API Server.") from exc

    monkeypatch.setattr(networking, "setup_tunnel", failing_setup_tunnel)
    assert open_share_tunnel(HOST, PORT) is None
    [record] = warnings_from_module(caplog)
    assert "Gradio API Server" in record.getMessage()
    assert "Name or service not known" in record.getMessage()


def test_an_ipv6_host_is_bracketed_in_the_log(
    networking: ModuleType, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def failing_setup_tunnel(**_: Any) -> str:
        raise RuntimeError("offline")

    monkeypatch.setattr(networking, "setup_tunnel", failing_setup_tunnel)
    assert open_share_tunnel("::1", PORT) is None
    [record] = warnings_from_module(caplog)
    assert f"http://[::1]:{PORT}" in record.getMessage()


# --- open_share_tunnel for real ------------------------------------------------------------------


def test_real_offline_failure(
    networking: ModuleType,
    tunneling: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Gradio tries for real. Offline, it stops at the DNS lookup of api.gradio.app (about 0.03 s
    here) before writing `.gradio/certificate.pem` or downloading frpc, so nothing is created."""
    # Gradio's default path (api.gradio.app), even if the machine sets a custom share server.
    monkeypatch.setattr(networking, "GRADIO_SHARE_SERVER_ADDRESS", None)
    monkeypatch.chdir(tmp_path)  # where Gradio would write .gradio/certificate.pem
    frpc_folder_existed = tunneling.BINARY_FOLDER.exists()

    started = time.monotonic()
    tunnel = open_share_tunnel(HOST, PORT, timeout=15)
    elapsed = time.monotonic() - started

    if tunnel is not None:  # pragma: no cover - only on a machine with internet
        tunnel.close()
        pytest.skip("this machine reached Gradio's share server; the test is for offline machines")
    assert elapsed < 3, f"Gradio took {elapsed:.2f} s to fail offline"
    [record] = warnings_from_module(caplog)
    message = record.getMessage()
    assert LOCAL_URL in message
    assert "Gradio API Server" in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []
    assert tunneling.BINARY_FOLDER.exists() == frpc_folder_existed
    assert tunneling.CURRENT_TUNNELS == []
    assert capsys.readouterr() == ("", "")


def test_it_never_raises_even_when_gradio_is_unusable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import builtins

    real_import: Callable[..., Any] = builtins.__import__

    def no_gradio(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "gradio" or name.startswith("gradio."):
            raise ImportError("No module named 'gradio'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gradio)
    assert open_share_tunnel(HOST, PORT) is None
    [record] = warnings_from_module(caplog)
    assert "Gradio could not be imported" in record.getMessage()
    assert LOCAL_URL in record.getMessage()
