"""A Dataplane's `networking.transparentProxying` as the data plane sees it, and the DNS records
its sidecar answers. Kuma's Universal transparent proxy: iptables sends the workload's
outbound TCP to `redirectPortOutbound` and inbound to `redirectPortInbound`, and the sidecar
reaches mesh destinations by their VIPs (docs/networking.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.frozen import FrozenDict

__all__ = ["BackendRef", "Redirect", "DnsRecord", "redirect_from_spec"]

BackendRef = tuple[str, str, int, Mapping[str, str]]
"""A `reachableBackends.refs` entry: (kind, name, port or 0 for every port, labels)."""


@dataclass(frozen=True, slots=True)
class Redirect:
    """`networking.transparentProxying` of a Dataplane: where iptables sends its traffic, and
    which mesh destinations it reaches by VIP (docs/networking.md)."""

    inbound_port: int = 15006
    outbound_port: int = 15001
    ip_family_mode: str = "DualStack"
    reachable_services: tuple[str, ...] | None = None
    """`reachableServices`: only these kuma.io/service names get virtual outbounds (None: all)."""
    reachable_backends: tuple[BackendRef, ...] | None = None
    """`reachableBackends.refs`: only these MeshService, MeshExternalService,
    MeshMultiZoneService (ports) get virtual outbounds (None: all)."""


@dataclass(frozen=True, slots=True)
class DnsRecord:
    """One name the sidecar's DNS proxy answers, with its VIPs (Kuma's dpapi.DNSRecord)."""

    name: str
    ips: tuple[str, ...]


def _either(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    return obj.get(camel) if obj.get(camel) is not None else obj.get(snake)


def redirect_from_spec(tp: Any) -> Redirect | None:
    """A validated `transparentProxying` (either spelling of its fields) with Kuma's defaults."""
    if not isinstance(tp, Mapping):
        return None
    services = _either(tp, "reachableServices", "reachable_services")
    backends = _either(tp, "reachableBackends", "reachable_backends")
    refs: tuple[BackendRef, ...] | None = None
    if isinstance(backends, Mapping):
        refs = tuple(
            (
                str(r.get("kind") or ""),
                str(r.get("name") or ""),
                int(r.get("port") or 0),
                FrozenDict({str(k): str(v) for k, v in (r.get("labels") or {}).items()}),
            )
            for r in backends.get("refs") or ()
            if isinstance(r, Mapping)
        )
    return Redirect(
        inbound_port=int(_either(tp, "redirectPortInbound", "redirect_port_inbound") or 15006),
        outbound_port=int(_either(tp, "redirectPortOutbound", "redirect_port_outbound") or 15001),
        ip_family_mode=str(_either(tp, "ipFamilyMode", "ip_family_mode") or "DualStack"),
        reachable_services=tuple(str(s) for s in services) if isinstance(services, list | tuple) else None,
        reachable_backends=refs,
    )
