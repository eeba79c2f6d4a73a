"""What each GUI page shows, as plain values read from the store and the applied model.

Kept apart from HTTP and templates so the pages stay thin and each value is easy to test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.inspection.affected import affected_dataplanes
from reconciler.mesh.model import Dataplane, MeshModel
from reconciler.model import Resource
from reconciler.policies.core.match import PolicyIndex
from reconciler.store import ProxyStatus, Store
from reconciler.views.proxy import policy_indexes
from reconciler.xds_types import SHORT_NAMES, TYPE_ORDER

__all__ = ["XdsState", "DataplaneRow", "dataplane_rows", "header", "counts", "service_rows", "policy_rows", "mesh_rows", "endpoint_json"]


@dataclass(frozen=True, slots=True)
class XdsState:
    """One xDS type of one proxy: what was sent, what the proxy ACKed, its last NACK."""

    type: str
    sent: str
    acked: str
    state: str
    """ACK (the last response was accepted), NACK (rejected: `nack` says why), pending."""
    nack: str = ""
    nacks: int = 0


@dataclass(frozen=True, slots=True)
class DataplaneRow:
    mesh: str
    name: str
    source: str
    """git, registered (by run-dataplane, not in the repository), unknown (a proxy with no Dataplane)."""
    online: bool
    synced: bool
    revision: str
    xds: tuple[XdsState, ...] = ()
    inbounds: tuple[Mapping[str, Any], ...] = field(default=())
    outbounds: tuple[Mapping[str, Any], ...] = field(default=())


def _xds_states(proxy: ProxyStatus | None) -> tuple[XdsState, ...]:
    if proxy is None:
        return ()
    out = []
    for url in sorted(proxy.types, key=lambda u: TYPE_ORDER.index(u) if u in TYPE_ORDER else len(TYPE_ORDER)):
        t = proxy.types[url]
        if t.sent_version and t.acked_version == t.sent_version:
            state = "ACK"
        elif t.nacked_revision and t.nacked_revision == t.sent_revision:
            state = "NACK"
        else:
            state = "pending"
        out.append(XdsState(SHORT_NAMES.get(url, url), t.sent_version, t.acked_version, state, t.nack_message, t.nacks))
    return tuple(out)


def dataplane_rows(store: Store) -> list[DataplaneRow]:
    """Every dataplane in the applied model and every proxy that connected, by mesh and name."""
    rows = []
    for dp in store.dataplanes():
        proxy = store.proxies.get(dp["node"])
        rows.append(
            DataplaneRow(
                mesh=dp["mesh"],
                name=dp["name"],
                source=dp["source"],
                online=dp["connected"],
                synced=dp["synced"],
                revision=proxy.revision if proxy else "",
                xds=_xds_states(proxy),
                inbounds=tuple(dp["inbounds"]),
                outbounds=tuple(dp["outbounds"]),
            )
        )
    return sorted(rows, key=lambda r: (r.mesh, r.name))


def header(store: Store) -> dict[str, Any]:
    """The status strip at the top of every page: Ready, what is served, the pin."""
    status = store.status()
    ready = next((c for c in status["conditions"] if c["type"] == "Ready"), {"status": "Unknown", "reason": "", "message": ""})
    return {
        "ready": ready,
        "served": status["lastAppliedRevision"],
        "pinned": status["pinnedRevision"],
        "reconciling": any(c["type"] == "Reconciling" for c in status["conditions"]),
        "conditions": status["conditions"],
        "status": status,
    }


def counts(store: Store) -> dict[str, int]:
    model = store.applied.model if store.applied else None
    return {
        "meshes": len(model.meshes) if model else 0,
        "dataplanes": len(model.dataplanes) if model else 0,
        "online": len(store.connected()),
        "services": len(model.services) if model else 0,
        "policies": sum(1 for _ in _served(policy_indexes(model))) if model else 0,
        "resources": len(store.applied.snapshot) if store.applied else 0,
    }


def endpoint_json(e: Any) -> dict[str, Any]:
    return {"address": e.address, "port": e.port, "dataplane": e.dataplane, "tags": dict(e.tags)}


def service_rows(model: MeshModel | None, mesh: str | None = None) -> list[dict[str, Any]]:
    """kuma.io/service names and MeshService ports, each with its endpoints."""
    if model is None:
        return []
    rows = []
    for (service_mesh, _), s in model.services.items():
        if mesh is not None and service_mesh != mesh:
            continue
        rows.append(
            {
                "mesh": s.mesh,
                "name": s.mesh_service or s.name,
                "kind": "MeshService" if s.mesh_service else "kuma.io/service",
                "port": s.port or None,
                "portName": s.port_name,
                "protocol": s.protocol,
                "endpoints": [endpoint_json(e) for e in s.endpoints],
            }
        )
    return sorted(rows, key=lambda r: (r["mesh"], r["kind"], r["name"], r["port"] or 0))


def _served(indexes: Mapping[str, PolicyIndex]) -> Iterator[Resource]:
    """The policies serving applies: each mesh's committed ones and the Kuma defaults it keeps."""
    return (p for index in indexes.values() for kind in index.by_kind.values() for p in kind)


def policy_rows(model: MeshModel | None, mesh: str | None = None) -> list[dict[str, Any]]:
    """Every policy serving applies (committed, and Kuma's defaults of each mesh that keeps them)
    with the dataplanes its top-level targetRef selects. It matches every policy against every
    dataplane: callers run it off the event loop."""
    if model is None:
        return []
    indexes = policy_indexes(model)  # once, not once per policy
    rows = []
    for policy in _served(indexes):
        if mesh is not None and policy.mesh != mesh:
            continue
        index = indexes[policy.mesh]
        affected: list[Dataplane] = affected_dataplanes(model, policy, index)
        origin = policy.origin
        rows.append(
            {
                "type": policy.type,
                "mesh": policy.mesh,
                "name": policy.name,
                "file": origin.file if origin else "",
                "line": origin.line if origin else 0,
                "default": origin is None,
                "affected": [dp.name for dp in affected],
            }
        )
    return sorted(rows, key=lambda r: (r["mesh"], r["type"], r["name"]))


def mesh_rows(store: Store) -> list[dict[str, Any]]:
    model = store.applied.model if store.applied else None
    if model is None:
        return []
    dataplanes = Counter(dp.mesh for dp in model.dataplanes.values())
    online = Counter(p.node_id.partition(".")[0] for p in store.connected())
    services = Counter(mesh for mesh, _ in model.services)
    policies = Counter(p.mesh for p in _served(policy_indexes(model)))
    rows = []
    for name, info in sorted(model.meshes.items()):
        spec = info.resource.spec
        mtls = spec.get("mtls") or {}
        rows.append(
            {
                "name": name,
                "mtls": mtls.get("enabledBackend", ""),
                "dataplanes": dataplanes[name],
                "online": online[name],
                "services": services[name],
                "policies": policies[name],
                "file": info.resource.origin.file if info.resource.origin else "",
            }
        )
    return rows
