"""The page's client address and scheme, from the headers of a trusted proxy only.

What uvicorn's `ProxyHeadersMiddleware` does, with one difference: for `FORWARDED_ALLOW_IPS=*`
uvicorn takes the leftmost `X-Forwarded-For` entry, which the client writes, while here `*` means
"whichever peer connects is a proxy", and the client is the entry that proxy added, the rightmost
(`lib.core.forwarded` says which address is trusted when). Inside a Space that is the default, so
the console's unlock limits (`lib.ui.access`) count each visitor apart, and a stranger cannot
choose the address his guesses are counted against.

Only the page goes through it: a delivery never uses the client's address.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from ..core.forwarded import TrustedProxies, client_address

SCHEMES = {"http", "https", "ws", "wss"}


class ProxyHeaders:
    """ASGI middleware: `scope["client"]` and `scope["scheme"]` as the first trusted proxy saw them.

    Args:
        app: the page (FastAPI with Gradio mounted).
        trusted: the proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed.
    """

    def __init__(self, app: ASGIApp, *, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            peer_host = peer[0] if peer else None
            if self.trusted.trusts_peer(peer_host):
                forwarded: list[str] = []
                proto = None
                for name, value in scope["headers"]:
                    if name == b"x-forwarded-for":
                        forwarded.append(value.decode("latin-1"))
                    elif name == b"x-forwarded-proto":
                        proto = value.decode("latin-1").strip()
                if proto in SCHEMES:
                    scope["scheme"] = proto.replace("http", "ws") if scope["type"] == "websocket" else proto
                host = client_address(peer_host, ", ".join(forwarded), self.trusted)
                if host and host != peer_host:
                    scope["client"] = (host, 0)
        await self.app(scope, receive, send)
