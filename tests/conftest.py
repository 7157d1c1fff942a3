from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from fakehub import FakeHub

# Tests import the project's `lib` and their own helper modules (apprunner, fakehub) by name.
TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS.parent), str(TESTS)]

if TYPE_CHECKING:
    from pg_server import PostgresServer


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (`@pytest.mark.anyio`) run on asyncio, the loop the server runs on."""
    return "asyncio"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the whole run, started on first use (see `pg_server.py`)."""
    from apprunner import free_port
    from pg_server import postgres_server

    with postgres_server(free_port()) as server:
        yield server


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    """A local fake Hub for one test module (`tests/fakehub.py`), checked at the end for its own crashes.

    A module that needs another kind (one per test, or its own users first) defines its own `hub`.
    """
    from fakehub import start_fake_hub

    with start_fake_hub() as running:
        yield running
    assert not running.errors, "the fake Hub crashed:\n" + "\n".join(running.errors)
