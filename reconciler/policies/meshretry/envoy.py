"""MeshRetry → Envoy: which merged conf field lands on which Envoy field (Kuma v2.14).

Kuma's plugin (pkg/plugins/policies/meshretry/plugin/xds/configurer.go) configures only the
outbound side (`to`), by the destination's protocol:

- `tcp` (TCP destinations): `maxConnectAttempt` → TcpProxy `max_connect_attempts`.
- `http` (HTTP destinations) and `grpc` (gRPC destinations): a `RetryPolicy` on every route of
  the outbound's route configuration:

| conf field                       | RetryPolicy field                                                |
| -------------------------------- | ---------------------------------------------------------------- |
| `numRetries`                     | `num_retries`; 0 means no retry policy at all                    |
| `perTryTimeout`                  | `per_try_timeout`                                                |
| `backOff.baseInterval`/`maxInterval` | `retry_back_off.base_interval`/`max_interval`                 |
| `rateLimitedBackOff`             | `rate_limited_retry_back_off` (`reset_headers`, `max_interval`)  |
| `retryOn` (HTTP)                 | `retry_on`; status codes → `retriable_status_codes` + `retriable-status-codes`; `HttpMethod*` → `retriable_request_headers` on `:method` |
| `retryOn` (gRPC)                 | `retry_on`                                                       |
| `retriableRequestHeaders`        | `retriable_request_headers` (after the `:method` matchers)       |
| `retriableResponseHeaders`       | `retriable_headers`                                              |
| `hostSelection`                  | `retry_host_predicate` (previous_hosts, omit_host_metadata) and `retry_priority` (previous_priorities) |
| `hostSelectionMaxAttempts`       | `host_selection_retry_max_attempts`                              |

Without `retryOn`, HTTP retries on `gateway-error,connect-failure,refused-stream` and gRPC on
`cancelled,connect-failure,gateway-error,refused-stream,reset,resource-exhausted,unavailable`.
As in Kuma, an `http2` destination gets no retry policy (Kuma's configurer only knows `http`
and `grpc`) and a `kafka` one no connect attempts.

Two deliberate differences, both where Kuma's output is not what Envoy understands:
- gRPC `Canceled` is written `cancelled` (Envoy's name); Kuma writes `canceled`, a token Envoy
  ignores.
- An HTTP `backOff` without `baseInterval` gets 25ms, as Kuma already does for gRPC: Envoy
  rejects a `retry_back_off` without a base interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as route_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.retry.host.omit_host_metadata.v3 import omit_host_metadata_config_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.extensions.retry.priority.previous_priorities.v3 import previous_priorities_config_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from google.protobuf import struct_pb2

from reconciler.durations import parse_duration
from reconciler.envoy_builders import duration, pack
from reconciler.policies.core.plugin import HookContext, Plugin
from reconciler.policies.meshretry.defaults import default_policies

__all__ = [
    "PLUGIN",
    "HTTP_RETRY_ON_DEFAULT",
    "GRPC_RETRY_ON_DEFAULT",
    "DEFAULT_BASE_INTERVAL",
    "retry_policy",
    "configure_route",
    "configure_tcp_proxy",
]

HTTP_RETRY_ON_DEFAULT = "gateway-error,connect-failure,refused-stream"
GRPC_RETRY_ON_DEFAULT = "cancelled,connect-failure,gateway-error,refused-stream,reset,resource-exhausted,unavailable"
DEFAULT_BASE_INTERVAL = 0.025
"""Kuma's DefaultBaseInterval (25ms), used when a back-off names no base interval."""

_RETRIABLE_STATUS_CODES = "retriable-status-codes"
_HTTP_RETRY_ON = {
    "5xx": "5xx",
    "GatewayError": "gateway-error",
    "Reset": "reset",
    "Retriable4xx": "retriable-4xx",
    "ConnectFailure": "connect-failure",
    "EnvoyRatelimited": "envoy-ratelimited",
    "RefusedStream": "refused-stream",
    "Http3PostConnectFailure": "http3-post-connect-failure",
}
_HTTP_METHOD_PREFIX = "HttpMethod"
_GRPC_RETRY_ON = {
    "Canceled": "cancelled",
    "DeadlineExceeded": "deadline-exceeded",
    "Internal": "internal",
    "ResourceExhausted": "resource-exhausted",
    "Unavailable": "unavailable",
}
_RESET_HEADER_FORMAT = {
    "Seconds": route_pb2.RetryPolicy.SECONDS,
    "UnixTimestamp": route_pb2.RetryPolicy.UNIX_TIMESTAMP,
}
_DEFAULT_UPDATE_FREQUENCY = 2
"""Kuma's schema default for OmitPreviousPriorities.updateFrequency."""


