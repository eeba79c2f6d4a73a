"""One MeshOpenTelemetryBackend, three policies pointing at it by `backendRef`, real Envoy.

One control plane and two sidecars are shared by the module: client-1 (its outbound to web on
127.0.0.1) and web-1 (in front of a Workload). The mesh has one MeshOpenTelemetryBackend
labelled `collector: main` whose endpoint is an OTLP/gRPC receiver started by the test, and a
MeshAccessLog, a MeshMetric and a MeshTrace that name it only by `backendRef` labels (Kuma
2.14's preferred form; the inline `endpoint` is deprecated). After real requests through
client-1 to web-1, log records, metric data points and spans of both proxies arrive at the
receiver. Then the backend's port is changed in git: all three signals move to a second receiver
without touching the policies.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_until
from tests.e2e.observability.otlp import OtlpReceiver, attributes
from tests.support import dataplane_yaml

pytestmark = pytest.mark.envoy

PROXIES = ("default.web-1", "default.client-1")
FLUSH = 20.0
"""Envoy flushes spans every 5 s and access logs about every second; MeshMetric pushes every 1 s."""


def backend_yaml(port: int, labels: str = "collector: main") -> str:
    return f"""\
type: MeshOpenTelemetryBackend
mesh: default
name: main-collector
labels:
  {labels}
spec:
  protocol: grpc
  endpoint:
    address: 127.0.0.1
    port: {port}
"""


def _ref(indent: int) -> str:
    """The `backendRef` every policy uses, at `indent` spaces."""
    pad = " " * indent
    return f"{pad}backendRef:\n{pad}  kind: MeshOpenTelemetryBackend\n{pad}  labels:\n{pad}    collector: main\n"


ACCESS_LOG = f"""\
type: MeshAccessLog
mesh: default
name: logs-to-collector
spec:
  targetRef:
    kind: Mesh
  rules:
    - default:
        backends:
          - type: OpenTelemetry
            openTelemetry:
{_ref(14)}              attributes:
                - key: kuma.direction
                  value: '%KUMA_TRAFFIC_DIRECTION%'
              body: '%KUMA_SOURCE_SERVICE% %REQ(:PATH)%'
"""

ACCESS_LOG_OUT = f"""\
type: MeshAccessLog
mesh: default
name: outbound-logs-to-collector
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        backends:
          - type: OpenTelemetry
            openTelemetry:
{_ref(14)}              attributes:
                - key: kuma.direction
                  value: '%KUMA_TRAFFIC_DIRECTION%'
              body: '%KUMA_SOURCE_SERVICE% %REQ(:PATH)%'
"""

METRIC = f"""\
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
{_ref(10)}          refreshInterval: 1s
"""

TRACE = f"""\
type: MeshTrace
mesh: default
name: traces-to-collector
spec:
  targetRef:
    kind: Mesh
  default:
    backends:
      - type: OpenTelemetry
        openTelemetry:
{_ref(10)}"""


@dataclass
class Mesh:
    root: Path
    remote: ConfigRemote
    cp: ControlPlaneProcess
    receiver: OtlpReceiver
    ports: dict[str, int]
    envoys: dict[str, EnvoyProcess] = field(default_factory=dict)

    def push(self, files: Mapping[str, str | None], message: str) -> None:
        self.cp.wait_applied(self.remote.push(files, message), PROXIES)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root: Path = tmp_path_factory.mktemp("otel-ref")
    remote = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", "client_in", "client_out")}
    with Workload("web") as web, OtlpReceiver() as receiver:
        m = Mesh(root, remote, ControlPlaneProcess(remote.bare, root / "state"), receiver, ports)
        files = {
            "mesh.yaml": 'type: Mesh\nname: default\nskipCreatingInitialPolicies: ["*"]\n',
            "dataplanes/web.yaml": dataplane_yaml("web-1", "web", ports["web_in"], web.port),
            "dataplanes/client.yaml": dataplane_yaml("client-1", "client", ports["client_in"], free_port(), {"web": ports["client_out"]}),
        }
        sha = remote.push(files, "two sidecars, no observability yet")
        m.cp.start()
        try:
            for name in ("web-1", "client-1"):
                m.envoys[name] = EnvoyProcess(m.cp, root / "envoys", name=name)
                m.envoys[name].start(wait=False)
            for envoy in m.envoys.values():
                wait_until(envoy.ready, 30, what=f"envoy {envoy.name} ready")
            m.cp.wait_applied(sha, PROXIES)
            yield m
        finally:
            for envoy in m.envoys.values():
                envoy.stop()
            m.cp.stop()


def _logs(receiver: OtlpReceiver, prefix: str) -> list[tuple[str, str]]:
    """(kuma.direction, body) of every log record whose body's path starts with `prefix`."""
    out = []
    for _, record in receiver.log_records():
        body = record.body.string_value
        if f" {prefix}" in body:
            out.append((str(attributes(record.attributes).get("kuma.direction")), body))
    return out


