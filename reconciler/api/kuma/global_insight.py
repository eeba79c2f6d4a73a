"""`GET /global-insight`: Kuma's GlobalInsight, summed over the meshes' insights (insights.py)
as Kuma sums its stored MeshInsights and ServiceInsights.

- dataplanes: standard, builtin gateways, delegated gateways; each online, offline, partially
  degraded and total;
- services: per ServiceInsight type (`internal`, `gatewayBuiltin`, `gatewayDelegated`) online,
  offline, partially degraded and total; `external` is 0 (no ExternalServices here);
- policies: every policy resource (Kuma's defaults included); meshes: their number;
- resources: per kind, how many (Kuma leaves out Mesh, ZoneIngress and ZoneEgress here, which
  have their own counts, and kinds with none);
- zones: one zone control plane, this one, online; zone proxies are never online here.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from reconciler.api.kuma.catalog import Catalog
from reconciler.api.kuma.descriptors import descriptor_of
from reconciler.api.kuma.insights import dp_state, gateway_type, service_stats, stat
from reconciler.api.kuma.shapes import rfc3339
from reconciler.store import Store

__all__ = ["global_insight_json"]

_OWN_COUNTS = ("Mesh", "ZoneIngress", "ZoneEgress")
_SERVICE_GROUPS = {"internal": "internal", "gateway_builtin": "gatewayBuiltin", "gateway_delegated": "gatewayDelegated"}
_STATES = {"online": "online", "offline": "offline", "partially_degraded": "partiallyDegraded"}


def global_insight_json(store: Store, catalog: Catalog) -> dict[str, Any]:
    dataplanes = {"standard": stat(), "gatewayBuiltin": stat(), "gatewayDelegated": stat()}
    for dp in catalog.of("Dataplane"):
        group = {"builtin": "gatewayBuiltin", "delegated": "gatewayDelegated"}.get(gateway_type(dp), "standard")
        dataplanes[group][dp_state(dp, store.proxies.get(f"{dp.mesh}.{dp.name}"))] += 1
        dataplanes[group]["total"] += 1
    services: dict[str, Any] = {
        "total": 0,
        "internal": stat(),
        "external": {"total": 0},
        "gatewayBuiltin": stat(),
        "gatewayDelegated": stat(),
    }
    for mesh in sorted(catalog.meshes()):
        for service in service_stats(store, catalog, mesh).values():
            group = services[_SERVICE_GROUPS[service.service_type]]
            group[_STATES[service.status]] += 1
            group["total"] += 1
            services["total"] += 1
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
        "services": services,
        "zones": {"controlPlanes": {"online": 1, "total": 1}, **zone_proxies},
        "dataplanes": dataplanes,
        "policies": {"total": policies},
        "meshes": {"total": len(catalog.meshes())},
        "resources": {kind: {"total": n} for kind, n in sorted(counts.items())},
    }
