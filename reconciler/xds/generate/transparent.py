"""Kuma's TransparentProxyGenerator: the listeners and clusters of a transparent proxy.

iptables in the workload's network namespace sends its outbound TCP to `redirectPortOutbound`
and the inbound to `redirectPortInbound`. There Envoy listens on 0.0.0.0 (and `::`) with
`use_original_dst`: it hands each connection to the listener bound to its original
destination (an outbound at a VIP, an inbound at the Dataplane's address), so those listeners
take `bind_to_port: false` (Kuma's TransparentProxyingConfigurer). A connection no listener
claims stays on the passthrough listener:

- outbound: a TCP proxy to `outbound:passthrough:ipv4`, an ORIGINAL_DST cluster (the
  destination the application asked for). When the Mesh turns passthrough off
  (`networking.outbound.passthrough: false`) the cluster is not generated, as in Kuma: the TCP
  proxy then names a cluster Envoy does not have and closes the connection;
- inbound: a TCP proxy to `inbound:passthrough:ipv4`, ORIGINAL_DST with the upstream source
  127.0.0.6, so the redirection rules let its connection to the application through;
- `self_transparentproxy_no_destination_inbound`: Kuma's static cluster without endpoints.

The IPv6 twins (`...:ipv6` on `::`, source `::6`) come with them unless the Dataplane's
`ipFamilyMode` is `IPv4` (Kuma's EnabledIPv6). Names, fields and order follow Kuma v2.14.3's
goldens (pkg/xds/generator/testdata/transparent-proxy) with its legacy (non-unified) naming.

The builders of the listeners and clusters use only Envoy's messages, so the MeshPassthrough
effect can be given the outbound listener to rewrite (`outbound_passthrough_listener`).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import wrappers_pb2

from reconciler.envoy_builders import duration, pack, socket_address
from reconciler.frozen import freeze
from reconciler.mesh.transparent import Redirect
from reconciler.policies.meshpassthrough.envoy import configure_passthrough, mesh_passthrough
from reconciler.policies.meshpassthrough.envoy import passthrough_cluster as original_dst_cluster
from reconciler.views.transparent import ipv6_enabled
from reconciler.xds.resources import CLUSTER, LISTENER, XdsResource, resource

__all__ = [
    "NO_DESTINATION_CLUSTER",
    "inbound_passthrough_listener",
    "from_passthrough_source",
    "no_bind",
    "outbound_passthrough_listener",
    "passthrough_cluster",
    "passthrough_name",
    "transparent_resources",
]

log = logging.getLogger(__name__)

NO_DESTINATION_CLUSTER = "self_transparentproxy_no_destination_inbound"
CONNECT_TIMEOUT = 5.0
"""Kuma's DefaultTimeout of its generated clusters."""

_ALL = {4: "0.0.0.0", 6: "::"}
_INBOUND_SOURCE = {4: "127.0.0.6", 6: "::6"}


def passthrough_name(direction: str, family: int = 4) -> str:
    """`outbound:passthrough:ipv4` and its kin: the listener and its cluster share the name."""
    return f"{direction}:passthrough:ipv{family}"


def _stat(name: str) -> str:
    return name.replace(":", "_")


def _tcp_chain(name: str) -> listener_components_pb2.FilterChain:
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=_stat(name), cluster=name)
    return listener_components_pb2.FilterChain(
        filters=[listener_components_pb2.Filter(name="envoy.filters.network.tcp_proxy", typed_config=pack(proxy))]
    )


def outbound_passthrough_listener(port: int, family: int = 4) -> listener_pb2.Listener:
    """The listener iptables sends outbound TCP to: `use_original_dst`, and one default filter
    chain (a TCP proxy to the same-named ORIGINAL_DST cluster) for what no outbound claims."""
    name = passthrough_name("outbound", family)
    return listener_pb2.Listener(
        name=name,
        address=socket_address(_ALL[family], port),
        filter_chains=[_tcp_chain(name)],
        use_original_dst=wrappers_pb2.BoolValue(value=True),
        traffic_direction=base_pb2.OUTBOUND,
    )


def inbound_passthrough_listener(port: int, family: int = 4) -> listener_pb2.Listener:
    """The listener iptables sends inbound TCP to; what no inbound listener claims goes on to
    the original destination (Kuma without strict inbound ports)."""
    name = passthrough_name("inbound", family)
    return listener_pb2.Listener(
        name=name,
        address=socket_address(_ALL[family], port),
        filter_chains=[_tcp_chain(name)],
        use_original_dst=wrappers_pb2.BoolValue(value=True),
        traffic_direction=base_pb2.INBOUND,
        enable_reuse_port=wrappers_pb2.BoolValue(value=False),
    )


def passthrough_cluster(direction: str, family: int = 4) -> cluster_pb2.Cluster:
    """An ORIGINAL_DST cluster; the inbound one connects from 127.0.0.6 (`::6`)."""
    cluster = original_dst_cluster(passthrough_name(direction, family))
    if direction == "inbound":
        cluster.upstream_bind_config.CopyFrom(
            address_pb2.BindConfig(source_address=address_pb2.SocketAddress(address=_INBOUND_SOURCE[family], port_value=0))
        )
    return cluster


