"""Small builders for Envoy messages shared by the generators and the policies' Envoy effects (a leaf: protos only)."""

from __future__ import annotations

from envoy.config.core.v3 import address_pb2, config_source_pb2, protocol_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message

__all__ = ["socket_address", "ads_source", "pack", "duration", "upstream_protocol_options", "HTTP_OPTIONS_KEY"]

HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def socket_address(address: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=address, port_value=port))


def ads_source() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.V3)


def pack(message: Message) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(message)
    return out


def duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(round(seconds * 1e9)))
    return d


def upstream_protocol_options(protocol: str) -> dict[str, any_pb2.Any]:
    """HTTP/2 to upstreams that speak it (http2, grpc); HTTP/1.1 for http; nothing for TCP."""
    if protocol in ("http2", "grpc"):
        opts = http_protocol_options_pb2.HttpProtocolOptions(
            explicit_http_config=http_protocol_options_pb2.HttpProtocolOptions.ExplicitHttpConfig(
                http2_protocol_options=protocol_pb2.Http2ProtocolOptions()
            )
        )
    elif protocol == "http":
        opts = http_protocol_options_pb2.HttpProtocolOptions(
            explicit_http_config=http_protocol_options_pb2.HttpProtocolOptions.ExplicitHttpConfig(
                http_protocol_options=protocol_pb2.Http1ProtocolOptions()
            )
        )
    else:
        return {}
    return {HTTP_OPTIONS_KEY: pack(opts)}
