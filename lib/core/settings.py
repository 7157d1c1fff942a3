"""The receiver's configuration, read once from the environment when the server is built.

Nothing here runs at import: `Settings.from_env()` is called by `WebhooksServer`, so a script or a
test can set variables first. Every bad value stops the start with a message that names the
variable, what it holds (never for secrets) and what it should hold.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigurationError
from .forwarded import LOOPBACK, TrustedProxies, default_trusted_proxies
from .ops_settings import OpsSettings

PERSISTENT_STORAGE = Path("/data")
"""Where a Space with persistent storage mounts it."""
MIN_JOURNAL_BYTES = 64 * 1024
"""The journal's tables and indexes alone take a few pages; a smaller cap could record nothing."""
MIN_HEADER_BYTES = 1024
"""A browser's request head with a few cookies takes a few KB; the Hub's, under one."""
PLACEHOLDER_SECRET = "change-me"
"""`WEBHOOK_SECRET` in `.env.example`: public, so it protects nothing. Warned about locally, refused in a Space."""
HOW_TO_CHOOSE_A_SECRET = (
    'choose your own (e.g. `python -c "import secrets; print(secrets.token_urlsafe(32))"`) and give the '
    "Hub's webhook the same"
)


def placeholder_secret_message(*, in_space: bool) -> str:
    """What to say about `WEBHOOK_SECRET=change-me`: where to set a real one."""
    where = "in the Space's settings (Settings → Variables and secrets)" if in_space else "in .env"
    return (
        f"WEBHOOK_SECRET is {PLACEHOLDER_SECRET!r}, the placeholder from .env.example: anyone who has seen this "
        f"template knows it, so it protects nothing. Set a secret of your own {where}: {HOW_TO_CHOOSE_A_SECRET}."
    )


def parse_secrets(raw: str | None, *, source: str = "WEBHOOK_SECRET") -> tuple[str, ...]:
    """Split a comma-separated secret list, so a user can rotate secrets without downtime.

    `None` means "no secret": the endpoints are open. An empty string, or an empty item between
    commas, is almost always a mistake (a Space secret saved blank), so it is refused.
    """
    if raw is None:
        return ()
    secrets = tuple(part.strip() for part in raw.split(","))
    if not raw.strip() or any(not secret for secret in secrets):
        raise ConfigurationError(
            f"{source} is set but empty (or has an empty item between commas). Set it to the secret you "
            "gave the Hub in your webhook settings, several comma-separated to rotate, or unset it to "
            "leave the endpoints open."
        )
    for secret in secrets:
        if not secret.isascii() or not secret.isprintable():
            raise ConfigurationError(
                f"{source} holds a non-ASCII or non-printable character; the Hub sends the secret verbatim "
                "in an HTTP header, which only carries printable ASCII. Choose a secret without it."
            )
    return secrets


TEMPLATE_SCRIPT = "app"
"""The template's own entry point (`app.py`), whose journal is `./data` itself."""


def main_script() -> Path | None:
    """The script Python was started with (`python my_bot.py`); None for `python -m ...`, a REPL, a notebook."""
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        return None
    file = getattr(main, "__file__", None)
    return Path(file) if file else None


def default_data_dir(environ: Mapping[str, str], *, script: Path | None = None) -> Path:
    """`DATA_DIR`, else the Space's persistent storage when mounted, else `./data`, or `./data/<script>`.

    Two apps started from one checkout, the template's `app.py` and a script written for the
    reference (`python my_bot.py`), would otherwise share `./data`: one journal, each console listing
    the other's events, each worker claiming events for endpoints it does not have. A script other
    than `app.py` gets a folder of its own in `./data`, named after it.
    """
    if environ.get("DATA_DIR"):
        return Path(environ["DATA_DIR"])
    if PERSISTENT_STORAGE.is_dir() and os.access(PERSISTENT_STORAGE, os.W_OK):
        return PERSISTENT_STORAGE
    if script is not None and script.stem != TEMPLATE_SCRIPT:
        return Path("data") / script.stem
    return Path("data")


