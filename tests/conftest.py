import sys
from pathlib import Path

# Tests import the project's `lib` and their own helper modules (apprunner, fakehub) by name.
TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS.parent), str(TESTS)]
