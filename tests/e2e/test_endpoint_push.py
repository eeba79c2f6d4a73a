"""A real Envoy (state of the world, then delta) given only the endpoints it lacks.

When a service gains an endpoint, the control plane's EDS push carries that service's
ClusterLoadAssignment alone (the xDS protocol groups SotW EDS as delta does); when a CDS update
adds a cluster or changes one, the endpoints of that cluster alone follow. Envoy must keep
every other cluster's endpoints, warm the new and rebuilt clusters without waiting for its 15 s
initial fetch timeout, and the proxy must count as synced. Checked with traffic and with
Envoy's own stats; the tests run in order on one Envoy per xDS mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_until
from tests.support import dataplane_yaml, mesh_timeout

pytestmark = pytest.mark.envoy


def service(name: str, service: str, port: int) -> str:
    """A Dataplane whose endpoint is the workload itself (mTLS off: no sidecar in front of it)."""
    return dataplane_yaml(name, service, port, port)


TIMEOUT = mesh_timeout("a-connect", "connectionTimeout: 2s")
"""Every outbound cluster gets another connect timeout: Envoy rebuilds them all."""


def client(inbound: int, ports: dict[str, int]) -> str:
    return dataplane_yaml("client", "client", inbound, inbound, ports)


@dataclass
class Mesh:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    envoy: EnvoyProcess
    ports: dict[str, int]
    """Service → the client's outbound port for it."""
    workloads: dict[str, Workload]
    client_inbound: int

    def answer(self, svc: str) -> tuple[int, str]:
        return http_get(f"http://127.0.0.1:{self.ports[svc]}/")


@pytest.fixture(scope="module", params=["sotw", "delta"])
def mesh(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp(f"endpoint-push-{request.param}")
    remote = ConfigRemote(root)
    ports = {"svc-a": free_port(), "svc-b": free_port()}
    client_inbound = free_port()
    with Workload("a-1") as a1, Workload("a-2") as a2, Workload("b-1") as b1, Workload("c-1") as c1:
        sha = remote.push(
            {
                "mesh.yaml": "type: Mesh\nname: default\n",
                "a-1.yaml": service("a-1", "svc-a", a1.port),
                "b-1.yaml": service("b-1", "svc-b", b1.port),
                "client.yaml": client(client_inbound, ports),
            }
        )
        cp = ControlPlaneProcess(remote.bare, root / "state", dataplane_auth=False)
        cp.start()
        try:
            cp.wait_applied(sha, timeout=60)
            envoy = EnvoyProcess(cp, root / "envoys", name="client", mode=request.param)
            envoy.start()
            try:
                yield Mesh(remote, cp, envoy, ports, {"a-1": a1, "a-2": a2, "b-1": b1, "c-1": c1}, client_inbound)
            finally:
                envoy.stop()
        finally:
            cp.stop()


def test_a_new_endpoint_reaches_envoy_which_keeps_the_endpoints_of_the_other_services(mesh: Mesh) -> None:
    wait_until(lambda: mesh.answer("svc-a") == (200, "a-1\n") and mesh.answer("svc-b") == (200, "b-1\n"), 30, what="both services")
    before = mesh.envoy.stats("cluster.svc-")

    sha = mesh.remote.push({"a-2.yaml": service("a-2", "svc-a", mesh.workloads["a-2"].port)}, "a second svc-a endpoint")
    mesh.cp.wait_applied(sha, proxies=["default.client"], timeout=30)

    def both_a_endpoints() -> bool:
        return {mesh.answer("svc-a")[1] for _ in range(20)} == {"a-1\n", "a-2\n"}

    wait_until(both_a_endpoints, 30, what="svc-a answered by a-1 and a-2")
    # svc-b was not in the push: Envoy updated svc-a alone and kept svc-b's endpoint.
    after = mesh.envoy.stats("cluster.svc-")
    assert after["cluster.svc-a.update_success"] == before["cluster.svc-a.update_success"] + 1
    assert after["cluster.svc-b.update_success"] == before["cluster.svc-b.update_success"]
    assert after["cluster.svc-b.membership_total"] == 1
    assert all(mesh.answer("svc-b") == (200, "b-1\n") for _ in range(5))


def test_a_new_service_is_served_at_once_and_the_others_endpoints_are_not_sent_again(mesh: Mesh) -> None:
    before = mesh.envoy.stats("cluster.svc-")
    mesh.ports["svc-c"] = free_port()
    sha = mesh.remote.push(
        {"c-1.yaml": service("c-1", "svc-c", mesh.workloads["c-1"].port), "client.yaml": client(mesh.client_inbound, mesh.ports)},
        "svc-c, called by the client",
    )
    mesh.cp.wait_applied(sha, proxies=["default.client"], timeout=30)
    # Well under Envoy's 15 s initial fetch timeout: the new cluster got its endpoints when it asked.
    wait_until(lambda: mesh.answer("svc-c") == (200, "c-1\n"), 10, what="svc-c served")
    after = mesh.envoy.stats("cluster.")
    assert after["cluster.svc-c.membership_total"] == 1
    assert after["cluster.svc-a.update_success"] == before["cluster.svc-a.update_success"]
    assert after["cluster.svc-b.update_success"] == before["cluster.svc-b.update_success"]
    assert mesh.answer("svc-b") == (200, "b-1\n")


def test_clusters_a_policy_changes_warm_again_with_their_endpoints(mesh: Mesh) -> None:
    before = mesh.envoy.stats("cluster")
    sha = mesh.remote.push({"timeout.yaml": TIMEOUT}, "another connect timeout for every outbound")
    mesh.cp.wait_applied(sha, proxies=["default.client"], timeout=30)

    def rebuilt_and_warm() -> bool:
        stats = mesh.envoy.stats("cluster")
        return (
            stats["cluster_manager.cluster_modified"] > before["cluster_manager.cluster_modified"]
            and stats["cluster_manager.warming_clusters"] == 0
            and all(stats[f"cluster.{svc}.update_success"] > before[f"cluster.{svc}.update_success"] for svc in ("svc-a", "svc-b"))
        )

    # Each rebuilt cluster got its endpoints again, well within Envoy's 15 s initial fetch timeout.
    wait_until(rebuilt_and_warm, 10, what="the rebuilt clusters warm, with their endpoints")
    assert mesh.answer("svc-b") == (200, "b-1\n")
    assert {mesh.answer("svc-a")[1] for _ in range(20)} == {"a-1\n", "a-2\n"}
