"""MeshMetric's OpenTelemetry backend with real Envoy: the pusher scrapes a real Envoy's stats and
Exports them through that Envoy's pipe listener to a real OTLP/gRPC receiver, as kuma-dp does.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from reconciler.dataplane.metrics.pusher import MetricsPusher
from reconciler.dataplane.services import SidecarContext
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_until
from tests.e2e.observability.otlp import OtlpReceiver, attributes
from tests.gitops.helpers import StaticEnvoy
from tests.support import dataplane_yaml, gateway_yaml

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


# The real pipeline: a MeshMetric pushed via git, the control plane's Envoy config, run-dataplane's pusher.

PROXIES = ("default.web-1", "default.client-1", "default.edge-1")


def _mesh_files(ports: dict[str, int], web_port: int) -> dict[str, str | None]:
    return {
        "mesh.yaml": 'type: Mesh\nname: default\nskipCreatingInitialPolicies: ["*"]\n',
        "dataplanes/web.yaml": dataplane_yaml("web-1", "web", ports["web_in"], web_port),
        "dataplanes/client.yaml": dataplane_yaml("client-1", "client", ports["client_in"], free_port(), {"web": ports["client_out"]}),
        "gateway.yaml": gateway_yaml(ports["edge"], "web"),
    }


def _otel_policy(endpoint: str) -> str:
    return f"""\
type: MeshMetric
mesh: default
name: metrics-to-collector
spec:
  targetRef:
    kind: Mesh
  default:
    backends:
      - type: OpenTelemetry
        openTelemetry:
          endpoint: {endpoint}
          refreshInterval: 1s
"""


@dataclass
class Pipeline:
    root: Path
    remote: ConfigRemote
    cp: ControlPlaneProcess
    receiver: OtlpReceiver
    ports: dict[str, int]
    envoys: dict[str, EnvoyProcess] = field(default_factory=dict)

    def push(self, files: dict[str, str | None], message: str) -> None:
        sha = self.remote.push(files, message)
        self.cp.wait_applied(sha, PROXIES)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    root: Path = tmp_path_factory.mktemp("metrics-otel")
    remote = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", "client_in", "client_out", "edge")}
    with Workload("web") as web, OtlpReceiver() as receiver:
        p = Pipeline(root, remote, ControlPlaneProcess(remote.bare, root / "state"), receiver, ports)
        sha = remote.push(_mesh_files(ports, web.port), "three proxies, no MeshMetric yet")
        p.cp.start()
        try:
            for name in ("web-1", "client-1", "edge-1"):
                p.envoys[name] = EnvoyProcess(p.cp, root / "envoys", name=name)
                p.envoys[name].start(wait=False)
            for envoy in p.envoys.values():
                wait_until(envoy.ready, 30, what=f"envoy {envoy.name} ready")
            p.cp.wait_applied(sha, PROXIES)
            yield p
        finally:
            for envoy in p.envoys.values():
                envoy.stop()
            p.cp.stop()


def _traffic(receiver: OtlpReceiver, dataplane: str) -> list[float]:
    """Per export of `dataplane`, the requests its own traffic listeners counted (not the admin's
    nor Kuma's `_kuma*` listeners, which count the exports and config polls themselves)."""
    out = []
    for request in receiver.requests("metrics"):
        for rm in request.resource_metrics:
            total, seen = 0.0, False
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name != "envoy_http_downstream_rq_total":
                        continue
                    for point in m.sum.data_points:
                        labels = attributes(point.attributes)
                        prefix = labels.get("envoy_http_conn_manager_prefix", "")
                        if labels.get("dataplane") == dataplane and prefix != "admin" and not prefix.startswith("_"):
                            total, seen = total + point.as_double, True
                        elif labels.get("dataplane") == dataplane:
                            seen = True
            if seen:
                out.append(total)
    return out


def _labels_of(receiver: OtlpReceiver, dataplane: str) -> dict[str, Any]:
    for _, metric in receiver.metrics():
        if metric.name == "envoy_http_downstream_rq_total":
            for point in metric.sum.data_points:
                labels = attributes(point.attributes)
                if labels.get("dataplane") == dataplane:
                    return labels
    return {}


def test_a_meshmetric_pushed_via_git_makes_every_proxy_push_growing_counters(pipeline: Pipeline) -> None:
    receiver = pipeline.receiver
    time.sleep(1.5)
    assert receiver.requests("metrics") == []  # no MeshMetric, no pushes
    pipeline.push({"policies/metrics.yaml": _otel_policy(receiver.endpoint)}, "MeshMetric with an OpenTelemetry backend")
    for dataplane in ("web-1", "client-1", "edge-1"):
        wait_until(partial(_traffic, receiver, dataplane), 20, what=f"{dataplane}'s first export")

    before_web, before_edge = _traffic(receiver, "web-1")[-1], _traffic(receiver, "edge-1")[-1]
    for i in range(5):
        assert http_get(f"http://127.0.0.1:{pipeline.ports['client_out']}/order/{i}")[0] == 200
    wait_until(lambda: http_get(f"http://127.0.0.1:{pipeline.ports['edge']}/warmup")[0] == 200, 15, what="the gateway routing to web")
    for i in range(4):
        assert http_get(f"http://127.0.0.1:{pipeline.ports['edge']}/g/{i}")[0] == 200
    # web's inbound saw 5 from the client and 5 from the gateway; the gateway's listener its own 5.
    wait_until(lambda: _traffic(receiver, "web-1")[-1] >= before_web + 10, 20, what="web's pushed request counter grew by 10")
    wait_until(lambda: _traffic(receiver, "edge-1")[-1] >= before_edge + 5, 20, what="edge's pushed request counter grew by 5")

    # Kuma's labels, keys as kuma-dp sends them as attributes (not made Prometheus-safe).
    web = _labels_of(receiver, "web-1")
    assert {k: web.get(k) for k in ("mesh", "dataplane", "service", "kuma.proxy_role")} == {
        "mesh": "default",
        "dataplane": "web-1",
        "service": "web",
        "kuma.proxy_role": "sidecar",
    }
    assert _labels_of(receiver, "edge-1")["kuma.proxy_role"] == "gateway"
    resource = attributes(receiver.requests("metrics")[-1].resource_metrics[0].resource.attributes)
    assert resource["service.name"] == "unknown_service:kuma-dp"
    # Every export went through the proxy's Envoy: its OpenTelemetry cluster counted them.
    stats = pipeline.envoys["web-1"].stats("cluster._kuma_metrics_opentelemetry_")
    assert any(k.endswith(".upstream_rq_200") and v >= 2 for k, v in stats.items()), stats


def test_removing_the_meshmetric_stops_the_pushes(pipeline: Pipeline) -> None:
    receiver = pipeline.receiver
    pipeline.push({"policies/metrics.yaml": _otel_policy(receiver.endpoint)}, "MeshMetric (again, if alone)")
    wait_until(lambda: _traffic(receiver, "web-1"), 20, what="web's exports")
    pipeline.push({"policies/metrics.yaml": None}, "no MeshMetric")
    time.sleep(3)  # the config poll (1 s) and one last export per backend
    count = len(receiver.requests("metrics"))
    time.sleep(2.5)
    assert len(receiver.requests("metrics")) == count