def _section(conf: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    value = conf.get(name)
    return value if isinstance(value, Mapping) else None


def _set_duration(target: Any, value: Any) -> None:
    seconds = parse_duration(value)
    if seconds is not None:
        target.CopyFrom(duration(seconds))


def _back_off(back_off: Mapping[str, Any]) -> route_pb2.RetryPolicy.RetryBackOff:
    out = route_pb2.RetryPolicy.RetryBackOff()
    base = parse_duration(back_off.get("baseInterval"))
    out.base_interval.CopyFrom(duration(DEFAULT_BASE_INTERVAL if base is None else base))
    _set_duration(out.max_interval, back_off.get("maxInterval"))
    return out


def _rate_limited_back_off(back_off: Mapping[str, Any]) -> route_pb2.RetryPolicy.RateLimitedRetryBackOff:
    out = route_pb2.RetryPolicy.RateLimitedRetryBackOff()
    for header in back_off.get("resetHeaders") or ():
        out.reset_headers.append(
            route_pb2.RetryPolicy.ResetHeader(
                name=str(header.get("name") or ""),
                format=_RESET_HEADER_FORMAT.get(str(header.get("format") or ""), route_pb2.RetryPolicy.SECONDS),
            )
        )
    _set_duration(out.max_interval, back_off.get("maxInterval"))
    return out


def _header_matcher(header: Mapping[str, Any]) -> route_pb2.HeaderMatcher:
    """Kuma's common HeaderMatch (type Exact by default) as an Envoy HeaderMatcher."""
    name = str(header.get("name") or "")
    value = str(header.get("value") or "")
    kind = header.get("type") or "Exact"
    if kind == "RegularExpression":
        return route_pb2.HeaderMatcher(name=name, string_match=string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=value)))
    if kind == "Prefix":
        return route_pb2.HeaderMatcher(name=name, string_match=string_pb2.StringMatcher(prefix=value))
    if kind == "Present":
        return route_pb2.HeaderMatcher(name=name, present_match=True)
    if kind == "Absent":
        return route_pb2.HeaderMatcher(name=name, present_match=False)
    return route_pb2.HeaderMatcher(name=name, string_match=string_pb2.StringMatcher(exact=value))


def _split_http_retry_on(items: Sequence[Any]) -> tuple[list[str], list[int], list[str]]:
    """(Envoy retry_on conditions, status codes, HTTP methods), in the order written."""
    conditions: list[str] = []
    codes: list[int] = []
    methods: list[str] = []
    for item in items:
        key = str(item)
        if key.isdigit():
            codes.append(int(key))  # the validator accepts only known HTTP status codes
        elif key.startswith(_HTTP_METHOD_PREFIX):
            methods.append(key.removeprefix(_HTTP_METHOD_PREFIX).upper())
        elif key in _HTTP_RETRY_ON:
            conditions.append(_HTTP_RETRY_ON[key])
    return conditions, codes, methods


def _host_selection(predicates: Sequence[Mapping[str, Any]], policy: route_pb2.RetryPolicy) -> None:
    for predicate in predicates:
        kind = predicate.get("predicate")
        if kind == "OmitPreviousHosts":
            policy.retry_host_predicate.append(
                route_pb2.RetryPolicy.RetryHostPredicate(
                    name="envoy.retry_host_predicates.previous_hosts", typed_config=pack(previous_hosts_pb2.PreviousHostsPredicate())
                )
            )
        elif kind == "OmitHostsWithTags":
            tags = struct_pb2.Struct()
            tags.update({str(k): str(v) for k, v in (predicate.get("tags") or {}).items()})
            config = omit_host_metadata_config_pb2.OmitHostMetadataConfig(
                metadata_match=base_pb2.Metadata(filter_metadata={"envoy.lb": tags})
            )
            policy.retry_host_predicate.append(
                route_pb2.RetryPolicy.RetryHostPredicate(name="envoy.retry_host_predicates.omit_host_metadata", typed_config=pack(config))
            )
        elif kind == "OmitPreviousPriorities":
            frequency = predicate.get("updateFrequency", _DEFAULT_UPDATE_FREQUENCY)
            config = previous_priorities_config_pb2.PreviousPrioritiesConfig(update_frequency=int(frequency))
            policy.retry_priority.CopyFrom(
                route_pb2.RetryPolicy.RetryPriority(name="envoy.retry_priorities.previous_priorities", typed_config=pack(config))
            )


