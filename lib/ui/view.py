"""`ServerView`: the part of the webhooks server the landing page and the console may use.

The ui sits on top of the receiver, but it needs only a handful of the server's members: its
settings and endpoints to describe, its URLs to show, its journal to read and replay, a way to
wake the worker after a replay, and one to cancel an event's Hub Job. Naming exactly those here
keeps the ui from reaching into the server's machinery (the worker, uvicorn, the tunnel), and lets
`lib.ui` be written, read and tested without importing `lib.receiver`. `WebhooksServer` satisfies
it (a test checks that every member below exists on one), and so can any stand-in a test or
another server builds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from ..core.registry import Endpoint
from ..core.settings import Settings
from ..journal import JobRecord, Journal
from ..ops import Monitoring
from ..worker import EndpointLoad


@runtime_checkable
class ServerView(Protocol):
    """What the ui reads from the server and the two things it asks of it (waking the worker, cancelling a job)."""

    @property
    def settings(self) -> Settings:
        """The configuration: secrets (whether set, and the values to send test events with), the
        Space's id and host, journal path and limits, retry count, acknowledgement budget."""
        ...

    @property
    def endpoints(self) -> Mapping[str, Endpoint]:
        """Every registered endpoint by path (`/webhooks/<name>`), in registration order."""
        ...

    @property
    def journal(self) -> Journal:
        """The event journal the console lists, inspects and replays events from."""
        ...

    @property
    def local_url(self) -> str | None:
        """Where this process serves (`http://127.0.0.1:7860`), None until launched: test events go there."""
        ...

    @property
    def share_url(self) -> str | None:
        """The temporary public URL of the share tunnel, if one is open: the page warns about it."""
        ...

    def public_url(self) -> str:
        """Where the Hub must send events: the Space's URL, else the share tunnel, else the local URL."""
        ...

    def webhook_urls(self) -> dict[str, str]:
        """Each endpoint's full public URL, by path: what to paste into the Hub's webhook settings."""
        ...

    @property
    def monitoring(self) -> Monitoring:
        """The metrics and alerts: the Health tab shows the open problems and each alert target (`alerts_view`)."""
        ...

    def worker_load(self) -> Mapping[str, EndpointLoad]:
        """What each endpoint holds of the worker now: attempts running, handler threads still running
        past their timeout, and its share; empty while no worker runs. The console's Health tab shows it."""
        ...

    async def cancel_job(self, event_id: int) -> JobRecord:
        """Cancel the running Hub Job of an event on the Hub (the console's Cancel); its event then ends dead.

        Raises `JobNotRunning` (no worker, no job, or it has ended) or `JobLaunchError` (the Hub refused).
        """
        ...

    def wake_worker(self) -> None:
        """Have the worker look at the journal now rather than at its next poll (after a replay).

        Called from the server's event loop; does nothing while no worker runs.
        """
        ...
