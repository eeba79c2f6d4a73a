"""MeshMetric's OpenTelemetry push on the dataplane side: the Prometheus → OTLP mapping (kuma-dp's
metrics_format_mapper), the backends read from the dynamic config, and the pusher exporting to a
real OTLP/gRPC receiver on the backend's Unix socket (no Envoy here: tests/e2e/observability has it).
"""

from __future__ import annotations

import http.server
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler import __version__
from reconciler.dataplane.dynconf import unix_path
from reconciler.dataplane.metrics import otlp
from reconciler.dataplane.metrics.pusher import Backend, MetricsPusher, backends_of
from reconciler.dataplane.services import SidecarContext
from tests.e2e.harness import free_port, wait_until
from tests.e2e.observability.otlp import OtlpReceiver, attributes

T0 = 1_700_000_000_000_000_123
EXTRA = {"mesh": "default", "service": "web"}


def _by_name(scoped: otlp.Scoped) -> dict[str, tuple[otlp.Scope, Any]]:
    return {m.name: (scope, m) for scope, metrics in scoped.items() for m in metrics}


def test_counter_keeps_declared_name_and_becomes_a_cumulative_monotonic_sum() -> None:
    text = (
        "# TYPE envoy_cluster_assignment_stale counter\n"
        'envoy_cluster_assignment_stale{envoy_cluster_name="web"} 11 1395066363000\n'
        "# TYPE envoy_cluster_upstream_rq_total counter\n"
        'envoy_cluster_upstream_rq_total{envoy_cluster_name="web"} 7\n'
    )
    found = _by_name(otlp.from_prometheus_text(text, "9.9.9", EXTRA, T0))
    # Neither renamed: prometheus_client alone would report `..._stale_total` and `..._rq`.
    assert set(found) == {"envoy_cluster_assignment_stale", "envoy_cluster_upstream_rq_total"}
    scope, stale = found["envoy_cluster_assignment_stale"]
    assert (scope.name, scope.version) == ("kuma", "9.9.9")
    assert stale.sum.is_monotonic and stale.sum.aggregation_temporality == 2  # CUMULATIVE
    point = stale.sum.data_points[0]
    assert point.as_double == 11.0
    assert point.time_unix_nano == 1395066363000 * 1_000_000  # the sample's own timestamp
    assert found["envoy_cluster_upstream_rq_total"][1].sum.data_points[0].time_unix_nano == T0  # else the scrape time
    assert point.start_time_unix_nano == 0
    # Labels and the proxy's extra attributes, sorted by key.
    assert [kv.key for kv in point.attributes] == ["envoy_cluster_name", "mesh", "service"]
    assert attributes(point.attributes) == {"envoy_cluster_name": "web", **EXTRA}


def test_gauge_and_scope_labels() -> None:
    text = (
        "# HELP app_temperature how warm\n# TYPE app_temperature gauge\n"
        'app_temperature{otel_scope_name="io.example",otel_scope_version="1.2",otel_scope_schema_url="https://s/1",'
        'otel_scope_team="core",room="a"} 21.5\n'
        'app_temperature{room="b",service="mine"} 19\n'
    )
    scoped = otlp.from_prometheus_text(text, "9.9.9", EXTRA, T0)
    assert sorted(scoped) == [
        otlp.Scope("io.example", "1.2", "https://s/1", (("team", "core"),)),
        otlp.Scope("kuma", "9.9.9"),
    ]
    example = scoped[otlp.Scope("io.example", "1.2", "https://s/1", (("team", "core"),))][0]
    assert example.description == "how warm"
    assert attributes(example.gauge.data_points[0].attributes) == {"room": "a", **EXTRA}
    kuma = scoped[otlp.Scope("kuma", "9.9.9")][0]
    # An extra attribute wins over a same-named label, as attribute.NewSet keeps the last.
    assert attributes(kuma.gauge.data_points[0].attributes) == {"room": "b", **EXTRA}
    assert kuma.gauge.data_points[0].as_double == 19.0


def test_histogram_buckets_are_per_bucket_counts_with_finite_bounds() -> None:
    text = (
        "# TYPE envoy_cluster_upstream_rq_time histogram\n"
        'envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="web",le="1"} 2\n'
        'envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="web",le="5"} 5\n'
        'envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="web",le="+Inf"} 6\n'
        'envoy_cluster_upstream_rq_time_sum{envoy_cluster_name="web"} 31.5\n'
        'envoy_cluster_upstream_rq_time_count{envoy_cluster_name="web"} 6\n'
        'envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="api",le="1"} 0\n'
        'envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="api",le="5"} 0\n'
        'envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="api",le="+Inf"} 0\n'
        'envoy_cluster_upstream_rq_time_sum{envoy_cluster_name="api"} 0\n'
        'envoy_cluster_upstream_rq_time_count{envoy_cluster_name="api"} 0\n'
    )
    (_, metric) = _by_name(otlp.from_prometheus_text(text, "9.9.9", {}, T0))["envoy_cluster_upstream_rq_time"]
    assert metric.histogram.aggregation_temporality == 2
    web, api = metric.histogram.data_points
    assert attributes(web.attributes) == {"envoy_cluster_name": "web"}  # no `le`
    assert list(web.explicit_bounds) == [1.0, 5.0]
    assert list(web.bucket_counts) == [2, 3, 1]
    assert (web.count, web.sum) == (6, 31.5)
    assert list(api.bucket_counts) == [0, 0, 0]


