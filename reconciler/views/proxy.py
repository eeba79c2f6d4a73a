"""ProxyView: everything the Envoy config of one dataplane depends on, and nothing more.

Generation is a pure function of a ProxyView, so two equal views give equal config: the
reconciler compares a proxy's new view with the previous one and regenerates only when they
differ, and identical pieces (a service's cluster and endpoints) are generated once for all
proxies that use them. The view carries, per inbound and outbound, the merged policy confs
the targetRef engine computed for it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.ca.identity import Identity
from reconciler.ca.provider import CertificateProvider, MeshTls, ProxyTls, spiffe_id
from reconciler.frozen import FrozenDict
from reconciler.mesh.external import external_backend
from reconciler.mesh.model import HTTP_PROTOCOLS, Dataplane, Inbound, MeshInfo, MeshModel, Outbound, Service, mesh_service_cluster_name
from reconciler.mesh.routing import BackendCluster, RouteView, WeightedCluster, http_backend, resolve_backend
from reconciler.mesh.shape import ShapeChoice, outbound_shape
from reconciler.mesh.transparent import DnsRecord
from reconciler.policies.core.destination import DISPLAY_NAME_LABEL
from reconciler.policies.core.match import (
    Destination,
    PolicyIndex,
    inbound_conf,
    matched_policies,
    outbound_conf,
    single_conf,
)
from reconciler.policies.core.route_rules import http_routes, route_conf, tcp_backends, tcp_routed
from reconciler.policies.defaults import with_default_policies
from reconciler.policies.plugins import plugins
from reconciler.views.gateway import GatewayView, gateway_view
from reconciler.views.identities import NODE, mesh_tls, service_identities, trust_domains, workload_identities
from reconciler.views.reuse import Reuse, Reuser, ViewBasis
from reconciler.views.transparent import transparent_reach

__all__ = ["OutboundView", "InboundView", "ProxyView", "proxy_view", "proxy_views", "policy_indexes", "destination_of"]

Confs = Mapping[str, Mapping[str, Any]]
"""Policy kind → merged `default` conf."""


@dataclass(frozen=True, slots=True)
class OutboundView:
    outbound: Outbound
    service_name: str
    cluster_name: str
    service: Service | None
    """None when nothing in the mesh provides the service yet (the listener still exists)."""
    confs: Confs = field(default_factory=FrozenDict)
    route_confs: Mapping[str, Confs] = field(default_factory=FrozenDict)
    """Per route (by its rule's matches key, HttpRoute.key): the confs that policies aimed at a
    MeshHTTPRoute give it, where they differ from the outbound's (core/route_rules.py)."""
    identities: tuple[str, ...] = ()
    """SPIFFE ids the destination's proxies present (checked when mTLS is on)."""
    routes: tuple[RouteView, ...] = ()
    """HTTP routes (MeshHTTPRoute rules, then the catch-all to the destination)."""
    tcp_split: tuple[WeightedCluster, ...] = ()
    """MeshTCPRoute backends of a TCP outbound (empty: the destination itself)."""
    backends: tuple[BackendCluster, ...] = ()
    """Other clusters the routes send or mirror to."""
    destination: Destination | None = None
    """The destination policies matched against (with a real resource's labels)."""
    tcp_routed: bool = False
    """An HTTP destination that a MeshTCPRoute (and no MeshHTTPRoute) routes: a TCP proxy."""

    @property
    def protocol(self) -> str:
        """What the outbound's listener speaks (the destination's own is `service.protocol`)."""
        return self.service.protocol if self.service is not None and not self.tcp_routed else "tcp"


@dataclass(frozen=True, slots=True)
class InboundView:
    inbound: Inbound
    confs: Confs = field(default_factory=FrozenDict)


@dataclass(frozen=True, slots=True)
class ProxyView:
    dataplane: Dataplane
    mesh: MeshInfo
    outbounds: tuple[OutboundView, ...]
    inbounds: tuple[InboundView, ...] = ()
    confs: Confs = field(default_factory=FrozenDict)
    """Proxy-wide confs (top-level `default` of single-item policies)."""
    tls: ProxyTls | None = None
    """mTLS material when the mesh has mTLS enabled."""
    gateway: GatewayView | None = None
    """Listeners, routes and backends of a builtin gateway (reconciler/views/gateway.py)."""
    shape: ShapeChoice = ShapeChoice("kuma", "the default")
    """Kuma's listener per outbound, or one compact listener for all (reconciler/mesh/shape.py)."""
    dns: tuple[DnsRecord, ...] = ()
    """A transparent proxy's DNS records, served to its sidecar on `/dns` (views/transparent.py)."""

    @property
    def node_id(self) -> str:
        return self.dataplane.node_id


def destination_of(view: OutboundView, labels: Mapping[str, str] | None = None) -> Destination:
    """The outbound's destination; a real resource's `labels` (a MeshService port's own when not
    given) with Kuma's `kuma.io/display-name`, which Kuma stores on every resource."""
    if view.destination is not None:
        return view.destination
    if view.service is not None and view.service.mesh_service:
        return _mesh_service_port(view.service)
    if view.outbound.backend_ref is not None:
        kind, name, port = view.outbound.backend_ref
        real = kind if kind in ("MeshService", "MeshExternalService", "MeshMultiZoneService") else "MeshService"
        return Destination(name, real, port, labels=_labels(name, labels or {}))  # type: ignore[arg-type]
    return Destination(view.service_name)


def _mesh_service_port(service: Service) -> Destination:
    name = service.mesh_service
    return Destination(name, "MeshService", service.port, service.port_name, _labels(name, service.labels))


def _labels(name: str, labels: Mapping[str, str]) -> FrozenDict:
    return FrozenDict({DISPLAY_NAME_LABEL: name, **labels})


def _external_labels(model: MeshModel, mesh: str, name: str) -> Mapping[str, str]:
    return next((r.labels for r in model.externals if r.mesh == mesh and r.name == name), {})


def policy_indexes(model: MeshModel) -> dict[str, PolicyIndex]:
    """One index per mesh: its committed policies plus Kuma's defaults it did not skip."""
    out = {}
    for mesh_name, mesh in model.meshes.items():
        committed = [p for p in model.policies if p.mesh == mesh_name]
        out[mesh_name] = PolicyIndex.build(
            with_default_policies(mesh.resource, committed), [g for g in model.gateways if g.mesh == mesh_name]
        )
    return out


@dataclass(frozen=True, slots=True)
class _Value:
    value: Mapping[str, Any]


def _confs_for(kinds: list[str], compute: Any) -> FrozenDict:
    out = {}
    for kind in kinds:
        conf = compute(kind)
        if conf is not None:
            out[kind] = conf.value
    return FrozenDict(out)


def _outbound_view(
    model: MeshModel, index: PolicyIndex, dp: Dataplane, o: Outbound, kinds: list[str], ids: Mapping[tuple[str, str], tuple[str, ...]]
) -> OutboundView:
    service = model.service_for(dp, o)
    external = external_backend(model, dp, o)
    if service is not None:
        base = OutboundView(o, service.name, service.cluster_name, service)
    elif external is not None:
        # A MeshExternalService: its protocol, its cluster (generated by xds/generate/external.py).
        base = OutboundView(
            o, external.service_name, external.name, Service(dp.mesh, external.service_name, external.protocol, (), external.name)
        )
    elif o.backend_ref is not None:
        _, name, port = o.backend_ref
        base = OutboundView(o, name, mesh_service_cluster_name(dp.mesh, name, port), None)
    else:
        base = OutboundView(o, o.service, o.service, None)
    external_labels = _external_labels(model, dp.mesh, o.backend_ref[1]) if external is not None and o.backend_ref else None
    dest = destination_of(base, external_labels)
    overrides = {p.kind: p.outbound_conf for p in plugins() if p.outbound_conf is not None}
    wide = {p.kind for p in plugins() if p.proxy_wide}

    def conf_of(kind: str) -> Any:
        if kind in wide:
            return single_conf(kind, dp, index)
        if kind in overrides:
            value = overrides[kind](dp, dest, index)
            return _Value(value) if value is not None else None
        return outbound_conf(kind, dp, dest, index)

    confs = _confs_for(kinds, conf_of)
    per_route: dict[str, FrozenDict] = {}
    identities = ids.get((dp.mesh, base.cluster_name)) or (spiffe_id(dp.mesh, base.service_name),)

    def confs_for(service: str) -> Confs:
        return confs if service == base.service_name else _confs_for(kinds, lambda k: outbound_conf(k, dp, Destination(service), index))

    def identities_for(service: str, endpoints: tuple[Any, ...]) -> tuple[str, ...]:
        # What the backend's endpoints present: a MeshIdentity's id, else their service's.
        found = {
            ids.get((dp.mesh, NODE + e.dataplane), (spiffe_id(dp.mesh, e.tags.get("kuma.io/service", service)),))[0] for e in endpoints
        }
        return tuple(sorted(found)) or ids.get((dp.mesh, service)) or (spiffe_id(dp.mesh, service),)

    backends: dict[str, BackendCluster] = {}
    if external is not None:
        backends[external.name] = replace(external, confs=confs)

    def cluster_for(ref: Mapping[str, Any]) -> str:
        name, extra = resolve_backend(model, dp.mesh, ref, confs_for, identities_for, model.external_specs(dp.mesh))
        if extra is not None and extra.external is not None:
            mes = Destination(
                extra.service_name,
                "MeshExternalService",
                labels=_labels(extra.service_name, _external_labels(model, dp.mesh, extra.service_name)),
            )
            extra = replace(extra, confs=_confs_for(kinds, lambda k: outbound_conf(k, dp, mes, index)))
        elif extra is not None and ref.get("kind", "MeshService") == "MeshService" and ref.get("port"):
            # A MeshService port is a real resource: its sectionName and labels entries count.
            port = model.services.get((dp.mesh, f"msvc:{extra.service_name}:{int(ref['port'])}"))
            if port is not None:
                ms = _mesh_service_port(port)
                extra = replace(extra, confs=_confs_for(kinds, lambda k: outbound_conf(k, dp, ms, index)))
        if extra is not None and name != base.cluster_name:
            backends.setdefault(name, extra)
        return name

    routes: list[RouteView] = []
    split: tuple[WeightedCluster, ...] = ()
    tcp = base.protocol in HTTP_PROTOCOLS and tcp_routed(dp, dest, index)
    if base.protocol in HTTP_PROTOCOLS and not tcp:
        http = http_routes(dp, dest, index)
        externals = model.external_specs(dp.mesh) if any(r.backend_refs for r in http) else {}
        for route in http:
            # Kuma's HTTP split leaves out backends naming nothing (or not HTTP), and a rule
            # left without any out of the routes: its requests fall through to the next match.
            refs = [ref for ref in route.backend_refs if http_backend(model, dp.mesh, ref, externals)]
            if route.backend_refs and not refs:
                continue
            clusters = tuple(WeightedCluster(cluster_for(ref), int(ref.get("weight", 1))) for ref in refs) or (
                WeightedCluster(base.cluster_name, 1),
            )
            mirrors = tuple(
                (cluster_for(f["requestMirror"]["backendRef"]), float(f["requestMirror"].get("percentage", 100) or 100))
                for f in route.filters
                if f.get("type") == "RequestMirror" and f.get("requestMirror", {}).get("backendRef")
            )
            own = _confs_for(kinds, lambda k: route_conf(k, dp, dest, index, route))  # noqa: B023 (called at once)
            if own:
                per_route[route.key] = own
            route_confs_value = FrozenDict({**confs, **own}) if own else confs
            routes.append(RouteView(route.name, route.match, route.filters, clusters, route_confs_value, route.origin, mirrors))
    else:
        split = tuple(WeightedCluster(cluster_for(ref), int(ref.get("weight", 1))) for ref in tcp_backends(dp, dest, index))
    return OutboundView(
        base.outbound,
        base.service_name,
        base.cluster_name,
        base.service,
        confs,
        FrozenDict(per_route),
        identities,
        tuple(routes),
        split,
        tuple(backends.values()),
        dest,
        tcp,
    )


def proxy_view(
    model: MeshModel,
    node_id: str,
    indexes: Mapping[str, PolicyIndex] | None = None,
    certs: CertificateProvider | None = None,
    tls: Mapping[str, MeshTls | None] | None = None,
    identities: Mapping[str, Identity] | None = None,
    ids: Mapping[tuple[str, str], tuple[str, ...]] | None = None,
    compact_from: int | None = None,
    reuse: Reuser | None = None,
) -> ProxyView | None:
    """`compact_from`: proxies with at least this many outbounds get the compact outbound shape
    (serve's --compact-outbounds); a Dataplane's own label overrides it. `reuse` may answer
    with the proxy's last view when its inputs did not change (views/reuse.py)."""
    dp = model.dataplanes.get(node_id)
    mesh = model.meshes.get(dp.mesh) if dp is not None else None
    if dp is None or mesh is None:
        return None
    index = (indexes or policy_indexes(model))[dp.mesh]
    certs = certs or CertificateProvider()
    mesh_ca = (tls if tls is not None else mesh_tls(model, certs)).get(dp.mesh)
    identities = identities if identities is not None else workload_identities(model)
    ids = ids if ids is not None else service_identities(model, identities)
    proxy_tls = (
        certs.for_dataplane(mesh_ca, dp, identities.get(node_id), trust_domains(model, identities, dp.mesh))
        if mesh_ca is not None
        else None
    )
    kept = reuse(dp, proxy_tls) if reuse is not None else None
    if kept is not None:
        return kept  # type: ignore[no-any-return]
    outbound_kinds = [p.kind for p in plugins() if p.outbound or p.proxy_wide]
    inbound_kinds = [p.kind for p in plugins() if p.inbound or p.proxy_wide]
    alike = _alike(dp, index, outbound_kinds)
    reached, dns = transparent_reach(model, dp)
    outbounds = tuple(_shared_outbound_view(model, index, dp, o, outbound_kinds, ids, alike) for o in reached)
    inbounds = tuple(InboundView(i, _inbound_confs(dp, i, index, inbound_kinds, proxy_tls is not None)) for i in dp.inbounds)
    confs = _confs_for([p.kind for p in plugins()], lambda k: single_conf(k, dp, index))
    shape = outbound_shape(dp.labels, len(reached), compact_from, transparent=dp.redirect is not None)
    return ProxyView(dp, mesh, outbounds, inbounds, confs, proxy_tls, gateway_view(model, index, dp, ids), shape, dns)


_ROUTE_KINDS = ("MeshHTTPRoute", "MeshTCPRoute")


def _alike(dp: Dataplane, index: PolicyIndex, kinds: list[str]) -> tuple[Any, ...]:
    """What, besides an outbound itself, its view depends on: the policies selecting the
    proxy (confs and routes come from their `to` entries) and, when a plugin's own
    `outbound_conf` applies (it may read them for locality), the proxy's tags."""
    signature = tuple(
        tuple(id(m.resource) for m in matched_policies(k, dp, index) if m.selection.whole_proxy) for k in (*kinds, *_ROUTE_KINDS)
    )
    tag_dependent = any(p.outbound_conf is not None and matched_policies(p.kind, dp, index) for p in plugins())
    tags = frozenset((k, v) for i in dp.inbounds for k, v in i.tags.items()) if tag_dependent else None
    return (dp.mesh, signature, tags, _own(dp, index))


def _own(dp: Dataplane, index: PolicyIndex) -> str | None:
    """The proxy, when a per-proxy kind's hooks will name it in its outbounds (they are then its own)."""
    for p in plugins():
        if not p.per_proxy or not matched_policies(p.kind, dp, index):
            continue
        if p.proxy_wide:
            wide = single_conf(p.kind, dp, index)
            if wide is None or not p.needs_proxy(wide.value):
                continue
        return dp.node_id
    return None


def _shared_outbound_view(
    model: MeshModel,
    index: PolicyIndex,
    dp: Dataplane,
    o: Outbound,
    kinds: list[str],
    ids: Mapping[tuple[str, str], tuple[str, ...]],
    alike: tuple[Any, ...],
) -> OutboundView:
    """`_outbound_view`, computed once for all proxies alike (see `_alike`), which also lets
    the generator's caches hit on the very same object."""
    key = (o, alike)
    memo = index._views
    hit: OutboundView | None = memo.get(key)
    if hit is not None:
        return hit
    view = _outbound_view(model, index, dp, o, kinds, ids)
    memo[key] = view
    return view


def _inbound_confs(dp: Dataplane, inbound: Inbound, index: PolicyIndex, kinds: list[str], mtls: bool) -> FrozenDict:
    out = {}
    for plugin in plugins():
        if plugin.kind not in kinds:
            continue
        if plugin.proxy_wide:
            wide = single_conf(plugin.kind, dp, index)
            value = wide.value if wide is not None else None
        elif plugin.inbound_conf is not None:
            value = plugin.inbound_conf(dp, inbound, index, mtls)
        else:
            conf = inbound_conf(plugin.kind, dp, inbound, index)
            value = conf.value if conf is not None else None
        if value is not None:
            out[plugin.kind] = value
    return FrozenDict(out)


def proxy_views(
    model: MeshModel,
    certs: CertificateProvider | None = None,
    compact_from: int | None = None,
    indexes: Mapping[str, PolicyIndex] | None = None,
    only: Collection[str] | None = None,
    reuse: Reuse | None = None,
) -> dict[str, ProxyView]:
    """Every proxy's view (or those of the node ids in `only`: what a proxy sees does not depend
    on the other proxies' views). Certificates come from `certs` (a throwaway in-memory CA if
    None); `compact_from` as in `proxy_view`; `indexes` when the caller has them already.
    With `reuse` (the server's), views whose inputs did not change since its last call are
    the same objects as then, and `reuse` remembers this call's basis for the next."""
    indexes = indexes if indexes is not None else policy_indexes(model)
    certs = certs or CertificateProvider()
    tls = mesh_tls(model, certs)
    identities = workload_identities(model)
    ids = service_identities(model, identities)
    nodes = model.dataplanes if only is None else only
    reuser = reuse.reuser(model, tls, ids, compact_from) if reuse is not None else None
    views = (proxy_view(model, node_id, indexes, certs, tls, identities, ids, compact_from, reuser) for node_id in nodes)
    out = {v.node_id: v for v in views if v is not None}
    if reuse is not None:
        reuse.last = ViewBasis(model, tls, ids, compact_from, out) if only is None else None
    return out
