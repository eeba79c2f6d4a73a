"""Go's net and net/url parsers, as Kuma's validators call them, and govalidator's IsDNSName.

Kuma's messages depend on exactly what these accept: `net.ParseIP` refuses zones and
leading zeros, `net.SplitHostPort` accepts any port text, `url.ParseRequestURI` wants an
absolute URL or path. Each function names the Go function it mirrors.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

__all__ = ["IP", "parse_ip", "is_go_ip", "is_dns_name", "split_host_port", "parse_request_uri"]

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(value: Any) -> IP | None:
    """Go's net.ParseIP: dotted IPv4 (no leading zeros) or IPv6 without a zone."""
    if not isinstance(value, str) or not value or "%" in value:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def is_go_ip(value: Any) -> bool:
    return parse_ip(value) is not None


_DNS_NAME = re.compile(r"([a-zA-Z0-9_][a-zA-Z0-9_-]{0,62})(\.[a-zA-Z0-9_][a-zA-Z0-9_-]{0,62})*[._]?")


def is_dns_name(value: Any) -> bool:
    """govalidator.IsDNSName, which Kuma uses for proxy addresses and CA secret names."""
    if not isinstance(value, str) or not value or len(value.replace(".", "")) > 255:
        return False
    return parse_ip(value) is None and _DNS_NAME.fullmatch(value) is not None


def split_host_port(value: str) -> tuple[str, str] | None:
    """Go's net.SplitHostPort: (host, port), or None when it fails. The port may be any text."""
    i = value.rfind(":")
    if i < 0:
        return None
    j = k = 0
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or end + 1 != i:
            return None
        host = value[1:end]
        j, k = 1, end + 1
    else:
        host = value[:i]
        if ":" in host:
            return None
    if "[" in value[j:] or "]" in value[k:]:
        return None
    return host, value[i + 1 :]


_SCHEME_CHARS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_HEX = "0123456789abcdefABCDEF"
_HOST_SAFE = set("!$&'()*+,;=:[]<>\"-_.~")


def _valid_escapes(value: str) -> bool:
    """Every `%` starts a two-digit hex escape, as Go's URL parser requires."""
    i = 0
    while i < len(value):
        if value[i] == "%":
            pair = value[i + 1 : i + 3]
            if len(pair) < 2 or any(c not in _HEX for c in pair):
                return False
            i += 3
        else:
            i += 1
    return True


def _valid_host(host: str) -> bool:
    if host.startswith("["):
        end = host.rfind("]")
        if end < 0 or not _valid_optional_port(host[end + 1 :]):
            return False
    else:
        colon = host.rfind(":")
        if colon >= 0 and not _valid_optional_port(host[colon:]):
            return False
    if not _valid_escapes(host):
        return False
    return all(c.isalnum() or c in _HOST_SAFE or c == "%" or ord(c) >= 0x80 for c in host)


def _valid_optional_port(port: str) -> bool:
    return port == "" or (port[0] == ":" and all(c.isdigit() and c.isascii() for c in port[1:]))


def _port_of(host: str) -> str:
    colon = host.rfind(":")
    if colon >= 0 and _valid_optional_port(host[colon:]):
        return host[colon + 1 :]
    return ""


def parse_request_uri(value: str) -> tuple[bool, str]:
    """Go's url.ParseRequestURI: (accepted, port of the host). An absolute URL or an absolute path."""
    if not value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return False, ""
    if value == "*":
        return True, ""
    scheme, rest = "", value
    if ":" in value:
        m = _SCHEME_CHARS.match(value)
        if value[0] == ":":
            return False, ""  # missing protocol scheme
        if m is not None and m.end() < len(value) and value[m.end()] == ":":
            scheme, rest = value[: m.end()], value[m.end() + 1 :]
    if rest.endswith("?") and rest.count("?") == 1:
        rest = rest[:-1]
    else:
        rest = rest.partition("?")[0]
    if not rest.startswith("/"):
        return (True, "") if scheme else (False, "")
    host = ""
    if scheme and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        rest = slash + path
        host = authority.rpartition("@")[2]
        if not _valid_host(host):
            return False, ""
    if not _valid_escapes(rest):
        return False, ""
    return True, _port_of(host)
