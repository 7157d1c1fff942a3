"""Tests of lib.core.settings: every variable, its default, and a bad value stopping the start by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from apprunner import base_env, make_space

from lib.core import settings as settings_module
from lib.core.errors import ConfigurationError
from lib.core.settings import Settings, default_data_dir, parse_secrets

NUMERIC_VARIABLES = [
    "WEBHOOK_MAX_BODY_BYTES",
    "WEBHOOK_ACK_BUDGET",
    "WEBHOOK_HANDLER_TIMEOUT",
    "WEBHOOK_MAX_ATTEMPTS",
    "WEBHOOK_RETRY_BASE",
    "WEBHOOK_RETRY_MAX",
    "WEBHOOK_CONCURRENCY",
    "WEBHOOK_ENDPOINT_CONCURRENCY",
    "WEBHOOK_DUPLICATE_WINDOW",
    "WEBHOOK_RETENTION_DAYS",
    "WEBHOOK_RETENTION_MAX_EVENTS",
    "WEBHOOK_JOURNAL_MAX_BYTES",
    "GRADIO_SERVER_PORT",
    "WEBHOOK_HEADER_TIMEOUT",
    "WEBHOOK_MAX_HEADER_BYTES",
]
INTEGER_VARIABLES = [
    "WEBHOOK_MAX_BODY_BYTES",
    "WEBHOOK_MAX_ATTEMPTS",
    "WEBHOOK_CONCURRENCY",
    "WEBHOOK_ENDPOINT_CONCURRENCY",
    "WEBHOOK_RETENTION_MAX_EVENTS",
    "WEBHOOK_JOURNAL_MAX_BYTES",
    "GRADIO_SERVER_PORT",
    "WEBHOOK_MAX_HEADER_BYTES",
]


def settings(**environ: str) -> Settings:
    return Settings.from_env({"DATA_DIR": "/tmp/unused-data-dir", **environ})


# --- defaults ---------------------------------------------------------------------------------


def test_defaults_suit_a_free_space() -> None:
    s = settings()

    assert s.webhook_secrets == ()
    assert not s.secret_configured
    assert s.max_body_bytes == 1024 * 1024
    assert s.ack_budget_seconds == 5.0
    assert s.handler_timeout_seconds == 300.0
    assert s.max_attempts == 5
    assert (s.retry_base_seconds, s.retry_max_seconds) == (10.0, 3600.0)
    assert s.concurrency == 4
    assert s.duplicate_window_seconds == 600.0
    assert s.order_per_repo is True
    assert (s.retention_days, s.retention_max_events) == (30.0, 10_000)
    assert s.journal_max_bytes is None
    assert (s.space_id, s.space_host) == (None, None)
    assert s.data_dir == Path("/tmp/unused-data-dir")
    assert s.journal_path == Path("/tmp/unused-data-dir/journal.sqlite3")
    assert (s.header_timeout_seconds, s.max_header_bytes) == (10.0, 32 * 1024)


def test_every_variable_is_read() -> None:
    s = settings(
        WEBHOOK_SECRET="abc",
        WEBHOOK_MAX_BODY_BYTES="2048",
        WEBHOOK_ACK_BUDGET="0",
        WEBHOOK_HANDLER_TIMEOUT="1.5",
        WEBHOOK_MAX_ATTEMPTS="2",
        WEBHOOK_RETRY_BASE="0.5",
        WEBHOOK_RETRY_MAX="7",
        WEBHOOK_CONCURRENCY="9",
        WEBHOOK_DUPLICATE_WINDOW="0",
        WEBHOOK_ORDER_PER_REPO="off",
        WEBHOOK_RETENTION_DAYS="1.5",
        WEBHOOK_RETENTION_MAX_EVENTS="12",
        WEBHOOK_JOURNAL_MAX_BYTES="1048576",
        SPACE_ID="owner/name",
        SPACE_HOST="owner-name.hf.space",
        WEBHOOK_HEADER_TIMEOUT="2.5",
        WEBHOOK_MAX_HEADER_BYTES="16384",
    )

    assert s.webhook_secrets == ("abc",)
    assert s.max_body_bytes == 2048
    assert s.ack_budget_seconds == 0
    assert s.handler_timeout_seconds == 1.5
    assert s.max_attempts == 2
    assert (s.retry_base_seconds, s.retry_max_seconds) == (0.5, 7.0)
    assert s.concurrency == 9
    assert s.duplicate_window_seconds == 0
    assert s.order_per_repo is False
    assert (s.retention_days, s.retention_max_events) == (1.5, 12)
    assert s.journal_max_bytes == 1048576
    assert (s.space_id, s.space_host) == ("owner/name", "owner-name.hf.space")
    assert (s.header_timeout_seconds, s.max_header_bytes) == (2.5, 16384)


def test_blank_numbers_mean_the_default() -> None:
    s = settings(WEBHOOK_MAX_ATTEMPTS="  ", WEBHOOK_ACK_BUDGET="", SPACE_ID="", SPACE_HOST="")
    assert (s.max_attempts, s.ack_budget_seconds, s.space_id, s.space_host) == (5, 5.0, None, None)


def test_overrides_win_over_the_environment() -> None:
    s = Settings.from_env({"WEBHOOK_MAX_ATTEMPTS": "3"}, max_attempts=8, data_dir=Path("/x"))
    assert (s.max_attempts, s.data_dir) == (8, Path("/x"))


@pytest.mark.parametrize("value", ["1", "true", "YES", " on "])
def test_booleans_true(value: str) -> None:
    assert settings(WEBHOOK_ORDER_PER_REPO=value).order_per_repo is True


@pytest.mark.parametrize("value", ["0", "False", "no", "OFF"])
def test_booleans_false(value: str) -> None:
    assert settings(WEBHOOK_ORDER_PER_REPO=value).order_per_repo is False


# --- bad values name their variable ------------------------------------------------------------


@pytest.mark.parametrize("name", NUMERIC_VARIABLES)
@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf", "1,5", "5s"])
def test_a_bad_number_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        settings(**{name: value})
    assert name in str(caught.value)
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize("name", INTEGER_VARIABLES)
def test_a_fraction_is_refused_where_a_count_is_expected(name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        settings(**{name: "2.5"})


@pytest.mark.parametrize(
    "name",
    [
        "WEBHOOK_MAX_BODY_BYTES",
        "WEBHOOK_MAX_ATTEMPTS",
        "WEBHOOK_CONCURRENCY",
        "WEBHOOK_ENDPOINT_CONCURRENCY",
        "WEBHOOK_RETENTION_MAX_EVENTS",
    ],
)
def test_zero_is_refused_where_at_least_one_is_needed(name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        settings(**{name: "0"})


def test_where_to_listen_and_what_to_trust_are_read_here_not_at_launch() -> None:
    read = settings(
        GRADIO_SERVER_NAME="0.0.0.0", GRADIO_SERVER_PORT="7861", GRADIO_SHARE="true", FORWARDED_ALLOW_IPS="10.0.0.1"
    )
    assert (read.server_name, read.server_port, read.gradio_share) == ("0.0.0.0", 7861, "true")
    assert read.forwarded_allow_ips == "10.0.0.1"
    default = settings()
    assert (default.server_name, default.server_port, default.gradio_share) == (None, None, None)
    assert default.forwarded_allow_ips == "127.0.0.1,::1"


def test_inside_a_space_the_hub_proxy_is_trusted_whatever_its_address() -> None:
    """The Hub's proxy connects from an internal address nobody knows in advance: `*` (its own entry only)."""
    in_space = settings(SPACE_ID="owner/name")
    assert in_space.forwarded_allow_ips == "*"
    assert in_space.trusted_proxies.any_peer and in_space.trusted_proxies.networks == ()
    assert settings(SPACE_ID="owner/name", FORWARDED_ALLOW_IPS="10.0.0.0/8").forwarded_allow_ips == "10.0.0.0/8"
    assert not settings().trusted_proxies.any_peer


