"""Reaching the journal's database: what a `DATABASE_URL` may show of itself, and its errors as 503s.

The URL holds a password. It is parsed by psycopg's own `conninfo_to_dict`, never by hand, and only
the host, port and database name are ever shown (logs, the landing page, the console, errors). Any
error text that reaches us is scrubbed of the password too, in case a driver or a server echoes it.
"""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import PoolTimeout

from ...core.errors import ConfigurationError, JournalUnavailable

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
CONNECT_TIMEOUT_SECONDS = 5
"""How long one connection attempt may take: a delivery waiting on it is answered 503 after this."""


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and url.strip().lower().startswith(POSTGRES_SCHEMES)  # type: ignore[union-attr]


class DatabaseTarget:
    """A `DATABASE_URL`, held without ever showing its password.

    Raises:
        ConfigurationError: the URL cannot be parsed (the message shows no part of it).
    """

    def __init__(self, url: str) -> None:
        try:
            params = conninfo_to_dict(url.strip())
        except psycopg.ProgrammingError:
            raise ConfigurationError(
                "DATABASE_URL is not a valid PostgreSQL URL; expected postgresql://user:password@host:5432/database."
            ) from None
        self._password = str(params.get("password") or "")
        params.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
        params.setdefault("application_name", "hub-webhooks")
        self._conninfo = make_conninfo(**params)
        host, port = params.get("host") or "localhost", params.get("port") or "5432"
        self.description = f"{host}:{port}/{params.get('dbname') or params.get('user') or ''}"
        """Host, port and database: all that is ever shown of the URL."""

    @property
    def conninfo(self) -> str:
        """The connection string to hand to psycopg; never to log or show."""
        return self._conninfo

    def __repr__(self) -> str:
        return f"DatabaseTarget({self.description!r})"

    def scrub(self, text: str) -> str:
        """`text` without the password, should a driver or server message have echoed it."""
        return text.replace(self._password, "***") if self._password else text

    def unavailable(self, exc: BaseException, doing: str) -> JournalUnavailable:
        """The 503 for a database error met while `doing` something: what, where, and why, without secrets."""
        if isinstance(exc, PoolTimeout):
            why = "no connection to it could be had in time (is it down or unreachable?)"
        else:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            why = self.scrub(first_line)[:300]
        return JournalUnavailable(f"The event journal's database ({self.description}) cannot {doing}: {why}.")
