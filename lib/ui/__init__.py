"""The Space's web page: the public landing page and the operator's locked console.

Typed against `view.ServerView` (what the page may use of the server), never against the
receiver's `WebhooksServer`. `landing` builds the page and puts `console` (one module per
section) in its last tab; the console's actions are in `console_actions` (pauses and bulk
replays in `console_operations`, the filters both read in `console_filters` and `time_range`),
behind the grant that `access` hands out, and how records read on screen is in `console_format`. `setup_steps` holds
the manual Hub setup both the landing page and the console show.
"""
