"""Small builders for Envoy messages shared by the generators and the policies' Envoy effects (a leaf: protos only)."""

from __future__ import annotations

import ipaddress

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2, protocol_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message

__all__ = [
    "socket_address",
    "ads_source",
    "pack",
    "duration",
    "upstream_protocol_options",
    "mesh_upstream_protocol_options",
    "endpoint_cluster",
    "HTTP_OPTIONS_KEY",
]

HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def socket_address(address: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=address, port_value=port))


def ads_source() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.V3)


def pack(message: Message) -> any_pb2.Any:
    out = any_pb2.Any()
    # Deterministic: map fields (a Struct's, e.g. an access log's JSON format) would otherwise be
    # written in insertion order, which can follow string hashing, so replicas would disagree.
    out.Pack(message, deterministic=True)
    return out


def duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(round(seconds * 1e9)))
    return d


EDGE_STREAM_WINDOW = 64 * 1024
EDGE_CONNECTION_WINDOW = 1024 * 1024
"""HTTP/2 window sizes of a gateway's upstream connections: Envoy's edge-proxy best practice,
as Kuma's gateway clusters (Http2FromEdge)."""


def _http2_options(edge: bool = False) -> dict[str, any_pb2.Any]:
    http2 = protocol_pb2.Http2ProtocolOptions()
    if edge:
        http2.initial_stream_window_size.value = EDGE_STREAM_WINDOW
        http2.initial_connection_window_size.value = EDGE_CONNECTION_WINDOW
    opts = http_protocol_options_pb2.HttpProtocolOptions(
        explicit_http_config=http_protocol_options_pb2.HttpProtocolOptions.ExplicitHttpConfig(http2_protocol_options=http2)
    )
    return {HTTP_OPTIONS_KEY: pack(opts)}


def mesh_upstream_protocol_options() -> dict[str, any_pb2.Any]:
    """HTTP/2 to a peer sidecar, whatever the service's protocol, as Kuma's outbound clusters to
    mesh services (pkg/plugins/policies/core/xds/meshroute/clusters.go): the peer's inbound
    listener accepts both codecs and speaks the application's own protocol to it. A TCP
    outbound's tcp_proxy never reads these options, so Kuma sets them on every such cluster."""
    return _http2_options()


def upstream_protocol_options(protocol: str, edge: bool = False) -> dict[str, any_pb2.Any]:
    """The application's own protocol, for upstreams that are not sidecars (the local workload,
    external services) and for a gateway's backends (`edge`: with edge window sizes): HTTP/2
    for http2 and grpc, HTTP/1.1 for http, nothing for TCP."""
    if protocol in ("http2", "grpc"):
        return _http2_options(edge)
    if protocol == "http":
        opts = http_protocol_options_pb2.HttpProtocolOptions(
            explicit_http_config=http_protocol_options_pb2.HttpProtocolOptions.ExplicitHttpConfig(
                http_protocol_options=protocol_pb2.Http1ProtocolOptions()
            )
        )
        return {HTTP_OPTIONS_KEY: pack(opts)}
    return {}


def endpoint_cluster(
    name: str,
    host: str,
    port: int,
    connect_timeout: float,
    *,
    alt_stat_name: str = "",
    http2: bool = False,
    tls_sni: str = "",
    allow_renegotiation: bool = False,
) -> cluster_pb2.Cluster:
    """A cluster of one `host:port` outside the mesh, such as a telemetry collector: STATIC for an
    IP address, STRICT_DNS over IPv4 for a hostname (Kuma's ProvidedEndpointCluster); `http2` for
    gRPC (OTLP); with `tls_sni`, TLS with that SNI and no CA check (Kuma's ClientSideTLS)."""
    try:
        ipaddress.ip_address(host)
        static = True
    except ValueError:
        static = False
    lb = endpoint_components_pb2.LbEndpoint(endpoint=endpoint_components_pb2.Endpoint(address=socket_address(host, port)))
    cluster = cluster_pb2.Cluster(
        name=name,
        alt_stat_name=alt_stat_name,
        type=cluster_pb2.Cluster.STATIC if static else cluster_pb2.Cluster.STRICT_DNS,
        connect_timeout=duration(connect_timeout),
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=name, endpoints=[endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=[lb])]
        ),
    )
    if not static:
        cluster.dns_lookup_family = cluster_pb2.Cluster.V4_ONLY
    if http2:
        for key, value in _http2_options().items():
            cluster.typed_extension_protocol_options[key].CopyFrom(value)
    if tls_sni:
        context = tls_pb2.UpstreamTlsContext(sni=tls_sni, allow_renegotiation=allow_renegotiation)
        cluster.transport_socket.name = "envoy.transport_sockets.tls"
        cluster.transport_socket.typed_config.CopyFrom(pack(context))
    return cluster
