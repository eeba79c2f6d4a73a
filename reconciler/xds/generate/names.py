"""Resource names, following Kuma's (legacy, non-unified) naming so that MeshProxyPatch and
dashboards written for Kuma find the same names. See docs/xds.md.

| resource                      | name                                   |
| ----------------------------- | -------------------------------------- |
| inbound listener              | `inbound:<address>:<port>`             |
| inbound route configuration   | `inbound:<service>` (inline)           |
| local (application) cluster   | `localhost:<servicePort>`              |
| outbound listener             | `outbound:<address>:<port>`            |
| outbound route configuration  | `outbound:<service>` (inline)          |
| outbound cluster, endpoints   | `<service>` (MeshService: `<mesh>_<name>___msvc_<port>`) |
| gRPC API listener             | `<service>`                            |
| passthrough listener, cluster | `outbound:passthrough:ipv4`, `inbound:passthrough:ipv4` (and `ipv6`); transparent.py |
"""

from __future__ import annotations

__all__ = [
    "inbound_listener",
    "inbound_route",
    "local_cluster",
    "outbound_listener",
    "outbound_route",
    "stat_prefix",
]


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def inbound_listener(address: str, port: int) -> str:
    return f"inbound:{_host(address)}:{port}"


def inbound_route(service: str) -> str:
    return f"inbound:{service}"


def local_cluster(service_port: int) -> str:
    return f"localhost:{service_port}"


def outbound_listener(address: str, port: int) -> str:
    return f"outbound:{_host(address)}:{port}"


def outbound_route(cluster: str) -> str:
    return f"outbound:{cluster}"


def stat_prefix(name: str) -> str:
    """Envoy stat prefixes cannot contain ':' or '.' usefully; Kuma uses '_'."""
    return "".join(c if c.isalnum() or c in "-" else "_" for c in name)
