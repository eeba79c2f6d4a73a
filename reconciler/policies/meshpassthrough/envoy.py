"""MeshPassthrough's effect on Envoy: which traffic to destinations outside the mesh leaves a
transparently proxied sidecar.

Follows Kuma v2.14.3 (`pkg/plugins/policies/meshpassthrough/plugin/{v1alpha1,xds}`). The conf
is the proxy's merged top-level `default`; it acts on the transparent proxy's outbound
passthrough listeners (`outbound:passthrough:ipv4`, `…:ipv6`: what iptables redirects and no
virtual outbound claims) and on their ORIGINAL_DST clusters, which exist only when the Mesh's
`networking.outbound.passthrough` (default true) allows it:

| Mesh passthrough | passthroughMode | effect |
| --- | --- | --- |
| on | All | nothing |
| on | None | the passthrough clusters go: every non-mesh connection is closed |
| off | All | the passthrough clusters are added back |
| off | None | nothing (there are no passthrough clusters) |
| either | Matched (default) | the passthrough clusters go; with `appendMatch`, each listener that a match applies to gets one filter chain per match instead of its catch-all one |

With `Matched`, a connection leaves only if a filter chain matches its original destination
(address, port, TLS SNI or HTTP Host). A TCP or TLS match is a tcp_proxy chain; an HTTP, HTTP/2
or gRPC match is an HTTP connection manager whose domains are virtual hosts (and a `no_match`
host answering 503 to other hosts). Each chain sends to its own ORIGINAL_DST cluster
(`meshpassthrough_<protocol>_<value>_<port or *>`). The listeners also get the original_dst,
TLS inspector and HTTP inspector listener filters (the inspectors off on mysql ports: MySQL
servers speak first). A listener that no match applies to (IPv6 with IPv4-only matches) keeps
its catch-all chain, which then names a cluster that is gone, as in Kuma.

`configure_passthrough` is the function the transparent-proxy generator calls; `PLUGIN` only
puts the kind's proxy-wide conf into the proxy's view (`ProxyView.confs["MeshPassthrough"]`).
Kuma skips builtin gateways and proxies without transparent proxying: they have no
passthrough listener, so the caller never calls this for them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.http_inspector.v3 import http_inspector_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.type.v3 import range_pb2

from reconciler.envoy_builders import duration, pack, upstream_protocol_options
from reconciler.policies.core.plugin import Plugin
from reconciler.policies.meshpassthrough.order import FilterChainMatch, MatchType, network_of, ordered_matchers

__all__ = [
    "PLUGIN",
    "KIND",
    "Passthrough",
    "configure_passthrough",
    "mesh_passthrough",
    "passthrough_cluster",
    "cluster_name",
    "filter_chain_name",
    "NO_MATCH_MESSAGE",
    "IPV4",
    "IPV6",
]

KIND = "MeshPassthrough"
IPV4 = "outbound:passthrough:ipv4"
IPV6 = "outbound:passthrough:ipv6"
"""The transparent proxy's outbound passthrough listeners, and their ORIGINAL_DST clusters."""

NO_MATCH_MESSAGE = (
    "This response comes from Kuma Sidecar. No routes matched this domain - check configuration of your MeshPassthrough policy.\n"
)
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
HTTP_INSPECTOR = "envoy.filters.listener.http_inspector"
ORIGINAL_DST = "envoy.filters.listener.original_dst"
_ILLEGAL_STAT = re.compile(r"[^a-zA-Z_\-0-9]")
_V4_ONLY = (MatchType.IP, MatchType.CIDR)
_V6_ONLY = (MatchType.IP_V6, MatchType.CIDR_V6)


@dataclass(frozen=True, slots=True)
class Passthrough:
    """What replaces the passthrough listeners and their clusters on the proxy."""

    ipv4: listener_pb2.Listener | None
    ipv6: listener_pb2.Listener | None
    clusters: tuple[cluster_pb2.Cluster, ...]
    """Every cluster that replaces the `clusters` given to `configure_passthrough`, by name."""


def _sanitized(name: str) -> str:
    """Kuma's SanitizeMetric: stat names keep letters, digits, '_' and '-'."""
    return _ILLEGAL_STAT.sub("_", name)


