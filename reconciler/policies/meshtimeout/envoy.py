"""MeshTimeout → Envoy: which merged conf field lands on which Envoy field (Kuma v2.14).

Kuma's plugin (pkg/plugins/policies/meshtimeout/plugin/xds/configurer.go) sets, on a sidecar,
inbound (`rules`/`from`) and outbound (`to`) alike:

| conf field                   | Envoy field                                                              | when unset |
| ---------------------------- | ------------------------------------------------------------------------ | ---------- |
| `connectionTimeout`          | cluster `connect_timeout`                                                | 5s         |
| `idleTimeout`                | cluster `HttpProtocolOptions.common_http_protocol_options.idle_timeout` (HTTP, HTTP/2); TcpProxy `idle_timeout` (TCP) | 1h |
| `http.maxStreamDuration`     | cluster `…common_http_protocol_options.max_stream_duration` (HTTP, HTTP/2) | 0s (off)   |
| `http.maxConnectionDuration` | cluster `…common_http_protocol_options.max_connection_duration` (HTTP, HTTP/2) | 0s (off) |
| `http.requestHeadersTimeout` | HCM `request_headers_timeout`                                            | 0s (off)   |
| `http.requestTimeout`        | route `route.timeout`                                                    | 15s        |
| `http.streamIdleTimeout`     | route `route.idle_timeout`                                               | 30m        |

and always turns the HCM's downstream `common_http_protocol_options.idle_timeout` off (0s): the
idle timeout of a MeshTimeout is the upstream connection's, set on the cluster. A gRPC cluster
gets only `connect_timeout`, as in Kuma (its cluster configurer handles HTTP and HTTP/2 only).

The "when unset" values are Kuma's `pkg/plugins/policies/core/defaults` and apply to any field
the merged conf leaves out; Kuma's default policies (`mesh-timeout-all-<mesh>`,
`mesh-gateways-timeout-all-<mesh>`, see `default_policies`) set most fields explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from reconciler.durations import parse_duration
from reconciler.envoy_builders import HTTP_OPTIONS_KEY, duration, pack
from reconciler.policies.core.plugin import HookContext, Plugin
from reconciler.policies.meshtimeout.defaults import default_policies

__all__ = [
    "PLUGIN",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_STREAM_IDLE_TIMEOUT",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_REQUEST_HEADERS_TIMEOUT",
    "DEFAULT_MAX_STREAM_DURATION",
    "DEFAULT_MAX_CONNECTION_DURATION",
    "configure_cluster",
    "configure_http_connection_manager",
    "configure_tcp_proxy",
    "configure_route",
]

# Kuma's pkg/plugins/policies/core/defaults (seconds).
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_IDLE_TIMEOUT = 3600.0
DEFAULT_STREAM_IDLE_TIMEOUT = 1800.0
DEFAULT_REQUEST_TIMEOUT = 15.0
DEFAULT_REQUEST_HEADERS_TIMEOUT = 0.0
DEFAULT_MAX_STREAM_DURATION = 0.0
DEFAULT_MAX_CONNECTION_DURATION = 0.0

_CLUSTER_HTTP_PROTOCOLS = ("http", "http2")
"""Protocols whose cluster gets the HTTP timeouts (Kuma's ClusterConfigurer: not gRPC)."""


def _seconds(value: Any, default: float) -> float:
    seconds = parse_duration(value)
    return default if seconds is None else seconds


def _http(conf: Mapping[str, Any]) -> Mapping[str, Any]:
    http = conf.get("http")
    return http if isinstance(http, Mapping) else {}


def configure_cluster(cluster: cluster_pb2.Cluster, conf: Mapping[str, Any], ctx: HookContext) -> None:
    """Outbound cluster or the inbound's local cluster: connect timeout, upstream HTTP timeouts."""
    cluster.connect_timeout.CopyFrom(duration(_seconds(conf.get("connectionTimeout"), DEFAULT_CONNECT_TIMEOUT)))
    if ctx.protocol not in _CLUSTER_HTTP_PROTOCOLS:
        return
    http = _http(conf)
    options = http_protocol_options_pb2.HttpProtocolOptions()
    existing = cluster.typed_extension_protocol_options.get(HTTP_OPTIONS_KEY)
    if existing is not None:
        existing.Unpack(options)
    common = options.common_http_protocol_options
    common.idle_timeout.CopyFrom(duration(_seconds(conf.get("idleTimeout"), DEFAULT_IDLE_TIMEOUT)))
    common.max_stream_duration.CopyFrom(duration(_seconds(http.get("maxStreamDuration"), DEFAULT_MAX_STREAM_DURATION)))
    common.max_connection_duration.CopyFrom(duration(_seconds(http.get("maxConnectionDuration"), DEFAULT_MAX_CONNECTION_DURATION)))
    cluster.typed_extension_protocol_options[HTTP_OPTIONS_KEY].CopyFrom(pack(options))


def configure_http_connection_manager(hcm: hcm_pb2.HttpConnectionManager, conf: Mapping[str, Any], ctx: HookContext) -> None:
    """HCM of an HTTP listener: request headers timeout; downstream idle timeout off."""
    hcm.request_headers_timeout.CopyFrom(duration(_seconds(_http(conf).get("requestHeadersTimeout"), DEFAULT_REQUEST_HEADERS_TIMEOUT)))
    # Kuma's old Timeout policy put idleTimeout on the listener; MeshTimeout puts it on the cluster.
    hcm.common_http_protocol_options.idle_timeout.CopyFrom(duration(0))


def configure_tcp_proxy(proxy: tcp_proxy_pb2.TcpProxy, conf: Mapping[str, Any], ctx: HookContext) -> None:
    """TcpProxy of a TCP listener: idle timeout of the proxied connection."""
    proxy.idle_timeout.CopyFrom(duration(_seconds(conf.get("idleTimeout"), DEFAULT_IDLE_TIMEOUT)))


def configure_route(route: route_components_pb2.Route, conf: Mapping[str, Any], ctx: HookContext) -> None:
    """A route forwarding to a cluster: request timeout and stream idle timeout (Kuma's
    ConfigureRouteAction). A redirect or direct response has no RouteAction to configure."""
    if not route.HasField("route"):
        return
    action = route.route
    http = _http(conf)
    action.timeout.CopyFrom(duration(_seconds(http.get("requestTimeout"), DEFAULT_REQUEST_TIMEOUT)))
    stream_idle = http.get("streamIdleTimeout")
    if stream_idle is not None:
        action.idle_timeout.CopyFrom(duration(_seconds(stream_idle, DEFAULT_STREAM_IDLE_TIMEOUT)))
    elif not action.HasField("idle_timeout"):
        # A route idle timeout set earlier (by a route filter) is kept; otherwise Kuma's default.
        action.idle_timeout.CopyFrom(duration(DEFAULT_STREAM_IDLE_TIMEOUT))


PLUGIN = Plugin(
    kind="MeshTimeout",
    cluster=configure_cluster,
    http_connection_manager=configure_http_connection_manager,
    tcp_proxy=configure_tcp_proxy,
    route=configure_route,
    inbound=True,
    outbound=True,
    defaults=default_policies,
)
"""Timeouts on clusters, HTTP connection managers, TCP proxies and routes, both directions,
and Kuma's default MeshTimeouts (see defaults.py)."""
