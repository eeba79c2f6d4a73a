"""MeshCircuitBreaker in real Envoy: connection limits overflow, outlier detection ejects.

One control plane and five sidecars are shared by the module, with one configuration for all
tests (so no test waits on Envoy re-warming a changed cluster):

- `limited` and `unlimited` are the same slow application behind one sidecar; a policy caps
  web's outbound to `limited` at one connection, one pending and one active request, while
  `unlimited` keeps Kuma's default limits (1024).
- `guarded` is a slow application whose own sidecar caps its inbound (rules → local cluster).
- `flaky` and `flaky-plain` are two instances, one of which answers 500 to everything;
  outlier detection is on for `flaky` only.
"""

from __future__ import annotations

import http.client
import http.server
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, wait_settled, wait_until

pytestmark = pytest.mark.envoy

MESH = "type: Mesh\nname: default\nskipCreatingInitialPolicies: [MeshRetry]\n"
"""MeshRetry's default would retry 503s and 500s and hide what the breaker does."""
SLOW_SECONDS = 0.6
BURST = 8

POLICIES = """\
type: MeshCircuitBreaker
mesh: default
name: client-side
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: MeshService
        name: limited
      default:
        connectionLimits:
          maxConnections: 1
          maxPendingRequests: 1
          maxRequests: 1
    - targetRef:
        kind: MeshService
        name: flaky
      default:
        outlierDetection:
          interval: 1s
          baseEjectionTime: 1m
          maxEjectionPercent: 50
          healthyPanicThreshold: 0
          detectors:
            totalFailures:
              consecutive: 2
---
type: MeshCircuitBreaker
mesh: default
name: guard-inbound
spec:
  targetRef:
    kind: Dataplane
    name: guarded-1
  rules:
    - default:
        connectionLimits:
          maxConnections: 1
          maxPendingRequests: 1
          maxRequests: 1
"""

OUTBOUNDS = ("limited", "unlimited", "guarded", "flaky", "flaky-plain")


def slow(handler: http.server.BaseHTTPRequestHandler) -> bool:
    if handler.path.startswith("/slow"):
        time.sleep(SLOW_SECONDS)
    return False  # then answer normally


def failing(handler: http.server.BaseHTTPRequestHandler) -> bool:
    body = b"broken\n"
    handler.send_response(500)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
    return True


def inbound(port: int, service_port: int, service: str) -> str:
    return f"    - port: {port}\n      servicePort: {service_port}\n      tags:\n        kuma.io/service: {service}\n        kuma.io/protocol: http\n"


def dataplane(name: str, inbounds: str, outbounds: dict[str, int] | None = None) -> str:
    text = f"type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: 127.0.0.1\n  inbound:\n{inbounds}"
    if outbounds:
        text += "  outbound:\n" + "".join(
            f"    - port: {port}\n      tags:\n        kuma.io/service: {svc}\n" for svc, port in outbounds.items()
        )
    return text


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str


def fetch(port: int, path: str = "/") -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode(errors="replace"))
    finally:
        conn.close()


