"""Kuma's Universal service probes with real Envoys: a workload that stops answering leaves its
consumers' endpoints, and comes back when it answers again.

Two `backend` workloads behind sidecars whose inbounds declare a `serviceProbe` (a TCP check
every second, unhealthy after 2 failures); one `client` sidecar (no probe) calls backend. The
control plane hands each sidecar its checks over HDS and asks for reports every second
(`serve --hds-interval 1`). Stopping backend-1's workload must take its endpoint out of the
client's EDS within checks × threshold + one report + one push, every request then answered by
backend-2, and `/status` and Kuma's API must show the inbound unhealthy; starting it again must
bring it back. The tests run in order on one control plane and one Envoy per Dataplane.
"""

from __future__ import annotations

import http.client
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.health.v3 import hds_pb2, hds_pb2_grpc

from tests.e2e.harness import PYTHON, ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, serving, wait_until
from tests.support import dataplane_yaml

pytestmark = pytest.mark.envoy

CHECK_INTERVAL = 1.0
UNHEALTHY_THRESHOLD = 2
HDS_INTERVAL = 1.0
PUSH_ALLOWANCE = 4.0
"""Seconds for the rebuild, the EDS push and Envoy applying it on a loaded two-core machine."""
BOUND = CHECK_INTERVAL * UNHEALTHY_THRESHOLD + HDS_INTERVAL + PUSH_ALLOWANCE
PROBE = f"""\
      serviceProbe:
        interval: {CHECK_INTERVAL:g}s
        timeout: 1s
        unhealthyThreshold: {UNHEALTHY_THRESHOLD}
        healthyThreshold: 1
        tcp: {{}}
"""


def backend(name: str, inbound: int, workload: int) -> str:
    text = dataplane_yaml(name, "backend", inbound, workload)
    head, tags, rest = text.partition("      tags:\n")
    return head + PROBE + tags + rest


def probes(port: int, workload: int) -> str:
    """Kuma's virtual probes: one endpoint to the inbound's workload, one to a port no inbound has."""
    return f"""\
probes:
  port: {port}
  endpoints:
    - inboundPort: {workload}
      inboundPath: /healthz
      path: /probes/backend
    - inboundPort: {NO_INBOUND_PORT}
      inboundPath: /ready
      path: /probes/elsewhere?verbose=1
"""


NO_INBOUND_PORT = 9


@dataclass
class Mesh:
    cp: ControlPlaneProcess
    envoys: dict[str, EnvoyProcess]
    workloads: dict[str, Workload]
    inbounds: dict[str, int]
    outbound: int
    probe_port: int
    """backend-2's virtual probes (`probes.port`)."""

    def call(self) -> str:
        return http_get(f"http://127.0.0.1:{self.outbound}/", timeout=3)[1].strip()

    def client_endpoints(self) -> set[int]:
        """The ports of the `backend` cluster's hosts in the client's Envoy (its EDS)."""
        text = http_get(self.envoys["client"].admin + "/clusters")[1]
        return {
            int(line.split("::")[1].rpartition(":")[2])
            for line in text.splitlines()
            if line.startswith("backend::") and "::cx_total::" in line
        }

    def proxy_status(self, name: str) -> dict[str, Any]:
        status = self.cp.status() or {}
        return status.get("proxies", {}).get(f"default.{name}", {})  # type: ignore[no-any-return]

    def pushes(self, name: str) -> dict[str, int]:
        return {t: s["pushes"] for t, s in self.proxy_status(name)["types"].items()}

    def kuma_inbound(self, name: str) -> dict[str, Any]:
        return self.cp.get(f"/meshes/default/dataplanes/{name}")["networking"]["inbound"][0]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root: Path = tmp_path_factory.mktemp("service-health")
    remote = ConfigRemote(root)
    inbounds = {"backend-1": free_port(), "backend-2": free_port(), "client": free_port()}
    outbound, probe_port = free_port(), free_port()
    with Workload("backend-1") as w1, Workload("backend-2") as w2:
        workloads = {"backend-1": w1, "backend-2": w2}
        sha = remote.push(
            {
                "mesh.yaml": "type: Mesh\nname: default\n",
                "backend-1.yaml": backend("backend-1", inbounds["backend-1"], w1.port),
                "backend-2.yaml": backend("backend-2", inbounds["backend-2"], w2.port) + probes(probe_port, w2.port),
                "client.yaml": dataplane_yaml("client", "client", inbounds["client"], inbounds["client"], {"backend": outbound}),
            }
        )
        cp = ControlPlaneProcess(remote.bare, root / "state", extra=["--hds-interval", f"{HDS_INTERVAL:g}"])
        with serving(cp, root / "envoys", ["backend-1", "backend-2", "client"], sha) as envoys:
            m = Mesh(cp, envoys, workloads, inbounds, outbound, probe_port)
            try:
                yield m
            finally:
                for w in m.workloads.values():
                    w.__exit__(None, None, None)


