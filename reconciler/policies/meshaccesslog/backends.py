"""MeshAccessLog backends as Envoy access loggers (Kuma v2.14.3, meshaccesslog/plugin/xds/configurer.go).

- `File`: Envoy's file access logger writing to `file.path`.
- `Tcp`: also Envoy's file access logger, but writing to the proxy's Unix FIFO
  (`kuma-al-<name>-<mesh>.sock` in the work directory) one JSON object per line,
  `{"address": <tcp.address>, "message": <the formatted line or object>}`; the streamer that
  `run-dataplane` runs beside Envoy (reconciler/dataplane/accesslog_streamer.py, kuma-dp's
  accesslogs streamer) forwards each message to its address over TCP.
- `OpenTelemetry`: Envoy's open_telemetry access logger, exporting OTLP/gRPC log records to a
  cluster per collector endpoint (`collector_cluster`, added once per proxy): the inline
  `endpoint`, or the MeshOpenTelemetryBackend a `backendRef` selects (resolved as MeshTrace and
  MeshMetric resolve it, reconciler/policies/core/otel.py; none selected: no logger). Envoy's
  logger speaks gRPC only; for a backend with `protocol: http` Kuma (exporting straight to the
  collector) builds the cluster without HTTP/2 and so do we, which no OTLP/HTTP collector
  accepts (docs/observability.md). The record's body
  is the default line or `body` (a string, or an OTLP AnyValue in its JSON form), attributes
  are `attributes`, the resource carries `kuma.mesh`.

Formats: none → Kuma's default line for the protocol; `plain` → that line; `json` → a JSON
object of the listed keys. Every string gets Kuma's placeholders resolved (formats.py); Envoy's
command operators stay for Envoy. `omitEmptyValues` is passed to Envoy as is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, config_source_pb2, grpc_service_pb2
from envoy.config.core.v3.substitution_format_string_pb2 import SubstitutionFormatString as SFS
from envoy.extensions.access_loggers.file.v3 import file_pb2
from envoy.extensions.access_loggers.grpc.v3 import als_pb2
from envoy.extensions.access_loggers.open_telemetry.v3 import logs_service_pb2
from google.protobuf import json_format, struct_pb2
from opentelemetry.proto.common.v1 import common_pb2

from reconciler.envoy_builders import endpoint_cluster, pack
from reconciler.policies.core.otel import resolve_backend_ref
from reconciler.policies.core.plugin import ProxyFacts
from reconciler.policies.meshaccesslog.formats import KumaValues, interpolate

__all__ = ["access_log", "collector_cluster", "otel_collector", "otel_endpoint", "cluster_name", "FILE_LOGGER", "OTEL_LOGGER"]

FILE_LOGGER = "envoy.access_loggers.file"
OTEL_LOGGER = "envoy.access_loggers.open_telemetry"
LOG_NAME = "MeshAccessLog"
DEFAULT_OTEL_PORT = 4317
COLLECTOR_CONNECT_TIMEOUT = 5.0
"""Kuma's clusters.DefaultTimeout()."""
_CLEAN = re.compile(r"(?:[a-z0-9-]*_?)+")


def access_log(
    backend: Mapping[str, Any], default_format: str, values: KumaValues, socket: str, facts: ProxyFacts | None = None
) -> accesslog_pb2.AccessLog | None:
    """One backend as an Envoy access logger (None for an OpenTelemetry backend with no
    collector: a `backendRef` that selects no MeshOpenTelemetryBackend of `facts`' mesh)."""
    kind = backend.get("type")
    if kind == "File":
        file = backend.get("file") or {}
        return _file_logger(str(file.get("path", "")), _file_format(file.get("format"), default_format, values))
    if kind == "Tcp":
        tcp = backend.get("tcp") or {}
        return _file_logger(socket, _tcp_format(str(tcp.get("address", "")), tcp.get("format"), default_format, values))
    if kind == "OpenTelemetry":
        otel = backend.get("openTelemetry") or {}
        target = otel_collector(otel, facts)
        if target is None:
            return None
        config = _otel_config(otel, target[:2], default_format, values)
        return accesslog_pb2.AccessLog(name=OTEL_LOGGER, typed_config=pack(config))
    return None


def _file_logger(path: str, fmt: SFS) -> accesslog_pb2.AccessLog:
    return accesslog_pb2.AccessLog(name=FILE_LOGGER, typed_config=pack(file_pb2.FileAccessLog(path=path, log_format=fmt)))


def _plain(text: str, omit_empty: bool) -> SFS:
    return SFS(text_format_source=base_pb2.DataSource(inline_string=text), omit_empty_values=omit_empty)


def _json(fields: Mapping[str, Any], omit_empty: bool) -> SFS:
    body = struct_pb2.Struct()
    body.update(fields)
    return SFS(json_format=body, omit_empty_values=omit_empty)


def _json_fields(items: Iterable[Mapping[str, Any]], values: KumaValues) -> dict[str, str]:
    # Kuma builds a map: a key listed twice keeps its last value.
    return {str(item.get("key", "")): interpolate(str(item.get("value", "")), values) for item in items}


def _file_format(fmt: Mapping[str, Any] | None, default_format: str, values: KumaValues) -> SFS:
    if fmt is None:
        return _plain(interpolate(default_format + "\n", values), False)
    omit = bool(fmt.get("omitEmptyValues", False))
    if fmt.get("plain") is not None:
        return _plain(interpolate(str(fmt["plain"]) + "\n", values), omit)
    return _json(_json_fields(fmt.get("json") or (), values), omit)


