"""The Hugging Face Hub as handlers and the console meet it: `hub_client()` and the ledger of the
commits it makes, the loop guard that skips our own commits coming back, and webhook registration.
"""
