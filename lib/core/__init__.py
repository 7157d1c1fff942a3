"""The vocabulary every layer uses: payload models, the `EVENTS` filter, endpoints and handler
discovery, handler arguments, rate limits, settings, errors, logging, secrets, sample events.

It imports nothing of ours above it (`tests/test_architecture.py`), so any layer may use it.
"""
