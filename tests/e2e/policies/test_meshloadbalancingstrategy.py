"""MeshLoadBalancingStrategy in real Envoy: ring hash on a header keeps each key on one instance.

One control plane, a client sidecar (web) and three backend instances, each behind its own
sidecar, are shared by the module. Every instance serves two services through two inbounds:
`backend`, which a MeshLoadBalancingStrategy balances by ring hash on the `x-user` header,
and `plain`, which no policy touches. The same traffic to both shows what the policy changes.
The configuration is the same for every test, so no test waits on Envoy re-warming a cluster.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_settled, wait_until

pytestmark = pytest.mark.envoy

# MeshRetry's default would retry failures onto other instances; these tests want to see
# exactly where each request lands.
MESH = "type: Mesh\nname: default\nskipCreatingInitialPolicies: [MeshRetry]\n"
INSTANCES = ("backend-1", "backend-2", "backend-3")
SERVICES = ("backend", "plain")

RING_HASH_ON_HEADER = """\
type: MeshLoadBalancingStrategy
mesh: default
name: sticky-users
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: MeshService
        name: backend
      default:
        loadBalancer:
          type: RingHash
          ringHash:
            minRingSize: 1024
        hashPolicies:
          - type: Header
            header:
              name: x-user
"""


def inbound(port: int, service_port: int, service: str) -> str:
    return f"""\
    - port: {port}
      servicePort: {service_port}
      tags:
        kuma.io/service: {service}
        kuma.io/protocol: http
"""


def dataplane(name: str, inbounds: str, outbounds: dict[str, int] | None = None) -> str:
    text = f"type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: 127.0.0.1\n  inbound:\n{inbounds}"
    if outbounds:
        text += "  outbound:\n" + "".join(
            f"    - port: {port}\n      tags:\n        kuma.io/service: {svc}\n" for svc, port in outbounds.items()
        )
    return text


@dataclass
class Mesh:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    web: Workload
    instances: dict[str, Workload]
    ports: dict[str, int]
    envoys: dict[str, EnvoyProcess] = field(default_factory=dict)

    def files(self) -> dict[str, str | None]:
        p = self.ports
        out: dict[str, str | None] = {
            "mesh.yaml": MESH,
            "dataplanes/web.yaml": dataplane("web", inbound(p["web_in"], self.web.port, "web"), {s: p[f"web_to_{s}"] for s in SERVICES}),
            "policies/lb.yaml": RING_HASH_ON_HEADER,
        }
        for name, workload in self.instances.items():
            inbounds = "".join(inbound(p[f"{name}_{s}"], workload.port, s) for s in SERVICES)
            out[f"dataplanes/{name}.yaml"] = dataplane(name, inbounds)
        return out

    def apply(self) -> None:
        sha = self.remote.push(self.files(), "ring hash for backend")
        self.cp.wait_applied(sha, ["default.web", *(f"default.{i}" for i in INSTANCES)])
        wait_settled(self.envoys.values())

    def get(self, service: str, headers: dict[str, str] | None = None) -> str:
        status, body = http_get(f"http://127.0.0.1:{self.ports[f'web_to_{service}']}/", headers)
        assert status == 200, (status, body)
        return body.strip()

    def web_cluster(self, name: str) -> dict[str, Any]:
        """A cluster as web's Envoy has it active."""
        for config in self.envoys["web"].config_dump()["configs"]:
            for item in config.get("dynamic_active_clusters", []):
                if item["cluster"]["name"] == name:
                    return item["cluster"]  # type: ignore[no-any-return]
        return {}

    def every_instance_serves(self, service: str) -> bool:
        return {self.get(service) for _ in range(12)} == set(INSTANCES)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("mlbs")
    remote = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", *(f"web_to_{s}" for s in SERVICES), *(f"{i}_{s}" for i in INSTANCES for s in SERVICES))}
    workloads = [Workload(name) for name in ("web", *INSTANCES)]
    for w in workloads:
        w.__enter__()
    try:
        m = Mesh(remote, ControlPlaneProcess(remote.bare, root / "state"), workloads[0], {w.name: w for w in workloads[1:]}, ports)
        first = remote.push(m.files(), "initial config")
        m.cp.start()
        try:
            for name in ("web", *INSTANCES):
                m.envoys[name] = EnvoyProcess(m.cp, root / "envoys", name=name)
                m.envoys[name].start()
            m.cp.wait_applied(first, ["default.web", *(f"default.{i}" for i in INSTANCES)])
            wait_until(lambda: m.every_instance_serves("plain"), 15, what="every instance behind web's outbound")
            yield m
        finally:
            for envoy in m.envoys.values():
                envoy.stop()
            m.cp.stop()
    finally:
        for w in workloads:
            w.__exit__(None, None, None)


def test_without_a_strategy_one_key_is_spread_over_every_instance(mesh: Mesh) -> None:
    mesh.apply()
    assert "lb_policy" not in mesh.web_cluster("plain")  # Envoy's round robin
    landed = Counter(mesh.get("plain", {"x-user": "alice"}) for _ in range(30))
    assert set(landed) == set(INSTANCES), landed


def test_ring_hash_on_a_header_keeps_each_key_on_one_instance_and_spreads_keys(mesh: Mesh) -> None:
    mesh.apply()
    cluster = mesh.web_cluster("backend")
    assert cluster["lb_policy"] == "RING_HASH"
    assert cluster["ring_hash_lb_config"]["minimum_ring_size"] == "1024"
    owner: dict[str, str] = {}
    for i in range(12):
        key = f"user-{i}"
        landed = {mesh.get("backend", {"x-user": key}) for _ in range(8)}
        assert len(landed) == 1, f"{key} landed on {landed}"
        owner[key] = landed.pop()
    # Different keys hash to different points of the ring: more than one instance is used.
    assert len(set(owner.values())) >= 2, owner
    # Without the header there is no hash: Envoy picks a random point, so keys are not pinned.
    assert len({mesh.get("backend") for _ in range(30)}) >= 2