def _read(
    environ: Mapping[str, str],
    name: str,
    default: float,
    convert: Callable[[str], float],
    *,
    minimum: float,
    unit: str,
) -> float:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = convert(raw.strip())
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < minimum:  # NaN compares False to everything
        raise ConfigurationError(f"{name} must be a number of {unit} >= {minimum:g}, got {raw!r}.")
    return value


def _read_optional_int(environ: Mapping[str, str], name: str, *, minimum: int, unit: str) -> int | None:
    """A whole number that may be left unset (None), e.g. a cap that is off by default."""
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    return int(_read(environ, name, minimum, int, minimum=minimum, unit=unit))


def _read_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name} must be true or false, got {raw!r}.")


def default_endpoint_concurrency(concurrency: int) -> int:
    """One endpoint's share of the `concurrency` slots when `WEBHOOK_ENDPOINT_CONCURRENCY` is unset.

    One less than every slot, so that handlers of one endpoint that hang can never take the slot the
    other endpoints run on; but at least 2, so that one hung handler (its thread outlives its timeout
    and keeps counting) does not stop its endpoint, and so that an app with 1 or 2 slots does not
    halve its one endpoint's throughput. With 2 slots or fewer, one endpoint may then hold them all,
    until its handlers' timeout frees them.
    """
    return max(2, concurrency - 1)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _read_log_level(environ: Mapping[str, str], name: str, default: str) -> str:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    if raw.strip().upper() not in LOG_LEVELS:
        raise ConfigurationError(f"{name} must be one of {', '.join(LOG_LEVELS)}, got {raw!r}.")
    return raw.strip().upper()


