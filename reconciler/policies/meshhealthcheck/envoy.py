"""MeshHealthCheck on Envoy clusters: active TCP, HTTP or gRPC health checks.

Follows Kuma v2.14 (pkg/plugins/policies/meshhealthcheck/plugin/xds/configurer.go). The
outbound cluster of a destination gets one `health_checks` entry whose checker is picked by
the destination's protocol:

| protocol     | checker                                                        |
| ------------ | -------------------------------------------------------------- |
| http, http2  | `http` unless disabled; `tcp` when `http` is disabled           |
| grpc         | `grpc` unless disabled; `tcp` when `grpc` is disabled           |
| tcp          | `tcp` unless disabled                                          |
| kafka        | none                                                           |

Envoy probes each endpoint of the cluster. Here an endpoint is the destination sidecar's
inbound listener, which routes every path to the application, so `http.path` reaches the
application's own handler (`/health` on the app) through the sidecar.

Kuma sends the probing proxy's tags in an `x-kuma-tags` header on HTTP checks. Clusters are
otherwise shared by every proxy that uses a destination, so `outbound_conf` adds the proxy's
tags to the merged conf under `_proxyTags` (not a Kuma field) when it has an HTTP section.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, extension_pb2, health_check_pb2
from envoy.extensions.health_check.event_sinks.file.v3 import file_pb2
from envoy.type.v3 import http_pb2, range_pb2

from reconciler.durations import parse_duration
from reconciler.envoy_builders import duration, pack
from reconciler.frozen import freeze
from reconciler.mesh.model import Dataplane
from reconciler.policies.core.match import Destination, PolicyIndex
from reconciler.policies.core.match import outbound_conf as merged_outbound_conf
from reconciler.policies.core.plugin import HookContext, Plugin
from reconciler.policies.meshcircuitbreaker.envoy import envoy_percent

__all__ = [
    "PLUGIN",
    "outbound_conf",
    "configure_cluster",
    "health_check",
    "checker_type",
    "serialize_tags",
    "TAGS_HEADER",
    "PROXY_TAGS",
    "DEFAULT_INTERVAL",
    "DEFAULT_TIMEOUT",
    "DEFAULT_UNHEALTHY_THRESHOLD",
    "DEFAULT_HEALTHY_THRESHOLD",
    "DEFAULT_HTTP_PATH",
]

DEFAULT_INTERVAL = 60.0
DEFAULT_TIMEOUT = 15.0
DEFAULT_UNHEALTHY_THRESHOLD = 5
DEFAULT_HEALTHY_THRESHOLD = 1
DEFAULT_HTTP_PATH = "/"
TAGS_HEADER = "x-kuma-tags"
"""Kuma sends the probing proxy's tags in this header on HTTP health checks."""
KIND = "MeshHealthCheck"
PROXY_TAGS = "_proxyTags"
"""Conf key under which `outbound_conf` passes the probing proxy's tags to the hook."""


def outbound_conf(dp: Dataplane, dest: Destination, index: PolicyIndex) -> Mapping[str, Any] | None:
    """The merged `to` conf, plus the proxy's tags when an HTTP check may be built."""
    merged = merged_outbound_conf(KIND, dp, dest, index)
    if merged is None:
        return None
    if merged.value.get("http") is None:
        return merged.value
    tags = {key: sorted(values) for key, values in sorted(dp.tags().items())}
    return freeze({**merged.value, PROXY_TAGS: tags})  # type: ignore[no-any-return]


def configure_cluster(cluster: cluster_pb2.Cluster, conf: Mapping[str, Any], ctx: HookContext) -> None:
    """The `cluster` hook: apply one merged MeshHealthCheck conf to an outbound cluster."""
    panic = conf.get("healthyPanicThreshold")
    if panic is not None and not cluster.common_lb_config.HasField("healthy_panic_threshold"):
        # Deprecated here; Kuma applies MeshHealthCheck before MeshCircuitBreaker, so a
        # MeshCircuitBreaker threshold wins whatever order the plugins run in.
        cluster.common_lb_config.healthy_panic_threshold.CopyFrom(envoy_percent(panic))
    fail_on_panic = conf.get("failTrafficOnPanic")
    if fail_on_panic is not None and not cluster.common_lb_config.HasField("locality_weighted_lb_config"):
        # Only the zone-aware balancer has the flag; with locality-weighted balancing (a
        # MeshLoadBalancingStrategy with affinity tags) Kuma drops it.
        cluster.common_lb_config.zone_aware_lb_config.fail_traffic_on_panic = bool(fail_on_panic)
    check = health_check(conf, ctx.protocol, conf.get(PROXY_TAGS) or {})
    if check is not None:
        cluster.health_checks.append(check)


def checker_type(protocol: str, conf: Mapping[str, Any]) -> str | None:
    """Which checker Kuma uses for a destination protocol: "http", "grpc", "tcp" or None."""

    def enabled(name: str) -> bool:
        section = conf.get(name)
        return section is not None and section.get("disabled") is not True

    def disabled(name: str) -> bool:
        section = conf.get(name)
        return section is not None and section.get("disabled") is True

    if protocol in ("http", "http2") and enabled("http"):
        return "http"
    if protocol == "grpc" and enabled("grpc"):
        return "grpc"
    if protocol == "tcp" and enabled("tcp"):
        return "tcp"
    # Fallbacks: an explicitly disabled HTTP or gRPC check with an enabled TCP one.
    if protocol in ("http", "http2") and disabled("http") and enabled("tcp"):
        return "tcp"
    if protocol == "grpc" and disabled("grpc") and enabled("tcp"):
        return "tcp"
    return None


