"""MeshMetric's OpenTelemetry backend with real Envoy: the pusher scrapes a real Envoy's stats and
Exports them through that Envoy's pipe listener to a real OTLP/gRPC receiver, as kuma-dp does.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.dataplane.metrics.pusher import MetricsPusher
from reconciler.dataplane.services import SidecarContext
from tests.e2e.harness import free_port, wait_until
from tests.e2e.observability.otlp import OtlpReceiver, attributes
from tests.gitops.helpers import StaticEnvoy

pytestmark = pytest.mark.envoy

BACKEND = "collector"
SOCKET = f"kuma-otel-{BACKEND}.sock"
LISTENER = f"_kuma:metrics:opentelemetry:{BACKEND}"
STAT = LISTENER.replace(":", "_")
"""Envoy writes `:` in stat names as `_`."""


def _forwarding_envoy(work_dir: Path, admin_port: int, collector: str) -> dict[str, Any]:
    """What the control plane gives a sidecar per OpenTelemetry backend (Kuma's
    OpenTelemetryConfigurer): a listener on the backend's pipe routing gRPC to an HTTP/2 cluster
    of the collector. Written statically here: the mapping and the push are under test."""
    host, port = collector.rsplit(":", 1)
    return {
        # Envoy merges histograms at each stats flush (5 s by default); sooner here.
        "stats_flush_interval": "1s",
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [
                {
                    "name": LISTENER,
                    "address": {"pipe": {"path": str(work_dir / SOCKET)}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                        "stat_prefix": LISTENER,
                                        "route_config": {
                                            "virtual_hosts": [
                                                {
                                                    "name": LISTENER,
                                                    "domains": ["*"],
                                                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": LISTENER}}],
                                                }
                                            ]
                                        },
                                        "http_filters": [
                                            {
                                                "name": "envoy.filters.http.router",
                                                "typed_config": {
                                                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                                                },
                                            }
                                        ],
                                    },
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": LISTENER,
                    "type": "STATIC",
                    "connect_timeout": "5s",
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                            "explicit_http_config": {"http2_protocol_options": {}},
                        }
                    },
                    "load_assignment": {
                        "cluster_name": LISTENER,
                        "endpoints": [
                            {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": host, "port_value": int(port)}}}}]}
                        ],
                    },
                }
            ],
        },
    }


def _dynamic_config(interval: str) -> dict[str, Any]:
    """The MeshMetric dynamic config (Kuma's dpapi.MeshMetricDpConfig) for one OpenTelemetry backend."""
    return {
        "observability": {
            "metrics": {
                "applications": [],
                "backends": [
                    {"type": "OpenTelemetry", "name": BACKEND, "openTelemetry": {"endpoint": SOCKET, "refreshInterval": interval}}
                ],
                # All: Basic, the default, leaves out Kuma's own `_kuma*` listeners and clusters,
                # and those are the ones this Envoy has.
                "sidecar": {"profiles": {"appendProfiles": [{"name": "All"}]}},
                "extraLabels": {"mesh": "default", "dataplane": "web-1", "service": "web"},
            }
        }
    }


@pytest.fixture(scope="module")
def work_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mo-e2e-", dir="/tmp") as d:  # short: Unix socket paths
        yield Path(d)


def _points(receiver: OtlpReceiver, name: str, **labels: str) -> list[tuple[dict[str, Any], Any]]:
    out = []
    for resource, metric in receiver.metrics():
        if metric.name != name:
            continue
        for point in metric.sum.data_points if metric.HasField("sum") else metric.gauge.data_points:
            if all(attributes(point.attributes).get(k) == v for k, v in labels.items()):
                out.append((resource, point))
    return out


def test_envoy_stats_reach_the_collector_through_envoys_pipe_listener(work_dir: Path) -> None:
    admin_port = free_port()
    config_file = work_dir / "envoy.json"
    with OtlpReceiver() as receiver:
        config_file.write_text(json.dumps(_forwarding_envoy(work_dir, admin_port, receiver.endpoint)))
        with StaticEnvoy(config_file, admin_port, work_dir / "envoy.log") as envoy:
            pusher = MetricsPusher(lambda wd, path, etag: (_dynamic_config("300ms"), None), poll_interval=0.1)
            pusher.start(SidecarContext(work_dir, f"127.0.0.1:{admin_port}", "default", "web-1"))
            try:
                # Each export is a request through Envoy's listener, counted by that listener's
                # own stats, which the next export carries: the counter grows with real traffic.
                def grown() -> bool:
                    values = [
                        p.as_double for _, p in _points(receiver, "envoy_http_downstream_rq_total", envoy_http_conn_manager_prefix=STAT)
                    ]
                    return len(values) >= 3 and values[-1] > values[0] >= 1

                wait_until(grown, 20, what="envoy_http_downstream_rq_total growing at the collector")

                def rq_time() -> list[Any]:
                    return [
                        p
                        for _, m in receiver.metrics()
                        if m.name == "envoy_cluster_upstream_rq_time" and m.HasField("histogram")
                        for p in m.histogram.data_points
                        if attributes(p.attributes).get("envoy_cluster_name") == STAT and p.count > 0
                    ]

                # A histogram: per-bucket counts that add up to the count, bounds without +Inf.
                latest = wait_until(rq_time, 20, what="the upstream_rq_time histogram at the collector")[-1]
                assert sum(latest.bucket_counts) == latest.count
                assert len(latest.bucket_counts) == len(latest.explicit_bounds) + 1
            finally:
                pusher.stop()
            routed = envoy.stats(f"cluster.{STAT}.upstream_rq_200")
            assert routed[f"cluster.{STAT}.upstream_rq_200"] >= 3  # through Envoy, not around it
    resource, point = _points(receiver, "envoy_http_downstream_rq_total", envoy_http_conn_manager_prefix=STAT)[-1]
    assert resource["service.name"] == "unknown_service:kuma-dp"
    assert attributes(point.attributes) == {
        "envoy_http_conn_manager_prefix": STAT,
        "mesh": "default",
        "dataplane": "web-1",
        "service": "web",
    }
    # `usedonly`: stats Envoy never touched are not pushed.
    assert not _points(receiver, "envoy_cluster_upstream_cx_overflow")
