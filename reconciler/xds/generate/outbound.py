"""Outbound side of a sidecar: a listener per outbound, a cluster and endpoints per service."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import lru_cache

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import wrappers_pb2

from reconciler.envoy_builders import ads_source, duration, mesh_upstream_protocol_options, socket_address, upstream_protocol_options
from reconciler.mesh.model import HTTP_PROTOCOLS, SERVICE_TAG, Endpoint
from reconciler.mesh.routing import BackendCluster, RouteView, WeightedCluster
from reconciler.views.proxy import Confs, OutboundView
from reconciler.xds.generate import names
from reconciler.xds.generate.hooks import HookContext, ProxyFacts, apply_hooks, proxy_for
from reconciler.xds.generate.http import hcm_filter, inline_http_connection_manager, tcp_proxy, tcp_proxy_filter
from reconciler.xds.generate.httproute import envoy_routes_of
from reconciler.xds.generate.tls import upstream_tls
from reconciler.xds.resources import CLUSTER, ENDPOINT, LISTENER, XdsResource, resource

__all__ = ["outbound_resources", "outbound_cluster", "outbound_listener", "load_assignment", "outbound_route_config"]

CONNECT_TIMEOUT = 5.0
"""Envoy's connect timeout to other services when no MeshTimeout sets one (Kuma's default)."""


@lru_cache(maxsize=65536)
def outbound_cluster(
    cluster_name: str, protocol: str, ctx: HookContext, confs: Confs, identities: tuple[str, ...] | None, upstream: str = "sidecar"
) -> XdsResource:
    """The EDS cluster of a destination; with mTLS (`identities` given) it verifies them.

    `upstream` says who answers and so the codec: "sidecar" (peer sidecars' inbound listeners,
    HTTP/2 whatever the protocol, as Kuma's sidecars), "workload" (a workload without a
    sidecar: its own protocol), "edge" (a gateway's backend: its own protocol, HTTP/2 with
    Envoy's edge window sizes, as Kuma's gateway)."""
    cluster = cluster_pb2.Cluster(
        name=cluster_name,
        alt_stat_name=names.stat_prefix(cluster_name),
        type=cluster_pb2.Cluster.EDS,
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(eds_config=ads_source()),
        connect_timeout=duration(CONNECT_TIMEOUT),
        typed_extension_protocol_options=(
            mesh_upstream_protocol_options() if upstream == "sidecar" else upstream_protocol_options(protocol, edge=upstream == "edge")
        ),
    )
    if identities is not None:
        cluster.transport_socket.CopyFrom(upstream_tls(ctx.mesh, ctx.service, identities))
    apply_hooks("cluster", cluster, confs, ctx)
    return resource(CLUSTER, cluster_name, cluster)


def _lb_endpoint(e: Endpoint) -> endpoint_components_pb2.LbEndpoint:
    """An endpoint with its tags as Kuma writes them (pkg/xds/envoy/metadata/v3 EndpointMetadata):
    without `kuma.io/service` (the cluster already names it), under `envoy.lb` (subset and
    locality load balancing, retry host predicates) and `envoy.transport_socket_match`; no
    metadata at all when no other tag is left. Kuma's default endpoint weight is 1."""
    out = endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=socket_address(e.address, e.port)),
        load_balancing_weight=wrappers_pb2.UInt32Value(value=1),
    )
    tags = {k: v for k, v in e.tags.items() if k != SERVICE_TAG}
    if tags:
        for key in ("envoy.lb", "envoy.transport_socket_match"):
            out.metadata.filter_metadata[key].update(tags)
    return out


@lru_cache(maxsize=65536)
def load_assignment(cluster_name: str, endpoints: tuple[Endpoint, ...], ctx: HookContext, confs: Confs) -> XdsResource:
    cla = endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cluster_name,
        # gRPC's xDS client rejects endpoints without a locality and ignores unweighted ones.
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                locality=base_pb2.Locality(),
                lb_endpoints=[_lb_endpoint(e) for e in endpoints],
                load_balancing_weight=wrappers_pb2.UInt32Value(value=1),
            )
        ]
        if endpoints
        else [],
    )
    apply_hooks("load_assignment", cla, confs, ctx)
    return resource(ENDPOINT, cluster_name, cla)


def outbound_route_config(
    cluster_name: str, service_name: str, ctx: HookContext, routes: tuple[RouteView, ...]
) -> route_pb2.RouteConfiguration:
    """The routes of an HTTP outbound: MeshHTTPRoute rules, most specific first, then `/`."""
    envoy_routes = []
    for view in routes:
        for route in envoy_routes_of(view):
            if route.HasField("route"):
                # Kuma's sidecar routes start with no request timeout (0s: none) for MeshTimeout
                # to set; without one Envoy would cut every request at its implicit 15 s even
                # when the Mesh skips the default MeshTimeout.
                route.route.timeout.CopyFrom(duration(0))
            apply_hooks("route", route, view.confs, replace(ctx, route=view.origin))
            envoy_routes.append(route)
    return route_pb2.RouteConfiguration(
        name=names.outbound_route(cluster_name),
        virtual_hosts=[route_components_pb2.VirtualHost(name=service_name, domains=["*"], routes=envoy_routes)],
    )