def test_summary_becomes_quantile_gauge_and_count_sum_sums() -> None:
    text = (
        "# TYPE rpc_seconds summary\n"
        'rpc_seconds{quantile="0.5"} 2\nrpc_seconds{quantile="0.99"} 20\nrpc_seconds{quantile="1.0"} 30\n'
        "rpc_seconds_sum 1000\nrpc_seconds_count 500\n"
        "# TYPE bare_seconds summary\n"
        'bare_seconds{quantile="0.5"} 1\n'
    )
    found = _by_name(otlp.from_prometheus_text(text, "9.9.9", {}, T0))
    assert [attributes(p.attributes)["quantile"] for p in found["rpc_seconds"][1].gauge.data_points] == ["0.5", "0.99", "1"]
    assert found["rpc_seconds_count"][1].sum.data_points[0].as_double == 500
    assert found["rpc_seconds_count"][1].sum.is_monotonic
    assert found["rpc_seconds_sum"][1].sum.data_points[0].as_double == 1000
    # Go's parser defaults a missing _count/_sum to 0, so kuma-dp sends 0 points.
    assert found["bare_seconds_count"][1].sum.data_points[0].as_double == 0


def test_untyped_series_are_dropped() -> None:
    assert otlp.from_prometheus_text("loose_metric 5\n", "9.9.9", {}, T0) == {}


def test_export_request_carries_the_resource_and_scopes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test,team=core")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    scoped = otlp.from_prometheus_text("# TYPE a gauge\na 1\n", "9.9.9", {}, T0)
    request = otlp.export_request(scoped, otlp.resource_attributes())
    (rm,) = request.resource_metrics
    resource = attributes(rm.resource.attributes)
    assert resource["service.name"] == "unknown_service:kuma-dp"
    assert resource["deployment.environment"] == "test"
    (sm,) = rm.scope_metrics
    assert (sm.scope.name, sm.scope.version, sm.metrics[0].name) == ("kuma", "9.9.9", "a")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "web-sidecar")
    assert otlp.resource_attributes()["service.name"] == "web-sidecar"


def _config(*backends: dict[str, Any], app_port: int | None = None) -> dict[str, Any]:
    return {
        "observability": {
            "metrics": {
                "applications": [{"path": "/metrics", "port": app_port, "address": "127.0.0.1"}] if app_port else [],
                "backends": list(backends),
                "extraLabels": {"mesh": "default", "dataplane": "web-1"},
            }
        }
    }


def _otel(name: str, endpoint: str, interval: str | None) -> dict[str, Any]:
    otel: dict[str, Any] = {"endpoint": endpoint}
    if interval is not None:
        otel["refreshInterval"] = interval
    return {"type": "OpenTelemetry", "name": name, "openTelemetry": otel}


def test_backends_of_reads_the_opentelemetry_backends() -> None:
    config = _config({"type": "Prometheus"}, _otel("collector", "kuma-otel-collector.sock", "1m0s"), _otel("fast", "f.sock", "250ms"))
    assert backends_of(config) == {
        "collector": Backend("collector", "kuma-otel-collector.sock", 60.0),
        "fast": Backend("fast", "f.sock", 0.25),
    }
    assert backends_of(_config(_otel("x", "x.sock", None)))["x"].interval == 60.0  # Kuma's default 1m
    assert backends_of({}) == {}


class _Stats:
    """Stands in for Envoy's admin and an application: Prometheus text whose counter grows per scrape."""

    def __init__(self) -> None:
        self.port = free_port()
        self.scrapes = 0
        stats = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stats.scrapes += 1
                if self.path.startswith("/stats"):
                    assert "format=prometheus" in self.path and "usedonly" in self.path
                    body = f'# TYPE envoy_http_downstream_rq_total counter\nenvoy_http_downstream_rq_total{{prefix="in"}} {stats.scrapes}\n'
                else:
                    body = "# TYPE app_jobs gauge\napp_jobs 3\n"
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def work_dir() -> Iterator[Path]:
    # Short: a Unix socket path must fit in 108 bytes.
    with tempfile.TemporaryDirectory(prefix="mo-", dir="/tmp") as d:
        yield Path(d)


def _unix_receiver(path: Path) -> OtlpReceiver:
    receiver = OtlpReceiver()
    receiver._server.add_insecure_port(f"unix:{path}")  # the socket Envoy would listen on
    return receiver


def _counter_values(receiver: OtlpReceiver) -> list[float]:
    return [p.as_double for res, m in receiver.metrics() if m.name == "envoy_http_downstream_rq_total" for p in m.sum.data_points]


