"""MeshPassthrough: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A MeshPassthrough decides which traffic to destinations outside the mesh the selected
sidecars let through: all of it, none of it, or only the domains, IPs and CIDRs listed in
`appendMatch`. Each match is a listener on the proxy, so matches sharing a port must agree
on their protocol when it is an HTTP one, and a domain needs a protocol that carries a
host name (TLS SNI or HTTP Host).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from reconciler.checks import as_map, enumerate_list, get, must_be_one_of
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.model import Resource
from reconciler.policies.core.targetref import check_target_ref

__all__ = ["KIND", "validate", "TOP_LEVEL_KINDS", "PROTOCOLS"]

SPEC = Path.root("spec")

TOP_LEVEL_KINDS = ("Mesh", "MeshSubset", "Dataplane")
PROTOCOLS = ("tcp", "tls", "grpc", "http", "http2", "mysql")
_DEFAULT_PROTOCOL = "tcp"
# One port can carry several of these only if they all use the same one: each needs its
# own HTTP connection manager on the port's listener.
_L7_PROTOCOLS = ("grpc", "http", "http2")
_PARTIAL_WILDCARD = re.compile(r"\*[^.]+")
# govalidator.IsDNSName's pattern (labels of letters, digits, '_' and '-', up to 63 long).
_DNS_NAME = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9_-]{0,62}(?:\.[a-zA-Z0-9_][a-zA-Z0-9_-]{0,62})*[._]?")


def validate(resource: Resource) -> list[Violation]:
    """Every rule of Kuma's MeshPassthrough validator."""
    spec = as_map(resource.spec)
    out = Violations()
    out.extend(check_target_ref(spec.get("targetRef"), SPEC.field("targetRef"), TOP_LEVEL_KINDS))
    out.extend(_check_matches(get(spec, "default", "appendMatch"), SPEC.field("default").field("appendMatch")))
    return list(out)


def _check_matches(matches: Any, path: Path) -> list[Violation]:
    out: list[Violation] = []
    protocol_of_port: dict[int, Any] = {}
    values_of: dict[tuple[int, Any], set[Any]] = {}
    for item_path, match in enumerate_list(matches, path):
        match = as_map(match)
        port = match.get("port")
        if isinstance(port, bool) or not isinstance(port, int):
            port = None  # missing, or mistyped and reported by the schema
        protocol = match.get("protocol")
        if protocol is None:
            protocol = _DEFAULT_PROTOCOL
        value = match.get("value")
        if protocol == "mysql" and port is None and match.get("port") is None:
            out.append(Violation(item_path.field("port"), "port must be defined for Mysql protocol"))
        if port is not None:
            if not 1 <= port <= 65535:
                out.append(Violation(item_path.field("port"), "port must be a valid (1-65535)"))
            seen = protocol_of_port.get(port)
            if seen is not None and seen != protocol and protocol in _L7_PROTOCOLS:
                out.append(
                    Violation(
                        item_path.field("port"),
                        (
                            "using the same port in multiple matches requires the same protocol for the following "
                            f"protocols: [grpc http http2] (port {port} is already used with {seen})"
                        ),
                    )
                )
            else:
                protocol_of_port[port] = protocol
            values = values_of.setdefault((port, _hashable(protocol)), set())
            if _hashable(value) in values:
                out.append(Violation(item_path.field("value"), f"value {value} is already defined for this port and protocol"))
            values.add(_hashable(value))
        if protocol not in PROTOCOLS:
            out.append(Violation(item_path.field("protocol"), must_be_one_of("protocol", PROTOCOLS)))
        out += _check_value(match, item_path, port, protocol)
    return out


def _check_value(match: Mapping[str, Any], path: Path, port: int | None, protocol: Any) -> list[Violation]:
    kind = match.get("type")
    value = match.get("value")
    text = value if isinstance(value, str) else ""
    if kind == "CIDR":
        if _is_cidr(text):
            return []
        return [Violation(path.field("value"), "provided CIDR has incorrect value, expected an address and prefix length like 10.0.0.0/8")]
    if kind == "IP":
        return [] if _is_ip(text) else [Violation(path.field("value"), "provided IP has incorrect value")]
    if kind == "Domain":
        out: list[Violation] = []
        if protocol in ("tcp", "mysql"):
            # Plain TCP carries no host name, so the proxy could not tell domains apart.
            out.append(
                Violation(path.field("protocol"), f"protocol {protocol} is not supported for a domain; use tls, http, http2 or grpc")
            )
        if _PARTIAL_WILDCARD.match(text):
            out.append(Violation(path.field("value"), "provided DNS has incorrect value, partial wildcard is currently not supported"))
        if port is None and match.get("port") is None and text.startswith("*") and protocol in _L7_PROTOCOLS:
            out.append(Violation(path.field("port"), "wildcard domains doesn't work for all ports and layer 7 protocol; set a port"))
        name = text[2:] if text.startswith("*.") else text
        if not name.startswith("*") and not _is_dns_name(name):
            out.append(Violation(path.field("value"), "provided DNS has incorrect value"))
        return out
    return [Violation(path.field("type"), f"provided type {_text(kind)} is not supported, one of Domain, IP, or CIDR is supported")]


def _is_ip(text: str) -> bool:
    """Go's net.ParseIP: an IPv4 or IPv6 address, without a zone."""
    if "%" in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_cidr(text: str) -> bool:
    """Go's net.ParseCIDR: an address, '/', and a decimal prefix length that fits it."""
    address, slash, bits = text.partition("/")
    if not slash or not _is_ip(address) or not bits.isascii() or not bits.isdigit():
        return False
    return int(bits) <= ipaddress.ip_address(address).max_prefixlen


def _is_dns_name(text: str) -> bool:
    """govalidator.IsDNSName: not an IP, at most 255 characters besides dots, valid labels."""
    if text == "" or len(text.replace(".", "")) > 255:
        return False
    return not _is_ip(text) and bool(_DNS_NAME.fullmatch(text))


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


KIND = Kind(name="MeshPassthrough", policy=True, short_name="mp", validate=validate)
