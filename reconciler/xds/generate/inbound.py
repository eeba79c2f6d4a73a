"""Inbound side of a sidecar: a listener per inbound (HTTP routes inline) and a static cluster to the workload."""

from __future__ import annotations

from functools import lru_cache

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from google.protobuf import struct_pb2

from reconciler.envoy_builders import duration, socket_address, upstream_protocol_options
from reconciler.mesh.model import HTTP_PROTOCOLS, Inbound
from reconciler.views.proxy import Confs, InboundView
from reconciler.xds.generate import names
from reconciler.xds.generate.hooks import HookContext, ProxyFacts, apply_hooks, proxy_for
from reconciler.xds.generate.http import hcm_filter, inline_http_connection_manager, tcp_proxy, tcp_proxy_filter, tls_inspector
from reconciler.xds.generate.tls import ALPN, downstream_tls
from reconciler.xds.resources import CLUSTER, LISTENER, XdsResource, resource

__all__ = ["inbound_resources"]

LOCAL_CONNECT_TIMEOUT = 10.0
"""Kuma's connect timeout to the local workload."""


def _ctx(inbound: Inbound, mesh: str, proxy: ProxyFacts | None) -> HookContext:
    return HookContext("inbound", inbound.service, names.local_cluster(inbound.service_port), inbound.protocol, mesh, proxy=proxy)


@lru_cache(maxsize=65536)
def local_cluster(inbound: Inbound, confs: Confs, mesh: str, proxy: ProxyFacts | None = None) -> XdsResource:
    """The static cluster to the workload at the inbound's service address. Only that address
    differs between the proxies of a service (it defaults to each proxy's own address), so the
    cluster is made and given to the hooks once per service, and copied with the address set.
    No `cluster` hook reads the load assignment (load balancing has its own hook)."""
    cluster = cluster_pb2.Cluster()
    cluster.CopyFrom(_local_cluster_template(inbound.service, inbound.service_port, inbound.protocol, confs, mesh, proxy))
    endpoint = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint
    endpoint.address.CopyFrom(socket_address(inbound.service_address, inbound.service_port))
    return resource(CLUSTER, cluster.name, cluster)


@lru_cache(maxsize=4096)
def _local_cluster_template(
    service: str, service_port: int, protocol: str, confs: Confs, mesh: str, proxy: ProxyFacts | None
) -> cluster_pb2.Cluster:
    """The local cluster of a service, its endpoint's address left for `local_cluster` to set.
    Never changed after it is made: callers copy it."""
    name = names.local_cluster(service_port)
    cluster = cluster_pb2.Cluster(
        name=name,
        alt_stat_name=names.stat_prefix(name),
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=duration(LOCAL_CONNECT_TIMEOUT),
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=name,
            endpoints=[endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=[endpoint_components_pb2.LbEndpoint()])],
        ),
        typed_extension_protocol_options=upstream_protocol_options(protocol),
    )
    ctx = HookContext("inbound", service, name, protocol, mesh, proxy=proxy)
    apply_hooks("cluster", cluster, confs, ctx)
    return cluster


def inbound_route_config(inbound: Inbound, confs: Confs, mesh: str, proxy: ProxyFacts | None = None) -> route_pb2.RouteConfiguration:
    """Everything to the workload; Kuma names the table after the service. The same for every
    proxy of a service, so made once: the caller copies it into its listener, never changes it."""
    table = inbound.service or names.inbound_listener(inbound.address, inbound.port)
    return _route_config(table, inbound.service, inbound.service_port, inbound.protocol, confs, mesh, proxy)


@lru_cache(maxsize=4096)
def _route_config(
    table: str, service: str, service_port: int, protocol: str, confs: Confs, mesh: str, proxy: ProxyFacts | None
) -> route_pb2.RouteConfiguration:
    cluster = names.local_cluster(service_port)
    route = route_components_pb2.Route(
        match=route_components_pb2.RouteMatch(prefix="/"),
        route=route_components_pb2.RouteAction(cluster=cluster, timeout=duration(0)),
    )
    apply_hooks("route", route, confs, HookContext("inbound", service, cluster, protocol, mesh, proxy=proxy))
    return route_pb2.RouteConfiguration(
        name=names.inbound_route(table),
        virtual_hosts=[route_components_pb2.VirtualHost(name=table, domains=["*"], routes=[route])],
    )


