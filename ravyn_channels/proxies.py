"""The client's address behind reverse proxies you trust, and only those.

``X-Forwarded-For`` is a list each proxy appends to: ``client, proxy1, proxy2``.
Everything left of the entry your own proxy added was written by the client,
so ``daphne --proxy-headers`` (which takes the leftmost entry) believes a
client that sends ``X-Forwarded-For: 10.0.0.5``. With
``RAVYN_CHANNELS["TRUSTED_PROXIES"]`` (addresses or networks of your proxies),
:func:`client_address` starts from the TCP peer and walks the list from the
right, skipping trusted proxies: the first address that is not one of yours is
the client (uvicorn's ``--forwarded-allow-ips`` rule). A peer that is not a
trusted proxy is the client, whatever it sends.

The TCP peer comes from the daphne adapter (``PEER_KEY`` in the scope), else
from ``scope["client"]``: with ``PATCH_DAPHNE = False``, do not combine
``TRUSTED_PROXIES`` with ``daphne --proxy-headers``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from .conf import get_settings
from .websocket import Address

__all__ = ["PEER_KEY", "client_address", "parse_networks"]

#: Scope key where the daphne adapter keeps the TCP peer (daphne --proxy-headers rewrites ``client``).
PEER_KEY = "ravyn_channels.peer"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Sequence[str]) -> tuple[Network, ...]:
    """``["10.0.0.1", "172.16.0.0/12", "::1"]`` as networks; ``ValueError`` names a bad entry."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"TRUSTED_PROXIES entry {entry!r} is not an IP address or network (e.g. '10.0.0.1', '10.0.0.0/8')"
            ) from None
    return tuple(networks)


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    try:
        return parse_networks(entries)
    except ValueError:
        return ()  # reported by the system check ravyn_channels.E022; trust nobody meanwhile


def _trusted(host: str, networks: tuple[Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(host.strip().strip("[]"))
    except ValueError:
        return False
    return any(address in network for network in networks)


def _forwarded_for(headers: Sequence[tuple[bytes, bytes]]) -> list[str]:
    entries: list[str] = []
    for name, value in headers:
        if name.lower() == b"x-forwarded-for":
            entries.extend(part.strip() for part in value.decode("latin-1").split(","))
    return [entry for entry in entries if entry]


def client_address(scope: Mapping[str, Any]) -> Address | None:
    """The client's address for ``scope``, trusting ``X-Forwarded-For`` only from ``TRUSTED_PROXIES``.

    Without ``TRUSTED_PROXIES`` it is the server's ``scope["client"]``. The port
    of a forwarded address is unknown and given as 0.
    """
    client = scope.get("client")
    entries = tuple(get_settings().TRUSTED_PROXIES)
    if not entries:
        return Address(str(client[0]), int(client[1])) if client else None
    peer = scope.get(PEER_KEY) or client
    if not peer:
        return None
    networks = _networks(entries)
    host = str(peer[0])
    if not _trusted(host, networks):
        return Address(host, int(peer[1]))
    forwarded = _forwarded_for(scope.get("headers", ()))
    while forwarded:
        host = forwarded.pop()
        if not _trusted(host, networks):
            return Address(host, 0)
    return Address(host, 0) if host != str(peer[0]) else Address(host, int(peer[1]))