def cluster_name(value: str, protocol: str, port: int) -> str:
    return f"meshpassthrough_{protocol}_{value}_{port or '*'}"


def filter_chain_name(name: str, protocol: str, port: int) -> str:
    shown = str(port) if port else "*"
    return f"meshpassthrough_{name}_{shown}" if name == protocol else f"meshpassthrough_{protocol}_{name}_{shown}"


def passthrough_cluster(name: str, protocol: str = "tcp") -> cluster_pb2.Cluster:
    """An ORIGINAL_DST cluster (Kuma's CreateCluster): to wherever the application connected;
    HTTP/2 upstream for http2 and gRPC."""
    out = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.ORIGINAL_DST,
        lb_policy=cluster_pb2.Cluster.CLUSTER_PROVIDED,
        connect_timeout=duration(5),
        alt_stat_name=_sanitized(name),
    )
    if protocol in ("http2", "grpc"):
        for key, value in upstream_protocol_options(protocol).items():
            out.typed_extension_protocol_options[key].CopyFrom(value)
    return out


def mesh_passthrough(mesh_spec: Mapping[str, Any] | None) -> bool:
    """Kuma's Mesh.IsPassthrough: the Mesh's `networking.outbound.passthrough`, true when unset
    (`ProxyView.mesh.resource.spec`)."""
    outbound = ((mesh_spec or {}).get("networking") or {}).get("outbound") or {}
    value = outbound.get("passthrough") if isinstance(outbound, Mapping) else None
    return value is not False


def configure_passthrough(
    conf: Mapping[str, Any] | None,
    mesh_passthrough: bool,
    ipv4: listener_pb2.Listener | None,
    ipv6: listener_pb2.Listener | None = None,
    clusters: Sequence[cluster_pb2.Cluster] = (),
    *,
    ipv6_enabled: bool = False,
) -> Passthrough:
    """MeshPassthrough applied to the proxy's passthrough listeners (the generator's
    `outbound:passthrough:ipv4` and, with IPv6, `…:ipv6`) and their ORIGINAL_DST `clusters`
    (those the generator made, which it makes only when `mesh_passthrough`, the Mesh's
    `networking.outbound.passthrough`, is true).

    `conf` is the proxy's merged MeshPassthrough `default` (`ProxyView.confs.get(KIND)`; None:
    no MeshPassthrough selects the proxy, and nothing changes). The caller serves the returned
    listeners in place of the given ones and the returned `clusters` in place of the given
    ones. The inputs are not changed. `ipv6_enabled`: the proxy has IPv6 (the HTTP connection
    managers then count ::1 as an internal address too).

    Raises ValueError when the merged matches put two of HTTP, HTTP/2 and gRPC on one port
    (Kuma then fails the proxy's config).
    """
    given = tuple(clusters)
    if conf is None:
        return Passthrough(ipv4, ipv6, given)
    mode = str(conf.get("passthroughMode") or "Matched")
    if mode == "None":
        # Mesh on: Kuma removes the passthrough clusters; mesh off: there are none to remove.
        return Passthrough(ipv4, ipv6, _without_defaults(given))
    if mode == "All":
        if mesh_passthrough:
            return Passthrough(ipv4, ipv6, given)
        added = (passthrough_cluster(IPV4), passthrough_cluster(IPV6))
        return Passthrough(ipv4, ipv6, _by_name((*_without_defaults(given), *added)))
    if mode != "Matched":
        return Passthrough(ipv4, ipv6, given)  # validation rejects other modes
    kept = _without_defaults(given)
    matches = [m for m in conf.get("appendMatch") or () if isinstance(m, Mapping)]
    if not matches:
        return Passthrough(ipv4, ipv6, kept)
    chains = ordered_matchers(matches)
    protocol_of: dict[str, str] = {}
    mysql_ports = [c.port for c in chains if c.protocol == "mysql"]
    new_v4, new_v6 = ipv4, ipv6
    if ipv4 is not None and any(c.match_type not in _V6_ONLY for c in chains):
        new_v4 = _configured(ipv4, chains, False, ipv6_enabled, mysql_ports, protocol_of)
    if ipv6 is not None and any(c.match_type not in _V4_ONLY for c in chains):
        new_v6 = _configured(ipv6, chains, True, ipv6_enabled, mysql_ports, protocol_of)
    added = tuple(passthrough_cluster(name, protocol) for name, protocol in protocol_of.items())
    return Passthrough(new_v4, new_v6, _by_name((*kept, *added)))