@pytest.mark.parametrize("value", ["proxy.internal", "10.0.0.1, 300.1.2.3", "10.0.0.0/33"])
def test_a_trusted_proxy_that_is_no_address_is_refused(value: str) -> None:
    with pytest.raises(ConfigurationError, match="FORWARDED_ALLOW_IPS must list") as refused:
        settings(FORWARDED_ALLOW_IPS=value)
    assert "is neither an IP address nor a network" in refused.value.message


@pytest.mark.parametrize("value", ["0", "65536", "100000"])
def test_a_port_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(ConfigurationError, match="GRADIO_SERVER_PORT"):
        settings(GRADIO_SERVER_PORT=value)


def test_a_journal_cap_too_small_to_hold_anything_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="WEBHOOK_JOURNAL_MAX_BYTES"):
        settings(WEBHOOK_JOURNAL_MAX_BYTES="4096")


def test_a_header_cap_too_small_for_a_browser_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="WEBHOOK_MAX_HEADER_BYTES must be a number of bytes >= 1024"):
        settings(WEBHOOK_MAX_HEADER_BYTES="512")


def test_zero_header_timeout_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"WEBHOOK_HEADER_TIMEOUT must be a number of seconds >= 0\.1"):
        settings(WEBHOOK_HEADER_TIMEOUT="0")


