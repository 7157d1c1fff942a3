"""Commands: `python -m lib.send` posts a realistic event to an endpoint, `python -m lib.job` runs a
handler inside a Hub Job on the payload the Hub gave it.
"""