def _without_defaults(clusters: Sequence[cluster_pb2.Cluster]) -> tuple[cluster_pb2.Cluster, ...]:
    return tuple(c for c in clusters if c.name not in (IPV4, IPV6))


def _by_name(clusters: Sequence[cluster_pb2.Cluster]) -> tuple[cluster_pb2.Cluster, ...]:
    return tuple(sorted({c.name: c for c in clusters}.values(), key=lambda c: c.name))


def _configured(
    given: listener_pb2.Listener,
    chains: Sequence[FilterChainMatch],
    v6: bool,
    ipv6_enabled: bool,
    mysql_ports: Sequence[int],
    protocol_of: dict[str, str],
) -> listener_pb2.Listener:
    listener = listener_pb2.Listener()
    listener.CopyFrom(given)
    del listener.filter_chains[:]  # the catch-all chain goes: only matched traffic leaves
    for chain in chains:
        if chain.match_type in (_V4_ONLY if v6 else _V6_ONLY):
            continue  # the address family of the other listener
        if chain.protocol in ("tcp", "mysql", "tls"):
            listener.filter_chains.append(_tcp_chain(chain, v6, protocol_of))
        else:
            listener.filter_chains.append(_http_chain(chain, v6, ipv6_enabled, protocol_of))
    present = {f.name for f in listener.listener_filters}
    listener.listener_filters.append(
        listener_components_pb2.ListenerFilter(name=ORIGINAL_DST, typed_config=pack(original_dst_pb2.OriginalDst()))
    )
    if TLS_INSPECTOR not in present:
        listener.listener_filters.append(_inspector(TLS_INSPECTOR, tls_inspector_pb2.TlsInspector(), mysql_ports))
    if HTTP_INSPECTOR not in present:
        listener.listener_filters.append(_inspector(HTTP_INSPECTOR, http_inspector_pb2.HttpInspector(), mysql_ports))
    return listener


def _inspector(name: str, config: Any, disabled_ports: Sequence[int]) -> listener_components_pb2.ListenerFilter:
    """A listener filter, off on `disabled_ports` (a MySQL server speaks first, so waiting for
    the client's first bytes would stall the connection until the inspector times out)."""
    out = listener_components_pb2.ListenerFilter(name=name, typed_config=pack(config))
    rules = [
        listener_components_pb2.ListenerFilterChainMatchPredicate(destination_port_range=range_pb2.Int32Range(start=port, end=port + 1))
        for port in disabled_ports
    ]
    if len(rules) == 1:
        out.filter_disabled.CopyFrom(rules[0])
    elif rules:
        out.filter_disabled.or_match.rules.extend(rules)
    return out


def _match(chain: FilterChainMatch, transport: str, v6: bool) -> listener_components_pb2.FilterChainMatch:
    match = listener_components_pb2.FilterChainMatch(transport_protocol=transport)
    if chain.match_type in (MatchType.CIDR, MatchType.CIDR_V6):
        address, length = network_of(chain.value)
        match.prefix_ranges.append(address_pb2.CidrRange(address_prefix=address, prefix_len={"value": length}))
    elif chain.match_type in (MatchType.IP, MatchType.IP_V6):
        match.prefix_ranges.append(address_pb2.CidrRange(address_prefix=chain.value, prefix_len={"value": 128 if v6 else 32}))
    if chain.port:
        match.destination_port.value = chain.port
    return match


