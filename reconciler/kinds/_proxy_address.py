"""A proxy's address and its admin port, checked the same way for Dataplanes and zone proxies."""

from __future__ import annotations

import ipaddress
from typing import Any

from reconciler.errors import Path, Violation
from reconciler.gocompat.net import IP, is_dns_name, is_go_ip, parse_ip
from reconciler.kinds._protojson import text

__all__ = ["LOOPBACK", "check_proxy_address", "admin_port_clashes", "ip_overlaps"]

LOOPBACK = ipaddress.IPv4Address("127.0.0.1")
"""Envoy's admin API listens on localhost; its port must not be taken there."""


def _canonical(ip: IP) -> IP:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def ip_overlaps(address: IP, other: IP | None) -> bool:
    """Kuma's overlap(): equal IPs, or either side a wildcard (0.0.0.0, ::)."""
    if other is None:
        return False
    a, b = _canonical(address), _canonical(other)
    return a.is_unspecified or b.is_unspecified or a == b


def check_proxy_address(address: Any, path: Path, *, required: bool = True) -> list[Violation]:
    """Kuma's validateAddress for a proxy: an IP or DNS name, never a wildcard."""
    value = text(address)
    if not value:
        return [Violation(path, "address can't be empty")] if required else []
    out = []
    if value in ("0.0.0.0", "::"):
        out.append(Violation(path, "must not be 0.0.0.0 or ::"))
    if not is_go_ip(value) and not is_dns_name(value):
        out.append(Violation(path, "address has to be valid IP address or domain name"))
    return out


def admin_port_clashes(admin_port: int, interfaces: list[tuple[str, int]]) -> bool:
    """Does the admin port on 127.0.0.1 collide with any (address, port) listener?"""
    return any(port == admin_port and ip_overlaps(LOOPBACK, parse_ip(address)) for address, port in interfaces)
