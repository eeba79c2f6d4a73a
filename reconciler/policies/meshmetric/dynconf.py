"""The `_kuma:dynamicconfig` listener and the MeshMetric document it serves to the sidecar.

Kuma (pkg/xds/dynconf/listener.go) hands kuma-dp configuration that is not Envoy's through
Envoy itself: a listener on a Unix socket in the dataplane's work directory answers
`GET /meshmetric` with a JSON document (pkg/plugins/policies/meshmetric/dpapi/api.go,
`MeshMetricDpConfig`) and an `Etag` header, the SHA-256 of the body; a request whose
`If-None-Match` carries that hash gets 304, so polling costs nothing when nothing changed.
run-dataplane's metrics service (reconciler/dataplane/metrics) polls it the same way.

The socket path is relative (Envoy runs in the work directory), so the config stays a pure
function of the commit. The body is serialized as Go's encoding/json does (struct field order,
no spaces, map keys sorted) so its hash is the one Kuma would compute for the same document.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.type.matcher.v3 import string_pb2

from reconciler.envoy_builders import pack

__all__ = [
    "LISTENER_NAME",
    "SOCKET",
    "dynamic_config_listener",
    "etag",
    "go_json",
    "go_duration",
    "http_filters",
    "internal_address_config",
    "sorted_map",
    "stat_prefix",
]

LISTENER_NAME = "_kuma:dynamicconfig"
SOCKET = "kuma-mesh-metric-config.sock"
"""Kuma's MeshMetricsDynamicConfigurationSocketName, relative to the work directory."""


def go_json(value: Any) -> str:
    """`value` as Go's json.Marshal writes it: compact, map keys sorted, HTML-safe escapes.
    Callers build dicts in the Go struct's field order (a dict keeps it; maps are sorted here
    only when they stand for Go maps, see `_GoMap`)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    # Go escapes these three in strings by default (SetEscapeHTML).
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def etag(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def go_duration(seconds: float) -> str:
    """A duration as Go's time.Duration.String() prints it (`1m0s`, `10s`, `1.5s`, `500ms`)."""
    nanos = int(round(seconds * 1e9))
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanos >= size:
                return sign + _trim(nanos / size) + unit
    hours, rest = divmod(nanos, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = _trim(rest / 1e9) + "s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def internal_address_config() -> hcm.HttpConnectionManager.InternalAddressConfig:
    """Kuma's listeners on local sockets trust loopback as internal (LocalHostAddresses)."""
    return hcm.HttpConnectionManager.InternalAddressConfig(
        cidr_ranges=[address_pb2.CidrRange(address_prefix="127.0.0.1", prefix_len={"value": 32})]
    )


def http_filters(*extra: hcm.HttpFilter) -> list[hcm.HttpFilter]:
    return [*extra, hcm.HttpFilter(name="envoy.filters.http.router", typed_config=pack(router_pb2.Router()))]


def stat_prefix(name: str) -> str:
    """Kuma's stat prefix of a listener named `name` (':' and '.' are Envoy stat separators)."""
    return name.replace(":", "_").replace(".", "_")


def dynamic_config_listener(routes: Sequence[tuple[str, str]]) -> listener_pb2.Listener:
    """The listener serving each (path, JSON body) with its ETag, and 304 when unchanged."""
    out: list[route_components_pb2.Route] = []
    largest = 0
    for path, body in routes:
        tag = etag(body)
        largest = max(largest, len(body.encode()))
        out.append(
            route_components_pb2.Route(
                match=route_components_pb2.RouteMatch(
                    path=path,
                    headers=[
                        route_components_pb2.HeaderMatcher(name="If-None-Match", string_match=string_pb2.StringMatcher(exact=tag)),
                    ],
                ),
                direct_response=route_components_pb2.DirectResponseAction(status=304),
            )
        )
        out.append(
            route_components_pb2.Route(
                name=f"{LISTENER_NAME}:{path}",
                match=route_components_pb2.RouteMatch(path=path),
                response_headers_to_add=[base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key="Etag", value=tag))],
                direct_response=route_components_pb2.DirectResponseAction(status=200, body=base_pb2.DataSource(inline_string=body)),
            )
        )
    route_config = route_pb2.RouteConfiguration(
        virtual_hosts=[route_components_pb2.VirtualHost(name=LISTENER_NAME, domains=["*"], routes=out)],
    )
    # Envoy refuses direct-response bodies over 4 KiB unless told the largest size.
    route_config.max_direct_response_body_size_bytes.value = largest
    manager = hcm.HttpConnectionManager(
        stat_prefix=stat_prefix(LISTENER_NAME),
        route_config=route_config,
        http_filters=http_filters(),
        internal_address_config=internal_address_config(),
    )
    return listener_pb2.Listener(
        name=LISTENER_NAME,
        address=address_pb2.Address(pipe=address_pb2.Pipe(path=SOCKET)),
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[listener_components_pb2.Filter(name="envoy.filters.network.http_connection_manager", typed_config=pack(manager))]
            )
        ],
    )


def sorted_map(value: Mapping[str, Any]) -> dict[str, Any]:
    """A Go map: json.Marshal writes its keys sorted."""
    return {k: value[k] for k in sorted(value)}
