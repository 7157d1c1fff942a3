"""The worker layer: runs recorded events through their handlers, outside of any request.

`worker.py` is the worker (lanes, claims), `bulkhead.py`
each endpoint's share of the worker, `throttle.py` the bulkhead with each endpoint's `RATE_LIMIT`,
`invoke.py` calls one handler with the arguments it asks for, `threads.py` is where plain `def`
handlers run (and which of them outlive their attempt), and `outcome.py` is what an attempt ends
with, for the request that waits to answer with it.
"""

from .bulkhead import EndpointLoad
from .outcome import Outcome, OutcomeFuture
from .worker import Worker

__all__ = ["EndpointLoad", "Outcome", "OutcomeFuture", "Worker"]