@pytest.mark.parametrize(("concurrency", "share"), [(1, 2), (2, 2), (3, 2), (4, 3), (9, 8)])
def test_one_endpoint_never_holds_every_slot_by_default_when_there_are_three_or_more(
    concurrency: int, share: int
) -> None:
    """Its share is one slot less than all of them, but at least 2 (see `default_endpoint_concurrency`)."""
    read = settings(WEBHOOK_CONCURRENCY=str(concurrency))
    assert read.endpoint_concurrency is None
    assert read.endpoint_share == share
    assert Settings(concurrency=concurrency).endpoint_share == share  # the same when built in code


@pytest.mark.parametrize("value", ["1", "4", "12"])
def test_an_endpoints_share_may_be_set(value: str) -> None:
    read = settings(WEBHOOK_CONCURRENCY="4", WEBHOOK_ENDPOINT_CONCURRENCY=value)
    assert read.endpoint_concurrency == read.endpoint_share == int(value)


def test_zero_handler_timeout_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="WEBHOOK_HANDLER_TIMEOUT"):
        settings(WEBHOOK_HANDLER_TIMEOUT="0")


@pytest.mark.parametrize(
    ("value", "level"), [(None, "INFO"), ("", "INFO"), ("debug", "DEBUG"), (" Warning ", "WARNING")]
)
def test_the_log_level(value: str | None, level: str) -> None:
    variables = {} if value is None else {"WEBHOOK_LOG_LEVEL": value}
    assert settings(**variables).log_level == level


@pytest.mark.parametrize("value", ["verbose", "10", "INFO,DEBUG"])
def test_a_bad_log_level_names_its_variable_and_the_choices(value: str) -> None:
    with pytest.raises(ConfigurationError, match="WEBHOOK_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR"):
        settings(WEBHOOK_LOG_LEVEL=value)


@pytest.mark.parametrize("value", ["maybe", "2", "y e s"])
def test_a_bad_boolean_names_its_variable(value: str) -> None:
    with pytest.raises(ConfigurationError, match="WEBHOOK_ORDER_PER_REPO"):
        settings(WEBHOOK_ORDER_PER_REPO=value)


@pytest.mark.parametrize("value", ["25", "29.9", "1000"])
def test_ack_budget_must_stay_under_the_hub_timeout(value: str) -> None:
    with pytest.raises(ConfigurationError, match="WEBHOOK_ACK_BUDGET") as caught:
        settings(WEBHOOK_ACK_BUDGET=value)
    assert "30 s" in str(caught.value)


def test_ack_budget_just_under_the_limit_is_accepted() -> None:
    assert settings(WEBHOOK_ACK_BUDGET="24.9").ack_budget_seconds == 24.9


def test_ack_budget_override_is_checked_too() -> None:
    with pytest.raises(ConfigurationError, match="WEBHOOK_ACK_BUDGET"):
        Settings.from_env({}, ack_budget_seconds=30.0)


# --- secrets ----------------------------------------------------------------------------------


def test_unset_secret_leaves_the_endpoints_open() -> None:
    assert parse_secrets(None) == ()