def test_sidecars_report_health_and_both_backends_serve(mesh: Mesh) -> None:
    # Every sidecar holds an HDS stream (admitted with its dataplane token) and reports.
    wait_until(lambda: all("health" in mesh.proxy_status(n) for n in mesh.envoys), 30, what="a health report from every sidecar")
    assert mesh.proxy_status("backend-1")["health"] == {"envoy": True, "ports": {str(mesh.workloads["backend-1"].port): True}}
    wait_until(lambda: mesh.client_endpoints() == {mesh.inbounds["backend-1"], mesh.inbounds["backend-2"]}, 30, what="both endpoints")
    wait_until(lambda: {mesh.call() for _ in range(20)} == {"backend-1", "backend-2"}, 30, what="both backends answering")


def test_a_stopped_workload_leaves_the_consumers_endpoints(mesh: Mesh) -> None:
    port = mesh.workloads["backend-1"].port
    pushes = {name: mesh.pushes(name) for name in mesh.envoys}
    mesh.workloads["backend-1"].__exit__(None, None, None)
    stopped = time.monotonic()
    wait_until(lambda: mesh.client_endpoints() == {mesh.inbounds["backend-2"]}, 30, interval=0.1, what="backend-1 out of the client's EDS")
    took = time.monotonic() - stopped
    print(f"backend-1 left the client's EDS {took:.2f}s after its workload stopped (bound {BOUND:g}s)")
    assert took < BOUND, f"{took:.2f}s: more than checks × threshold + one report + one push"
    assert all(mesh.call() == "backend-2" for _ in range(20))
    # Only the consumer of backend got a push, and of its endpoints alone.
    after = {name: mesh.pushes(name) for name in mesh.envoys}
    assert after["backend-1"] == pushes["backend-1"] and after["backend-2"] == pushes["backend-2"]
    assert {t for t, n in after["client"].items() if n != pushes["client"].get(t)} == {"EDS"}
    assert mesh.proxy_status("backend-1")["health"]["ports"] == {str(port): False}
    assert mesh.kuma_inbound("backend-1")["health"] == {"ready": False}
    assert mesh.kuma_inbound("backend-1")["state"] == "NotReady"
    insight = mesh.cp.get("/meshes/default/service-insights/backend")
    assert (insight["status"], insight["dataplanes"]["online"], insight["dataplanes"]["offline"]) == ("partially_degraded", 1, 1)
    backend_1 = next(d for d in mesh.cp.get("/status/dataplanes") if d["name"] == "backend-1")
    assert [i["ready"] for i in backend_1["inbounds"]] == [False]
    status = subprocess.run(
        [PYTHON, "-m", "reconciler", "status", "--server", mesh.cp.api], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert f"unhealthy: default.backend-1: service probe failing on workload port {port}" in status
    assert "default.backend-2: " not in status.partition("unhealthy:")[2]


def test_the_workload_answering_again_returns(mesh: Mesh) -> None:
    again = Workload("backend-1", port=mesh.workloads["backend-1"].port)
    mesh.workloads["backend-1"] = again.__enter__()
    started = time.monotonic()
    wait_until(
        lambda: mesh.client_endpoints() == {mesh.inbounds["backend-1"], mesh.inbounds["backend-2"]},
        30,
        interval=0.1,
        what="backend-1 back in the client's EDS",
    )
    print(f"backend-1 returned to the client's EDS {time.monotonic() - started:.2f}s after its workload started")
    assert time.monotonic() - started < BOUND
    wait_until(lambda: {mesh.call() for _ in range(20)} == {"backend-1", "backend-2"}, 10, what="both backends answering again")
    assert mesh.kuma_inbound("backend-1")["health"] == {"ready": True}


def test_a_sidecar_without_service_probe_is_never_marked(mesh: Mesh) -> None:
    # The client's inbound has no probe: only Envoy's own readiness counts, and Envoy is ready.
    assert mesh.proxy_status("client")["health"] == {"envoy": True, "ports": {}}
    client = next(d for d in mesh.cp.get("/status/dataplanes") if d["name"] == "client")
    assert [i["ready"] for i in client["inbounds"]] == [True]
    assert mesh.kuma_inbound("client")["health"] == {"ready": True}


HDS_METHOD = "/envoy.service.health.v3.HealthDiscoveryService/StreamHealthCheck"


def _hds_first_answer(cp: ControlPlaneProcess, node_id: str, token: str | None, admin_port: int = 0) -> hds_pb2.HealthCheckSpecifier:
    """Open an HDS stream as `node_id` (over the control plane's TLS, with `token` in node
    metadata as run-dataplane sends it) and return the first specifier, or raise how it ended."""
    assert cp.ca_cert is not None
    credentials = grpc.ssl_channel_credentials(root_certificates=cp.ca_cert.read_bytes())
    node = base_pb2.Node(id=node_id)
    if token is not None:
        node.metadata.fields["dataplane.token"].string_value = token
    if admin_port:
        node.metadata.fields["dataplane.admin.port"].string_value = str(admin_port)
    first = hds_pb2.HealthCheckRequestOrEndpointHealthResponse(health_check_request=hds_pb2.HealthCheckRequest(node=node))
    with grpc.secure_channel(cp.xds, credentials) as channel:
        stub = hds_pb2_grpc.HealthDiscoveryServiceStub(channel)
        done = threading.Event()

        def requests() -> Iterator[hds_pb2.HealthCheckRequestOrEndpointHealthResponse]:
            yield first
            done.wait(10)

        try:
            for answer in stub.StreamHealthCheck(requests(), timeout=10):
                return answer  # type: ignore[no-any-return]
        finally:
            done.set()
    raise AssertionError("the stream ended without an answer")


def test_hds_admits_a_proxy_by_its_dataplane_token_as_ads_does(mesh: Mesh) -> None:
    with pytest.raises(grpc.RpcError) as no_token:
        _hds_first_answer(mesh.cp, "default.backend-2", None)
    assert no_token.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as other_name:
        _hds_first_answer(mesh.cp, "default.backend-2", mesh.cp.issue_token("backend-1"))
    assert other_name.value.code() == grpc.StatusCode.PERMISSION_DENIED
    token = mesh.cp.issue_token("backend-2")
    answer = _hds_first_answer(mesh.cp, "default.backend-2", token, admin_port=mesh.envoys["backend-2"].admin_port)
    admin, workload = answer.cluster_health_checks
    assert admin.cluster_name == "kuma:envoy:admin"
    assert admin.locality_endpoints[0].endpoints[0].address.socket_address.port_value == mesh.envoys["backend-2"].admin_port
    # A stream that reports no admin port gets Kuma's default (9901), and not the checks of the
    # sidecar's own stream, which keep its real admin port.
    bare = _hds_first_answer(mesh.cp, "default.backend-2", token)
    assert bare.cluster_health_checks[0].locality_endpoints[0].endpoints[0].address.socket_address.port_value == 9901
    assert workload.cluster_name == f"localhost:{mesh.workloads['backend-2'].port}"
    assert workload.health_checks[0].unhealthy_threshold.value == UNHEALTHY_THRESHOLD
    assert answer.interval.ToTimedelta().total_seconds() == HDS_INTERVAL
    # The real sidecar's stream is still open: backend-2 keeps its health and its endpoint.
    assert mesh.proxy_status("backend-2")["health"]["envoy"] is True
    assert mesh.inbounds["backend-2"] in mesh.client_endpoints()


def _request(port: int, method: str, path: str) -> tuple[int, str, str]:
    """(status, Location header, body) without following redirects."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, r.getheader("Location") or "", r.read().decode()
    finally:
        conn.close()


def test_virtual_probes_reach_the_workload_at_its_health_path(mesh: Mesh) -> None:
    workload = mesh.workloads["backend-2"]
    before = workload.requests["/healthz"]
    assert _request(mesh.probe_port, "GET", "/probes/backend")[::2] == (200, "backend-2\n")
    assert workload.requests["/healthz"] == before + 1
    # No inbound has that workload port: the prober is sent there (Kuma's redirect).
    status, location, _ = _request(mesh.probe_port, "GET", "/probes/elsewhere")
    assert (status, location) == (301, f"http://127.0.0.1:{NO_INBOUND_PORT}/ready")
    # GET of the declared paths only.
    assert _request(mesh.probe_port, "POST", "/probes/backend")[0] == 404
    assert _request(mesh.probe_port, "GET", "/healthz")[0] == 404
    assert workload.requests["/healthz"] == before + 1


def test_health_is_forgotten_when_the_proxy_disconnects(mesh: Mesh) -> None:
    mesh.workloads["backend-1"].__exit__(None, None, None)
    wait_until(lambda: mesh.proxy_status("backend-1")["health"]["ports"] != {}, 10, what="backend-1 reported")
    wait_until(lambda: not all(mesh.proxy_status("backend-1")["health"]["ports"].values()), 10, what="backend-1 unhealthy")
    mesh.envoys["backend-1"].stop()
    wait_until(lambda: "health" not in mesh.proxy_status("backend-1"), 10, what="backend-1's health forgotten")
    assert mesh.proxy_status("backend-1")["connected"] is False
    # As with no HDS data in Kuma: no health written over the Dataplane git declares.
    assert "health" not in mesh.kuma_inbound("backend-1")
