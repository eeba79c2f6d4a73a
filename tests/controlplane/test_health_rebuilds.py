"""Health reports over HDS rebuild the mesh only when they take an inbound out or put it back.

Every sidecar reports every 5 s (Kuma's default); a connecting proxy's first report, all healthy,
changes nothing its consumers get, so it must not cost a rebuild (at 1,000 connecting proxies it
cost 249, bench/xds_scale.py --hds). A real control plane on a real git repository, one HDS stream
over real gRPC.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2, health_check_pb2
from envoy.service.health.v3 import hds_pb2, hds_pb2_grpc

from tests.e2e.harness import wait_until
from tests.security.support import LocalControlPlane
from tests.support import GitRepo, dataplane_yaml, mesh

WORKLOAD_PORT = 9090
Message = hds_pb2.HealthCheckRequestOrEndpointHealthResponse
SETTLE = 1.0
"""Seconds in which a rebuild a report set off would have been counted (it starts at once)."""


def _report(envoy: int, workload: int) -> Any:
    response = hds_pb2.EndpointHealthResponse()
    for name, status in (("kuma:envoy:admin", envoy), (f"localhost:{WORKLOAD_PORT}", workload)):
        response.cluster_endpoints_health.add(cluster_name=name).locality_endpoints_health.add().endpoints_health.add(health_status=status)
    return Message(endpoint_health_response=response)


HEALTHY = _report(health_check_pb2.HEALTHY, health_check_pb2.HEALTHY)
WORKLOAD_DOWN = _report(health_check_pb2.HEALTHY, health_check_pb2.UNHEALTHY)


def test_only_reports_that_change_an_inbound_rebuild(tmp_path: Path) -> None:
    backend = dataplane_yaml("backend", "backend", 8080, WORKLOAD_PORT)
    backend = backend.replace("      tags:\n", "      serviceProbe:\n        tcp: {}\n      tags:\n", 1)
    repo = GitRepo(tmp_path / "repo")
    sha = repo.commit(
        {"mesh.yaml": mesh(), "backend.yaml": backend, "web.yaml": dataplane_yaml("web", "web", 8081, 9091, {"backend": 20000})}
    )
    cp = LocalControlPlane(repo.path, tmp_path / "state", dataplane_auth="none", xds_tls="none")
    registry = cp.cp.metrics.registry

    def builds() -> float:
        return registry.get_sample_value("reconciler_reconcile_phase_duration_seconds_count", {"phase": "generate"}) or 0.0

    def backend_ready() -> bool:
        applied = cp.cp.store.applied
        assert applied is not None
        return applied.model.dataplanes["default.backend"].inbounds[0].ready

    outgoing: queue.Queue[Any] = queue.Queue()
    channel = grpc.insecure_channel(cp.target)
    try:
        cp.wait_applied(sha)
        node = base_pb2.Node(id="default.backend")
        node.metadata.update({"dataplane.admin.port": "9901"})
        outgoing.put(Message(health_check_request=hds_pb2.HealthCheckRequest(node=node)))

        def requests() -> Iterator[Any]:
            while (m := outgoing.get(timeout=30)) is not None:
                yield m

        answers = hds_pb2_grpc.HealthDiscoveryServiceStub(channel).StreamHealthCheck(requests(), timeout=30)
        checked = [c.cluster_name for c in next(answers).cluster_health_checks]
        assert checked == ["kuma:envoy:admin", f"localhost:{WORKLOAD_PORT}"]
        threading.Thread(target=lambda: [None for _ in answers], daemon=True).start()  # keep reading, as Envoy does

        start = builds()
        outgoing.put(HEALTHY)  # the first report: all healthy
        wait_until(lambda: "default.backend" in cp.cp.store.health, 10, what="the first report taken")
        time.sleep(SETTLE)
        assert builds() == start, "an all-healthy first report rebuilt the mesh"
        assert backend_ready()

        outgoing.put(WORKLOAD_DOWN)  # the workload stops: backend is no endpoint of web's until it is back
        wait_until(lambda: not backend_ready(), 10, what="backend's inbound out after its workload's check failed")
        assert builds() > start
        outgoing.put(HEALTHY)
        wait_until(backend_ready, 10, what="backend's inbound back")
        back = builds()
        outgoing.put(HEALTHY)  # the same again, as every 5 s
        time.sleep(SETTLE)
        assert builds() == back

        outgoing.put(None)  # the proxy goes away with every inbound healthy: nothing to rebuild
        wait_until(lambda: "default.backend" not in cp.cp.store.health, 10, what="the report forgotten")
        time.sleep(SETTLE)
        assert builds() == back
        assert backend_ready()
    finally:
        outgoing.put(None)
        channel.close()
        cp.stop()


def test_serve_without_hds_refuses_the_stream_and_keeps_serving_xds(tmp_path: Path) -> None:
    # `serve --no-hds` (Kuma's dpServer.hds.enabled: false): the sidecar's HDS stream is answered
    # UNIMPLEMENTED, so no report can take an inbound out, while ADS serves as before.
    from reconciler.xds.hds_specifier import HdsSettings
    from reconciler.xds.resources import CLUSTER, LISTENER
    from tests.security.support import AdsClient

    repo = GitRepo(tmp_path / "repo")
    sha = repo.commit({"mesh.yaml": mesh(), "web.yaml": dataplane_yaml("web", "web", 8080, WORKLOAD_PORT)})
    cp = LocalControlPlane(repo.path, tmp_path / "state", dataplane_auth="none", xds_tls="none", hds=HdsSettings(enabled=False))
    try:
        cp.wait_applied(sha)
        node = base_pb2.Node(id="default.web")
        first = Message(health_check_request=hds_pb2.HealthCheckRequest(node=node))
        with grpc.insecure_channel(cp.target) as channel:
            stream = hds_pb2_grpc.HealthDiscoveryServiceStub(channel).StreamHealthCheck(iter([first]), timeout=10)
            try:
                next(stream)
                raise AssertionError("an HDS answer from a control plane serving without HDS")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNIMPLEMENTED, e
        client = AdsClient(cp.target)
        client.open("default.web")
        client.wait_types(LISTENER, CLUSTER)
        client.close()
    finally:
        cp.stop()