def _tcp_chain(chain: FilterChainMatch, v6: bool, protocol_of: dict[str, str]) -> listener_components_pb2.FilterChain:
    """tcp and mysql: by destination address and port; tls: also by SNI for domains."""
    tls = chain.protocol == "tls"
    named = "tls" if tls else "tcp"  # a mysql match is a tcp chain and cluster
    cluster = cluster_name(chain.value, named, chain.port)
    protocol_of[cluster] = chain.protocol
    match = _match(chain, "tls" if tls else "raw_buffer", v6)
    if tls and chain.match_type in (MatchType.DOMAIN, MatchType.WILDCARD_DOMAIN) and chain.value not in ("", "*"):
        match.server_names.append(chain.value)
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=_sanitized(cluster), cluster=cluster)
    return listener_components_pb2.FilterChain(
        name=filter_chain_name(chain.value, named, chain.port),
        filter_chain_match=match,
        filters=[listener_components_pb2.Filter(name="envoy.filters.network.tcp_proxy", typed_config=pack(proxy))],
    )


def _virtual_host(name: str, domains: Sequence[str], cluster: str) -> route_components_pb2.VirtualHost:
    return route_components_pb2.VirtualHost(
        name=name,
        domains=list(domains),
        routes=[
            route_components_pb2.Route(
                match=route_components_pb2.RouteMatch(prefix="/"), route=route_components_pb2.RouteAction(cluster=cluster)
            )
        ],
    )


def _domains(value: str, match_type: MatchType, port: int) -> list[str]:
    """A virtual host's domains: a Host header may carry the port (RFC 9110), so both forms."""
    if port:
        return [value, f"{value}:{port}"]
    return [value, f"{value}:*"] if match_type == MatchType.DOMAIN else [value]


def _http_chain(chain: FilterChainMatch, v6: bool, ipv6_enabled: bool, protocol_of: dict[str, str]) -> listener_components_pb2.FilterChain:
    """http, http2 and grpc: by destination address and port, then by Host among the domains."""
    hosts: list[route_components_pb2.VirtualHost] = []
    if chain.match_type == MatchType.DOMAIN:
        name = filter_chain_name(chain.protocol, chain.protocol, chain.port)
        for route in chain.routes:
            cluster = cluster_name(route.value, chain.protocol, chain.port)
            hosts.append(_virtual_host(route.value, _domains(route.value, route.match_type, chain.port), cluster))
            protocol_of[cluster] = chain.protocol
        no_match = route_components_pb2.Route(
            match=route_components_pb2.RouteMatch(prefix="/"),
            direct_response=route_components_pb2.DirectResponseAction(status=503, body={"inline_string": NO_MATCH_MESSAGE}),
        )
        hosts.append(route_components_pb2.VirtualHost(name="no_match", domains=["*"], routes=[no_match]))
    else:
        name = filter_chain_name(chain.value, chain.protocol, chain.port)
        cluster = cluster_name(chain.value, chain.protocol, chain.port)
        hosts.append(_virtual_host(chain.value, ["*"], cluster))
        protocol_of[cluster] = chain.protocol
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix=_sanitized(name),
        codec_type=hcm_pb2.HttpConnectionManager.AUTO,
        http_filters=[hcm_pb2.HttpFilter(name="envoy.filters.http.router", typed_config=pack(router_pb2.Router()))],
        route_config=route_pb2.RouteConfiguration(name=name, virtual_hosts=hosts),
    )
    # Kuma's LocalHostAddresses: loopback peers are internal (::1 only when the proxy has IPv6).
    for prefix, length in (("127.0.0.1", 32), ("::1", 128)) if ipv6_enabled else (("127.0.0.1", 32),):
        hcm.internal_address_config.cidr_ranges.append(address_pb2.CidrRange(address_prefix=prefix, prefix_len={"value": length}))
    match = _match(chain, "raw_buffer", v6)
    match.application_protocols.extend(["http/1.1", "h2c"])
    return listener_components_pb2.FilterChain(
        name=name,
        filter_chain_match=match,
        filters=[listener_components_pb2.Filter(name="envoy.filters.network.http_connection_manager", typed_config=pack(hcm))],
    )


PLUGIN = Plugin(kind=KIND, inbound=False, outbound=False)
"""No hook while inbounds and outbounds are built: the conf is proxy-wide (the merged top-level
`default`, in `ProxyView.confs`) and acts on the passthrough listeners through
`configure_passthrough`, which the transparent-proxy generator calls."""
