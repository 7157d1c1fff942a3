import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests import the project's `lib` and their own helper modules (apprunner, fakehub) by name.
TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS.parent), str(TESTS)]

from apprunner import free_port  # noqa: E402
from pg_server import PostgresServer, postgres_server  # noqa: E402


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (`@pytest.mark.anyio`) run on asyncio, the loop the server runs on."""
    return "asyncio"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the whole run, started on first use (see `pg_server.py`)."""
    with postgres_server(free_port()) as server:
        yield server
