"""MeshPassthrough's `appendMatch` as Envoy filter chain matchers, in Kuma's order.

Envoy picks a filter chain by the most specific destination port first, then address, then
server name or application protocol, so the order of the chains only matters between chains
Envoy considers equally specific; Kuma still orders them, and we keep its order so that
configs compare equal with Kuma's (v2.14.3 `plugin/xds/order.go`):

- each match is one matcher, except that HTTP, HTTP/2 and gRPC domains of one port share a
  matcher (one HTTP connection manager with a virtual host per domain);
- a match without a port is repeated for every port another match names: Envoy chooses the
  port before anything else, so a connection to such a port would otherwise never reach the
  port-less chain;
- matchers sort by protocol (tls and mysql, tcp, http, http2, grpc), then by kind (IPv6 IPs,
  IPs, IPv6 CIDRs, CIDRs, domains, wildcard domains), then by port (highest first), then
  domains with more labels first, CIDRs with longer prefixes first, IPs in reverse text order.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MatchType", "Route", "FilterChainMatch", "ordered_matchers", "network_of", "HTTP_PROTOCOLS"]

HTTP_PROTOCOLS = ("http", "http2", "grpc")

# Kuma's protocolOrder; mysql is not listed there, so it sorts as 0 like tls.
_PROTOCOL_ORDER = {"tls": 0, "tcp": 1, "http": 2, "http2": 3, "grpc": 4}


class MatchType(enum.IntEnum):
    """Kuma's match kinds; the values are Kuma's, and the sort uses them (higher first)."""

    WILDCARD_DOMAIN = 1
    DOMAIN = 2
    CIDR = 3
    CIDR_V6 = 4
    IP = 5
    IP_V6 = 6


@dataclass(frozen=True, slots=True)
class Route:
    """One domain of an HTTP matcher: a virtual host."""

    value: str
    match_type: MatchType


@dataclass(frozen=True, slots=True)
class FilterChainMatch:
    """One filter chain of the passthrough listener."""

    protocol: str
    port: int
    """0: every port."""
    match_type: MatchType
    value: str
    """The IP, CIDR or domain; empty for an HTTP matcher of domains (see `routes`)."""
    routes: tuple[Route, ...] = ()


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


def _match_type(match: Mapping[str, Any], protocol: str) -> tuple[MatchType, bool]:
    """The match's kind, and whether it is a wildcard domain of an HTTP protocol (those stay
    `DOMAIN` for the matcher, as they share the port's HTTP connection manager)."""
    kind = match.get("type")
    value = str(match.get("value") or "")
    if kind == "Domain":
        if value.startswith("*"):
            if protocol in HTTP_PROTOCOLS:
                return MatchType.DOMAIN, True
            return MatchType.WILDCARD_DOMAIN, False
        return MatchType.DOMAIN, False
    if kind == "IP":
        return (MatchType.IP_V6 if _is_ipv6(value) else MatchType.IP), False
    return (MatchType.CIDR_V6 if _is_ipv6(value.split("/")[0]) else MatchType.CIDR), False


def network_of(cidr: str) -> tuple[str, int]:
    """The network address and prefix length of a CIDR, as Go's net.ParseCIDR gives them
    (`172.12.2.2/24` is `172.12.2.0`, 24); ("", 0) when it does not parse."""
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return "", 0
    return str(network.network_address), network.prefixlen


def _more_labels_first(a: str, b: str) -> int:
    """Kuma's sortDomains as a comparison: more labels first, then by text."""
    la, lb = len(a.split(".")), len(b.split("."))
    if la != lb:
        return -1 if la > lb else 1
    return -1 if a < b else (1 if a > b else 0)


def _compare(a: FilterChainMatch, b: FilterChainMatch) -> int:
    pa, pb = _PROTOCOL_ORDER.get(a.protocol, 0), _PROTOCOL_ORDER.get(b.protocol, 0)
    if pa != pb:
        return -1 if pa < pb else 1
    if a.match_type != b.match_type:
        return -1 if a.match_type > b.match_type else 1
    if a.port != b.port:
        return -1 if a.port > b.port else 1
    if a.match_type in (MatchType.DOMAIN, MatchType.WILDCARD_DOMAIN):
        return _more_labels_first(a.value, b.value)
    if a.match_type in (MatchType.CIDR, MatchType.CIDR_V6):
        (ia, la), (ib, lb) = network_of(a.value), network_of(b.value)
        if la == lb:
            return -1 if ia > ib else (1 if ia < ib else 0)
        return -1 if la > lb else 1
    if a.match_type in (MatchType.IP, MatchType.IP_V6):
        return -1 if a.value > b.value else (1 if a.value < b.value else 0)
    return len(b.routes) - len(a.routes)


def _ordered_routes(routes: Iterable[Route]) -> tuple[Route, ...]:
    def compare(a: Route, b: Route) -> int:
        if a.match_type != b.match_type:
            return -1 if a.match_type > b.match_type else 1
        return _more_labels_first(a.value, b.value)

    return tuple(sorted(routes, key=functools.cmp_to_key(compare)))


_Key = tuple[str, int, MatchType, str]
"""(protocol, port, match type, value): what makes a matcher distinct (Kuma's Matcher)."""


def ordered_matchers(matches: Iterable[Mapping[str, Any]]) -> list[FilterChainMatch]:
    """The filter chain matchers of a merged `appendMatch`, in Kuma's order.

    Raises ValueError when one port mixes HTTP, HTTP/2 and gRPC (validation rejects such a
    policy; merged policies can still combine them, and Kuma then fails the proxy's config).
    """
    routes_of: dict[_Key, set[Route]] = {}
    protocols_of_port: dict[int, set[str]] = {}
    for match in matches:
        port = int(match.get("port") or 0)
        protocol = str(match.get("protocol") or "tcp").lower()
        match_type, wildcard = _match_type(match, protocol)
        value = str(match.get("value") or "")
        protocols_of_port.setdefault(port, set()).add(protocol)
        if protocol in HTTP_PROTOCOLS and match_type == MatchType.DOMAIN:
            route = Route(value, MatchType.WILDCARD_DOMAIN if wildcard else MatchType.DOMAIN)
            routes_of.setdefault((protocol, port, match_type, ""), set()).add(route)
        else:
            routes_of[(protocol, port, match_type, value)] = set()
    mixed = sorted(port for port, protocols in protocols_of_port.items() if len(protocols & set(HTTP_PROTOCOLS)) > 1)
    if mixed:
        raise ValueError("; ".join(f"you cannot configure http, http2, grpc on the same port {port}" for port in mixed))
    expanded: dict[_Key, set[Route]] = {}
    for key, routes in routes_of.items():
        expanded.setdefault(key, set()).update(routes)
        protocol, port, match_type, value = key
        if port == 0:
            for other in protocols_of_port:
                if other != 0:
                    expanded.setdefault((protocol, other, match_type, value), set()).update(routes)
    chains = [FilterChainMatch(k[0], k[1], k[2], k[3], _ordered_routes(r)) for k, r in expanded.items()]
    # Kuma sorts a Go map's entries, so its order of matchers the comparison calls equal (two
    # CIDRs naming one network) is arbitrary; sorting by the raw fields first makes ours stable.
    chains.sort(key=lambda c: (c.protocol, c.port, int(c.match_type), c.value))
    chains.sort(key=functools.cmp_to_key(_compare))
    return chains
