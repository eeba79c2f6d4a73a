"""MeshHealthCheck in real Envoy: an instance failing its health path stops getting traffic.

One control plane, a client sidecar (web) and two instances, each behind its own sidecar, are
shared by the module, with one configuration for all tests. Every instance serves two
services through two inbounds: `checked`, which a MeshHealthCheck probes on `/health`, and
`unchecked`, which nothing probes. An instance's `/` always answers 200: only the active
health check can notice that its `/health` fails.
"""

from __future__ import annotations

import http.server
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_settled, wait_until

pytestmark = pytest.mark.envoy

MESH = "type: Mesh\nname: default\nskipCreatingInitialPolicies: [MeshRetry]\n"
INSTANCES = ("hc-1", "hc-2")
SERVICES = ("checked", "unchecked")

HEALTH_CHECK = """\
type: MeshHealthCheck
mesh: default
name: probe-health
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: MeshService
        name: checked
      default:
        interval: 1s
        noTrafficInterval: 1s
        timeout: 1s
        unhealthyThreshold: 1
        healthyThreshold: 1
        http:
          path: /health
          expectedStatuses: [200]
          requestHeadersToAdd:
            set:
              - name: x-probe
                value: mesh-health-check
"""


def inbound(port: int, service_port: int, service: str) -> str:
    return f"    - port: {port}\n      servicePort: {service_port}\n      tags:\n        kuma.io/service: {service}\n        kuma.io/protocol: http\n"


def dataplane(name: str, inbounds: str, outbounds: dict[str, int] | None = None) -> str:
    text = f"type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: 127.0.0.1\n  inbound:\n{inbounds}"
    if outbounds:
        text += "  outbound:\n" + "".join(
            f"    - port: {port}\n      tags:\n        kuma.io/service: {svc}\n" for svc, port in outbounds.items()
        )
    return text


class Instance(Workload):
    """A workload whose /health can be switched to 503."""

    def __init__(self, name: str) -> None:
        self.health_failing = False
        super().__init__(name, behaviour=self._health)

    def _health(self, handler: http.server.BaseHTTPRequestHandler) -> bool:
        if handler.path != "/health" or not self.health_failing:
            return False
        handler.send_response(503)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True


@dataclass
class Mesh:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    web: Workload
    instances: dict[str, Instance]
    ports: dict[str, int]
    envoys: dict[str, EnvoyProcess] = field(default_factory=dict)

    def files(self) -> dict[str, str | None]:
        p = self.ports
        out: dict[str, str | None] = {
            "mesh.yaml": MESH,
            "policies/health.yaml": HEALTH_CHECK,
            "dataplanes/web.yaml": dataplane("web", inbound(p["web_in"], self.web.port, "web"), {s: p[f"web_to_{s}"] for s in SERVICES}),
        }
        for name, instance in self.instances.items():
            out[f"dataplanes/{name}.yaml"] = dataplane(name, "".join(inbound(p[f"{name}_{s}"], instance.port, s) for s in SERVICES))
        return out

    def apply(self) -> None:
        sha = self.remote.push(self.files(), "health checks")
        self.cp.wait_applied(sha, [f"default.{n}" for n in self.envoys])
        wait_settled(self.envoys.values())

    def get(self, service: str) -> str:
        status, body = http_get(f"http://127.0.0.1:{self.ports[f'web_to_{service}']}/")
        assert status == 200, (status, body)
        return body.strip()

    def spread(self, service: str, n: int = 12) -> Counter[str]:
        return Counter(self.get(service) for _ in range(n))

    def failed_hosts(self, cluster: str) -> set[int]:
        """Ports of the endpoints of `cluster` that web's Envoy marks as failing health checks."""
        text = http_get(self.envoys["web"].admin + "/clusters")[1]
        out = set()
        for line in text.splitlines():
            name, _, rest = line.partition("::")
            if name == cluster and rest.endswith("/failed_active_hc") and "::health_flags::" in rest:
                out.add(int(rest.split("::", 1)[0].rsplit(":", 1)[1]))
        return out


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("mhc")
    remote = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", *(f"web_to_{s}" for s in SERVICES), *(f"{i}_{s}" for i in INSTANCES for s in SERVICES))}
    web = Workload("web")
    instances = {name: Instance(name) for name in INSTANCES}
    for w in (web, *instances.values()):
        w.__enter__()
    try:
        m = Mesh(remote, ControlPlaneProcess(remote.bare, root / "state"), web, instances, ports)
        first = remote.push(m.files(), "initial config")
        m.cp.start()
        try:
            for name in ("web", *INSTANCES):
                m.envoys[name] = EnvoyProcess(m.cp, root / "envoys", name=name)
                m.envoys[name].start()
            m.cp.wait_applied(first, [f"default.{n}" for n in m.envoys])
            wait_until(lambda: set(m.spread("checked")) == set(INSTANCES), 15, what="both instances healthy and serving")
            yield m
        finally:
            for envoy in m.envoys.values():
                envoy.stop()
            m.cp.stop()
    finally:
        for w in (web, *instances.values()):
            w.__exit__(None, None, None)


def test_health_checks_reach_the_applications_health_path_through_its_sidecar(mesh: Mesh) -> None:
    mesh.apply()
    instance = mesh.instances["hc-1"]
    wait_until(lambda: instance.requests["/health"] >= 2, 5, what="health checks at the application")
    probes = [h for h in instance.headers if h.get("x-probe") == "mesh-health-check"]
    assert probes, "the health check's request headers did not reach the application"
    assert probes[-1].get("user-agent", "").startswith("Envoy/HC")
    # Envoy's default Host for a health check is the cluster name; the inbound accepts any host.
    assert probes[-1].get("host") == "checked"
    # Like Kuma, the probing proxy says who it is.
    assert probes[-1].get("x-kuma-tags") == "&kuma.io/protocol=http&&kuma.io/service=web&"


def test_instance_failing_its_health_check_stops_getting_traffic_until_it_recovers(mesh: Mesh) -> None:
    mesh.apply()
    failing = mesh.instances["hc-2"]
    failing_port = mesh.ports["hc-2_checked"]
    try:
        failing.health_failing = True
        wait_until(lambda: failing_port in mesh.failed_hosts("checked"), 10, what="hc-2 marked unhealthy by web's Envoy")
        # Workers see the new health up to update_merge_window (1 s) later; then round robin
        # over the healthy hosts gives everything to hc-1 (with hc-2 it would alternate).
        wait_until(lambda: mesh.spread("checked", 20) == {"hc-1": 20}, 5, what="all traffic on hc-1")
        # Nothing probes `unchecked`: the same instance still gets its share there.
        assert mesh.spread("unchecked", 10)["hc-2"] >= 3
    finally:
        failing.health_failing = False
    wait_until(lambda: failing_port not in mesh.failed_hosts("checked"), 10, what="hc-2 healthy again")
    wait_until(lambda: set(mesh.spread("checked")) == set(INSTANCES), 5, what="hc-2 back in rotation")
