import sys
from pathlib import Path

import pytest

# Tests import the project's `lib` and their own helper modules (apprunner, fakehub) by name.
TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS.parent), str(TESTS)]


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (`@pytest.mark.anyio`) run on asyncio, the loop the server runs on."""
    return "asyncio"