@dataclass
class Mesh:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    workloads: dict[str, Workload]
    ports: dict[str, int]
    envoys: dict[str, EnvoyProcess] = field(default_factory=dict)

    def files(self) -> dict[str, str | None]:
        p, w = self.ports, self.workloads
        return {
            "mesh.yaml": MESH,
            "policies/circuit-breakers.yaml": POLICIES,
            "dataplanes/web.yaml": dataplane("web", inbound(p["web_in"], w["web"].port, "web"), {s: p[f"web_to_{s}"] for s in OUTBOUNDS}),
            "dataplanes/slow-1.yaml": dataplane(
                "slow-1", inbound(p["slow_limited"], w["slow"].port, "limited") + inbound(p["slow_unlimited"], w["slow"].port, "unlimited")
            ),
            "dataplanes/guarded-1.yaml": dataplane("guarded-1", inbound(p["guarded_in"], w["guarded"].port, "guarded")),
            "dataplanes/flaky-ok.yaml": dataplane(
                "flaky-ok", inbound(p["ok_flaky"], w["ok"].port, "flaky") + inbound(p["ok_plain"], w["ok"].port, "flaky-plain")
            ),
            "dataplanes/flaky-bad.yaml": dataplane(
                "flaky-bad", inbound(p["bad_flaky"], w["bad"].port, "flaky") + inbound(p["bad_plain"], w["bad"].port, "flaky-plain")
            ),
        }

    def apply(self) -> None:
        sha = self.remote.push(self.files(), "circuit breakers")
        self.cp.wait_applied(sha, [f"default.{n}" for n in self.envoys])
        wait_settled(self.envoys.values())

    def via_web(self, service: str, path: str = "/") -> Response:
        return fetch(self.ports[f"web_to_{service}"], path)

    def burst(self, service: str) -> list[Response]:
        """BURST slow requests at once through web's outbound to `service`."""
        with ThreadPoolExecutor(BURST) as pool:
            return list(pool.map(lambda _: self.via_web(service, "/slow"), range(BURST)))

    def stat(self, envoy: str, name: str) -> int:
        return self.envoys[envoy].stats(name).get(name, 0)

    def overflows(self, envoy: str, cluster: str) -> int:
        """Requests a circuit breaker failed fast: over maxPendingRequests (pending_overflow) or
        over maxRequests (active_overflow); which of the two trips first depends on timing."""
        stats = self.envoys[envoy].stats(f"cluster.{cluster}.upstream_rq_")
        return sum(stats.get(f"cluster.{cluster}.upstream_rq_{k}_overflow", 0) for k in ("pending", "active"))


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("mcb")
    remote = ConfigRemote(root)
    keys = (
        "web_in",
        *(f"web_to_{s}" for s in OUTBOUNDS),
        "slow_limited",
        "slow_unlimited",
        "guarded_in",
        "ok_flaky",
        "ok_plain",
        "bad_flaky",
        "bad_plain",
    )
    ports = {k: free_port() for k in keys}
    workloads = {
        "web": Workload("web"),
        "slow": Workload("slow", behaviour=slow),
        "guarded": Workload("guarded", behaviour=slow),
        "ok": Workload("flaky-ok"),
        "bad": Workload("flaky-bad", behaviour=failing),
    }
    for w in workloads.values():
        w.__enter__()
    try:
        m = Mesh(remote, ControlPlaneProcess(remote.bare, root / "state"), workloads, ports)
        first = remote.push(m.files(), "initial config")
        m.cp.start()
        try:
            for name in ("web", "slow-1", "guarded-1", "flaky-ok", "flaky-bad"):
                m.envoys[name] = EnvoyProcess(m.cp, root / "envoys", name=name)
                m.envoys[name].start()
            m.cp.wait_applied(first, [f"default.{n}" for n in m.envoys])
            wait_until(lambda: all(m.via_web(s).status == 200 for s in ("limited", "unlimited", "guarded")), 15, what="traffic through web")
            yield m
        finally:
            for envoy in m.envoys.values():
                envoy.stop()
            m.cp.stop()
    finally:
        for w in workloads.values():
            w.__exit__(None, None, None)


def test_outbound_connection_limits_overflow_concurrent_requests_with_503(mesh: Mesh) -> None:
    mesh.apply()
    # Same application, same burst, Kuma's default limits: every request is served.
    assert Counter(r.status for r in mesh.burst("unlimited")) == {200: BURST}
    before = mesh.overflows("web", "limited")
    responses = mesh.burst("limited")
    overflowed = [r for r in responses if r.status == 503]
    assert overflowed, [r.status for r in responses]
    assert all(r.headers.get("x-envoy-overloaded") == "true" for r in overflowed)
    assert any(r.status == 200 for r in responses)  # the one that got the connection
    assert mesh.overflows("web", "limited") > before
    # track_remaining (always on) publishes what is left of each limit.
    assert mesh.stat("web", "cluster.limited.circuit_breakers.default.remaining_rq") == 1


def test_inbound_rules_limit_the_local_application_cluster(mesh: Mesh) -> None:
    mesh.apply()
    local = f"localhost_{mesh.workloads['guarded'].port}"
    before = mesh.overflows("guarded-1", local)
    responses = mesh.burst("guarded")
    statuses = Counter(r.status for r in responses)
    assert statuses[503] >= 1 and statuses[200] >= 1, statuses
    # The overflow happened in the guarded service's own sidecar, before its application.
    assert mesh.overflows("guarded-1", local) > before
    assert mesh.overflows("web", "guarded") == 0


def test_outlier_detection_ejects_the_instance_answering_5xx(mesh: Mesh) -> None:
    mesh.apply()
    # Without outlier detection the failing instance keeps getting its share.
    plain = Counter(mesh.via_web("flaky-plain").status for _ in range(10))
    assert plain[500] >= 3 and plain[200] >= 3, plain

    def twenty_in_a_row_succeed() -> bool:
        return all(mesh.via_web("flaky").body == "flaky-ok\n" for _ in range(20))

    wait_until(twenty_in_a_row_succeed, 10, interval=0, what="the failing instance ejected")
    assert mesh.stat("web", "cluster.flaky.outlier_detection.ejections_enforced_consecutive_5xx") >= 1
    assert mesh.stat("web", "cluster.flaky.outlier_detection.ejections_active") == 1
