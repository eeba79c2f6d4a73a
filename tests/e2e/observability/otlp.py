"""An OTLP/gRPC collector for tests: logs, traces and metrics Export services on 127.0.0.1 that
keep every request they receive, built on the `opentelemetry-proto` package's generated services.

    with OtlpReceiver() as otlp:
        ... point a MeshAccessLog/MeshTrace/MeshMetric backend at otlp.endpoint ...
        wait_until(lambda: otlp.log_records(), what="OTLP log records")
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from types import TracebackType
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2

from tests.e2e.harness import free_port

__all__ = ["OtlpReceiver", "attributes"]


def attributes(kvs: Any) -> dict[str, Any]:
    """OTLP `KeyValue`s as a plain dict (string, int, double and bool values)."""
    out: dict[str, Any] = {}
    for kv in kvs:
        out[kv.key] = _value(kv.value)
    return out


def _value(v: common_pb2.AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "kvlist_value":
        return attributes(v.kvlist_value.values)
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


class _Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, owner: OtlpReceiver) -> None:
        self.owner = owner

    def Export(self, request: Any, context: Any) -> Any:
        self.owner._keep("logs", request)
        return logs_service_pb2.ExportLogsServiceResponse()


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, owner: OtlpReceiver) -> None:
        self.owner = owner

    def Export(self, request: Any, context: Any) -> Any:
        self.owner._keep("traces", request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, owner: OtlpReceiver) -> None:
        self.owner = owner

    def Export(self, request: Any, context: Any) -> Any:
        self.owner._keep("metrics", request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class OtlpReceiver:
    """A collector on `127.0.0.1:<free port>`; `endpoint` is the `host:port` a backend names."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._requests: dict[str, list[Any]] = {"logs": [], "traces": [], "metrics": []}
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Logs(self), self._server)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(self), self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(self), self._server)
        self._server.add_insecure_port(self.endpoint)

    def __enter__(self) -> OtlpReceiver:
        self._server.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._server.stop(grace=None).wait(5)

    def _keep(self, signal: str, request: Any) -> None:
        with self._lock:
            self._requests[signal].append(request)

    def requests(self, signal: str) -> list[Any]:
        """Every Export request of `signal` ("logs", "traces", "metrics") so far."""
        with self._lock:
            return list(self._requests[signal])

    def clear(self) -> None:
        with self._lock:
            for kept in self._requests.values():
                kept.clear()

    def log_records(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, LogRecord) for every log record received."""
        return [
            (attributes(rl.resource.attributes), rec)
            for rl in self._iter("logs", "resource_logs")
            for sl in rl.scope_logs
            for rec in sl.log_records
        ]

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, Span) for every span received."""
        return [
            (attributes(rs.resource.attributes), span)
            for rs in self._iter("traces", "resource_spans")
            for ss in rs.scope_spans
            for span in ss.spans
        ]

    def metrics(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, Metric) for every metric received."""
        return [
            (attributes(rm.resource.attributes), m)
            for rm in self._iter("metrics", "resource_metrics")
            for sm in rm.scope_metrics
            for m in sm.metrics
        ]

    def _iter(self, signal: str, field: str) -> Iterator[Any]:
        for request in self.requests(signal):
            yield from getattr(request, field)