def _common(section: Mapping[str, Any], retry_on: str) -> route_pb2.RetryPolicy | None:
    """The fields HTTP and gRPC share; None when numRetries is 0 (retries off)."""
    policy = route_pb2.RetryPolicy(retry_on=retry_on)
    _set_duration(policy.per_try_timeout, section.get("perTryTimeout"))
    retries = section.get("numRetries")
    if retries is not None:
        if int(retries) == 0:
            return None
        policy.num_retries.value = int(retries)
    back_off = section.get("backOff")
    if isinstance(back_off, Mapping):
        policy.retry_back_off.CopyFrom(_back_off(back_off))
    rate_limited = section.get("rateLimitedBackOff")
    if isinstance(rate_limited, Mapping):
        policy.rate_limited_retry_back_off.CopyFrom(_rate_limited_back_off(rate_limited))
    return policy


def _http_retry_policy(http: Mapping[str, Any]) -> route_pb2.RetryPolicy | None:
    policy = _common(http, HTTP_RETRY_ON_DEFAULT)
    if policy is None:
        return None
    conditions, codes, methods = _split_http_retry_on(http.get("retryOn") or ())
    if conditions:
        policy.retry_on = ",".join(conditions)
    if codes:
        policy.retriable_status_codes.extend(codes)
        if _RETRIABLE_STATUS_CODES not in policy.retry_on.split(","):
            policy.retry_on = f"{policy.retry_on},{_RETRIABLE_STATUS_CODES}"
    for method in methods:
        policy.retriable_request_headers.append(
            route_pb2.HeaderMatcher(name=":method", string_match=string_pb2.StringMatcher(exact=method))
        )
    for header in http.get("retriableRequestHeaders") or ():
        policy.retriable_request_headers.append(_header_matcher(header))
    for header in http.get("retriableResponseHeaders") or ():
        policy.retriable_headers.append(_header_matcher(header))
    _host_selection(http.get("hostSelection") or (), policy)
    attempts = http.get("hostSelectionMaxAttempts")
    if attempts is not None:
        policy.host_selection_retry_max_attempts = int(attempts)
    return policy


def _grpc_retry_policy(grpc: Mapping[str, Any]) -> route_pb2.RetryPolicy | None:
    policy = _common(grpc, GRPC_RETRY_ON_DEFAULT)
    if policy is None:
        return None
    conditions = [_GRPC_RETRY_ON[str(item)] for item in grpc.get("retryOn") or () if str(item) in _GRPC_RETRY_ON]
    if conditions:
        policy.retry_on = ",".join(conditions)
    return policy


def retry_policy(conf: Mapping[str, Any], protocol: str) -> route_pb2.RetryPolicy | None:
    """The RetryPolicy Kuma puts on the routes of a `protocol` destination, or None."""
    if protocol == "http":
        http = _section(conf, "http")
        return _http_retry_policy(http) if http is not None else None
    if protocol == "grpc":
        grpc = _section(conf, "grpc")
        return _grpc_retry_policy(grpc) if grpc is not None else None
    return None


def configure_route(route: route_pb2.Route, conf: Mapping[str, Any], ctx: HookContext) -> None:
    """An outbound route forwarding to a cluster: its retry policy (replacing any earlier one)."""
    if ctx.direction != "outbound" or not route.HasField("route"):
        return
    policy = retry_policy(conf, ctx.protocol)
    if policy is not None:
        route.route.retry_policy.CopyFrom(policy)


def configure_tcp_proxy(proxy: tcp_proxy_pb2.TcpProxy, conf: Mapping[str, Any], ctx: HookContext) -> None:
    """An outbound TCP listener: how many times to try connecting to the destination."""
    if ctx.direction != "outbound" or ctx.protocol != "tcp":
        return
    tcp = _section(conf, "tcp")
    attempts = tcp.get("maxConnectAttempt") if tcp is not None else None
    if attempts is not None:
        proxy.max_connect_attempts.value = int(attempts)


PLUGIN = Plugin(
    kind="MeshRetry",
    route=configure_route,
    tcp_proxy=configure_tcp_proxy,
    inbound=False,  # retries are the caller's business: Kuma's MeshRetry has only `to`
    outbound=True,
    defaults=default_policies,
)
"""Retry policies on outbound routes and connect attempts on outbound TCP proxies, and Kuma's
default MeshRetry (see defaults.py)."""
