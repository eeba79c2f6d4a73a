"""MeshRateLimit's effect on Envoy: local rate limits on a sidecar's inbound listeners.

Follows Kuma v2.14 (`pkg/plugins/policies/meshratelimit/plugin/xds/configurer.go` and
`pkg/xds/envoy/routes/v3/ratelimit.go`):

- `local.http` → the HTTP filter `envoy.filters.http.local_ratelimit` before the router, with
  only `stat_prefix: rate_limit` at the filter level; the limit itself (token bucket, status,
  response headers, `filter_enabled`/`filter_enforced` at 100%) goes into every route's
  `typed_per_filter_config`. The route part is done by the `route` hook, on the inbound route
  configuration inline in the HCM (as Kuma's).
- `local.tcp` → the network filter `envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit`
  (Kuma's name for it) placed first in every filter chain of the inbound listener, HTTP or TCP.
- `disabled: true`, or no `requestRate` / `connectionRate`, configures nothing.

The conf is the merged `default` of the `from` entries (all of them target the whole mesh) and
the `rules` without `matches`: Kuma reads MeshRateLimit's `from` as rules and merges the
catch-all rules the same way.

On a builtin gateway the conf is the listener's (views/gateway_policies.py: the merged `to`
entries of kind Mesh of the policies reaching that listener) and the same hooks run on the
gateway's listener, HCM and routes with an inbound context (xds/generate/gateway.py), as Kuma's
`applyToGateways` does: all filter chains, every route of the listener's route configurations,
a route-targeted limit first (a limit already on a route is kept).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2 as http_local_rate_limit_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.local_ratelimit.v3 import local_rate_limit_pb2 as tcp_local_rate_limit_pb2
from envoy.type.v3 import http_status_pb2, percent_pb2, token_bucket_pb2
from google.protobuf import wrappers_pb2

from reconciler.durations import parse_duration
from reconciler.envoy_builders import duration, pack
from reconciler.policies.core.plugin import HookContext, Plugin

__all__ = [
    "PLUGIN",
    "HTTP_FILTER",
    "TCP_FILTER",
    "http_rate_limit",
    "tcp_rate_limit",
    "configure_http_connection_manager",
    "configure_route",
    "configure_listener",
]

HTTP_FILTER = "envoy.filters.http.local_ratelimit"
TCP_FILTER = "envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit"
"""Kuma names the network filter by its type, not by Envoy's `envoy.filters.network.local_ratelimit`."""
ROUTER = "envoy.filters.http.router"
HTTP_STAT_PREFIX = "rate_limit"
TCP_STAT_PREFIX = "tcp_rate_limit"

HeaderValueOption = base_pb2.HeaderValueOption


def _get(conf: Mapping[str, Any] | None, *path: str) -> Any:
    value: Any = conf
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _token_bucket(rate: Mapping[str, Any]) -> token_bucket_pb2.TokenBucket:
    """`num` tokens, refilled to `num` every `interval`: at most `num` per interval, no burst above it."""
    num = int(rate.get("num") or 0)
    return token_bucket_pb2.TokenBucket(
        max_tokens=num,
        tokens_per_fill=wrappers_pb2.UInt32Value(value=num),
        fill_interval=duration(parse_duration(rate.get("interval")) or 0.0),
    )


def _full_percent(runtime_key: str) -> base_pb2.RuntimeFractionalPercent:
    return base_pb2.RuntimeFractionalPercent(
        default_value=percent_pb2.FractionalPercent(numerator=100, denominator=percent_pb2.FractionalPercent.HUNDRED),
        runtime_key=runtime_key,
    )


def _response_headers(headers: Mapping[str, Any] | None) -> list[base_pb2.HeaderValueOption]:
    """`add` appends to the response header; `set` overwrites it, one value per comma-separated
    part of `value` (Kuma splits it, so `set: a,b` sends the header twice)."""
    out = []
    for h in _get(headers, "add") or ():
        out.append(
            HeaderValueOption(
                header=base_pb2.HeaderValue(key=str(h["name"]), value=str(h["value"])),
                append_action=HeaderValueOption.APPEND_IF_EXISTS_OR_ADD,
            )
        )
    for h in _get(headers, "set") or ():
        for part in str(h["value"]).split(","):
            out.append(
                HeaderValueOption(
                    header=base_pb2.HeaderValue(key=str(h["name"]), value=part), append_action=HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
                )
            )
    return out