@lru_cache(maxsize=65536)
def outbound_listener(
    address: str, port: int, ctx: HookContext, confs: Confs, split: tuple[WeightedCluster, ...] = (), routes: tuple[RouteView, ...] = ()
) -> XdsResource:
    """One outbound's listener; an HTTP one carries its routes inline, as Kuma's do."""
    name = names.outbound_listener(address, port)
    prefix = names.stat_prefix(ctx.cluster)
    if ctx.protocol in HTTP_PROTOCOLS:
        hcm = inline_http_connection_manager(prefix, outbound_route_config(ctx.cluster, ctx.service, ctx, routes))
        # Kuma's MeshHTTPRoute outbound listener normalizes paths (RFC 3986: `/v1/../v2` is
        # routed as `/v2`) and nothing more: slashes are not merged and `%2F` is kept as is.
        hcm.normalize_path.value = True
        apply_hooks("http_connection_manager", hcm, confs, ctx)
        network_filter = hcm_filter(hcm)
    else:
        proxy = tcp_proxy(prefix, ctx.cluster)
        live = [c for c in split if c.weight > 0]
        if len(live) == 1:
            proxy.cluster = live[0].name
        elif live:
            proxy.ClearField("cluster")
            proxy.weighted_clusters.CopyFrom(
                tcp_proxy_pb2.TcpProxy.WeightedCluster(
                    clusters=[tcp_proxy_pb2.TcpProxy.WeightedCluster.ClusterWeight(name=c.name, weight=c.weight) for c in live]
                )
            )
        apply_hooks("tcp_proxy", proxy, confs, ctx)
        network_filter = tcp_proxy_filter(proxy)
    listener = listener_pb2.Listener(
        name=name,
        address=socket_address(address, port),
        traffic_direction=base_pb2.OUTBOUND,
        filter_chains=[listener_components_pb2.FilterChain(filters=[network_filter])],
    )
    apply_hooks("listener", listener, confs, ctx)
    return resource(LISTENER, name, listener)


def outbound_context(view: OutboundView, mesh: str, facts: ProxyFacts | None = None) -> HookContext:
    return HookContext("outbound", view.service_name, view.cluster_name, view.protocol, mesh, proxy=proxy_for(view.confs, facts))


_memo: dict[tuple[int, str, bool], tuple[OutboundView, list[XdsResource]]] = {}


def outbound_resources(view: OutboundView, mesh: str, mtls: bool = False, facts: ProxyFacts | None = None) -> list[XdsResource]:
    """The resources of one outbound; proxies sharing a view object share the result (a view
    whose confs have a `per_proxy` kind belongs to one proxy: views/proxy.py `_alike`)."""
    key = (id(view), mesh, mtls)
    hit = _memo.get(key)
    if hit is not None and hit[0] is view:
        return hit[1]
    out = _outbound_resources(view, mesh, mtls, facts)
    if len(_memo) > 100_000:
        _memo.clear()
    _memo[key] = (view, out)
    return out


def _outbound_resources(view: OutboundView, mesh: str, mtls: bool, facts: ProxyFacts | None) -> list[XdsResource]:
    o = view.outbound
    ctx = outbound_context(view, mesh, facts)
    confs: Mapping[str, Mapping[str, object]] = view.confs
    endpoints = view.service.endpoints if view.service is not None else ()
    out = [outbound_listener(o.address, o.port, ctx, confs, view.tcp_split, view.routes)]
    # Clusters and endpoints never name the proxy (HookContext.proxy is for listener-side hooks):
    # built without it, they stay shared by every proxy even when the listener is its own.
    shared = replace(ctx, proxy=None)
    if not any(b.name == view.cluster_name for b in view.backends):
        # A destination that is itself a backend (a MeshExternalService) brings its own cluster.
        out.append(
            outbound_cluster(view.cluster_name, view.protocol, shared, confs, view.identities if mtls else None, _upstream(endpoints))
        )
        out.append(load_assignment(view.cluster_name, endpoints, shared, confs))
    for backend in view.backends:
        out.extend(backend_resources(backend, mesh, mtls))
    return out


def _upstream(endpoints: tuple[Endpoint, ...]) -> str:
    """`sidecar` when every endpoint is a sidecar's inbound (HTTP/2 as Kuma); a workload
    declared without one (its inbound is its own port) keeps its own protocol. Kuma has no
    such Dataplane (docs/routing.md, differences)."""
    return "sidecar" if all(e.sidecar for e in endpoints) else "workload"


def backend_resources(backend: BackendCluster, mesh: str, mtls: bool, gateway: bool = False) -> list[XdsResource]:
    """A cluster and its endpoints for a route's backend (a subset, another service, ...);
    `gateway` for a builtin gateway's backends (see `outbound_cluster`)."""
    ctx = HookContext("outbound", backend.service_name, backend.name, backend.protocol, mesh)
    if backend.external is not None:
        from reconciler.xds.generate.external import external_resources

        return external_resources(backend, ctx)
    return [
        outbound_cluster(
            backend.name,
            backend.protocol,
            ctx,
            backend.confs,
            backend.identities if mtls else None,
            "edge" if gateway else _upstream(backend.endpoints),
        ),
        load_assignment(backend.name, backend.endpoints, ctx, backend.confs),
    ]
