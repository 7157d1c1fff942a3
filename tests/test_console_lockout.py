"""A stranger without the secret cannot lock the operator out of the console.

Wrong secrets are counted per client, by the address the trusted proxy saw: the entry the Hub's
proxy adds to `X-Forwarded-For` in a Space, the socket's peer where no proxy is trusted. Nothing
the client chooses (its own `X-Forwarded-For` entries) moves that address. Checked here on the
functions that decide the address and on the page's middleware.
"""

from __future__ import annotations

import pytest

from lib.core.forwarded import TrustedProxies, client_address, default_trusted_proxies
from lib.receiver.proxy_headers import ProxyHeaders

# --- which address is trusted when ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "client"),
    [
        # No trusted proxy in front: the peer is the client, whatever its header says.
        ("203.0.113.7", "198.51.100.1", "10.0.0.1", "203.0.113.7"),
        ("127.0.0.1", "198.51.100.1", "", "127.0.0.1"),
        # A trusted proxy: the entry it added, the rightmost; the client wrote the others.
        ("10.0.0.1", "198.51.100.1", "10.0.0.1", "198.51.100.1"),
        ("10.0.0.1", "6.6.6.6, 10.0.0.1, 198.51.100.1", "10.0.0.1", "198.51.100.1"),
        ("10.0.0.1", "", "10.0.0.1", "10.0.0.1"),
        ("10.0.0.1", None, "10.0.0.1", "10.0.0.1"),
        # Several trusted proxies (a network): read leftwards past each, up to the first stranger.
        ("10.9.9.9", "6.6.6.6, 198.51.100.1, 10.0.0.2", "10.0.0.0/8", "198.51.100.1"),
        ("10.9.9.9", "10.0.0.5, 10.0.0.2", "10.0.0.0/8", "10.0.0.5"),
        # `*` (a Space): whichever peer connects is one proxy, and no entry is one, not even loopback.
        ("172.16.5.4", "6.6.6.6, 198.51.100.1", "*", "198.51.100.1"),
        ("172.16.5.4", "198.51.100.1, 127.0.0.1", "*", "127.0.0.1"),
        ("172.16.5.4", None, "*", "172.16.5.4"),
        # How entries are written: ports, brackets, IPv4-mapped IPv6, text that is no address.
        ("10.0.0.1", "198.51.100.1:4711", "10.0.0.1", "198.51.100.1"),
        ("10.0.0.1", "[2001:db8::1]:4711", "10.0.0.1", "2001:db8::1"),
        ("10.0.0.1", "::ffff:198.51.100.1", "10.0.0.1", "198.51.100.1"),
        ("10.0.0.1", "6.6.6.6, unknown", "10.0.0.1", "unknown"),
        ("10.0.0.1", "198.51.100.1, , ", "10.0.0.1", "198.51.100.1"),
        (None, "198.51.100.1", "10.0.0.1", None),
    ],
)
def test_the_client_is_the_address_the_first_trusted_proxy_saw(
    peer: str | None, forwarded_for: str | None, trusted: str, client: str | None
) -> None:
    assert client_address(peer, forwarded_for, TrustedProxies.parse(trusted)) == client


def test_inside_a_space_any_peer_is_the_proxy_and_elsewhere_only_loopback() -> None:
    assert default_trusted_proxies(in_space=True) == "*"
    assert TrustedProxies.parse(default_trusted_proxies(in_space=False)).networks == (
        TrustedProxies.parse("127.0.0.1/32, ::1/128").networks
    )
    with pytest.raises(ValueError, match=r"'proxy\.internal' is neither an IP address nor a network"):
        TrustedProxies.parse("10.0.0.1, proxy.internal")


async def seen_by_the_page(peer: str, headers: list[tuple[str, str]], trusted: str) -> tuple[str, str]:
    """(client host, scheme) as the page behind `ProxyHeaders` sees a request from `peer`."""
    seen = {}

    async def page(scope, receive, send) -> None:
        seen.update(client=scope["client"][0], scheme=scope["scheme"])

    scope = {
        "type": "http",
        "scheme": "http",
        "client": (peer, 50000),
        "headers": [(name.encode(), value.encode()) for name, value in headers],
    }
    await ProxyHeaders(page, trusted=TrustedProxies.parse(trusted))(scope, None, None)
    return seen["client"], seen["scheme"]


@pytest.mark.anyio
async def test_the_page_sees_the_client_the_proxy_saw_and_a_strangers_headers_change_nothing() -> None:
    forwarded = [("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.1"), ("x-forwarded-proto", "https")]
    assert await seen_by_the_page("10.0.0.1", forwarded, "10.0.0.1") == ("198.51.100.1", "https")
    assert await seen_by_the_page("10.0.0.1", forwarded, "*") == ("198.51.100.1", "https")
    assert await seen_by_the_page("203.0.113.7", forwarded, "10.0.0.1") == ("203.0.113.7", "http")
    assert await seen_by_the_page("10.0.0.1", [("x-forwarded-proto", "gopher")], "10.0.0.1") == ("10.0.0.1", "http")
