"""The worker layer: runs recorded events through their handlers, outside of any request.

`worker.py` is the worker (lanes, claims, retries), `invoke.py` calls one handler with the
arguments it asks for, `threads.py` is where plain `def` handlers run, and `outcome.py` is what an
attempt ends with, for the request that waits to answer with it.
"""

from .outcome import Outcome, OutcomeFuture
from .worker import Worker

__all__ = ["Outcome", "OutcomeFuture", "Worker"]
