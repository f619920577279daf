"""Which of a device's announced addresses to stream to, best first (pure).

Address rule (`choose_address`), in order:
1. the first routable IPv4 address (not loopback 127/8, not link-local 169.254/16, not 0.0.0.0);
2. the first routable IPv6 address (not ``::1``, not link-local ``fe80::/10``: those need a scope
   id that a TXT-derived record does not carry);
3. a loopback address, but only when every usable address is loopback. Such a record can only
   have come from a receiver on this very host announcing on ``lo`` (our tests, a local
   shairport-sync), so loopback is the one path that reaches it. When a routable address exists,
   a loopback address next to it is never chosen: it would point at ourselves, not the device.
Link-local addresses are never chosen. No usable address → ``None`` (the device is skipped).
Given the networks of the interfaces mDNS runs on (where the service was seen), an address on
one of them comes before all others: a receiver seen on one link and also announcing an address
of another link is dialled on the link that carried its announcement. `rank_addresses` gives the
whole order; the streamer falls back to the next address when one does not answer.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterable


def choose_address(addresses: Iterable[str], local_networks: Iterable[str] = ()) -> str | None:
    """Pick the address to stream to, by the rule in the module docstring."""
    ranked = rank_addresses(addresses, local_networks)
    return ranked[0] if ranked else None


def rank_addresses(addresses: Iterable[str], local_networks: Iterable[str] = ()) -> tuple[str, ...]:
    """Every usable address, best first (the module docstring's rule; ties keep their order).

    `local_networks`: ``"192.0.2.0/24"``-style networks of the interfaces mDNS runs on.
    """
    networks = []
    for text in local_networks:
        with contextlib.suppress(ValueError):
            networks.append(ipaddress.ip_network(text, strict=False))
    on_link: list[tuple[int, str]] = []
    routable: list[tuple[int, str]] = []
    loopback: list[tuple[int, str]] = []
    for text in addresses:
        try:
            address = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            continue
        if address.is_unspecified or address.is_multicast or address.is_link_local:
            continue
        entry = (address.version, str(address))
        if address.is_loopback:
            loopback.append(entry)
        elif any(address in network for network in networks):
            on_link.append(entry)
        else:
            routable.append(entry)
    if on_link or routable:  # loopback only when nothing else: it would point at ourselves
        chosen = sorted(on_link, key=lambda e: e[0]) + sorted(routable, key=lambda e: e[0])
    else:
        chosen = sorted(loopback, key=lambda e: e[0])
    return tuple(dict.fromkeys(text for _, text in chosen))
