"""MeshTrace's backends in Envoy terms: the tracer a connection manager names and the collector
cluster it sends spans to.

Follows Kuma v2.14 (`pkg/plugins/policies/meshtrace/plugin/xds/configurer.go` and
`plugin/v1alpha1/plugin.go`, `applyToClusters`):

- Zipkin: `envoy.tracers.zipkin` with the URL's path as the collector endpoint and its
  `host:port` as the Host header; `traceId128bit` (default false), `apiVersion` (default
  `httpJson`), `sharedSpanContext` (default true). On a builtin gateway, one span per request
  and upstream (`split_spans_for_request`). Cluster `meshtrace:zipkin`, TLS when the URL is https.
- Datadog: `envoy.tracers.datadog` with the proxy's service name, or with `splitService`
  `<service>_INBOUND` / `<service>_OUTBOUND_<destination>`. Cluster `meshtrace:datadog`.
- OpenTelemetry: `envoy.tracers.opentelemetry` to cluster `meshtrace:opentelemetry`: an inline
  `endpoint` (host[:port], port 4317 when absent) over gRPC (HTTP/2); a `backendRef` names a
  MeshOpenTelemetryBackend by labels, resolved as MeshAccessLog and MeshMetric resolve it
  (reconciler/policies/core/otel.py); `protocol: http` sends OTLP/HTTP to `<path>/v1/traces`,
  TLS when the port is 443.

A collector cluster is STATIC when its address is an IP, else STRICT_DNS (IPv4 only), with a
5 s connect timeout, as Kuma's ProvidedEndpointCluster.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import grpc_service_pb2, http_uri_pb2
from envoy.config.trace.v3 import datadog_pb2, http_tracer_pb2, opentelemetry_pb2, zipkin_pb2
from google.protobuf import wrappers_pb2

from reconciler.envoy_builders import duration, endpoint_cluster, pack
from reconciler.policies.core.otel import TRACES_PATH, resolve_backend_ref
from reconciler.policies.core.plugin import ProxyFacts

__all__ = [
    "Collector",
    "backend_of",
    "collector",
    "collector_cluster",
    "provider",
    "ZIPKIN",
    "DATADOG",
    "OPENTELEMETRY",
]

ZIPKIN = "zipkin"
DATADOG = "datadog"
OPENTELEMETRY = "opentelemetry"
DEFAULT_OTEL_PORT = 4317
CONNECT_TIMEOUT = 5.0
UNKNOWN_SERVICE = "unknown"
"""Kuma's name for a proxy without a `kuma.io/service` (IdentifyingName)."""


def cluster_name(provider_name: str) -> str:
    return f"meshtrace:{provider_name}"