def _no_destination_cluster() -> cluster_pb2.Cluster:
    return cluster_pb2.Cluster(
        name=NO_DESTINATION_CLUSTER,
        alt_stat_name=NO_DESTINATION_CLUSTER,
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=duration(CONNECT_TIMEOUT),
    )


def transparent_resources(
    redirect: Redirect, mesh_spec: Mapping[str, Any] | None, conf: Mapping[str, Any] | None
) -> tuple[tuple[XdsResource, ...], str | None]:
    """Every resource the transparent-proxy generator adds for this redirection, with the
    proxy's MeshPassthrough `conf` (None: no MeshPassthrough selects it) applied to the
    outbound passthrough listeners and clusters; and why MeshPassthrough could not be applied
    (then nothing leaves the mesh from the proxy), or None."""
    ipv6 = ipv6_enabled(redirect)
    passthrough = mesh_passthrough(mesh_spec)
    base = _transparent_resources(redirect.outbound_port, redirect.inbound_port, ipv6, passthrough)
    return (base, None) if conf is None else _with_mesh_passthrough(base, freeze(conf), passthrough, ipv6)


_OUTBOUND = "outbound:passthrough:"


@lru_cache(maxsize=256)
def _with_mesh_passthrough(
    base: tuple[XdsResource, ...], conf: Mapping[str, Any], passthrough: bool, ipv6: bool
) -> tuple[tuple[XdsResource, ...], str | None]:
    """`base` with MeshPassthrough's listeners and clusters in place of the outbound passthrough
    ones (reconciler/policies/meshpassthrough/envoy.py), and the problem when it cannot be
    applied. Shared by the proxies with one conf."""
    listeners = {r.name: r.message() for r in base if r.type_url == LISTENER and r.name.startswith(_OUTBOUND)}
    clusters = [r.message() for r in base if r.type_url == CLUSTER and r.name.startswith(_OUTBOUND)]
    kept = [r for r in base if not r.name.startswith(_OUTBOUND)]
    v4, v6 = listeners.get(passthrough_name("outbound", 4)), listeners.get(passthrough_name("outbound", 6))
    try:
        done = configure_passthrough(conf, passthrough, v4, v6, clusters, ipv6_enabled=ipv6)
    except ValueError as e:
        # Kuma fails such a proxy's config; here nothing leaves the mesh until the policies agree,
        # and the proxy's problems say why (`plan` shows them).
        problem = f"MeshPassthrough: {e}; no traffic leaves the mesh from this proxy"
        log.warning(problem)
        return (*kept, *(resource(LISTENER, name, message) for name, message in listeners.items())), problem
    made = [resource(LISTENER, m.name, m) for m in (done.ipv4, done.ipv6) if m is not None]
    made += [resource(CLUSTER, c.name, c) for c in done.clusters]
    return (*kept, *made), None


@lru_cache(maxsize=1024)
def _transparent_resources(outbound_port: int, inbound_port: int, ipv6: bool, passthrough: bool) -> tuple[XdsResource, ...]:
    """Shared by every proxy with the same ports, IP families and Mesh passthrough."""
    out = [resource(CLUSTER, NO_DESTINATION_CLUSTER, _no_destination_cluster())]
    for family in (4, 6) if ipv6 else (4,):
        out.append(resource(LISTENER, passthrough_name("outbound", family), outbound_passthrough_listener(outbound_port, family)))
        if passthrough:
            out.append(resource(CLUSTER, passthrough_name("outbound", family), passthrough_cluster("outbound", family)))
        out.append(resource(LISTENER, passthrough_name("inbound", family), inbound_passthrough_listener(inbound_port, family)))
        out.append(resource(CLUSTER, passthrough_name("inbound", family), passthrough_cluster("inbound", family)))
    return tuple(out)


@lru_cache(maxsize=65536)
def no_bind(listener: XdsResource) -> XdsResource:
    """The listener with `bind_to_port: false`: the passthrough listener hands it its connections.
    A new resource: the listener given may be shared with proxies that bind."""
    message = listener.message()
    assert isinstance(message, listener_pb2.Listener)
    message.bind_to_port.CopyFrom(wrappers_pb2.BoolValue(value=False))
    return resource(LISTENER, listener.name, message, by_name_only=listener.by_name_only)


@lru_cache(maxsize=65536)
def from_passthrough_source(cluster: XdsResource) -> XdsResource:
    """An inbound's local cluster, connecting from 127.0.0.6 (`::6`) when the workload is not on
    loopback: the redirect sends the proxy's own connections to this host's address back to the
    inbound port, except those from that source (Kuma's inbound generator does the same)."""
    if cluster.type_url != CLUSTER or not cluster.name.startswith("localhost:"):
        return cluster
    message = cluster.message()
    assert isinstance(message, cluster_pb2.Cluster)
    endpoints = [e.endpoint.address.socket_address.address for group in message.load_assignment.endpoints for e in group.lb_endpoints]
    if not endpoints or any(ipaddress.ip_address(a).is_loopback for a in endpoints):
        return cluster
    family = 6 if ipaddress.ip_address(endpoints[0]).version == 6 else 4
    message.upstream_bind_config.CopyFrom(
        address_pb2.BindConfig(source_address=address_pb2.SocketAddress(address=_INBOUND_SOURCE[family], port_value=0))
    )
    return resource(CLUSTER, cluster.name, message, by_name_only=cluster.by_name_only)