@pytest.mark.parametrize("raw", ["", "   ", ",", "a,,b", "a,", ",a", "a, ,b"])
def test_an_empty_secret_is_a_configuration_error(raw: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        settings(WEBHOOK_SECRET=raw)
    message = str(caught.value)
    assert "WEBHOOK_SECRET" in message
    assert "empty" in message


def test_secrets_are_split_on_commas_and_trimmed() -> None:
    s = settings(WEBHOOK_SECRET=" old-secret , new-secret,third ")
    assert s.webhook_secrets == ("old-secret", "new-secret", "third")
    assert s.secret_configured


def test_a_space_inside_a_secret_is_kept() -> None:
    assert parse_secrets("two words") == ("two words",)


@pytest.mark.parametrize("raw", ["pässwort", "tab\there", "new\nline"])
def test_a_secret_that_cannot_travel_in_a_header_is_refused_without_echoing_it(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="WEBHOOK_SECRET") as caught:
        settings(WEBHOOK_SECRET=raw)
    assert raw not in str(caught.value)


def test_the_error_for_a_constructor_argument_names_the_argument() -> None:
    with pytest.raises(ConfigurationError, match="webhook_secret"):
        parse_secrets("", source="webhook_secret")


def test_secrets_stay_out_of_the_repr() -> None:
    s = settings(WEBHOOK_SECRET="hunter2-very-secret")
    assert "hunter2-very-secret" not in repr(s)
    assert "hunter2-very-secret" not in str(s)


# --- data dir and persistence -----------------------------------------------------------------


def test_data_dir_variable_wins(tmp_path: Path) -> None:
    assert default_data_dir({"DATA_DIR": str(tmp_path)}) == tmp_path


def test_data_dir_falls_back_to_persistent_storage_when_mounted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings_module, "PERSISTENT_STORAGE", tmp_path)
    assert default_data_dir({}) == tmp_path
    assert default_data_dir({"DATA_DIR": ""}) == tmp_path


def test_data_dir_falls_back_to_a_local_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "PERSISTENT_STORAGE", tmp_path / "not-mounted")
    assert default_data_dir({}) == Path("data")


def test_journal_is_persistent_outside_a_space() -> None:
    assert settings().journal_is_persistent


def test_journal_on_a_space_without_persistent_storage_is_not_persistent() -> None:
    assert not settings(SPACE_ID="owner/name", DATA_DIR="/tmp/space-data").journal_is_persistent


def test_journal_on_a_space_under_data_is_persistent() -> None:
    assert settings(SPACE_ID="owner/name", DATA_DIR="/data/webhooks").journal_is_persistent


# --- the real app refuses to start ------------------------------------------------------------


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"WEBHOOK_SECRET": ""}, "WEBHOOK_SECRET is set but empty"),
        (
            {"WEBHOOK_LOG_LEVEL": "chatty"},
            "Cannot start: WEBHOOK_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got 'chatty'.",
        ),
        (
            {"WEBHOOK_HEADER_TIMEOUT": "soon"},
            "Cannot start: WEBHOOK_HEADER_TIMEOUT must be a number of seconds >= 0.1, got 'soon'.",
        ),
    ],
    ids=["empty secret", "bad log level", "bad header timeout"],
)
def test_the_app_exits_with_a_message_naming_the_bad_variable(
    tmp_path: Path, variables: dict[str, str], message: str
) -> None:
    folder = make_space(tmp_path / "space", handlers={})
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=folder,
        env=base_env(tmp_path / "data", **variables, GRADIO_SERVER_PORT="1"),
        capture_output=True,
        text=True,
        timeout=90,
    )

    assert result.returncode != 0
    assert message in result.stdout + result.stderr


@pytest.mark.parametrize("secret", ["change-me", "real-secret,change-me"])
def test_the_placeholder_secret_is_refused_in_a_space(secret: str) -> None:
    with pytest.raises(ConfigurationError, match=r"placeholder from \.env\.example") as raised:
        Settings.from_env({"WEBHOOK_SECRET": secret, "SPACE_ID": "owner/space"})
    assert "Settings → Variables and secrets" in str(raised.value)
    local = Settings.from_env({"WEBHOOK_SECRET": secret})  # locally: started, and warned about (test_landing.py)
    assert local.uses_placeholder_secret
    assert not Settings.from_env({"WEBHOOK_SECRET": "change-me-now", "SPACE_ID": "o/s"}).uses_placeholder_secret