def backend_of(conf: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The one backend of a conf, or None: no backends (or an empty list) turns tracing off."""
    backends = conf.get("backends") if isinstance(conf, Mapping) else None
    if not backends:
        return None
    first = backends[0]
    return first if isinstance(first, Mapping) else None


@dataclass(frozen=True, slots=True)
class Collector:
    """Where a backend's spans go."""

    provider: str
    host: str
    port: int
    tls: bool = False
    http_path: str = ""
    """OTLP/HTTP: the URL path spans are posted to (empty: gRPC)."""


def _url(raw: Any) -> urllib.parse.SplitResult | None:
    parsed = urllib.parse.urlsplit(str(raw or ""))
    return parsed if parsed.hostname else None


def _port(parsed: urllib.parse.SplitResult) -> int:
    """The URL's port, else its scheme's. Kuma takes the URL's port only, so a Zipkin URL without
    one gives a collector on port 0 that never receives a span (docs/observability.md)."""
    try:
        explicit = parsed.port
    except ValueError:
        explicit = None
    return explicit or (443 if parsed.scheme == "https" else 80)


def _otel_endpoint(endpoint: str) -> tuple[str, int]:
    """Kuma's ParseOtelEndpoint: host[:port], a bare IPv6 address as a host, port 4317 by default."""
    if endpoint.count(":") > 1 and "[" not in endpoint:
        return endpoint, DEFAULT_OTEL_PORT
    parsed = urllib.parse.urlsplit("otel://" + endpoint)
    try:
        port = parsed.port or DEFAULT_OTEL_PORT
    except ValueError:
        port = DEFAULT_OTEL_PORT
    return (parsed.hostname or endpoint), port


def _referenced(ref: Mapping[str, Any], facts: ProxyFacts | None) -> Collector | None:
    """The MeshOpenTelemetryBackend a `backendRef` selects (reconciler/policies/core/otel.py)."""
    chosen = resolve_backend_ref(ref, facts)
    if chosen is None:
        return None
    if not chosen.http:
        return Collector(OPENTELEMETRY, chosen.host, chosen.port)
    return Collector(OPENTELEMETRY, chosen.host, chosen.port, tls=chosen.https, http_path=chosen.full_path(TRACES_PATH))


def collector(backend: Mapping[str, Any], facts: ProxyFacts | None = None) -> Collector | None:
    """The collector of a backend; None for a `backendRef` that selects no MeshOpenTelemetryBackend."""
    if isinstance(backend.get("zipkin"), Mapping):
        parsed = _url(backend["zipkin"].get("url"))
        return Collector(ZIPKIN, parsed.hostname or "", _port(parsed), parsed.scheme == "https") if parsed else None
    if isinstance(backend.get("datadog"), Mapping):
        parsed = _url(backend["datadog"].get("url"))
        return Collector(DATADOG, parsed.hostname or "", _port(parsed)) if parsed else None
    otel = backend.get("openTelemetry")
    if isinstance(otel, Mapping) and isinstance(otel.get("backendRef"), Mapping):
        return _referenced(otel["backendRef"], facts)
    if isinstance(otel, Mapping) and otel.get("endpoint"):
        host, port = _otel_endpoint(str(otel["endpoint"]))
        return Collector(OPENTELEMETRY, host, port)
    return None


def collector_cluster(target: Collector) -> cluster_pb2.Cluster:
    """The cluster spans are sent to (Kuma: one per proxy, named after the provider); OTLP/gRPC
    needs HTTP/2 to the collector."""
    name = cluster_name(target.provider)
    return endpoint_cluster(
        name,
        target.host,
        target.port,
        CONNECT_TIMEOUT,
        alt_stat_name=name.replace(":", "_"),
        http2=target.provider == OPENTELEMETRY and not target.http_path,
        tls_sni=target.host if target.tls else "",
        allow_renegotiation=True,
    )


def _zipkin(zipkin: Mapping[str, Any], gateway: bool) -> http_tracer_pb2.Tracing.Http:
    parsed = urllib.parse.urlsplit(str(zipkin.get("url") or ""))
    version = zipkin_pb2.ZipkinConfig.HTTP_PROTO if zipkin.get("apiVersion") == "httpProto" else zipkin_pb2.ZipkinConfig.HTTP_JSON
    shared = zipkin.get("sharedSpanContext")
    config = zipkin_pb2.ZipkinConfig(
        collector_cluster=cluster_name(ZIPKIN),
        collector_endpoint=parsed.path,
        trace_id_128bit=bool(zipkin.get("traceId128bit", False)),
        collector_endpoint_version=version,
        shared_span_context=wrappers_pb2.BoolValue(value=True if shared is None else bool(shared)),
        collector_hostname=parsed.netloc.rpartition("@")[2],
        split_spans_for_request=gateway,
    )
    return http_tracer_pb2.Tracing.Http(name="envoy.tracers.zipkin", typed_config=pack(config))


def datadog_service(datadog: Mapping[str, Any], service: str, direction: str, destination: str) -> str:
    """The service name spans carry: with `splitService`, one per direction and destination."""
    if not datadog.get("splitService"):
        return service
    if direction == "inbound":
        return f"{service}_INBOUND"
    return f"{service}_OUTBOUND_{destination}"


def provider(
    backend: Mapping[str, Any], *, service: str, direction: str, destination: str, gateway: bool, facts: ProxyFacts | None = None
) -> http_tracer_pb2.Tracing.Http | None:
    """The HCM's tracer for a backend (None: nothing to send spans to)."""
    target = collector(backend, facts)
    if target is None:
        return None
    service = service or UNKNOWN_SERVICE
    if isinstance(backend.get("zipkin"), Mapping):
        return _zipkin(backend["zipkin"], gateway)
    if isinstance(backend.get("datadog"), Mapping):
        config = datadog_pb2.DatadogConfig(
            collector_cluster=cluster_name(DATADOG),
            service_name=datadog_service(backend["datadog"], service, direction, destination),
        )
        return http_tracer_pb2.Tracing.Http(name="envoy.tracers.datadog", typed_config=pack(config))
    otel = opentelemetry_pb2.OpenTelemetryConfig(service_name=service)
    if target.http_path:
        scheme = "https" if target.tls else "http"
        host = f"[{target.host}]" if ":" in target.host else target.host
        otel.http_service.http_uri.CopyFrom(
            http_uri_pb2.HttpUri(
                uri=f"{scheme}://{host}:{target.port}{target.http_path}", cluster=cluster_name(OPENTELEMETRY), timeout=duration(10.0)
            )
        )
    else:
        otel.grpc_service.CopyFrom(
            grpc_service_pb2.GrpcService(envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=cluster_name(OPENTELEMETRY)))
        )
    return http_tracer_pb2.Tracing.Http(name="envoy.tracers.opentelemetry", typed_config=pack(otel))
