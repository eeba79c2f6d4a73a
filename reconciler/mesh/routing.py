"""Where an outbound's traffic goes: its HTTP routes or TCP split, and the clusters they need.

`backendRefs` (MeshHTTPRoute, MeshTCPRoute, RequestMirror) name:
- `MeshService` by name — a `kuma.io/service`, cluster `<service>`;
- `MeshService` with a `port` — a real MeshService port, cluster `<mesh>_<name>___msvc_<port>`;
- `MeshServiceSubset` by name and tags — the service's endpoints whose tags match, in a
  cluster of their own, `<service>-<hash of the tags>` (Kuma's subset clusters);
- `MeshExternalService` by name — the external service's cluster.
A weight defaults to 1; backends with weight 0 get no traffic. A backendRef naming nothing
the mesh has, or a destination that does not speak HTTP (`http_backend` false), is left out
of an HTTP route, as Kuma's HTTP split leaves it out; a rule left with no backend is no route
at all, so its requests fall through to the next matching route (Kuma's unresolvable-backend
golden).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.frozen import FrozenDict
from reconciler.mesh.model import HTTP_PROTOCOLS, SERVICE_TAG, Endpoint, MeshModel, Service, mesh_service_cluster_name

__all__ = ["BackendCluster", "WeightedCluster", "RouteView", "http_backend", "resolve_backend", "subset_cluster_name"]

Confs = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class BackendCluster:
    """A cluster (with its endpoints) that a route sends to, besides the outbound's own."""

    name: str
    service_name: str
    protocol: str
    endpoints: tuple[Endpoint, ...]
    confs: Confs = field(default_factory=FrozenDict)
    identities: tuple[str, ...] = ()
    external: Mapping[str, Any] | None = None
    """The MeshExternalService spec, for external backends."""


@dataclass(frozen=True, slots=True)
class WeightedCluster:
    name: str
    weight: int


@dataclass(frozen=True, slots=True)
class RouteView:
    """One HTTP route: its match, filters, where it sends and the policy confs it carries."""

    name: str
    match: Mapping[str, Any]
    filters: tuple[Mapping[str, Any], ...]
    clusters: tuple[WeightedCluster, ...]
    confs: Confs
    origin: str = ""
    mirrors: tuple[tuple[str, float], ...] = ()
    """(cluster, percentage) per RequestMirror filter."""


def subset_cluster_name(service: str, tags: Mapping[str, str]) -> str:
    """Kuma's split cluster name (pkg/xds/envoy/tags DestinationClusterName): the tags with
    `kuma.io/service` set to the service, each key then value fed in key order to SHA-256,
    the first 8 bytes in hex; just the service when no other tag is left."""
    full = {**tags, SERVICE_TAG: service}
    if len(full) == 1:
        return service
    digest = hashlib.sha256()
    for key in sorted(full):
        digest.update(key.encode())
        digest.update(full[key].encode())
    return f"{service}-{digest.digest()[:8].hex()}"


def _matches(selector: Mapping[str, str], tags: Mapping[str, str]) -> bool:
    return all(tags.get(k) == v for k, v in selector.items())


def _ref_name(ref: Mapping[str, Any]) -> str:
    kind = ref.get("kind", "MeshService")
    name = str(ref.get("name") or "")
    if ref.get("namespace") and (kind in ("MeshExternalService", "MeshMultiZoneService") or (kind == "MeshService" and ref.get("port"))):
        name = f"{name}.{ref['namespace']}"  # a real resource of a namespace: Kuma's Kubernetes name
    return name


def http_backend(model: MeshModel, mesh: str, ref: Mapping[str, Any], externals: Mapping[str, Any] | None = None) -> bool:
    """Whether `ref` names an HTTP, HTTP/2 or gRPC destination the mesh has: a
    MeshExternalService, a MeshService port, or a `kuma.io/service` some inbound provides (a
    subset may still select no endpoint). Kuma's HTTP split refuses any other protocol, and an
    unknown service has the protocol "unknown"."""
    kind = ref.get("kind", "MeshService")
    name = _ref_name(ref)
    if kind == "MeshExternalService":
        return name in (externals or {}) and str(((externals or {})[name].get("match") or {}).get("protocol") or "tcp") in HTTP_PROTOCOLS
    if kind == "MeshService" and ref.get("port"):
        found = model.services.get((mesh, f"msvc:{name}:{int(ref['port'])}"))
    else:
        found = model.services.get((mesh, name))
    return found is not None and found.protocol in HTTP_PROTOCOLS


def resolve_backend(
    model: MeshModel,
    mesh: str,
    ref: Mapping[str, Any],
    confs_for: Callable[[str], Confs],
    identities_for: Callable[[str, tuple[Endpoint, ...]], tuple[str, ...]],
    externals: Mapping[str, Any] | None = None,
) -> tuple[str, BackendCluster | None]:
    """(cluster name, the cluster to add, or None if it is a service cluster added anyway)."""
    kind = ref.get("kind", "MeshService")
    name = _ref_name(ref)
    if kind == "MeshExternalService":
        external = (externals or {}).get(name)
        cluster = f"{mesh}_{name}___extsvc_{int(((external or {}).get('match') or {}).get('port') or 0)}"
        protocol = str(((external or {}).get("match") or {}).get("protocol") or "tcp")
        return cluster, BackendCluster(cluster, name, protocol, (), confs_for(name), (), external)
    if kind == "MeshService" and ref.get("port"):
        port = int(ref["port"])
        service = model.services.get((mesh, f"msvc:{name}:{port}"))
        cluster = mesh_service_cluster_name(mesh, name, port)
        return cluster, _cluster_of(cluster, name, service, None, confs_for, identities_for)
    service = model.services.get((mesh, name))
    if kind == "MeshServiceSubset" and ref.get("tags"):
        tags = {str(k): str(v) for k, v in ref["tags"].items()}
        cluster = subset_cluster_name(name, tags)
        return cluster, _cluster_of(cluster, name, service, tags, confs_for, identities_for)
    return name, _cluster_of(name, name, service, None, confs_for, identities_for)


def _cluster_of(
    cluster: str,
    service_name: str,
    service: Service | None,
    tags: Mapping[str, str] | None,
    confs_for: Callable[[str], Confs],
    identities_for: Callable[[str, tuple[Endpoint, ...]], tuple[str, ...]],
) -> BackendCluster:
    endpoints = service.endpoints if service is not None else ()
    if tags:
        endpoints = tuple(e for e in endpoints if _matches(tags, e.tags))
    protocol = service.protocol if service is not None else "tcp"
    return BackendCluster(cluster, service_name, protocol, endpoints, confs_for(service_name), identities_for(service_name, endpoints))
