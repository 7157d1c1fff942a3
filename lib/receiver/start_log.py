"""What `launch()` logs once it listens: each webhook's URL, and what to do with them.

The first lines are the reference's ("Webhooks are correctly setup and ready to use:"), so a script
ported from it prints what its author expects. A local URL is never sent to the Hub's settings: the
Hub cannot reach it, and the two ways to a public URL are said instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from ..hub.setup_guide import HUB_WEBHOOK_SETTINGS, WAYS_OUT, hub_can_reach


def log_start(
    logger: logging.Logger,
    urls: Iterable[str],
    *,
    public_url: str,
    local_url: str | None,
    journal_path: Path,
    in_space: bool,
) -> None:
    """One INFO record: the URLs, where to set them up (or why not), and locally the page and the journal."""
    lines = [f"  - POST {url}" for url in urls] or ["  (no webhook registered)"]
    # Multi-line arguments each start a line of the format: the log keeps their lines (lib/core/logs.py).
    message, args = "Webhooks are correctly setup and ready to use:\n%s", ["\n".join(lines)]
    if hub_can_reach(public_url):
        message += "\nGo to %s to set up your webhooks."
        args.append(HUB_WEBHOOK_SETTINGS)
    else:  # never send anyone to paste 127.0.0.1 into the Hub
        message += "\nThese URLs only work on this machine: the Hub cannot reach them. Two ways out:\n%s"
        args.append("\n".join(WAYS_OUT).replace("**", ""))
    if not in_space:
        message += "\nThe landing page is at %s\nEvents are journaled in %s (DATA_DIR to choose another folder)."
        args += [local_url, journal_path]
    logger.info(message, *args)