def _read_ops(env: Mapping[str, str]) -> OpsSettings:
    """The metrics and alert options (see `ops_settings.py`)."""
    failure_rate = _read(env, "WEBHOOK_ALERT_FAILURE_RATE", 0.5, float, minimum=0, unit="a share (0 to 1)")
    budget = _read(env, "WEBHOOK_ALERT_HUB_BUDGET", 0.8, float, minimum=0, unit="a share (0 to 1)")
    for name, share in (("WEBHOOK_ALERT_FAILURE_RATE", failure_rate), ("WEBHOOK_ALERT_HUB_BUDGET", budget)):
        if share > 1:
            raise ConfigurationError(f"{name} is a share from 0 to 1 (0.5 is half), got {share:g}.")
    return OpsSettings(
        metrics_tokens=parse_secrets(env.get("METRICS_TOKEN"), source="METRICS_TOKEN"),
        metrics_max_age_seconds=_read(env, "METRICS_MAX_AGE", 5.0, float, minimum=0, unit="seconds"),
        alert_url=(env.get("WEBHOOK_ALERT_URL") or "").strip() or None,
        alert_discussions=_read_bool(env, "WEBHOOK_ALERT_DISCUSSIONS", True),
        check_seconds=_read(env, "WEBHOOK_ALERT_CHECK_SECONDS", 30.0, float, minimum=0.1, unit="seconds"),
        failure_rate=failure_rate,
        failure_window_seconds=_read(env, "WEBHOOK_ALERT_FAILURE_WINDOW", 900.0, float, minimum=1, unit="seconds"),
        failure_min_events=int(_read(env, "WEBHOOK_ALERT_FAILURE_MIN_EVENTS", 5, int, minimum=1, unit="events")),
        queue_age_seconds=_read(env, "WEBHOOK_ALERT_QUEUE_AGE", 600.0, float, minimum=1, unit="seconds"),
        hub_budget_share=budget,
        max_per_hour=int(_read(env, "WEBHOOK_ALERT_MAX_PER_HOUR", 20, int, minimum=1, unit="alerts")),
        retry_max_seconds=_read(env, "WEBHOOK_ALERT_RETRY_MAX", 1800.0, float, minimum=1, unit="seconds"),
    )


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything an operator can tune, with defaults that suit a free CPU Space."""

    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    max_body_bytes: int = 1024 * 1024
    data_dir: Path = Path("data")
    ack_budget_seconds: float = 5.0
    """How long the answer waits for the handler before saying 202 (the Hub gives up at 30 s)."""
    handler_timeout_seconds: float = 300.0
    max_attempts: int = 5
    retry_base_seconds: float = 10.0
    retry_max_seconds: float = 3600.0
    concurrency: int = 4
    endpoint_concurrency: int | None = None
    """How many of one endpoint's handlers may hold a slot or a thread at once (`WEBHOOK_ENDPOINT_CONCURRENCY`):
    running, or still running on their thread past their timeout. None: `default_endpoint_concurrency`."""
    duplicate_window_seconds: float = 600.0
    """A redelivery of an event that succeeded this recently is answered without running it again."""
    order_per_repo: bool = True
    retention_days: float = 30.0
    retention_max_events: int = 10_000
    journal_max_bytes: int | None = None
    """A cap on the journal file and its write-ahead log together (`WEBHOOK_JOURNAL_MAX_BYTES`, None = none):
    past it, deliveries get 503 (the Hub retries later) instead of the journal filling the Space's disk."""
    space_id: str | None = None
    """`owner/name` of the Space we run in (`SPACE_ID`), None when running elsewhere."""
    space_host: str | None = None
    """The Space's direct host (`SPACE_HOST`), e.g. `owner-name.hf.space`."""
    log_level: str = "INFO"
    """`DEBUG` adds a line per delivery acknowledged (`WEBHOOK_LOG_LEVEL`)."""
    server_name: str | None = None
    """The address to listen on (`GRADIO_SERVER_NAME`, as Gradio reads it); None for the default."""
    server_port: int | None = None
    """The port to listen on (`GRADIO_SERVER_PORT`); None for 7860."""
    gradio_share: str | None = None
    """`GRADIO_SHARE` as set, for `launch()` to decide about the share tunnel (see `lib/receiver/tunnel.py`)."""
    forwarded_allow_ips: str = LOOPBACK
    """Proxies whose `X-Forwarded-*` headers the page trusts (`FORWARDED_ALLOW_IPS`): addresses and
    networks, or `*` for whichever peer connects (the default in a Space); see `lib/core/forwarded.py`."""
    header_timeout_seconds: float = 10.0
    """A connection whose request head has not arrived whole this long after it began is closed
    (`WEBHOOK_HEADER_TIMEOUT`; see `lib/receiver/connections.py`)."""
    max_header_bytes: int = 32 * 1024
    """A request head (request line and headers) larger than this is answered 431 (`WEBHOOK_MAX_HEADER_BYTES`)."""
    database_url: str | None = field(default=None, repr=False)
    """`DATABASE_URL`: a `postgresql://` URL puts the journal on PostgreSQL, shared by every replica pointed
    at it; None keeps it in SQLite under `data_dir`. Holds a password: never shown (see `lib/journal/postgres`)."""
    replica_id: str | None = None
    """This process's name among the replicas sharing a PostgreSQL journal (`WEBHOOK_REPLICA_ID`); None for
    its host name and process id. A replica restarted under the same name takes its events back at once."""
    lease_seconds: float = 30.0
    """How long a replica's running event stays its own without a heartbeat (`WEBHOOK_LEASE_SECONDS`): a live
    replica takes over the events of one silent for longer."""
    run_handlers: bool = True
    """Whether this process runs the handlers (`WEBHOOK_RUN_HANDLERS`); false for a receiver that only records
    deliveries, leaving them to workers elsewhere (`python -m lib.worker`) on a shared PostgreSQL journal."""
    jobs_per_day: int = 10
    """The most Hub Jobs one endpoint's handler launches in 24 hours, unless its module says `JOBS_PER_DAY`
    (`WEBHOOK_JOBS_PER_DAY`); counted from the journal, so a restart does not reset it."""
    job_timeout_seconds: float = 3600.0
    """A job's timeout when its handler gives none (`WEBHOOK_JOB_TIMEOUT`): the Hub stops it then."""
    job_timeout_margin_seconds: float = 600.0
    """How long past its timeout a job is still followed before it is cancelled and its event failed
    (`WEBHOOK_JOB_TIMEOUT_MARGIN`)."""
    job_hub_timeout_seconds: float = 60.0
    """How long a call to the Hub's Jobs API (launch, inspect, cancel, logs) may go unanswered before it
    counts as failed (`WEBHOOK_JOB_HUB_TIMEOUT`): `huggingface_hub` itself waits for ever."""
    job_poll_min_seconds: float = 5.0
    job_poll_max_seconds: float = 300.0
    """A job is polled first after `WEBHOOK_JOB_POLL_MIN` seconds, then ever less often, doubling up to
    `WEBHOOK_JOB_POLL_MAX`: a job of 1 hour costs about 20 requests."""
    ops: OpsSettings = field(default_factory=OpsSettings)
    """Metrics and alerts (`METRICS_TOKEN`, `WEBHOOK_ALERT_*`; see `ops_settings.py`)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read the `WEBHOOK_*` variables (see `.env.example`); keyword overrides win."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {
            "webhook_secrets": parse_secrets(env.get("WEBHOOK_SECRET")),
            "max_body_bytes": int(_read(env, "WEBHOOK_MAX_BODY_BYTES", 1024 * 1024, int, minimum=1, unit="bytes")),
            "data_dir": default_data_dir(env, script=main_script()),
            "ack_budget_seconds": _read(env, "WEBHOOK_ACK_BUDGET", 5.0, float, minimum=0, unit="seconds"),
            "handler_timeout_seconds": _read(
                env, "WEBHOOK_HANDLER_TIMEOUT", 300.0, float, minimum=0.01, unit="seconds"
            ),
            "max_attempts": int(_read(env, "WEBHOOK_MAX_ATTEMPTS", 5, int, minimum=1, unit="attempts")),
            "retry_base_seconds": _read(env, "WEBHOOK_RETRY_BASE", 10.0, float, minimum=0, unit="seconds"),
            "retry_max_seconds": _read(env, "WEBHOOK_RETRY_MAX", 3600.0, float, minimum=0, unit="seconds"),
            "concurrency": int(_read(env, "WEBHOOK_CONCURRENCY", 4, int, minimum=1, unit="handlers")),
            "endpoint_concurrency": _read_optional_int(env, "WEBHOOK_ENDPOINT_CONCURRENCY", minimum=1, unit="handlers"),
            "duplicate_window_seconds": _read(env, "WEBHOOK_DUPLICATE_WINDOW", 600.0, float, minimum=0, unit="seconds"),
            "order_per_repo": _read_bool(env, "WEBHOOK_ORDER_PER_REPO", True),
            "retention_days": _read(env, "WEBHOOK_RETENTION_DAYS", 30.0, float, minimum=0, unit="days"),
            "retention_max_events": int(
                _read(env, "WEBHOOK_RETENTION_MAX_EVENTS", 10_000, int, minimum=1, unit="events")
            ),
            "journal_max_bytes": _read_optional_int(
                env, "WEBHOOK_JOURNAL_MAX_BYTES", minimum=MIN_JOURNAL_BYTES, unit="bytes"
            ),
            "space_id": env.get("SPACE_ID") or None,
            "space_host": env.get("SPACE_HOST") or None,
            "log_level": _read_log_level(env, "WEBHOOK_LOG_LEVEL", "INFO"),
            "server_name": env.get("GRADIO_SERVER_NAME") or None,
            "server_port": _read_optional_int(env, "GRADIO_SERVER_PORT", minimum=1, unit="port number"),
            "gradio_share": env.get("GRADIO_SHARE"),
            "forwarded_allow_ips": (env.get("FORWARDED_ALLOW_IPS") or "").strip()
            or default_trusted_proxies(in_space=bool(env.get("SPACE_ID"))),
            "header_timeout_seconds": _read(env, "WEBHOOK_HEADER_TIMEOUT", 10.0, float, minimum=0.1, unit="seconds"),
            "max_header_bytes": int(
                _read(env, "WEBHOOK_MAX_HEADER_BYTES", 32 * 1024, int, minimum=MIN_HEADER_BYTES, unit="bytes")
            ),
            "database_url": (env.get("DATABASE_URL") or "").strip() or None,
            "replica_id": (env.get("WEBHOOK_REPLICA_ID") or "").strip() or None,
            "lease_seconds": _read(env, "WEBHOOK_LEASE_SECONDS", 30.0, float, minimum=1, unit="seconds"),
            "run_handlers": _read_bool(env, "WEBHOOK_RUN_HANDLERS", True),
            "jobs_per_day": int(_read(env, "WEBHOOK_JOBS_PER_DAY", 10, int, minimum=0, unit="jobs")),
            "job_timeout_seconds": _read(env, "WEBHOOK_JOB_TIMEOUT", 3600.0, float, minimum=1, unit="seconds"),
            "job_timeout_margin_seconds": _read(
                env, "WEBHOOK_JOB_TIMEOUT_MARGIN", 600.0, float, minimum=0, unit="seconds"
            ),
            "job_hub_timeout_seconds": _read(env, "WEBHOOK_JOB_HUB_TIMEOUT", 60.0, float, minimum=0.1, unit="seconds"),
            "job_poll_min_seconds": _read(env, "WEBHOOK_JOB_POLL_MIN", 5.0, float, minimum=0.05, unit="seconds"),
            "job_poll_max_seconds": _read(env, "WEBHOOK_JOB_POLL_MAX", 300.0, float, minimum=0.05, unit="seconds"),
            "ops": _read_ops(env),
        }
        values.update(overrides)
        if values["server_port"] is not None and not 1 <= values["server_port"] <= 65535:  # type: ignore[operator]
            raise ConfigurationError(
                f"GRADIO_SERVER_PORT must be a port number from 1 to 65535, got {values['server_port']}."
            )
        if values["ack_budget_seconds"] >= 25:  # type: ignore[operator]
            raise ConfigurationError(
                "WEBHOOK_ACK_BUDGET must stay well under the Hub's 30 s delivery timeout (use < 25)."
            )
        if values["job_poll_max_seconds"] < values["job_poll_min_seconds"]:  # type: ignore[operator]
            raise ConfigurationError("WEBHOOK_JOB_POLL_MAX must be at least WEBHOOK_JOB_POLL_MIN.")
        settings = cls(**values)  # type: ignore[arg-type]
        if settings.space_id and settings.uses_placeholder_secret:  # public in a Space: refuse, not warn
            raise ConfigurationError(placeholder_secret_message(in_space=True))
        _ = settings.trusted_proxies  # a bad FORWARDED_ALLOW_IPS stops the start here, named
        return settings

    @property
    def endpoint_share(self) -> int:
        """The most handlers of one endpoint that may hold a slot or a thread at once (its bulkhead)."""
        if self.endpoint_concurrency is not None:
            return self.endpoint_concurrency
        return default_endpoint_concurrency(self.concurrency)

    @property
    def secret_configured(self) -> bool:
        return bool(self.webhook_secrets)

    @property
    def uses_placeholder_secret(self) -> bool:
        """One of the secrets is `.env.example`'s placeholder, which anyone can read."""
        return PLACEHOLDER_SECRET in self.webhook_secrets

    @property
    def trusted_proxies(self) -> TrustedProxies:
        """`forwarded_allow_ips` parsed.

        Raises:
            ConfigurationError: an item is neither `*`, an IP address nor a network.
        """
        try:
            return TrustedProxies.parse(self.forwarded_allow_ips)
        except ValueError as exc:
            raise ConfigurationError(
                f"FORWARDED_ALLOW_IPS must list the addresses or networks of the proxies in front of this app, "
                f"comma-separated, or be * for whichever connects (the default in a Space): {exc}."
            ) from None

    @property
    def journal_path(self) -> Path:
        return self.data_dir / "journal.sqlite3"

    @property
    def journal_is_persistent(self) -> bool:
        """False when events survive a crash of the process but not a rebuild of the Space."""
        if self.space_id is None:
            return True
        try:
            return self.data_dir.resolve().is_relative_to(PERSISTENT_STORAGE)
        except OSError:
            return False
