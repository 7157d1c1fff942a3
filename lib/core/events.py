"""Which events an endpoint wants: the filter a handler module declares as `EVENTS = Events(...)`.

Events an endpoint does not want are still acknowledged (2xx) and recorded as skipped: the Hub
sends whatever the webhook watches, and refusing it would count towards suspension.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from .errors import ConfigurationError
from .payload import KNOWN_REPO_TYPES, WebhookPayload, scope_matches

KNOWN_ACTIONS_BY_SCOPE: dict[str, frozenset[str]] = {
    "repo": frozenset({"create", "delete", "update", "move"}),
    "repo.content": frozenset({"update"}),
    "repo.config": frozenset({"update"}),
    "discussion": frozenset({"create", "delete", "update"}),
    "discussion.comment": frozenset({"create", "update"}),
}
KNOWN_ACTIONS = frozenset().union(*KNOWN_ACTIONS_BY_SCOPE.values())
DOMAIN_OF_SCOPE = {"repo": "repo", "discussion": "discussion"}
"""The Hub's webhook 'domains' (what to tick in the settings) by the first segment of a scope."""


def _as_tuple(value: str | Iterable[str] | None, name: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    values = (value,) if isinstance(value, str) else tuple(value)
    if not values:
        raise ConfigurationError(f"Events({name}=[]) can never match; leave {name} out to accept any.")
    for item in values:
        if not isinstance(item, str) or not item.strip():
            raise ConfigurationError(f"Events({name}=...) items must be non-empty strings, got {item!r}.")
    return values


@dataclass(frozen=True, init=False)
class Events:
    """The events an endpoint wants; any argument left out accepts everything.

    Args:
        scope: one or more scopes, matched by prefix as the Hub documents (`"repo"` also takes
            `repo.content` and `repo.config`).
        action: one or more actions (`create`, `update`, `delete`, `move`).
        repo_type: one or more of `model`, `dataset`, `space`.
        repo: one or more repo names, shell-style patterns allowed (`"my-org/*"`).

    Raises:
        ConfigurationError: the filter can never match (an empty list, an unknown repo type, a
            known action that no wanted scope ever has), so the app refuses to start with it. A
            scope or action the Hub is not known to send is accepted: see `unknown_values`.

    Example:
        ```python
        EVENTS = Events(scope="repo.content", repo_type="model", repo="my-org/*")
        ```
    """

    scopes: tuple[str, ...] | None
    actions: tuple[str, ...] | None
    repo_types: tuple[str, ...] | None
    repos: tuple[str, ...] | None

    def __init__(
        self,
        *,
        scope: str | Iterable[str] | None = None,
        action: str | Iterable[str] | None = None,
        repo_type: str | Iterable[str] | None = None,
        repo: str | Iterable[str] | None = None,
    ) -> None:
        object.__setattr__(self, "scopes", _as_tuple(scope, "scope"))
        object.__setattr__(self, "actions", _as_tuple(action, "action"))
        object.__setattr__(self, "repo_types", _as_tuple(repo_type, "repo_type"))
        object.__setattr__(self, "repos", _as_tuple(repo, "repo"))
        self._check_can_match()

    def _check_can_match(self) -> None:
        for scope in self.scopes or ():
            if scope.split(".")[0] not in DOMAIN_OF_SCOPE:
                raise ConfigurationError(
                    f"Events(scope={scope!r}) can never match: Hub scopes start with "
                    f"{' or '.join(repr(d) for d in DOMAIN_OF_SCOPE)} (e.g. 'repo.content', 'discussion.comment')"
                    + (f"; did you mean {close!r}?" if (close := _closest(scope, KNOWN_ACTIONS_BY_SCOPE)) else ".")
                )
        for repo_type in self.repo_types or ():
            if repo_type not in KNOWN_REPO_TYPES:
                raise ConfigurationError(
                    f"Events(repo_type={repo_type!r}) can never match: use one of {sorted(KNOWN_REPO_TYPES)}."
                )
        for pattern in self.repos or ():
            if "/" not in pattern:
                raise ConfigurationError(
                    f"Events(repo={pattern!r}) can never match: repo names are 'owner/name' (patterns like "
                    "'my-org/*' work)."
                )
        if self.actions is not None:
            possible = self._possible_actions()
            for action in self.actions:
                if action not in possible and action in KNOWN_ACTIONS:  # an unknown one is only warned about
                    raise ConfigurationError(
                        f"Events(action={action!r}) can never match the wanted scopes; possible actions are "
                        f"{sorted(possible)}."
                    )

    def _possible_actions(self) -> frozenset[str]:
        """Actions that some event within the wanted scopes can have."""
        possible: set[str] = set()
        for wanted in self.scopes or tuple(KNOWN_ACTIONS_BY_SCOPE):
            within = [known for known in KNOWN_ACTIONS_BY_SCOPE if scope_matches(known, wanted)]
            if not within:  # narrower than any scope we know (`repo.config.dois`): its parent's actions
                parents = [known for known in KNOWN_ACTIONS_BY_SCOPE if scope_matches(wanted, known)]
                within = [max(parents, key=len)] if parents else []
            for known in within:
                possible |= KNOWN_ACTIONS_BY_SCOPE[known]
        return frozenset(possible)

    def unknown_values(self) -> list[str]:
        """Scopes and actions the Hub is not known to send, each with the nearest known value.

        They are accepted, because the Hub adds scopes and actions over time, but most are typos
        (`repo.contents`) that would make the endpoint skip every event: the registry warns at start.
        A scope below a known one (`repo.config.dois`) is what the Hub says new scopes look like: not warned.
        """
        notes = []
        for scope in self.scopes or ():
            if not any(
                scope_matches(scope, known) for known in KNOWN_ACTIONS_BY_SCOPE if "." in known or known == scope
            ):
                notes.append(
                    f"scope {scope!r} is not one the Hub is known to send{_nearest(scope, KNOWN_ACTIONS_BY_SCOPE)}"
                )
        for action in self.actions or ():
            if action not in KNOWN_ACTIONS:
                notes.append(f"action {action!r} is not one the Hub is known to send{_nearest(action, KNOWN_ACTIONS)}")
        return notes

    def rejection(self, payload: WebhookPayload | None) -> str | None:
        """Why this filter does not want `payload`, or None if it does.

        None is a raw delivery (a body that is not a Hub payload): only a filter that wants every
        event takes it, since a filter names Hub events and a raw delivery is none.
        """
        if payload is None:
            return None if self.wants_everything else f"not a Hub event, and it wants {self.describe()}"
        event, repo = payload.event, payload.repo
        if self.scopes is not None and not any(scope_matches(event.scope, wanted) for wanted in self.scopes):
            return f"scope {event.scope!r} is not one of {list(self.scopes)}"
        if self.actions is not None and event.action not in self.actions:
            return f"action {event.action!r} is not one of {list(self.actions)}"
        if self.repo_types is not None and repo.type not in self.repo_types:
            return f"repo type {repo.type!r} is not one of {list(self.repo_types)}"
        if self.repos is not None and not any(fnmatchcase(repo.name, pattern) for pattern in self.repos):
            return f"repo {repo.name!r} matches none of {list(self.repos)}"
        return None

    @property
    def wants_everything(self) -> bool:
        """No filter at all: raw deliveries too."""
        return self.scopes is None and self.actions is None and self.repo_types is None and self.repos is None

    def accepts(self, payload: WebhookPayload) -> bool:
        return self.rejection(payload) is None

    @property
    def domains(self) -> tuple[str, ...]:
        """The Hub webhook domains to tick for this filter (`repo`, `discussion`)."""
        if self.scopes is None:
            return tuple(DOMAIN_OF_SCOPE.values())
        return tuple(dict.fromkeys(DOMAIN_OF_SCOPE[scope.split(".")[0]] for scope in self.scopes))

    def describe(self) -> str:
        """One line for the landing page: what this endpoint reacts to."""
        parts = []
        if self.scopes is not None:
            parts.append("scope " + " or ".join(self.scopes))
        if self.actions is not None:
            parts.append("action " + " or ".join(self.actions))
        if self.repo_types is not None:
            parts.append("repo type " + " or ".join(self.repo_types))
        if self.repos is not None:
            parts.append("repo " + " or ".join(self.repos))
        return ", ".join(parts) if parts else "every event"


def _closest(value: str, known: Iterable[str]) -> str | None:
    """The known value `value` is most likely a typo of, if any is close."""
    close = difflib.get_close_matches(value, sorted(known), n=1)
    return close[0] if close else None


def _nearest(value: str, known: Iterable[str]) -> str:
    """`; did you mean 'x'?` with the closest known value, or the list of them when none is close."""
    close = _closest(value, known)
    return f"; did you mean {close!r}?" if close else f" (known: {', '.join(sorted(known))})."


ALL_EVENTS = Events()
