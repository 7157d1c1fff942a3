"""What each parameter of a handler receives, worked out once when the handler is registered.

Handlers written for `huggingface_hub.WebhooksServer` were FastAPI routes: they could ask for the
payload (any pydantic model, or a plain dict), `request: Request` and `BackgroundTasks`. The
signature is read once, at registration, so a parameter we cannot supply fails at start instead of
on the first event; `lib.worker.invoke` fills the plan for each attempt.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import BackgroundTasks, Request
from pydantic import BaseModel

from .errors import ConfigurationError
from .payload import WebhookPayload


@dataclass(frozen=True)
class Argument:
    """How to fill one parameter of a handler."""

    name: str
    kind: typing.Literal["model", "dict", "request", "background_tasks"]
    model: type[BaseModel] | None = None


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except Exception:  # unresolvable forward references: fall back to names
        return {}


def plan_arguments(func: Callable[..., Any], *, where: str) -> tuple[Argument, ...]:
    """Work out, once, what each parameter of `func` receives.

    Raises:
        ConfigurationError: a parameter without a default that we have nothing to give.
    """
    hints = _hints(func)
    plan = []
    for parameter in inspect.signature(func).parameters.values():
        annotation = hints.get(parameter.name, parameter.annotation)
        if (isinstance(annotation, type) and issubclass(annotation, Request)) or parameter.name == "request":
            plan.append(Argument(parameter.name, "request"))
        elif isinstance(annotation, type) and issubclass(annotation, BackgroundTasks):
            plan.append(Argument(parameter.name, "background_tasks"))
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            plan.append(Argument(parameter.name, "model", annotation))
        elif annotation is dict or typing.get_origin(annotation) is dict:
            plan.append(Argument(parameter.name, "dict"))
        elif parameter.name == "payload" or (not plan and parameter.default is inspect.Parameter.empty):
            plan.append(Argument(parameter.name, "model", WebhookPayload))
        elif parameter.default is inspect.Parameter.empty and parameter.kind not in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            raise ConfigurationError(
                f"{where}: parameter {parameter.name!r} cannot be supplied. A handler may ask for the payload "
                "(e.g. `payload: WebhookPayload`), `request: Request` and `background_tasks: BackgroundTasks`; "
                "give other parameters a default."
            )
    return tuple(plan)


def takes_payload(plan: tuple[Argument, ...]) -> bool:
    """Whether a handler asks for the payload (as a model or a dict).

    One that does not (only `request`, or nothing) is called for any authenticated POST, an empty
    body included, as the reference calls it: it was a FastAPI route that never read a body.
    """
    return any(argument.kind in ("model", "dict") for argument in plan)
