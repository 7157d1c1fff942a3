"""Which address a request came from: the socket's peer, or the address a trusted proxy saw.

A proxy appends the address it received the request from to `X-Forwarded-For`. Everything to the
left of that entry is whatever the client sent: anyone can write `X-Forwarded-For: 1.2.3.4`. So
the header is read from the right, and only as far as proxies we trust wrote it:

- the socket's peer is not a trusted proxy: the peer is the client, whatever the header says;
- it is one: the client is the rightmost entry that is not itself a trusted proxy's address (with
  one proxy, the entry that proxy added); when every entry is a trusted proxy, the leftmost.

`FORWARDED_ALLOW_IPS` lists the trusted proxies, as uvicorn reads it: addresses and networks,
comma-separated. `*` trusts whichever peer connects as one proxy, and no entry of the header, so
the rightmost entry is the client. uvicorn's own `*` takes the leftmost entry instead, which is
the one the client chooses. Inside a Space the default is `*`, because every request reaches the
container through the Hub's proxy, from an internal address not known in advance. Elsewhere the
default is the loopback addresses: a proxy on the same machine, such as Gradio's share tunnel,
whose client connects from there and appends the visitor's address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ANY_PEER = "*"
LOOPBACK = "127.0.0.1,::1"
"""Where no proxy is expected: only one on this machine is trusted (uvicorn's default too)."""
MAX_HOST_CHARS = 100
"""An entry that is no address is kept as text, cut to this length (the header's size is capped upstream)."""


def default_trusted_proxies(*, in_space: bool) -> str:
    """`FORWARDED_ALLOW_IPS` when it is unset: any peer inside a Space (the Hub's proxy), loopback elsewhere."""
    return ANY_PEER if in_space else LOOPBACK


def parse_address(host: str | None) -> Address | None:
    """`host` as an IP address (an IPv4-mapped IPv6 address as IPv4), or None when it is not one."""
    try:
        address = ipaddress.ip_address((host or "").strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def entry_host(entry: str) -> str:
    """The host of one `X-Forwarded-For` entry, without a port: `1.2.3.4:80` and `[::1]:80` appear too."""
    entry = entry.strip()
    if entry.startswith("["):
        end = entry.find("]")
        return entry[1:end] if end > 0 else entry
    if entry.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has several colons
        return entry.split(":")[0]
    return entry


@dataclass(frozen=True)
class TrustedProxies:
    """The proxies whose `X-Forwarded-For` entries are believed (`FORWARDED_ALLOW_IPS`, parsed)."""

    any_peer: bool
    """`*`: whichever peer connects is a proxy (only its own entry, the rightmost, is believed)."""
    networks: tuple[Network, ...]

    @classmethod
    def parse(cls, spec: str) -> TrustedProxies:
        """Read `127.0.0.1, 10.0.0.0/8` or `*`.

        Raises:
            ValueError: an item is neither `*`, an IP address nor a network; the message names it.
        """
        items = [item.strip() for item in spec.split(",") if item.strip()]
        networks = []
        for item in items:
            if item == ANY_PEER:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"{item!r} is neither an IP address nor a network such as 10.0.0.0/8") from None
        return cls(any_peer=ANY_PEER in items, networks=tuple(networks))

    def listed(self, host: str | None) -> bool:
        """Whether `host` is the address of a listed proxy (`*` lists none)."""
        address = parse_address(host)
        return address is not None and any(address in network for network in self.networks)

    def trusts_peer(self, peer: str | None) -> bool:
        """Whether the socket's peer is a proxy whose `X-Forwarded-For` entry can be believed."""
        return self.any_peer or self.listed(peer)


def client_address(peer: str | None, forwarded_for: str | None, trusted: TrustedProxies) -> str | None:
    """The address the first trusted proxy saw the request come from; `peer` when no trusted proxy says.

    Args:
        peer: the socket's peer address (`scope["client"][0]`), None when unknown.
        forwarded_for: every `X-Forwarded-For` header of the request, joined with commas.
        trusted: the proxies to believe.

    Example:
        >>> proxies = TrustedProxies.parse("10.0.0.1")
        >>> client_address("10.0.0.1", "6.6.6.6, 203.0.113.7", proxies)  # the client wrote 6.6.6.6
        '203.0.113.7'
        >>> client_address("198.51.100.2", "6.6.6.6", proxies)  # not a proxy: its header is its own
        '198.51.100.2'
    """
    if not forwarded_for or not trusted.trusts_peer(peer):
        return peer
    hops = [host for host in (entry_host(entry) for entry in forwarded_for.split(",")) if host]
    if not hops:
        return peer
    for host in reversed(hops):
        if not trusted.listed(host):
            return _normalized(host)
    return _normalized(hops[0])


def _normalized(host: str) -> str:
    address = parse_address(host)
    return str(address) if address is not None else host[:MAX_HOST_CHARS]