def _tcp_format(address: str, fmt: Mapping[str, Any] | None, default_format: str, values: KumaValues) -> SFS:
    if fmt is None:
        return _json({"address": address, "message": interpolate(default_format + "\n", values)}, False)
    omit = bool(fmt.get("omitEmptyValues", False))
    if fmt.get("plain") is not None:
        return _json({"address": address, "message": interpolate(str(fmt["plain"]) + "\n", values)}, omit)
    return _json({"address": address, "message": _json_fields(fmt.get("json") or (), values)}, omit)


# -- OpenTelemetry ---------------------------------------------------------------------------
def otel_endpoint(otel: Mapping[str, Any]) -> tuple[str, int] | None:
    """Kuma's ParseOtelEndpoint: `host[:port]`, port 4317 when none is given."""
    endpoint = otel.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        return None
    if endpoint.count(":") > 1 and "[" not in endpoint:
        return endpoint, DEFAULT_OTEL_PORT  # a bare IPv6 address
    host, sep, port = endpoint.rpartition(":")
    if not sep:
        return endpoint, DEFAULT_OTEL_PORT
    host = host.strip("[]")
    number = int(port) if port.isdigit() and 0 < int(port) < 65536 else DEFAULT_OTEL_PORT
    return (host, number) if host else (endpoint, DEFAULT_OTEL_PORT)


def otel_collector(otel: Mapping[str, Any], facts: ProxyFacts | None) -> tuple[str, int, bool] | None:
    """(host, port, HTTP/2) of an OpenTelemetry backend's collector: its `backendRef` resolved
    against the proxy's mesh, else its inline `endpoint` (always gRPC); None: nothing to send to."""
    if otel.get("backendRef") is not None:
        resolved = resolve_backend_ref(otel["backendRef"], facts)
        return None if resolved is None else (resolved.host, resolved.port, not resolved.http)
    endpoint = otel_endpoint(otel)
    return None if endpoint is None else (endpoint[0], endpoint[1], True)


def cluster_name(endpoint: tuple[str, int]) -> str:
    """Kuma's unified name for a collector's cluster, `system_meshaccesslog_<address-port>`
    cleaned as its CleanName does (Kuma's legacy naming numbers collectors per proxy instead,
    which a hook that sees one listener cannot do)."""
    address, port = endpoint
    return "system_meshaccesslog_" + "-".join(m for m in _CLEAN.findall(f"{address}-{port}") if m)


def _any_value(value: Any, values: KumaValues) -> common_pb2.AnyValue:
    """The record body: a mapping in OTLP's JSON form (`{"kvlistValue": ...}`) with placeholders
    resolved in every string and key; anything else becomes a string."""
    if isinstance(value, Mapping):
        body = common_pb2.AnyValue()
        try:
            json_format.ParseDict(_plain_json(value), body)
        except json_format.ParseError:
            return common_pb2.AnyValue(string_value=interpolate(json.dumps(_plain_json(value)), values))
        _interpolate_any(body, values)
        return body
    text = value if isinstance(value, str) else json.dumps(_plain_json(value))
    return common_pb2.AnyValue(string_value=interpolate(text, values))


def _plain_json(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_json(v) for v in value]
    return value


def _interpolate_any(value: common_pb2.AnyValue, values: KumaValues) -> None:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        value.string_value = interpolate(value.string_value, values)
    elif kind == "array_value":
        for item in value.array_value.values:
            _interpolate_any(item, values)
    elif kind == "kvlist_value":
        for kv in value.kvlist_value.values:
            _interpolate_any(kv.value, values)
            kv.key = interpolate(kv.key, values)


def _otel_config(
    otel: Mapping[str, Any], endpoint: tuple[str, int], default_format: str, values: KumaValues
) -> logs_service_pb2.OpenTelemetryAccessLogConfig:
    body = otel.get("body")
    attributes = common_pb2.KeyValueList(
        values=[
            common_pb2.KeyValue(
                key=interpolate(str(a.get("key", "")), values),
                value=common_pb2.AnyValue(string_value=interpolate(str(a.get("value", "")), values)),
            )
            for a in otel.get("attributes") or ()
        ]
    )
    resource = [common_pb2.KeyValue(key="kuma.mesh", value=common_pb2.AnyValue(string_value=values.mesh))]
    if values.zone:
        resource.append(common_pb2.KeyValue(key="kuma.zone", value=common_pb2.AnyValue(string_value=values.zone)))
    return logs_service_pb2.OpenTelemetryAccessLogConfig(
        # Envoy 1.40's API still carries the collector in common_config (Kuma's newer API has
        # top-level grpc_service and log_name); the fields mean the same.
        common_config=als_pb2.CommonGrpcAccessLogConfig(
            log_name=LOG_NAME,
            grpc_service=grpc_service_pb2.GrpcService(
                envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=cluster_name(endpoint))
            ),
            transport_api_version=config_source_pb2.V3,
        ),
        body=_any_value(body, values) if body is not None else common_pb2.AnyValue(string_value=interpolate(default_format, values)),
        attributes=attributes,
        resource_attributes=common_pb2.KeyValueList(values=resource),
    )


def collector_cluster(endpoint: tuple[str, int], http2: bool = True) -> cluster_pb2.Cluster:
    """The cluster Envoy exports log records to: HTTP/2 (gRPC; not for a `protocol: http`
    backend, as Kuma), 5 s connect timeout, as Kuma's ProvidedEndpointCluster."""
    address, port = endpoint
    return endpoint_cluster(cluster_name(endpoint), address, port, COLLECTOR_CONNECT_TIMEOUT, http2=http2)