@lru_cache(maxsize=65536)
def inbound_listener(
    inbound: Inbound, confs: Confs, mesh: str, tls_mode: str | None, trust_domains: tuple[str, ...] = (), proxy: ProxyFacts | None = None
) -> XdsResource:
    """The inbound listener; with mTLS, STRICT takes only TLS from the mesh, PERMISSIVE also
    plaintext and the application's own TLS (a TLS inspector picks the filter chain by
    transport protocol and ALPN)."""
    name = names.inbound_listener(inbound.address, inbound.port)
    prefix = names.stat_prefix(name)
    ctx = _ctx(inbound, mesh, proxy)
    if inbound.protocol in HTTP_PROTOCOLS:
        hcm = inline_http_connection_manager(prefix, inbound_route_config(inbound, confs, mesh, proxy))
        if tls_mode is not None:
            # The workload learns the caller's identity from X-Forwarded-Client-Cert.
            hcm.forward_client_cert_details = hcm.SANITIZE_SET
            hcm.set_current_client_cert_details.uri = True
        apply_hooks("http_connection_manager", hcm, confs, ctx)
        network_filter = hcm_filter(hcm)
    else:
        proxy = tcp_proxy(prefix, names.local_cluster(inbound.service_port))
        apply_hooks("tcp_proxy", proxy, confs, ctx)
        network_filter = tcp_proxy_filter(proxy)
    listener = listener_pb2.Listener(
        name=name,
        address=socket_address(inbound.address, inbound.port),
        traffic_direction=base_pb2.INBOUND,
        metadata=_tags_metadata(inbound),
    )
    if tls_mode is None:
        listener.filter_chains.append(listener_components_pb2.FilterChain(filters=[network_filter]))
    elif tls_mode == "STRICT":
        listener.filter_chains.append(
            listener_components_pb2.FilterChain(filters=[network_filter], transport_socket=downstream_tls(mesh, trust_domains))
        )
    else:
        # As Kuma: the TLS inspector reads the ClientHello; TLS offering Kuma's ALPN is mesh mTLS,
        # any other TLS belongs to the application itself and goes through untouched, like plaintext.
        listener.listener_filters.append(tls_inspector())
        for transport in ("raw_buffer", "tls"):
            listener.filter_chains.append(
                listener_components_pb2.FilterChain(
                    filter_chain_match=listener_components_pb2.FilterChainMatch(transport_protocol=transport),
                    filters=[network_filter],
                )
            )
        listener.filter_chains.append(
            listener_components_pb2.FilterChain(
                filter_chain_match=listener_components_pb2.FilterChainMatch(transport_protocol="tls", application_protocols=[ALPN]),
                filters=[network_filter],
                transport_socket=downstream_tls(mesh, trust_domains),
            )
        )
    apply_hooks("listener", listener, confs, ctx)
    return resource(LISTENER, name, listener)


def _tags_metadata(inbound: Inbound) -> base_pb2.Metadata:
    tags = struct_pb2.Struct()
    tags.update(dict(inbound.tags))
    return base_pb2.Metadata(filter_metadata={"io.kuma.tags": tags})


def inbound_tls_mode(view: InboundView, mesh_mode: str | None) -> str | None:
    """The mesh's mode, unless a MeshTLS sets this inbound's (Strict/Permissive)."""
    if mesh_mode is None:
        return None
    override = str((view.confs.get("MeshTLS") or {}).get("mode") or "")
    return override.upper() if override.upper() in ("STRICT", "PERMISSIVE") else mesh_mode


def inbound_resources(
    view: InboundView, mesh: str, mesh_mode: str | None = None, trust_domains: tuple[str, ...] = (), facts: ProxyFacts | None = None
) -> list[XdsResource]:
    inbound, confs = view.inbound, view.confs
    proxy = proxy_for(confs, facts)
    return [
        local_cluster(inbound, confs, mesh, proxy),
        inbound_listener(inbound, confs, mesh, inbound_tls_mode(view, mesh_mode), trust_domains, proxy),
    ]