def health_check(conf: Mapping[str, Any], protocol: str, source_tags: Mapping[str, Iterable[str]]) -> health_check_pb2.HealthCheck | None:
    """The Envoy health check for a conf and destination protocol, or None if none applies."""
    kind = checker_type(protocol, conf)
    if kind is None:
        return None
    check = health_check_pb2.HealthCheck(
        interval=duration(_seconds(conf.get("interval"), DEFAULT_INTERVAL)),
        timeout=duration(_seconds(conf.get("timeout"), DEFAULT_TIMEOUT)),
    )
    unhealthy, healthy = conf.get("unhealthyThreshold"), conf.get("healthyThreshold")
    check.unhealthy_threshold.value = DEFAULT_UNHEALTHY_THRESHOLD if unhealthy is None else int(unhealthy)
    check.healthy_threshold.value = DEFAULT_HEALTHY_THRESHOLD if healthy is None else int(healthy)
    for field, name in (
        ("initial_jitter", "initialJitter"),
        ("interval_jitter", "intervalJitter"),
        ("no_traffic_interval", "noTrafficInterval"),
    ):
        seconds = parse_duration(conf.get(name))
        if seconds is not None:
            getattr(check, field).CopyFrom(duration(seconds))
    if conf.get("intervalJitterPercent") is not None:
        check.interval_jitter_percent = int(conf["intervalJitterPercent"])
    if conf.get("eventLogPath") is not None:
        sink = file_pb2.HealthCheckEventFileSink(event_log_path=str(conf["eventLogPath"]))
        check.event_logger.append(extension_pb2.TypedExtensionConfig(name="envoy.health_check.event_sinks.file", typed_config=pack(sink)))
    if conf.get("alwaysLogHealthCheckFailures") is not None:
        check.always_log_health_check_failures = bool(conf["alwaysLogHealthCheckFailures"])
    if conf.get("reuseConnection") is not None:
        check.reuse_connection.value = bool(conf["reuseConnection"])
    if kind == "http":
        check.http_health_check.CopyFrom(_http(conf["http"], protocol, source_tags))
    elif kind == "grpc":
        grpc = conf["grpc"]
        check.grpc_health_check.CopyFrom(
            health_check_pb2.HealthCheck.GrpcHealthCheck(
                service_name=str(grpc.get("serviceName") or ""), authority=str(grpc.get("authority") or "")
            )
        )
    else:
        check.tcp_health_check.CopyFrom(_tcp(conf["tcp"]))
    return check


def _seconds(value: Any, default: float) -> float:
    seconds = parse_duration(value)
    return default if seconds is None else seconds


def _http(http: Mapping[str, Any], protocol: str, source_tags: Mapping[str, Iterable[str]]) -> health_check_pb2.HealthCheck.HttpHealthCheck:
    statuses = [range_pb2.Int64Range(start=int(s), end=int(s) + 1) for s in http.get("expectedStatuses") or ()]
    return health_check_pb2.HealthCheck.HttpHealthCheck(
        path=str(http.get("path") or DEFAULT_HTTP_PATH),
        request_headers_to_add=_headers(http.get("requestHeadersToAdd") or {}, source_tags),
        expected_statuses=statuses,
        codec_client_type=http_pb2.HTTP2 if protocol == "http2" else http_pb2.HTTP1,
    )


def _headers(modifier: Mapping[str, Any], source_tags: Mapping[str, Iterable[str]]) -> list[base_pb2.HeaderValueOption]:
    out = []
    if source_tags:
        out.append(base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=TAGS_HEADER, value=serialize_tags(source_tags))))
    # A comma-separated value becomes one header per value (RFC 7230 list syntax), as in Kuma.
    for action, field in (
        (base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD, "add"),
        (base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD, "set"),
    ):
        for header in modifier.get(field) or ():
            for value in str(header["value"]).split(","):
                out.append(
                    base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=str(header["name"]), value=value), append_action=action)
                )
    return out


def serialize_tags(tags: Mapping[str, Iterable[str]]) -> str:
    """Kuma's tags.Serialize: `&key=v1,v2&` per key, keys and values sorted."""
    return "".join(f"&{key}={','.join(sorted(set(tags[key])))}&" for key in sorted(tags))


def _tcp(tcp: Mapping[str, Any]) -> health_check_pb2.HealthCheck.TcpHealthCheck:
    """Kuma hex-encodes the configured strings as they are written (it does not decode the
    base64 its API docs mention), so Envoy sends and expects those exact characters."""
    check = health_check_pb2.HealthCheck.TcpHealthCheck()
    if tcp.get("send") is not None:
        check.send.text = str(tcp["send"]).encode().hex()
    for block in tcp.get("receive") or ():
        check.receive.add(text=str(block).encode().hex())
    return check


PLUGIN = Plugin(kind="MeshHealthCheck", cluster=configure_cluster, inbound=False, outbound=True, outbound_conf=outbound_conf)
"""Outbound clusters only (`to`): Kuma has no inbound health checks; see docs/policies/meshhealthcheck.md."""
