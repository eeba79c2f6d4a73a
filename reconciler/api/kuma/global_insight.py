"""`GET /global-insight`: Kuma's GlobalInsight, counted from the applied commit and the proxies
connected now (Kuma sums its periodically computed mesh and service insights; here each call
counts afresh).

- dataplanes: standard, builtin gateways, delegated gateways; each online, offline,
  partially degraded (online with an inbound not ready) and total;
- services: each `kuma.io/service` of the inbounds (internal) or gateways; online when all its
  dataplanes are, offline when none is, partially degraded otherwise;
- policies: every policy resource (Kuma's defaults included); meshes: their number;
- resources: per kind, how many (Kuma leaves out Mesh, ZoneIngress and ZoneEgress here, which
  have their own counts, and kinds with none);
- zones: one zone, this control plane, online.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from reconciler.api.kuma.catalog import Catalog
from reconciler.api.kuma.descriptors import descriptor_of
from reconciler.api.kuma.overview import dp_state
from reconciler.api.kuma.shapes import rfc3339
from reconciler.model import Resource
from reconciler.store import Store

__all__ = ["global_insight_json"]

_OWN_COUNTS = ("Mesh", "ZoneIngress", "ZoneEgress")


def _full() -> dict[str, int]:
    return {"online": 0, "offline": 0, "partiallyDegraded": 0, "total": 0}


def _gateway_type(resource: Resource) -> str:
    networking = resource.spec.get("networking")
    gateway = networking.get("gateway") if isinstance(networking, Mapping) else None
    if not isinstance(gateway, Mapping):
        return ""
    return "gatewayBuiltin" if str(gateway.get("type") or "DELEGATED").upper() == "BUILTIN" else "gatewayDelegated"


def _services_of(resource: Resource) -> list[str]:
    networking = resource.spec.get("networking")
    if not isinstance(networking, Mapping):
        return []
    gateway = networking.get("gateway")
    if isinstance(gateway, Mapping):
        tags = gateway.get("tags") or {}
        return [str(tags["kuma.io/service"])] if "kuma.io/service" in tags else []
    names = [str((i.get("tags") or {}).get("kuma.io/service", "")) for i in networking.get("inbound") or () if isinstance(i, Mapping)]
    return sorted({n for n in names if n})


def global_insight_json(store: Store, catalog: Catalog) -> dict[str, Any]:
    dataplanes = {"standard": _full(), "gatewayBuiltin": _full(), "gatewayDelegated": _full()}
    # (mesh, service) → (service type, states of its dataplanes)
    services: dict[tuple[str, str], tuple[str, list[str]]] = {}
    for dp in catalog.of("Dataplane"):
        state = dp_state(dp, store.proxies.get(f"{dp.mesh}.{dp.name}"))
        group = _gateway_type(dp) or "standard"
        dataplanes[group][state] += 1
        dataplanes[group]["total"] += 1
        for service in _services_of(dp):
            kind = "internal" if group == "standard" else group
            services.setdefault((dp.mesh, service), (kind, []))[1].append(state)
    service_stats: dict[str, Any] = {"total": 0, "internal": _full(), "external": {"total": 0}}
    service_stats["gatewayBuiltin"] = _full()
    service_stats["gatewayDelegated"] = _full()
    for kind, states in services.values():
        if all(s == "online" for s in states):
            state = "online"
        elif all(s == "offline" for s in states):
            state = "offline"
        else:
            state = "partiallyDegraded"
        service_stats[kind][state] += 1
        service_stats[kind]["total"] += 1
        service_stats["total"] += 1
    counts: dict[str, int] = defaultdict(int)
    policies = 0
    for kind, total in catalog.count().items():
        descriptor = descriptor_of(kind)
        if descriptor is not None and descriptor.policy is not None:
            policies += total
        if kind not in _OWN_COUNTS:
            counts[kind] += total
    zone_proxies = {
        key: {"online": 0, "total": len(catalog.of(kind))}
        for key, kind in (("zoneIngresses", "ZoneIngress"), ("zoneEgresses", "ZoneEgress"))
    }
    return {
        "createdAt": rfc3339(time.time()),
        "services": service_stats,
        "zones": {"controlPlanes": {"online": 1, "total": 1}, **zone_proxies},
        "dataplanes": dataplanes,
        "policies": {"total": policies},
        "meshes": {"total": len(catalog.meshes())},
        "resources": {kind: {"total": n} for kind, n in sorted(counts.items())},
    }
