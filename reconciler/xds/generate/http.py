"""HTTP connection manager and TCP proxy network filters shared by inbound and outbound."""

from __future__ import annotations

from envoy.config.listener.v3 import listener_components_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from reconciler.envoy_builders import ads_source, pack

__all__ = ["http_connection_manager", "inline_http_connection_manager", "hcm_filter", "tcp_proxy", "tcp_proxy_filter", "tls_inspector"]

HCM = hcm_pb2.HttpConnectionManager


def http_connection_manager(stat_prefix: str, route_config_name: str) -> hcm_pb2.HttpConnectionManager:
    """An HCM that takes its routes over RDS (ADS) and accepts HTTP/1.1 and HTTP/2: the builtin
    gateway's, whose route tables Kuma also serves over RDS."""
    hcm = _hcm(stat_prefix)
    hcm.rds.CopyFrom(hcm_pb2.Rds(config_source=ads_source(), route_config_name=route_config_name))
    return hcm


def inline_http_connection_manager(stat_prefix: str, routes: route_pb2.RouteConfiguration) -> hcm_pb2.HttpConnectionManager:
    """An HCM carrying its routes (`route_config`), as Kuma's sidecar listeners do: Envoy applies
    the listener without one RDS round trip per listener."""
    hcm = _hcm(stat_prefix)
    # As Kuma's sidecars: loopback peers are internal, for Envoy's header sanitizing and stats
    # (Envoy's own default counts no address as internal).
    for prefix, length in (("127.0.0.1", 32), ("::1", 128)):
        cidr = hcm.internal_address_config.cidr_ranges.add(address_prefix=prefix)
        cidr.prefix_len.value = length
    config = route_pb2.RouteConfiguration()
    config.CopyFrom(routes)
    # Envoy validates the clusters of an inline table by default and would reject a listener
    # whose route names a cluster not yet warmed; Kuma turns that off for the same reason.
    config.validate_clusters.value = False
    hcm.route_config.CopyFrom(config)
    return hcm


def _hcm(stat_prefix: str) -> hcm_pb2.HttpConnectionManager:
    return HCM(
        stat_prefix=stat_prefix,
        codec_type=HCM.AUTO,
        http_filters=[hcm_pb2.HttpFilter(name="envoy.filters.http.router", typed_config=pack(router_pb2.Router()))],
    )


def hcm_filter(hcm: hcm_pb2.HttpConnectionManager) -> listener_components_pb2.Filter:
    return listener_components_pb2.Filter(name="envoy.filters.network.http_connection_manager", typed_config=pack(hcm))


def tcp_proxy(stat_prefix: str, cluster: str) -> tcp_proxy_pb2.TcpProxy:
    return tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix, cluster=cluster)


def tcp_proxy_filter(proxy: tcp_proxy_pb2.TcpProxy) -> listener_components_pb2.Filter:
    return listener_components_pb2.Filter(name="envoy.filters.network.tcp_proxy", typed_config=pack(proxy))


def tls_inspector() -> listener_components_pb2.ListenerFilter:
    from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2

    return listener_components_pb2.ListenerFilter(
        name="envoy.filters.listener.tls_inspector", typed_config=pack(tls_inspector_pb2.TlsInspector())
    )
