"""Endpoints as plain data, and finding them in `handlers/`.

`handlers/<name>.py` with a `handle(payload)` function becomes `POST /webhooks/<name>`. Its
docstring describes it on the landing page, an optional `EVENTS = Events(...)` says which events it
wants, an optional `PATH = "..."` renames it, and an optional `ORDER = None` lets events of one
repository run side by side (`ORDER = "repo"`, the default, runs them in order). A module that
cannot work stops the app at start with the file named and the fix: a Space that starts
half-working loses events silently.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .arguments import Argument, plan_arguments, takes_payload
from .errors import ConfigurationError, HandlerModuleError
from .events import ALL_EVENTS, Events
from .jobs import JobOptions, job_options_from_module
from .rate_limit import RateLimit, declared_rate_limit

logger = logging.getLogger(__name__)

WEBHOOKS_PREFIX = "/webhooks"
ORDER_CHOICES: dict[str | None, bool] = {"repo": True, None: False, "none": False}
"""A module's `ORDER`: whether its events of one repository run one at a time, in arrival order."""
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9_\-.~/]+$")


def webhook_path(name: str) -> str:
    """`/webhooks/<name>`, as the reference builds it (leading and trailing slashes ignored)."""
    cleaned = name.strip("/")
    if cleaned.startswith(WEBHOOKS_PREFIX.strip("/") + "/"):
        cleaned = cleaned[len(WEBHOOKS_PREFIX) :]
    if not cleaned or not _PATH_SEGMENT.match(cleaned) or "//" in cleaned or ".." in cleaned:
        raise ValueError(f"Webhook path {name!r} is not usable in a URL: use letters, digits, '-', '_', '.' and '/'.")
    return f"{WEBHOOKS_PREFIX}/{cleaned}"


@dataclass(frozen=True)
class Endpoint:
    """One webhook endpoint: where it listens, what it runs, what it wants."""

    path: str
    handler: Callable[..., Any]
    events: Events = ALL_EVENTS
    description: str = ""
    source: str | None = None
    """The file it came from, to name it in errors."""
    arguments: tuple[Argument, ...] = field(default=(), compare=False)
    rate_limit: RateLimit | None = None
    """At most so many handler starts per window (`RATE_LIMIT`); None: as fast as slots allow."""
    order_per_repo: bool | None = None
    """Whether its events of one repository run in order (`ORDER`); None: as `WEBHOOK_ORDER_PER_REPO` says."""
    jobs: JobOptions = field(default_factory=JobOptions, compare=False)
    """`JOB_POLICY`, `JOBS_PER_DAY` and `on_job_end` of its module (see `lib/core/jobs.py`)."""

    @classmethod
    def create(
        cls,
        path: str,
        handler: Callable[..., Any],
        *,
        events: Events | None = None,
        description: str | None = None,
        source: str | None = None,
        rate_limit: RateLimit | None = None,
        order_per_repo: bool | None = None,
        jobs: JobOptions | None = None,
    ) -> Endpoint:
        """Check the handler once, so a parameter we cannot fill fails now and not on the first event."""
        where = source or getattr(handler, "__qualname__", repr(handler))
        if not callable(handler):
            raise ConfigurationError(f"{where}: the handler must be a function, got {type(handler).__name__}.")
        for note in (events or ALL_EVENTS).unknown_values():  # accepted, but most are typos: say so at start
            logger.warning(
                "%s: in EVENTS, %s It is accepted (the Hub adds new ones), but matches nothing yet.", where, note
            )
        return cls(
            path=path,
            handler=handler,
            events=events or ALL_EVENTS,
            description=(description if description is not None else inspect.getdoc(handler) or "").strip(),
            source=source,
            arguments=plan_arguments(handler, where=where),
            rate_limit=rate_limit,
            order_per_repo=order_per_repo,
            jobs=jobs or JobOptions(),
        )

    @property
    def name(self) -> str:
        return self.path.removeprefix(WEBHOOKS_PREFIX + "/")

    def orders_by_repo(self, default: bool) -> bool:
        """Whether this endpoint's events of one repository run one at a time: its `ORDER`, else `default`."""
        return default if self.order_per_repo is None else self.order_per_repo

    @property
    def takes_payload(self) -> bool:
        """False for a handler without a payload parameter: any authenticated POST runs it (a raw delivery)."""
        return takes_payload(self.arguments)

    @property
    def summary(self) -> str:
        """The first line of the description."""
        return self.description.splitlines()[0] if self.description else ""