def http_rate_limit(http: Mapping[str, Any] | None) -> http_local_rate_limit_pb2.LocalRateLimit | None:
    """The per-route LocalRateLimit for `local.http`, or None when it limits nothing."""
    if not isinstance(http, Mapping) or http.get("disabled") or http.get("requestRate") is None:
        return None
    config = http_local_rate_limit_pb2.LocalRateLimit(
        stat_prefix=HTTP_STAT_PREFIX,
        token_bucket=_token_bucket(http["requestRate"]),
        filter_enabled=_full_percent("local_rate_limit_enabled"),
        filter_enforced=_full_percent("local_rate_limit_enforced"),
    )
    on_rate_limit = http.get("onRateLimit")
    if isinstance(on_rate_limit, Mapping):
        status = int(on_rate_limit.get("status") or 0)
        if status:  # unset: Envoy answers 429 Too Many Requests
            config.status.CopyFrom(http_status_pb2.HttpStatus(code=status))
        config.response_headers_to_add.extend(_response_headers(on_rate_limit.get("headers")))
    return config


def tcp_rate_limit(tcp: Mapping[str, Any] | None) -> tcp_local_rate_limit_pb2.LocalRateLimit | None:
    """The network LocalRateLimit for `local.tcp`, or None when it limits nothing."""
    if not isinstance(tcp, Mapping) or tcp.get("disabled") or tcp.get("connectionRate") is None:
        return None
    return tcp_local_rate_limit_pb2.LocalRateLimit(stat_prefix=TCP_STAT_PREFIX, token_bucket=_token_bucket(tcp["connectionRate"]))


def _upsert_before_router(hcm: hcm_pb2.HttpConnectionManager, new: hcm_pb2.HttpFilter) -> None:
    filters = list(hcm.http_filters)
    for i, existing in enumerate(filters):
        if existing.name == new.name:
            filters[i] = new
            break
    else:
        at = next((i for i, f in enumerate(filters) if f.name == ROUTER), len(filters))
        filters.insert(at, new)
    del hcm.http_filters[:]
    hcm.http_filters.extend(filters)


def configure_http_connection_manager(hcm: hcm_pb2.HttpConnectionManager, conf: Mapping[str, Any], ctx: HookContext) -> None:
    """The filter that enforces the per-route limits; placed right before the router, after
    filters of kinds applied earlier (MeshFaultInjection's faults come first, as in Kuma)."""
    if ctx.direction != "inbound" or http_rate_limit(_get(conf, "local", "http")) is None:
        return
    _upsert_before_router(
        hcm, hcm_pb2.HttpFilter(name=HTTP_FILTER, typed_config=pack(http_local_rate_limit_pb2.LocalRateLimit(stat_prefix=HTTP_STAT_PREFIX)))
    )


def configure_route(route: route_components_pb2.Route, conf: Mapping[str, Any], ctx: HookContext) -> None:
    """The limit itself, on each inbound route; a limit already there (a more specific source,
    such as a route-level policy) is kept, as Kuma's addRateLimitToRoute does."""
    if ctx.direction != "inbound":
        return
    config = http_rate_limit(_get(conf, "local", "http"))
    if config is None or HTTP_FILTER in route.typed_per_filter_config:
        return
    route.typed_per_filter_config[HTTP_FILTER].CopyFrom(pack(config))


def configure_listener(listener: listener_pb2.Listener, conf: Mapping[str, Any], ctx: HookContext) -> None:
    """The connection limit, first in every filter chain: a connection over the rate is closed
    before it reaches the TCP proxy or the HTTP connection manager."""
    if ctx.direction != "inbound":
        return
    config = tcp_rate_limit(_get(conf, "local", "tcp"))
    if config is None:
        return
    network_filter = listener_components_pb2.Filter(name=TCP_FILTER, typed_config=pack(config))
    for chain in listener.filter_chains:
        filters = list(chain.filters)
        existing = next((i for i, f in enumerate(filters) if f.name == TCP_FILTER), None)
        if existing is not None:
            filters[existing] = network_filter
        else:
            filters.insert(0, network_filter)
        del chain.filters[:]
        chain.filters.extend(filters)


PLUGIN = Plugin(
    kind="MeshRateLimit",
    http_connection_manager=configure_http_connection_manager,
    route=configure_route,
    listener=configure_listener,
    # Sidecars are limited on their inbounds (`rules`/`from`); `to` only configures builtin
    # gateways, as a listener conf (views/gateway_policies.py), never a sidecar's outbounds.
    # Kuma has no default policy.
    inbound=True,
    outbound=False,
)
"""Local HTTP and TCP rate limits on inbound and builtin gateway listeners."""