def _metric_dataplanes(receiver: OtlpReceiver) -> set[str]:
    """The dataplanes whose pushed data points reached the receiver."""
    out = set()
    for _, metric in receiver.metrics():
        if metric.name == "envoy_http_downstream_rq_total":
            out |= {str(attributes(p.attributes).get("dataplane")) for p in metric.sum.data_points}
    return out


def _spans(receiver: OtlpReceiver, prefix: str) -> list[tuple[str, Any]]:
    """(service.name, span) of the spans of requests on `prefix`."""
    out = []
    for resource, span in receiver.spans():
        url = attributes(span.attributes).get("http.url", "")
        if prefix in str(url):
            out.append((str(resource.get("service.name")), span))
    return out


def _send(mesh: Mesh, prefix: str, count: int) -> None:
    for i in range(count):
        assert http_get(f"http://127.0.0.1:{mesh.ports['client_out']}{prefix}{i}")[0] == 200


def test_logs_metrics_and_spans_reach_the_backend_a_backend_ref_selects(mesh: Mesh) -> None:
    receiver = mesh.receiver
    policies = {
        "policies/logs.yaml": ACCESS_LOG,
        "policies/logs-out.yaml": ACCESS_LOG_OUT,
        "policies/metrics.yaml": METRIC,
        "policies/traces.yaml": TRACE,
    }
    # The policies alone select nothing yet: no backend, nothing exported (the MeshMetric would
    # push every second). No traffic yet: a sidecar-to-sidecar HTTP/2 connection opened now would
    # keep the listener config it started on (Envoy drains it), without the access logger.
    mesh.push(policies, "policies naming a MeshOpenTelemetryBackend that does not exist")
    time.sleep(3)
    assert receiver.requests("metrics") == [] and receiver.requests("logs") == []

    mesh.push({"backends/otel.yaml": backend_yaml(receiver.port)}, "the MeshOpenTelemetryBackend")
    _send(mesh, "/ref/", 5)

    logs = wait_until(lambda: len(_logs(receiver, "/ref/")) >= 10 and _logs(receiver, "/ref/"), FLUSH, what="10 log records")
    # Each request is logged by the client's outbound and by web's inbound.
    assert sorted({d for d, _ in logs}) == ["INBOUND", "OUTBOUND"]
    assert sum(1 for d, body in logs if d == "OUTBOUND" and body.startswith("client /ref/")) == 5
    wait_until(lambda: _metric_dataplanes(receiver) >= {"web-1", "client-1"}, FLUSH, what="both proxies' metrics")
    spans = wait_until(lambda: len(_spans(receiver, "/ref/")) >= 10 and _spans(receiver, "/ref/"), FLUSH, what="10 spans")
    assert {service for service, _ in spans} == {"client", "web"}
    # One trace per request, shared by the client's and web's spans.
    assert len({span.trace_id for _, span in spans}) == 5
    # The MeshMetric listener and cluster are named after the backend.
    stats = mesh.envoys["web-1"].stats("cluster._kuma_metrics_opentelemetry_main-collector.upstream_rq_200")
    assert any(v >= 1 for v in stats.values()), stats


def test_changing_the_backend_moves_every_signal_without_touching_the_policies(mesh: Mesh) -> None:
    with OtlpReceiver() as second:
        mesh.push({"backends/otel.yaml": backend_yaml(second.port)}, "the collector moved")
        _send(mesh, "/moved/", 4)

        # The client's outbound logs each request on a new connection; web's inbound keeps the
        # client's HTTP/2 connection, which stays on the listener config it started on.
        def moved() -> list[str]:
            return [body for direction, body in _logs(second, "/moved/") if direction == "OUTBOUND"]

        wait_until(lambda: len(moved()) >= 4, FLUSH, what="the client's 4 log records at the new collector")
        wait_until(lambda: _metric_dataplanes(second) >= {"web-1", "client-1"}, FLUSH, what="metrics at the new collector")
        wait_until(lambda: len(_spans(second, "/moved/")) >= 8, FLUSH, what="8 spans at the new collector")
        assert _spans(mesh.receiver, "/moved/") == []

        # Labels no longer matching: the policies select nothing, exports stop.
        mesh.push({"backends/otel.yaml": backend_yaml(second.port, "collector: retired")}, "the backend no longer matches")
        time.sleep(3)  # the last batches and pushes already under way
        second.clear()
        _send(mesh, "/gone/", 3)
        time.sleep(7)  # longer than Envoy's span flush
        assert second.requests("logs") == [] and second.requests("traces") == [] and second.requests("metrics") == []