def test_pusher_exports_every_interval_to_the_backend_socket_and_stops(work_dir: Path) -> None:
    stats = _Stats()
    config: dict[str, Any] = _config(_otel("collector", "kuma-otel-collector.sock", "200ms"), app_port=stats.port)
    fetches: list[str | None] = []

    def fetch(wd: Path, path: str, etag: str | None) -> tuple[dict[str, Any] | None, str | None]:
        assert (wd, path) == (work_dir, "/meshmetric")
        fetches.append(etag)
        return (config if etag != str(id(config)) else None), str(id(config))

    pusher = MetricsPusher(fetch, poll_interval=0.05)
    try:
        with _unix_receiver(work_dir / "kuma-otel-collector.sock") as receiver:
            pusher.start(SidecarContext(work_dir, f"127.0.0.1:{stats.port}", "default", "web-1"))
            wait_until(lambda: len(_counter_values(receiver)) >= 3, 10, what="three exports")
            values = _counter_values(receiver)
            assert values == sorted(values) and values[-1] > values[0]  # a fresh scrape each time
            assert fetches[0] is None and fetches[-1] == str(id(config))  # the etag comes back
            resource, jobs = next((r, m) for r, m in receiver.metrics() if m.name == "app_jobs")
            assert resource["service.name"] == "unknown_service:kuma-dp"
            assert attributes(jobs.gauge.data_points[0].attributes) == {"mesh": "default", "dataplane": "web-1"}
            (rm,) = receiver.requests("metrics")[0].resource_metrics
            assert (rm.scope_metrics[0].scope.name, rm.scope_metrics[0].scope.version) == ("kuma", __version__)

            # The backend goes from the config: one last export, then none.
            reader = pusher._running["collector"]
            config = _config(app_port=stats.port)
            wait_until(lambda: pusher.exports() == {} and not reader.thread.is_alive(), 10, what="backend stopped")
            settled = len(receiver.requests("metrics"))
            time.sleep(0.6)
            assert len(receiver.requests("metrics")) == settled
    finally:
        pusher.stop()
        stats.close()


def test_pusher_restarts_a_backend_whose_interval_changes_and_flushes_on_stop(work_dir: Path) -> None:
    stats = _Stats()
    state = {"config": _config(_otel("collector", "otel.sock", "1h"))}

    def fetch(wd: Path, path: str, etag: str | None) -> tuple[dict[str, Any] | None, str | None]:
        return state["config"], None

    pusher = MetricsPusher(fetch, poll_interval=0.05)
    with _unix_receiver(work_dir / "otel.sock") as receiver:
        try:
            pusher.start(SidecarContext(work_dir, f"127.0.0.1:{stats.port}", "default", "web-1"))
            wait_until(lambda: "collector" in pusher.exports(), 5, what="backend running")
            time.sleep(0.3)
            assert receiver.requests("metrics") == []  # the first export waits one interval
            state["config"] = _config(_otel("collector", "otel.sock", "100ms"))
            # The 1h reader ends with its flush; the 100ms one exports on its own.
            wait_until(lambda: len(receiver.requests("metrics")) >= 3, 10, what="exports at the new interval")
            state["config"] = _config(_otel("collector", "otel.sock", "1h"))
            wait_until(lambda: pusher._running["collector"].backend.interval == 3600, 5, what="back to 1h")
        finally:
            before = len(receiver.requests("metrics"))
            pusher.stop()
            stats.close()
        assert len(receiver.requests("metrics")) == before + 1  # stop flushes once


def test_pusher_stops_its_backends_when_the_config_is_gone(work_dir: Path) -> None:
    state = {"gone": False}

    def fetch(wd: Path, path: str, etag: str | None) -> tuple[dict[str, Any] | None, str | None]:
        if state["gone"]:
            return None, None
        if etag == '"1"':
            return None, etag  # 304: unchanged
        return _config(_otel("collector", "otel.sock", "1h")), '"1"'

    pusher = MetricsPusher(fetch, poll_interval=0.05)
    try:
        pusher.start(SidecarContext(work_dir, "127.0.0.1:1", "default", "web-1"))
        wait_until(lambda: "collector" in pusher.exports(), 5, what="backend running")
        time.sleep(0.2)  # 304s meanwhile: it keeps running
        assert "collector" in pusher.exports()
        state["gone"] = True  # the MeshMetric (and the listener serving its config) went away
        wait_until(lambda: pusher.exports() == {}, 10, what="backend stopped")
    finally:
        pusher.stop()


def test_pusher_reaches_a_socket_deeper_than_sockaddr_un_allows(work_dir: Path) -> None:
    deep = work_dir / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    assert len(str(deep / "kuma-otel-collector.sock")) > 108
    stats = _Stats()
    pusher = MetricsPusher(lambda wd, path, etag: (_config(_otel("collector", "kuma-otel-collector.sock", "100ms")), None), 0.05)
    with unix_path(deep / "kuma-otel-collector.sock") as short:
        receiver = OtlpReceiver()
        receiver._server.add_insecure_port(f"unix:{short}")  # bound while the directory's descriptor is open
    with receiver:
        try:
            pusher.start(SidecarContext(deep, f"127.0.0.1:{stats.port}", "default", "web-1"))
            wait_until(lambda: _counter_values(receiver), 10, what="an export into the deep socket")
        finally:
            pusher.stop()
            stats.close()
