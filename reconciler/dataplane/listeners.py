"""How many addresses a dataplane's Envoy listens on: what its open files grow with.

Each inbound and each outbound is one listening address, whichever way the listeners are
shaped (one listener per address, or one listener with additional addresses: Envoy opens a
socket per address and worker either way). A builtin gateway listens where its MeshGateway
says, which only the control plane knows: its generated listeners are counted instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["listeners_of_spec", "listeners_of_api_entry", "listeners_of_config", "is_builtin_gateway"]


def is_builtin_gateway(spec: Mapping[str, Any]) -> bool:
    gateway = (spec.get("networking") or {}).get("gateway") or {}
    return bool(gateway) and str(gateway.get("type") or "DELEGATED").upper() == "BUILTIN"


def listeners_of_spec(spec: Mapping[str, Any]) -> int | None:
    """Addresses of a Dataplane spec; None for a builtin gateway (its MeshGateway decides)."""
    if is_builtin_gateway(spec):
        return None
    networking = spec.get("networking") or {}
    return len(networking.get("inbound") or ()) + len(networking.get("outbound") or ())


def listeners_of_api_entry(entry: Mapping[str, Any]) -> int | None:
    """Addresses of a `GET /dataplanes/{mesh}/{name}` answer; None when it lists none, as for a
    builtin gateway (then listeners_of_config on its generated config tells)."""
    count = len(entry.get("inbounds") or ()) + len(entry.get("outbounds") or ())
    return count or None


def listeners_of_config(doc: Mapping[str, Any]) -> int:
    """Addresses of the listeners in a `GET /config/{mesh}/{name}` answer (API listeners bind nothing)."""
    count = 0
    for listener in (doc.get("resources") or {}).get("LDS") or ():
        if listener.get("address"):
            count += 1 + len(listener.get("additionalAddresses") or ())
    return count
