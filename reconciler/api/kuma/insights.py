"""Kuma's insights, counted afresh from the served commit and the proxies connected now (Kuma
recomputes stored MeshInsight and ServiceInsight resources in the background; the rules are its
pkg/insights resyncer's):

- a dataplane is `online` when its proxy is connected and every inbound is ready, `partiallyDegraded`
  when connected with some (not all) inbounds not ready, `offline` otherwise (not connected, or no
  inbound ready); a gateway is online exactly while connected;
- a service (`kuma.io/service` of an inbound, or of a gateway) counts its dataplanes online or
  not (a partially degraded one counts as offline), and is `online` when all are, `offline` when
  none is, `partially_degraded` otherwise. A mesh with `meshServices.mode: Exclusive` has
  MeshServices instead: only delegated gateways are counted there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.api.kuma.catalog import Catalog
from reconciler.api.kuma.descriptors import descriptor_of
from reconciler.model import Resource
from reconciler.store import ProxyStatus, Store

__all__ = ["dp_state", "gateway_type", "ServiceStat", "service_stats", "mesh_insight_json", "stat", "exclusive_services"]

ONLINE, OFFLINE, DEGRADED = "online", "offline", "partiallyDegraded"


def _networking(resource: Resource) -> Mapping[str, Any]:
    networking = resource.spec.get("networking")
    return networking if isinstance(networking, Mapping) else {}


def gateway_type(resource: Resource) -> str:
    """`builtin`, `delegated` (Kuma's default type), or "" for a dataplane that is no gateway."""
    gateway = _networking(resource).get("gateway")
    if not isinstance(gateway, Mapping):
        return ""
    return "builtin" if str(gateway.get("type") or "DELEGATED").upper() == "BUILTIN" else "delegated"


def dp_state(resource: Resource, proxy: ProxyStatus | None) -> str:
    connected = proxy is not None and proxy.connected
    networking = _networking(resource)
    if gateway_type(resource):
        return ONLINE if connected else OFFLINE
    inbounds = [i for i in networking.get("inbound") or () if isinstance(i, Mapping)]
    listeners = [x for x in networking.get("listeners") or () if isinstance(x, Mapping)]
    ready = sum(
        1
        for i in inbounds
        if i.get("state") != "NotReady" and not (isinstance(i.get("health"), Mapping) and i["health"].get("ready") is False)
    )
    ready += sum(1 for x in listeners if x.get("state") == "Ready")
    if not connected or ready == 0:
        return OFFLINE
    return DEGRADED if ready < len(inbounds) + len(listeners) else ONLINE


def stat() -> dict[str, int]:
    return {"total": 0, "online": 0, "offline": 0, "partiallyDegraded": 0}


def _count(into: dict[str, int], state: str) -> None:
    into[state] += 1
    into["total"] += 1


def exclusive_services(catalog: Catalog, mesh: str) -> bool:
    resource = catalog.get("Mesh", "", mesh)
    services = resource.spec.get("meshServices") if resource is not None else None
    return isinstance(services, Mapping) and services.get("mode") == "Exclusive"


@dataclass
class ServiceStat:
    service_type: str
    """Kuma's ServiceInsight type: `internal`, `gateway_builtin`, `gateway_delegated`."""
    online: int = 0
    offline: int = 0
    issued_backends: dict[str, int] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.online == 0:
            return "offline"
        return "online" if self.offline == 0 else "partially_degraded"


def service_stats(store: Store, catalog: Catalog, mesh: str) -> dict[str, ServiceStat]:
    """The `kuma.io/service` services of a mesh, as Kuma's ServiceInsight counts them."""
    exclusive = exclusive_services(catalog, mesh)
    backend = _mtls_backend(catalog, mesh)
    out: dict[str, ServiceStat] = {}

    def add(kind: str, name: str, state: str, connected: bool) -> None:
        if not name:
            return
        entry = out.setdefault(name, ServiceStat(kind))
        if state == ONLINE:
            entry.online += 1
        else:
            entry.offline += 1
        if backend and connected:
            entry.issued_backends[backend] = entry.issued_backends.get(backend, 0) + 1

    for dp in catalog.of("Dataplane", mesh):
        proxy = store.proxies.get(f"{dp.mesh}.{dp.name}")
        state, connected = dp_state(dp, proxy), proxy is not None and proxy.connected
        networking = _networking(dp)
        gateway = gateway_type(dp)
        if gateway:
            if not exclusive or gateway == "delegated":
                tags = networking["gateway"].get("tags") or {}
                add(f"gateway_{gateway}", str(tags.get("kuma.io/service", "")), state, connected)
            continue
        if exclusive:
            continue
        for inbound in networking.get("inbound") or ():
            if isinstance(inbound, Mapping) and inbound.get("state") != "Ignored":
                add("internal", str((inbound.get("tags") or {}).get("kuma.io/service", "")), state, connected)
    return out


def _mtls_backend(catalog: Catalog, mesh: str) -> str:
    resource = catalog.get("Mesh", "", mesh)
    mtls = resource.spec.get("mtls") if resource is not None else None
    return str(mtls.get("enabledBackend") or "") if isinstance(mtls, Mapping) else ""


def mesh_insight_json(store: Store, catalog: Catalog, mesh: str) -> dict[str, Any]:
    """Kuma's MeshInsight fields (without the resource's metadata)."""
    dataplanes = stat()
    by_type = {"standard": stat(), "gateway": stat(), "gatewayBuiltin": stat(), "gatewayDelegated": stat()}
    versions = stat()  # Kuma's "unknown" version: proxies' versions are not recorded here
    backend = _mtls_backend(catalog, mesh)
    issued: dict[str, dict[str, int]] = {}
    services: set[str] = set()
    for dp in catalog.of("Dataplane", mesh):
        proxy = store.proxies.get(f"{dp.mesh}.{dp.name}")
        state = dp_state(dp, proxy)
        _count(dataplanes, state)
        gateway = gateway_type(dp)
        _count(by_type[{"builtin": "gatewayBuiltin", "delegated": "gatewayDelegated"}.get(gateway, "standard")], state)
        if gateway:
            _count(by_type["gateway"], state)
        versions[state] += 1
        if backend and proxy is not None and proxy.connected:
            _count(issued.setdefault(backend, stat()), state)
        networking = _networking(dp)
        if gateway:
            services.add(str((networking["gateway"].get("tags") or {}).get("kuma.io/service", "")))
        else:
            services.update(
                str((i.get("tags") or {}).get("kuma.io/service", ""))
                for i in networking.get("inbound") or ()
                if isinstance(i, Mapping) and i.get("state") != "Ignored"
            )
    versions["total"] = versions[ONLINE] + versions[OFFLINE]  # as Kuma sums them
    resources: dict[str, dict[str, int]] = {}
    policies: dict[str, dict[str, int]] = {}
    for kind, items in sorted(catalog.by_kind.items()):
        descriptor = descriptor_of(kind)
        count = sum(1 for r in items if r.mesh == mesh)
        if descriptor is None or descriptor.global_scope or not count:
            continue
        resources[kind] = {"total": count}
        if descriptor.policy is not None:
            policies[kind] = {"total": count}
    out: dict[str, Any] = {
        "dataplanes": dataplanes,
        "policies": policies,
        "dpVersions": {"kumaDp": {"unknown": versions}, "envoy": {"unknown": dict(versions)}} if dataplanes["total"] else {},
        "mTLS": {"issuedBackends": issued, "supportedBackends": {k: dict(v) for k, v in issued.items()}},
        "dataplanesByType": by_type,
        "resources": resources,
    }
    if not exclusive_services(catalog, mesh):  # Kuma reports no kuma.io/service count next to MeshServices
        services.discard("")
        out["services"] = {"total": len(services), "internal": len(services), "external": 0}
    return out
