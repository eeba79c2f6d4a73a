"""MeshMetric in Envoy: the Prometheus endpoint, the OpenTelemetry sockets and the dynamic config.

Follows Kuma v2.14 (pkg/plugins/policies/meshmetric/plugin/v1alpha1/plugin.go and
plugin/xds/). MeshMetric is proxy-wide: the proxy's merged top-level `default` decides
everything, and nothing is added to inbounds or outbounds. When that conf has at least one
backend, the proxy gets

- per Prometheus backend, a listener `_kuma:metrics:prometheus:<clientId or default-backend>`
  on the dataplane's address and `port` (5670) that sends `path` (/metrics, a prefix match) to
  the cluster `_kuma:metrics:hijacker`, rewritten to `/meshmetric`; that cluster is the Unix
  socket `kuma-mh-<dataplane>-<mesh>.sock` where run-dataplane's metrics service answers with
  Envoy's stats and the applications' metrics (reconciler/dataplane/metrics);
- per OpenTelemetry backend, a listener on the socket `kuma-otel-<backend>.sock` whose every
  request goes to the cluster of the same name, HTTP/2 to the collector: the metrics pusher
  speaks OTLP/gRPC into the socket, Envoy carries it out. `<backend>` is the inline `endpoint`
  with '/' dropped and ':' as '-', or the name of the MeshOpenTelemetryBackend a `backendRef`
  selects (reconciler/policies/core/otel.py; none selected: the backend is skipped), whose
  collector is TLS when it is OTLP/HTTP on port 443;
- the `_kuma:dynamicconfig` listener serving `/meshmetric` (see dynconf.py): the applications,
  backends, sidecar profiles and extra labels the metrics service reads.

Socket paths are relative to the work directory (Envoy runs there), as in Kuma's goldens with
the work dir left out.

Differences from Kuma, and why:
- `tls.mode: ProvidedTLS` needs kuma-dp's metrics certificate and key paths in the proxy's
  metadata (KUMA_DATAPLANE_RUNTIME_METRICS_CERT_PATH/_KEY_PATH); run-dataplane sends none,
  so the listener is plain HTTP, which is what Kuma does when those paths are missing.
  `ActiveMTLSBackend` has no effect on the MeshMetric listener in Kuma either.
- A `backendRef` backend's dynamic-config entry names the resolved backend and its socket;
  Kuma's direct-export path names it after the empty inline endpoint (`kuma-otel-.sock`), where
  Envoy does not listen. Kuma's kuma-dp OTLP pipe (FeatureOtelViaKumaDp) is not used.
- `extraLabels` carry the proxy's service (`kuma_io_service`, `kuma_io_services`, `service`)
  but not its other inbound tags nor `kuma_io_mesh_gateway`: the hook only knows ProxyFacts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.grpc_stats.v3 import config_pb2 as grpc_stats
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm

from reconciler.durations import parse_duration
from reconciler.envoy_builders import duration, endpoint_cluster, pack, socket_address
from reconciler.policies.core.gourl import split_host_port
from reconciler.policies.core.otel import DEFAULT_OTEL_PORT, resolve_backend_ref
from reconciler.policies.core.plugin import Plugin, ProxyFacts
from reconciler.policies.meshmetric import dynconf
from reconciler.xds_types import CLUSTER, LISTENER

__all__ = [
    "PLUGIN",
    "KIND",
    "PROMETHEUS_LISTENER",
    "HIJACKER_CLUSTER",
    "DEFAULT_BACKEND_NAME",
    "DEFAULT_PORT",
    "DEFAULT_PATH",
    "STATS_PATH",
    "DP_CONFIG_PATH",
    "DEFAULT_REFRESH_INTERVAL",
    "hijacker_socket",
    "otel_socket",
    "otel_backend_name",
    "dp_config",
    "proxy_resources",
]

KIND = "MeshMetric"
PROMETHEUS_LISTENER = "_kuma:metrics:prometheus"
HIJACKER_CLUSTER = "_kuma:metrics:hijacker"
OTEL_PREFIX = "_kuma:metrics:opentelemetry"
DEFAULT_BACKEND_NAME = "default-backend"
DEFAULT_PORT = 5670
DEFAULT_PATH = "/metrics"
STATS_PATH = "/meshmetric"
"""Where the Prometheus listener rewrites the scrape to on the hijacker socket."""
DP_CONFIG_PATH = "/meshmetric"
"""The dynamic-config route (Kuma's dpapi.PATH)."""
DEFAULT_REFRESH_INTERVAL = 60.0
"""Kuma's DefaultRefreshInterval for OpenTelemetry pushes (1m)."""
CONNECT_TIMEOUT = 5.0
"""Kuma's DefaultTimeout() on these clusters."""


def hijacker_socket(name: str, mesh: str) -> str:
    """Kuma's MetricsHijackerSocketName, relative to the work directory."""
    return f"kuma-mh-{name}-{mesh}.sock"


def otel_socket(backend: str) -> str:
    """Kuma's OpenTelemetrySocketName, relative to the work directory."""
    return f"kuma-otel-{backend}.sock"


def otel_backend_name(endpoint: str) -> str:
    """Kuma's backendNameFrom: the endpoint without '/', ':' turned to '-' (it names a file)."""
    return endpoint.replace("/", "").replace(":", "-")


def _backends(conf: Mapping[str, Any], kind: str, block: str) -> list[Mapping[str, Any]]:
    return [b[block] for b in conf.get("backends") or () if b.get("type") == kind and b.get(block) is not None]


@dataclass(frozen=True, slots=True)
class _Collector:
    name: str
    """Names the socket, listener and cluster."""
    host: str
    port: int
    refresh: float
    tls: bool = False


def _otel_backends(conf: Mapping[str, Any], facts: ProxyFacts | None) -> list[_Collector]:
    """The collector of each OpenTelemetry backend: its inline `endpoint`, or the
    MeshOpenTelemetryBackend its `backendRef` selects (skipped when none does, as Kuma)."""
    out: list[_Collector] = []
    for otel in _backends(conf, "OpenTelemetry", "openTelemetry"):
        parsed = parse_duration(otel.get("refreshInterval"))
        refresh = DEFAULT_REFRESH_INTERVAL if parsed is None else parsed
        if otel.get("backendRef") is not None:
            resolved = resolve_backend_ref(otel["backendRef"], facts)
            if resolved is not None:
                out.append(_Collector(resolved.name, resolved.host, resolved.port, refresh, resolved.https))
            continue
        endpoint = otel.get("endpoint") or ""
        if endpoint:
            host, port = split_host_port(endpoint) or (endpoint, "")
            out.append(_Collector(otel_backend_name(endpoint), host, int(port or DEFAULT_OTEL_PORT), refresh))
    return out


def dp_config(conf: Mapping[str, Any], facts: ProxyFacts) -> dict[str, Any]:
    """Kuma's MeshMetricDpConfig for this proxy, in its JSON field order."""
    applications: list[dict[str, Any]] | None = None
    for app in conf.get("applications") or ():
        entry: dict[str, Any] = {}
        if app.get("name") is not None:
            entry["name"] = app["name"]
        entry.update(path=app.get("path") or DEFAULT_PATH, port=app.get("port"), address=app.get("address") or "")
        applications = [*(applications or []), entry]
    backends: list[dict[str, Any]] = []
    if _backends(conf, "Prometheus", "prometheus"):
        backends.append({"type": "Prometheus", "name": None})
    for collector in _otel_backends(conf, facts):
        otel = {"endpoint": otel_socket(collector.name), "refreshInterval": dynconf.go_duration(collector.refresh)}
        backends.append({"type": "OpenTelemetry", "name": collector.name, "openTelemetry": otel})
    metrics: dict[str, Any] = {"applications": applications, "backends": backends}
    sidecar = _sidecar(conf.get("sidecar"))
    if sidecar is not None:
        metrics["sidecar"] = sidecar
    metrics["extraLabels"] = dynconf.sorted_map(extra_labels(facts))
    return {"observability": {"metrics": metrics}}


def _sidecar(sidecar: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if sidecar is None:
        return None
    out: dict[str, Any] = {}
    profiles = sidecar.get("profiles")
    if profiles is not None:
        p: dict[str, Any] = {}
        if profiles.get("appendProfiles") is not None:
            p["appendProfiles"] = [{"name": x.get("name")} for x in profiles["appendProfiles"]]
        for section in ("exclude", "include"):
            if profiles.get(section) is not None:
                p[section] = [{"type": x.get("type"), "match": x.get("match")} for x in profiles[section]]
        out["profiles"] = p
    if sidecar.get("includeUnused") is not None:
        out["includeUnused"] = bool(sidecar["includeUnused"])
    return out


def extra_labels(facts: ProxyFacts) -> dict[str, str]:
    """Kuma's extraLabels without unified naming (see the module docstring for what is missing)."""
    labels = {"mesh": facts.mesh, "kuma.proxy_role": "gateway" if facts.gateway else "sidecar", "dataplane": facts.name}
    if facts.service:
        labels["kuma_io_service"] = facts.service
        labels["kuma_io_services"] = f",{facts.service},"
        labels["service"] = facts.service
    return labels


def proxy_resources(
    proxy_conf: Mapping[str, Any] | None, every_conf: Sequence[Mapping[str, Any]], facts: ProxyFacts
) -> Iterator[tuple[str, str, Any]]:
    """The metrics listeners and clusters, and the dynamic-config listener, of one proxy."""
    if proxy_conf is None or not proxy_conf.get("backends"):
        return  # Kuma: no backend, nothing at all (not even the dynamic config)
    prometheus = _backends(proxy_conf, "Prometheus", "prometheus")
    if prometheus:
        yield CLUSTER, HIJACKER_CLUSTER, _pipe_cluster(HIJACKER_CLUSTER, hijacker_socket(facts.name, facts.mesh))
    seen: set[str] = set()
    for backend in prometheus:
        name = f"{PROMETHEUS_LISTENER}:{backend.get('clientId') or DEFAULT_BACKEND_NAME}"
        if name not in seen:
            seen.add(name)
            yield LISTENER, name, _prometheus_listener(name, facts.address, backend)
    for collector in _otel_backends(proxy_conf, facts):
        name = f"{OTEL_PREFIX}:{collector.name}"
        if name not in seen:
            seen.add(name)
            yield CLUSTER, name, _collector_cluster(name, collector)
            yield LISTENER, name, _otel_listener(name, otel_socket(collector.name))
    body = dynconf.go_json(dp_config(proxy_conf, facts))
    yield LISTENER, dynconf.LISTENER_NAME, dynconf.dynamic_config_listener([(DP_CONFIG_PATH, body)])


def _pipe_cluster(name: str, path: str) -> cluster_pb2.Cluster:
    address = address_pb2.Address(pipe=address_pb2.Pipe(path=path))
    return cluster_pb2.Cluster(
        name=name,
        alt_stat_name=dynconf.stat_prefix(name),
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=duration(CONNECT_TIMEOUT),
        load_assignment=_assignment(name, address),
    )


def _assignment(name: str, address: address_pb2.Address) -> endpoint_pb2.ClusterLoadAssignment:
    lb = endpoint_components_pb2.LbEndpoint(endpoint=endpoint_components_pb2.Endpoint(address=address))
    return endpoint_pb2.ClusterLoadAssignment(cluster_name=name, endpoints=[endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=[lb])])


def _collector_cluster(name: str, collector: _Collector) -> cluster_pb2.Cluster:
    # HTTP/2: OTLP is gRPC; an https collector gets Kuma's ClientSideTLS (SNI, no CA check here).
    return endpoint_cluster(
        name,
        collector.host,
        collector.port,
        CONNECT_TIMEOUT,
        alt_stat_name=dynconf.stat_prefix(name),
        http2=True,
        tls_sni=collector.host if collector.tls else "",
    )


def _static_route_listener(
    name: str, address: address_pb2.Address, prefix: str, cluster: str, rewrite: str = "", grpc: bool = False
) -> listener_pb2.Listener:
    """Kuma's StaticEndpoints filter chain: one virtual host sending `prefix` to `cluster`."""
    action = route_components_pb2.RouteAction(cluster=cluster)
    if rewrite:
        action.prefix_rewrite = rewrite
    route_config = route_pb2.RouteConfiguration(
        virtual_hosts=[
            route_components_pb2.VirtualHost(
                name=name,
                domains=["*"],
                routes=[route_components_pb2.Route(match=route_components_pb2.RouteMatch(prefix=prefix), route=action)],
            )
        ]
    )
    route_config.validate_clusters.value = False
    extra = (hcm.HttpFilter(name="envoy.filters.http.grpc_stats", typed_config=pack(grpc_stats.FilterConfig(emit_filter_state=True))),)
    manager = hcm.HttpConnectionManager(
        stat_prefix=dynconf.stat_prefix(name),
        route_config=route_config,
        http_filters=dynconf.http_filters(*(extra if grpc else ())),
        internal_address_config=dynconf.internal_address_config(),
    )
    chain = listener_components_pb2.FilterChain(
        filters=[listener_components_pb2.Filter(name="envoy.filters.network.http_connection_manager", typed_config=pack(manager))]
    )
    return listener_pb2.Listener(name=name, address=address, filter_chains=[chain])


def _prometheus_listener(name: str, address: str, backend: Mapping[str, Any]) -> listener_pb2.Listener:
    port = backend.get("port") or DEFAULT_PORT
    listener = _static_route_listener(
        name, socket_address(address, port), backend.get("path") or DEFAULT_PATH, HIJACKER_CLUSTER, STATS_PATH
    )
    listener.traffic_direction = 1  # INBOUND, as Kuma's inbound listener builder
    listener.enable_reuse_port.value = False
    return listener


def _otel_listener(name: str, socket: str) -> listener_pb2.Listener:
    return _static_route_listener(name, address_pb2.Address(pipe=address_pb2.Pipe(path=socket)), "/", name, grpc=True)


# Not `proxy_wide`: MeshMetric has no hooks on listeners, so giving its conf to every inbound and
# outbound would only stop proxies alike from sharing their outbound pieces; the proxy's own conf
# reaches `proxy_resources` directly.
PLUGIN = Plugin(kind=KIND, inbound=False, outbound=False, proxy_resources=proxy_resources)