def _import_module(file: Path, package: str) -> Any:
    module_name = f"{package}.{file.stem}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise HandlerModuleError(f"{file}: cannot be imported as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except ConfigurationError as exc:
        del sys.modules[module_name]
        raise HandlerModuleError(f"{file}: {exc}") from None
    except SyntaxError as exc:
        del sys.modules[module_name]
        raise HandlerModuleError(
            f"{file}, line {exc.lineno}: syntax error ({exc.msg}). Fix the line, or rename the file to start "
            "with '_' to keep it out of the endpoints."
        ) from None
    except Exception as exc:
        del sys.modules[module_name]
        raise HandlerModuleError(
            f"{file}: importing it raised {type(exc).__name__}: {exc}. A handler module must import cleanly; "
            "do slow or fallible set-up inside handle()."
        ) from exc
    return module


def endpoint_from_module(file: Path, *, package: str = "handlers") -> Endpoint:
    """Import one handler module and describe it as an `Endpoint`.

    Raises:
        HandlerModuleError: the file names itself as a bad module name, does not import, has no
            `handle` function, or declares `EVENTS` / `PATH` / `ORDER` / `RATE_LIMIT` wrongly.
    """
    if not file.stem.isidentifier():
        suggestion = re.sub(r"\W", "_", file.stem)
        raise HandlerModuleError(
            f"{file}: {file.stem!r} is not a valid Python module name; rename it to {suggestion}.py."
        )
    module = _import_module(file, package)
    handle = getattr(module, "handle", None)
    if handle is None or not callable(handle):
        raise HandlerModuleError(
            f"{file}: no handle() function. Define `def handle(payload: WebhookPayload): ...` (or async def), "
            "or rename the file to start with '_' if it is a helper, not an endpoint."
        )
    events = getattr(module, "EVENTS", None)
    if events is not None and not isinstance(events, Events):
        raise HandlerModuleError(
            f"{file}: EVENTS must be an Events(...) from lib, e.g. EVENTS = Events(scope='repo.content'); "
            f"got {type(events).__name__}."
        )
    raw_path = getattr(module, "PATH", file.stem)
    try:
        path = webhook_path(raw_path) if isinstance(raw_path, str) else webhook_path("")
    except ValueError as exc:
        raise HandlerModuleError(f"{file}: PATH = {raw_path!r} is not usable: {exc}") from None
    try:
        rate_limit = declared_rate_limit(module, str(file))
        jobs = job_options_from_module(module, file)
        return Endpoint.create(
            path,
            handle,
            events=events,
            description=inspect.getdoc(module) or "",
            source=str(file),
            rate_limit=rate_limit,
            order_per_repo=_declared_order(module, file),
            jobs=jobs,
        )
    except ConfigurationError as exc:
        raise HandlerModuleError(str(exc)) from None


def _declared_order(module: Any, file: Path) -> bool | None:
    """The module's `ORDER` as `Endpoint.order_per_repo`: None when it declares none."""
    if not hasattr(module, "ORDER"):
        return None
    order = module.ORDER
    key = order.lower() if isinstance(order, str) else order
    if not (key is None or isinstance(key, str)) or key not in ORDER_CHOICES:
        raise HandlerModuleError(
            f"{file}: ORDER = {order!r} is not a choice: ORDER = 'repo' runs the events of one repository one at a "
            "time, in arrival order (the default); ORDER = None runs them side by side, as slots allow."
        )
    return ORDER_CHOICES[key]


def discover_handlers(directory: Path, *, package: str = "handlers") -> list[Endpoint]:
    """Every endpoint in `directory`: one per `*.py` file not starting with `_`, sorted by name.

    Raises:
        HandlerModuleError: a module is broken, or two modules claim the same path.
    """
    if not directory.is_dir():
        raise HandlerModuleError(f"{directory}: the handlers folder does not exist.")
    endpoints: dict[str, Endpoint] = {}
    for file in sorted(directory.glob("*.py")):
        if file.name.startswith("_"):
            continue
        endpoint = endpoint_from_module(file, package=package)
        if endpoint.path in endpoints:
            raise HandlerModuleError(
                f"{file} and {endpoints[endpoint.path].source} both claim {endpoint.path}; change PATH in one."
            )
        endpoints[endpoint.path] = endpoint
    return list(endpoints.values())


def domains_for(endpoints: Iterable[Endpoint]) -> list[str]:
    """The Hub webhook domains (`repo`, `discussion`) that the endpoints together need."""
    return list(dict.fromkeys(domain for endpoint in endpoints for domain in endpoint.events.domains))
